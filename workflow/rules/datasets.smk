# Datasets -> results/datasets/{dataset}.h5ad (docs/contract.md "Dataset").


rule simulate:
    output:
        "results/datasets/{dataset}.h5ad",
    log:
        "results/logs/simulate/{dataset}.log",
    params:
        simulate=lambda wildcards: config["datasets"][wildcards.dataset]["simulate"],
    wildcard_constraints:
        dataset=ct.name_regex(SIMULATED),
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
        dataset=ct.name_regex(LOCAL + ZENODO),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/load_local.py"
