"""Ranks of the methods, from the tidy metrics table (``results/metrics.tsv``).

Metric directions come from one place (:func:`higher_is_better`, which reads the
metric registry); the controls from :data:`CONTROLS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scziva_bench.workflow_utils import CONTROLS

__all__ = ["CONTROLS", "RESOURCE_METRICS", "higher_is_better", "method_order", "rank_table"]

RESOURCE_METRICS = ("runtime_s", "max_rss_mb")
# metrics whose best value is 0 in either direction: ranked by their absolute value
_ABS_BEST_ZERO = ("genecorr_inflation",)


def higher_is_better(metric: str) -> bool:
    """True where a larger value is better (``scziva_bench.metrics.HIGHER_IS_BETTER``);
    runtime and memory: False. Raises KeyError for an unknown metric."""
    if metric in RESOURCE_METRICS:
        return False
    from scziva_bench import metrics

    return bool(metrics.HIGHER_IS_BETTER[metric])


def _rank_values(metric: str, values: pd.Series) -> pd.Series:
    values = values.astype(float)
    return values.abs() if metric in _ABS_BEST_ZERO else values


def _status(df: pd.DataFrame) -> pd.Series:
    if "status" in df:
        return df["status"].fillna("ok").astype(str)
    return pd.Series("ok", index=df.index)


def method_order(df: pd.DataFrame, controls: bool = False) -> list[str]:
    """Methods in order of first appearance; controls excluded unless ``controls``."""
    names = list(dict.fromkeys(df["method"].astype(str)))
    if controls:
        return [m for m in names if m not in CONTROLS] + [m for m in CONTROLS if m in names]
    return [m for m in names if m not in CONTROLS]

def rank_table(df: pd.DataFrame, metrics=None, by_dataset: bool = True):
    """Mean rank (1 = best) of every non-control method per metric (and dataset).

    Within each (dataset, scenario, metric) the methods are ranked by value, in the
    metric's direction (:func:`higher_is_better`), ties sharing the mean rank. A failed
    run takes the last rank (number of methods); a method without a value there while
    not failed (metric not applicable) gets no rank. Ranks are then averaged over the
    scenarios (and seeds). Returns ``(ranks, failed)``: two DataFrames, methods x columns
    (``metric`` or ``metric / dataset``) plus a column ``mean``; ``failed`` counts the
    failed runs behind each cell.
    """
    d = df[~df["method"].isin(CONTROLS)].copy()
    d["status"] = _status(d)
    if metrics is None:
        metrics = [m for m in dict.fromkeys(d["metric"]) if m not in RESOURCE_METRICS]
    d = d[d["metric"].isin(metrics)]
    methods = method_order(df)
    d["value"] = d["value"].astype(float)
    rows = []
    for (ds, sc, met), g in d.groupby(["dataset", "scenario", "metric"], sort=False):
        ok = g[(g["status"] == "ok") & np.isfinite(g["value"])]
        failed = g[g["status"] == "failed"]
        if ok.empty:
            continue  # nothing to rank against (metric not applicable here)
        n = len(methods)
        r = _rank_values(met, ok["value"]).rank(ascending=not higher_is_better(met),
                                                method="average")
        for m, rk in zip(ok["method"], r):
            rows.append((m, ds, met, float(rk), 0))
        for m in failed["method"]:
            rows.append((m, ds, met, float(n), 1))
    cols_order = []
    for met in metrics:
        if by_dataset and d["dataset"].nunique() > 1:
            cols_order += [f"{met} / {ds}" for ds in dict.fromkeys(d["dataset"].astype(str))]
        else:
            cols_order.append(met)
    if not rows:
        empty = pd.DataFrame(index=methods, columns=cols_order + ["mean"], dtype=float)
        return empty, empty.fillna(0).astype(int)
    long = pd.DataFrame(rows, columns=["method", "dataset", "metric", "rank", "failed"])
    if by_dataset and d["dataset"].nunique() > 1:
        long["column"] = long["metric"] + " / " + long["dataset"].astype(str)
    else:
        long["column"] = long["metric"]
    ranks = long.pivot_table(index="method", columns="column", values="rank", aggfunc="mean")
    failed = long.pivot_table(index="method", columns="column", values="failed", aggfunc="sum")
    cols = [c for c in cols_order if c in ranks.columns]
    ranks = ranks.reindex(index=methods, columns=cols)
    failed = failed.reindex(index=methods, columns=cols).fillna(0).astype(int)
    ranks["mean"] = ranks.mean(axis=1)
    failed["mean"] = failed.sum(axis=1)
    return ranks, failed
