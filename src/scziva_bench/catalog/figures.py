"""Names of the benchmark's figures, from the config's metrics and scenarios.

Dependency-free (only :mod:`scziva_bench.catalog.scenarios`), so that the Snakefile can
list the figure files at parse time without importing matplotlib or pandas;
:func:`scziva_bench.report.plots.draw` draws a figure from its name.

Names (files ``results/figures/<name>.<ext>``):

- ``metric_<metric>``: every configured metric, methods side by side;
- ``ranks``: family ranks per dataset with intervals and ties;
- ``families``: summary by metric family per dataset (0 = no_imputation, 1 = perfect);
- ``cost``: accuracy against runtime, one panel per dataset;
- ``rates_<dataset>``: every metric against the dropout rate (datasets with >= 2 rates);
- ``paper_<dataset>``: the scZiva paper's layout (PCC, RMSE, MAE, log-MSE, ARI, NMI);
- ``resources``: runtime and memory;
- ``umap``, ``hexbin``: need the imputed matrices of one scenario (rule ``umap``).
"""

from __future__ import annotations

from scziva_bench.catalog import scenarios as scenario_ids

__all__ = ["figure_names", "from_tables", "IMPUTED_FIGURES", "CAPTIONS", "rated"]

#: figures drawn from the imputed .h5ad files of one scenario, not from metrics.tsv
IMPUTED_FIGURES = ("umap", "hexbin")

#: the caption of each kind of figure (the part of its name before the first "_"), shown
#: under it in results/report.html and in Snakemake's report (workflow/report/<kind>.rst
#: renders it from the rule's params)
CAPTIONS = {
    "ranks": "Family ranks per dataset (rows) and method (columns, best overall first). "
             "Within each dataset, scenario and seed every method and no_imputation is "
             "ranked on each ranked metric in its direction (1 = best, ties share the mean "
             "rank); a method's family rank in one seed is the mean over the family's "
             "metrics and the dataset's scenarios. Cells: mean rank over seeds, [95 % "
             "interval]. Boxed: cannot be told apart from the "
             "row's best within noise (paired test over seeds, Holm-corrected). perfect and "
             "oracle, apart on the right, are the reference ranks of the truth and of the "
             "true means. F: failed or NaN entries, counted as last.",
    "families": "Per dataset and metric family, each method's score scaled so that "
                "no_imputation = 0 and perfect = 1 (mean over the family's ranked metrics "
                "and scenarios; whiskers: 95 % interval over seeds). Below 0: worse than "
                "doing nothing.",
    "rates": "Every metric of one dataset against the dropout rate: one line per method "
             "(mean over seeds), band = 95 % interval; no_imputation dashed, perfect "
             "dotted; red crosses: a run failed at that rate.",
    "paper": "The scZiva paper's layout for one dataset: PCC, RMSE, MAE and log-MSE on "
             "the dropped entries, then ARI and NMI; one row per scenario (e.g. dropout "
             "20/50/80 %); bars: mean over seeds, whiskers 95 % interval, dots single "
             "seeds; controls as lines.",
    "metric": "One metric, methods side by side, one panel per dataset and scenario: bars "
              "mean over seeds, whiskers 95 % interval, dots single seeds; no_imputation "
              "(dashed) and perfect (dotted) are reference lines; red cross: failed.",
    "cost": "Accuracy against cost, one panel per dataset: each method's mean family rank "
            "(mean over the dataset's ranked families of its mean rank over seeds; 1 = "
            "best) against the median wall-clock seconds of its impute jobs (log scale). "
            "Lower left is better; the dashed line is no_imputation's rank. Failed or NaN "
            "entries count as last.",
    "resources": "Runtime and peak memory of each impute job (Snakemake benchmark files), "
                 "log scale; dots single jobs, bar median, red crosses failed jobs.",
    "umap": "UMAPs of the truth, the observed counts and each method's imputation of one "
            "scenario, coloured by the true groups; empty red panel: failed.",
    "hexbin": "Imputed against true values (log1p) on the dropped entries of one scenario, "
              "one hexbin per method; dashed: y = x; r: Pearson correlation of the logs.",
}



def rated(ids) -> list:
    """Rates (fractions, sorted) of the id kind with the most rates, dropout first."""
    by_kind: dict = {}
    for sid in ids:
        p = scenario_ids.parse_id(sid)
        if p.rate is not None:
            by_kind.setdefault(p.kind, set()).add(p.rate)
    if not by_kind:
        return []
    kind = max(by_kind, key=lambda k: (len(by_kind[k]), k == "dropout"))
    return sorted(by_kind[kind])


def figure_names(metrics, scenarios: dict, umap: bool = False, hexbin: bool = False,
                 paper: bool = True) -> list:
    """Base names (no extension) of the figures in ``results/figures/``, in report order.

    ``metrics``: the config's metric names; ``scenarios``: dataset -> its scenario ids
    (``{ds: pipeline.targets.dataset_scenarios(config, ds) for ds in config["datasets"]}``);
    ``umap`` / ``hexbin``: whether rule ``umap`` draws them; ``paper``: the per-dataset
    paper-layout figures. Rule ``figures`` writes every name not in
    :data:`IMPUTED_FIGURES`.
    """
    names = ["ranks", "families", "cost"]
    names += [f"rates_{ds}" for ds, ids in scenarios.items() if len(rated(ids)) >= 2]
    if paper:
        names += [f"paper_{ds}" for ds in scenarios]
    names += [f"metric_{m}" for m in metrics]
    names.append("resources")
    if umap:
        names.append("umap")
    if hexbin:
        names.append("hexbin")
    return names


def from_tables(names) -> list:
    """The names rule ``figures`` draws (all but :data:`IMPUTED_FIGURES`)."""
    return [n for n in names if n not in IMPUTED_FIGURES]
