# Shared helpers: targets from the config, and checks the JSON schema cannot express.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# the benchmark library (src/scziva_bench) without requiring an install
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from scziva_bench.pipeline import targets as ct  # noqa: E402
from scziva_bench.pipeline.provenance import nvidia_gpu_present  # noqa: E402
from scziva_bench.catalog import figures as figure_list  # noqa: E402
from scziva_bench.catalog import methods as method_catalog  # noqa: E402
from scziva_bench.catalog.scenarios import WILDCARD as SCENARIO_WILDCARD  # noqa: E402

DATASETS = list(config["datasets"])
METHODS = list(config["methods"])
METRICS = list(config["metrics"])
SIMULATED = ct.datasets_by_source(config, "simulate")
LOCAL = ct.datasets_by_source(config, "local")
ZENODO = ct.datasets_by_source(config, "zenodo")
FIG_FORMATS = list(config["figures"]["formats"])
UMAP = ct.umap_target(config)

# Jobs of GPU methods hold the resource `gpu` (the default profile allows 1 at a time).
# Run locally on a machine without an NVIDIA GPU there is nothing to share: they hold
# none, so that they run side by side (they still ask for device auto, which resolves to
# CPU). Decided when the job is made, once Snakemake knows its executor (on SLURM the
# jobs always ask for their GPU; a dry run shows what the config asks for).
def gpu_resource(n_gpus):
    def _gpu(wildcards):
        local_run = workflow.local_exec and not workflow.dryrun
        if n_gpus and local_run and not nvidia_gpu_present():
            return 0
        return n_gpus

    return _gpu


def _check_config():
    """Cross-key checks; each failure names the key and value."""
    for ds in DATASETS:
        if not ct.dataset_scenarios(config, ds):
            raise WorkflowError(
                f"config: dataset {ds!r} has no scenario (set `scenarios` at the top level "
                "or in the dataset: none, dropout.rates, mask.rates or mcv.seeds)"
            )
    umap = config["figures"].get("umap") or {}
    if umap.get("dataset") and umap["dataset"] not in config["datasets"]:
        raise WorkflowError(
            f"config: figures.umap.dataset {umap['dataset']!r} is not one of the datasets "
            f"{DATASETS}"
        )
    if UMAP is not None and UMAP[1] not in ct.dataset_scenarios(config, UMAP[0]):
        raise WorkflowError(
            f"config: figures.umap.scenario {UMAP[1]!r} is not a scenario of dataset "
            f"{UMAP[0]!r} ({ct.dataset_scenarios(config, UMAP[0])})"
        )
    # user-supplied methods (callable / command): placeholders, paths, one of the two
    from scziva.errors import InputError
    from scziva_bench.methods import external

    try:
        external.check_config(config["methods"])
    except InputError as exc:
        raise WorkflowError(str(exc)) from None
    # Method names and parameters were checked at the start (scziva_bench.pipeline.config_check,
    # called by the Snakefile), with the schema.


_check_config()


wildcard_constraints:
    dataset=ct.name_regex(DATASETS),
    scenario=SCENARIO_WILDCARD,
    method=ct.name_regex(METHODS),


def scenario_files(wildcards):
    """Every scenario file of one dataset (the inputs of its impute jobs)."""
    return [
        f"results/scenarios/{wildcards.dataset}/{sc}.h5ad"
        for sc in ct.dataset_scenarios(config, wildcards.dataset)
    ]


def imputed_dirs(wildcards):
    """The output folder of every method for one dataset."""
    return [f"results/imputed/{wildcards.dataset}/{m}" for m in METHODS]


def job_runtime(minutes):
    """A job imputes every scenario of its dataset: `runtime` (minutes) is per scenario."""
    return lambda wildcards: minutes * len(ct.dataset_scenarios(config, wildcards.dataset))


def method_params(name):
    return dict((config["methods"].get(name) or {}).get("params") or {})


FIGURES = [
    f"results/figures/{name}.{ext}" for name in ct.figure_names(config) for ext in FIG_FORMATS
]


def _local_path(path):
    """A local dataset's file: relative to the working directory, else (for the datasets
    shipped in resources/datasets/, when `--directory` is elsewhere) to the checkout."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(path)
    shipped = Path(workflow.basedir) / p
    return str(shipped) if shipped.exists() else str(path)


def _dataset_files(wildcards):
    """Counts file (and optional truth, MCV test half and labels files) of a local or Zenodo dataset."""
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "zenodo":
        files = {"counts": f"resources/zenodo/{ds['record']}/{ds['file']}"}
        if ds.get("truth_file"):
            files["truth"] = f"resources/zenodo/{ds['record']}/{ds['truth_file']}"
        if ds.get("test_file"):
            files["test"] = f"resources/zenodo/{ds['record']}/{ds['test_file']}"
        if ds.get("labels_file"):
            files["labels"] = f"resources/zenodo/{ds['record']}/{ds['labels_file']}"
    else:
        files = {"counts": _local_path(ds["path"])}
        if ds.get("truth_path"):
            files["truth"] = _local_path(ds["truth_path"])
        if ds.get("test_path"):
            files["test"] = _local_path(ds["test_path"])
        if ds.get("labels_path"):
            files["labels"] = _local_path(ds["labels_path"])
    return files


_FIG_KW = dict(
    formats=FIG_FORMATS,
    dpi=config["figures"]["dpi"],
    describe=ct.describe_config(config),
    labels=method_catalog.labels(config["methods"]),
    captions=figure_list.CAPTIONS,  # shown by workflow/report/<kind>.rst
)


def _figure_outputs(names):
    """results/figures/<name>.<ext>; the PNGs go into `snakemake --report` with a caption."""
    out = []
    for name in names:
        kind = name.split("_")[0]
        for ext in FIG_FORMATS:
            path = f"results/figures/{name}.{ext}"
            if ext == "png":
                path = report(
                    path,
                    caption=f"../report/{kind}.rst",
                    category="Figures",
                    labels={"figure": name},
                )
            out.append(path)
    return out
