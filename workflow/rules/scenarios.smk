# A dataset after one perturbation -> results/scenarios/{dataset}/{scenario}.h5ad


rule make_scenario:
    input:
        "results/datasets/{dataset}.h5ad",
    output:
        "results/scenarios/{dataset}/{scenario}.h5ad",
    log:
        "results/logs/make_scenario/{dataset}/{scenario}.log",
    params:
        options=lambda wildcards: ct.scenario_options(
            config, wildcards.dataset, wildcards.scenario
        ),
        # simulations: each scenario seed simulates its own dataset (simulate.data_seed)
        simulate=lambda wildcards: config["datasets"][wildcards.dataset].get("simulate"),
        # downsampled real data: each scenario seed draws its own counts (simulate.downsample)
        downsample=lambda wildcards: config["datasets"][wildcards.dataset].get("downsample"),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/make_scenario.py"
