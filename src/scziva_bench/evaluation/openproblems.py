"""Open Problems' denoising metrics, on our MCV scenarios, so that our numbers can be
compared with the field's public leaderboard (task_denoising; docs/metrics.md, "Open
Problems").

Open Problems scores a denoised matrix against the test molecules of a molecular
cross-validation split (Batson et al. 2019) with two metrics:

* :func:`mse`: mean squared error between the log-CP10k of the test counts and of the
  denoised matrix (each normalised to 10,000 per cell, then ``log1p``), over all entries;
* :func:`poisson`: the denoised matrix rescaled by ``sum(test) / sum(train)``, then the
  mean Poisson negative log-likelihood (without the ``log y!`` term) of the test counts
  under it: ``mean(pred - test * log(pred + 1e-6))``. This is Batson et al.'s order.
  Open Problems' script calls ``poisson_nll_loss(test, denoised)`` with the arguments the
  other way round (:func:`poisson_swapped`), which rewards predicting zeros: on the test
  of docs/metrics.md an all-zero output scores better than the truth.

and reports each as a score scaled between its two controls, ``no_denoising`` (0) and
``perfect_denoising`` (1): :func:`add_scaled` adds ``op_mse_scaled`` and
``op_poisson_scaled`` rows to a metrics table from its ``no_imputation`` and ``perfect``
rows of the same scenario.

Our MCV scenario holds the train molecules in ``layers["counts"]`` (what methods see)
and the test molecules in ``layers["truth"]``; these functions take the metric
:class:`~scziva_bench.evaluation.metrics.Inputs`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scziva_bench.evaluation.metrics import _dense, lognorm

__all__ = ["log_cp10k", "mse", "poisson", "poisson_swapped", "add_scaled", "SCALED"]

#: scaled metric -> the metric it scales
SCALED = {"op_mse_scaled": "op_mse", "op_poisson_scaled": "op_poisson"}
_BASELINE, _PERFECT = "no_imputation", "perfect"


def log_cp10k(X) -> np.ndarray:
    """``log1p`` of each cell normalised to 10,000 counts (cells without counts stay 0), as
    scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p``: the benchmark's own
    :func:`~scziva_bench.evaluation.metrics.lognorm`, in float64."""
    return lognorm(X, target_sum=1e4, dtype=np.float64)


def _split(inputs):
    test = _dense(inputs.scenario.layers["truth"], np.float64)
    train_sum = float(inputs.scenario.layers["counts"].sum(dtype=np.float64))
    return test, train_sum


def mse(inputs) -> float:
    """Open Problems' MSE: log-CP10k of the test counts against that of the output."""
    test, _ = _split(inputs)
    return float(np.mean((log_cp10k(test) - log_cp10k(inputs.imputed)) ** 2))


def _scaled_prediction(inputs):
    test, train_sum = _split(inputs)
    pred = np.asarray(inputs.imputed, dtype=np.float64) * (test.sum() / max(train_sum, 1.0))
    return test, pred


def poisson(inputs) -> float:
    """The Poisson loss of the test counts under the rescaled output (Batson's order)."""
    test, pred = _scaled_prediction(inputs)
    return float(np.mean(pred - test * np.log(pred + 1e-6)))


def poisson_swapped(inputs) -> float:
    """Open Problems' call, arguments swapped: the output is scored as if it were the
    data and the test counts the prediction (for comparison only; not in the tables)."""
    test, pred = _scaled_prediction(inputs)
    return float(np.mean(test - pred * np.log(test + 1e-6)))


def add_scaled(table: pd.DataFrame) -> pd.DataFrame:
    """Fill the ``op_*_scaled`` rows of a tidy metrics table: per (dataset, scenario),
    ``(value - no_imputation) / (perfect - no_imputation)`` of the metric it scales
    (0 = no denoising, 1 = perfect; ``not_applicable`` without both controls, or where
    they score the same; ``failed`` where the method's value failed)."""
    rows = table["metric"].isin(list(SCALED))
    if not rows.any():
        return table
    out = table.copy()
    base = table[table["metric"].isin(list(SCALED.values())) & (table["status"] == "ok")]
    ref = base.pivot_table(index=["dataset", "scenario", "metric"], columns="method",
                           values="value", aggfunc="first")
    for i in np.flatnonzero(rows.to_numpy()):
        r = out.iloc[i]
        src = SCALED[r["metric"]]
        key = (r["dataset"], r["scenario"], src)
        own = table[(table["dataset"] == r["dataset"]) & (table["scenario"] == r["scenario"])
                    & (table["method"] == r["method"]) & (table["metric"] == src)]
        value, status = np.nan, "not_applicable"
        if len(own) and own["status"].iloc[0] == "failed":
            status = "failed"
        elif len(own) and own["status"].iloc[0] == "ok" and key in ref.index:
            lo = ref.loc[key].get(_BASELINE, np.nan)
            hi = ref.loc[key].get(_PERFECT, np.nan)
            if np.isfinite(lo) and np.isfinite(hi) and hi != lo:
                value, status = (float(own["value"].iloc[0]) - lo) / (hi - lo), "ok"
        out.iloc[i, out.columns.get_loc("value")] = value
        out.iloc[i, out.columns.get_loc("status")] = status
    return out
