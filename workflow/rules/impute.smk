# One rule per configured method (impute_<method>), one job per (method, dataset): the
# job imputes every scenario of the dataset, so that Python, torch, scvi-tools or MAGIC
# start once per method and dataset rather than once per scenario (the default run has
# several seeds per scenario; per-scenario jobs spent more time starting than imputing).
#   results/scenarios/{dataset}/{scenario}.h5ad (every scenario of the dataset)
#   -> results/imputed/{dataset}/<method>/{scenario}.h5ad  (one folder per method)
# Time per scenario is measured in the job (uns["runtime_s"]); the job's benchmark file
# results/benchmarks/{dataset}/<method>.tsv gives its peak memory (over all scenarios).
# GPU methods ask for resources gpu=1 (set in the config); the default profile allows
# one such job at a time (locally only where an NVIDIA GPU is present, see common.smk).

for _method in METHODS:
    _res = ct.method_resources(config, _method)

    rule:
        name:
            f"impute_{_method}"
        input:
            scenarios=scenario_files,
        output:
            imputed=directory(f"results/imputed/{{dataset}}/{_method}"),
        log:
            f"results/logs/impute/{{dataset}}/{_method}.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/{_method}.tsv"
        params:
            method=_method,
            method_params=method_params(_method),
            seed=config["seed"],
            gpu=_res["gpu"],
            on_error=config["on_error"],
            scenario_ids=lambda wildcards: ct.dataset_scenarios(config, wildcards.dataset),
        threads: _res["threads"]
        resources:
            mem_mb=_res["mem_mb"],
            runtime=job_runtime(_res["runtime"]),
            gpu=gpu_resource(_res["gpu"]),
        conda:
            ct.method_env(_method, config)
        script:
            "../scripts/impute.py"
