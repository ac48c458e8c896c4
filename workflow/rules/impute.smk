# One rule per configured method (impute_<method>), generated from the config:
# results/scenarios/{dataset}/{scenario}.h5ad -> results/imputed/{dataset}/{scenario}/<method>.h5ad
# with time and peak memory in results/benchmarks/{dataset}/{scenario}/<method>.tsv.
# GPU methods ask for resources gpu=1 (set in the config); the default profile allows
# one such job at a time (locally only where an NVIDIA GPU is present, see common.smk).

for _method in METHODS:
    _res = ct.method_resources(config, _method)

    rule:
        name:
            f"impute_{_method}"
        input:
            "results/scenarios/{dataset}/{scenario}.h5ad",
        output:
            f"results/imputed/{{dataset}}/{{scenario}}/{_method}.h5ad",
        log:
            f"results/logs/impute/{{dataset}}/{{scenario}}/{_method}.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/{{scenario}}/{_method}.tsv"
        params:
            method=_method,
            method_params=method_params(_method),
            seed=config.get("seed", 0),
            gpu=_res["gpu"],
            on_error=config.get("on_error", "mark"),
        threads: _res["threads"]
        resources:
            mem_mb=_res["mem_mb"],
            runtime=_res["runtime"],
            gpu=gpu_resource(_res["gpu"]),
        conda:
            ct.method_env(_method, config)
        script:
            "../scripts/impute.py"
