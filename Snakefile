# scZiva imputation benchmark.
#
#   snakemake --cores 8                               # config.yaml (offline, simulated data)
#   snakemake --cores 8 --configfile config/paper.yaml --sdm conda
#   snakemake --report results/snakemake_report.html  # after a run
#
# Rules live in workflow/rules/*.smk, their scripts in workflow/scripts/, the config
# schema in workflow/schemas/config.schema.yaml. See docs/workflow.md.

from snakemake.utils import min_version, validate

min_version("8.0")


report: "workflow/report/workflow.rst"


# The default configuration, unless --configfile names others (then only those are
# used: config.yaml is not merged into them).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/scenarios.smk"
include: "workflow/rules/impute.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/metrics.tsv",
        FIGURES,
        "results/report.html",
        "results/provenance.yaml",
    default_target: True
