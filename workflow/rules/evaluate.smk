# Metrics: one tidy TSV per (dataset, scenario, method), then their concatenation.


rule evaluate:
    input:
        scenario="results/scenarios/{dataset}/{scenario}.h5ad",
        imputed="results/imputed/{dataset}/{scenario}/{method}.h5ad",
        benchmark="results/benchmarks/{dataset}/{scenario}/{method}.tsv",
    output:
        "results/metrics/{dataset}/{scenario}/{method}.tsv",
    log:
        "results/logs/evaluate/{dataset}/{scenario}/{method}.log",
    params:
        metrics=METRICS,
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/evaluate.py"


rule aggregate:
    input:
        wu.metric_targets(config),
    output:
        report(
            "results/metrics.tsv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate.log",
    params:
        describe=wu.describe_config(config),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/aggregate.py"
