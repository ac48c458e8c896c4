# Datasets -> results/datasets/{dataset}.h5ad (docs/contract.md "Dataset").


def _dataset_files(wildcards):
    """Counts file (and optional truth file) of a local or Zenodo dataset."""
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "zenodo":
        files = {"counts": f"resources/zenodo/{ds['record']}/{ds['file']}"}
        if ds.get("truth_file"):
            files["truth"] = f"resources/zenodo/{ds['record']}/{ds['truth_file']}"
        if ds.get("labels_file"):
            files["labels"] = f"resources/zenodo/{ds['record']}/{ds['labels_file']}"
    else:
        files = {"counts": ds["path"]}
        if ds.get("truth_path"):
            files["truth"] = ds["truth_path"]
        if ds.get("labels_path"):
            files["labels"] = ds["labels_path"]
    return files


rule simulate:
    output:
        "results/datasets/{dataset}.h5ad",
    log:
        "results/logs/simulate/{dataset}.log",
    params:
        simulate=lambda wildcards: config["datasets"][wildcards.dataset]["simulate"],
    wildcard_constraints:
        dataset=wu.dataset_regex(SIMULATED),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/simulate.py"


rule download_zenodo:
    output:
        "resources/zenodo/{record}/{file}",
    log:
        "results/logs/download_zenodo/{record}/{file}.log",
    params:
        record="{record}",
        file="{file}",
    wildcard_constraints:
        record=r"\d+",
        file=r"[^/]+",
    retries: 2
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/download_zenodo.py"


rule load_local:
    input:
        unpack(_dataset_files),
    output:
        "results/datasets/{dataset}.h5ad",
    log:
        "results/logs/load_local/{dataset}.log",
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    wildcard_constraints:
        dataset=wu.dataset_regex(LOCAL + ZENODO),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/load_local.py"
