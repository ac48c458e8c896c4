# scZiva imputation benchmark.
#
#   snakemake --cores 8                               # config.yaml (offline, simulated data)
#   snakemake --cores 8 --configfile config/paper.yaml --sdm conda
#   snakemake --report results/snakemake_report.html  # after a run
#
# Rules live in workflow/rules/*.smk, their scripts in workflow/scripts/, the config
# schema in workflow/schemas/config.schema.yaml. See docs/workflow.md.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("8.0")


report: "workflow/report/workflow.rst"


# The default configuration, unless --configfile names others (then only those are
# used: config.yaml is not merged into them).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# Every config problem at once, one line each naming its key (unknown methods, the schema,
# method parameters), before anything runs; then snakemake's validate fills the defaults.
import sys as _sys

_sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from scziva_bench.pipeline.config_check import problems as _config_problems  # noqa: E402

_SCHEMA = "workflow/schemas/config.schema.yaml"
_problems = _config_problems(config, Path(workflow.basedir) / _SCHEMA)
if len(_problems) == 1:
    raise WorkflowError(_problems[0])
if _problems:
    raise WorkflowError(f"the config has {len(_problems)} problems:\n" + "\n".join(_problems))
validate(config, _SCHEMA)
# no metrics: every metric of the catalog, in its order
from scziva_bench.catalog import metrics as _metric_catalog  # noqa: E402

config.setdefault("metrics", _metric_catalog.names())


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/scenarios.smk"
include: "workflow/rules/impute.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/metrics.tsv",
        "results/ranks.tsv",
        "results/verdicts.md",
        FIGURES,
        "results/report.html",
        "results/provenance.yaml",
    default_target: True
