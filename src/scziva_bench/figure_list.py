"""Names of the benchmark's figures, from the config's metrics and scenarios.

Dependency-free (only :mod:`scziva_bench.scenario_ids`), so that the Snakefile can
list the figure files at parse time without importing matplotlib or pandas;
:func:`scziva_bench.plots.draw` draws a figure from its name.

Names (files ``results/figures/<name>.<ext>``):

- ``metric_<metric>``: every configured metric, methods side by side;
- ``ranks``: family ranks per dataset with intervals and ties;
- ``families``: summary by metric family per dataset (0 = no_imputation, 1 = perfect);
- ``rates_<dataset>``: every metric against the dropout rate (datasets with >= 2 rates);
- ``paper_<dataset>``: the scZiva paper's layout (PCC, RMSE, MAE, log-MSE, ARI, NMI);
- ``resources``: runtime and memory;
- ``umap``, ``hexbin``: need the imputed matrices of one scenario (rule ``umap``).
"""

from __future__ import annotations

from scziva_bench import scenario_ids

__all__ = ["figure_names", "from_tables", "IMPUTED_FIGURES", "rated"]

#: figures drawn from the imputed .h5ad files of one scenario, not from metrics.tsv
IMPUTED_FIGURES = ("umap", "hexbin")


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
    (``{ds: workflow_utils.dataset_scenarios(config, ds) for ds in config["datasets"]}``);
    ``umap`` / ``hexbin``: whether rule ``umap`` draws them; ``paper``: the per-dataset
    paper-layout figures. Rule ``figures`` writes every name not in
    :data:`IMPUTED_FIGURES`.
    """
    names = ["ranks", "families"]
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
