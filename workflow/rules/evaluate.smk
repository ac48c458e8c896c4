# Metrics: one tidy TSV per (dataset, scenario, method), then their concatenation.


rule evaluate:
    # one job per (dataset, scenario) scores every method: reading the scenario and
    # importing the libraries once, rather than once per method, saves minutes.
    input:
        scenario="results/scenarios/{dataset}/{scenario}.h5ad",
        # one folder per method, holding {scenario}.h5ad (see impute.smk)
        imputed=imputed_dirs,
        benchmarks=expand("results/benchmarks/{{dataset}}/{method}.tsv", method=METHODS),
    output:
        expand("results/metrics/{{dataset}}/{{scenario}}/{method}.tsv", method=METHODS),
    log:
        "results/logs/evaluate/{dataset}/{scenario}.log",
    params:
        metrics=METRICS,
        methods=METHODS,
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/evaluate.py"


rule aggregate:
    input:
        ct.metric_targets(config),
    output:
        report(
            "results/metrics.tsv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        "results/ranks.tsv",
        "results/verdicts.md",
    log:
        "results/logs/aggregate.log",
    params:
        describe=ct.describe_config(config),
        title=config["report"]["title"],
        tier=config["report"].get("tier", ""),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/aggregate.py"
