# Figures, provenance and the HTML summary.

rule figures:
    input:
        "results/metrics.tsv",
    output:
        _figure_outputs(figure_list.from_tables(ct.figure_names(config))),
    log:
        "results/logs/figures.log",
    params:
        datasets={
            ds: spec.get("regime") or spec.get("description", "")
            for ds, spec in config["datasets"].items()
        },
        **_FIG_KW,
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/figures.py"


if UMAP is not None:

    rule umap:
        input:
            scenario=f"results/scenarios/{UMAP[0]}/{UMAP[1]}.h5ad",
            imputed=expand(
                "results/imputed/{dataset}/{method}", dataset=UMAP[0], method=METHODS
            ),
        output:
            _figure_outputs(
                [n for n in ct.figure_names(config) if n in figure_list.IMPUTED_FIGURES]
            ),
        log:
            "results/logs/umap.log",
        params:
            methods=METHODS,
            dataset=UMAP[0],
            scenario=UMAP[1],
            **_FIG_KW,
        conda:
            "../../envs/bench.yaml"
        script:
            "../scripts/imputed_figures.py"


rule provenance:
    output:
        "results/provenance.yaml",
    log:
        "results/logs/provenance.log",
    params:
        config=config,
        workdir=workflow.basedir,
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/provenance.py"


rule report:
    input:
        metrics="results/metrics.tsv",
        figures=[f for f in FIGURES if f.endswith(".png")],
        provenance="results/provenance.yaml",
        imputed=expand("results/imputed/{dataset}/{method}", dataset=DATASETS, method=METHODS),
    output:
        "results/report.html",
    log:
        "results/logs/report.log",
    params:
        title=config["report"]["title"],
        tier=config["report"].get("tier", ""),
        describe=ct.describe_config(config),
    conda:
        "../../envs/bench.yaml"
    script:
        "../scripts/report.py"
