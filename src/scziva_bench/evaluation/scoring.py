"""Score one method's output file on one scenario: the evaluate rule's logic.

:func:`score_output` turns a method's output AnnData (docs/contract.md "Method output")
into tidy metric rows (:mod:`scziva_bench.evaluation.metrics`), plus two rows that describe the
run: ``runtime_s`` (seconds of this scenario, measured in the impute job) and
``max_rss_mb`` (peak memory of the impute job). A method recorded as failed by its
impute job (``uns["status"] == "failed"``), or whose evaluation raises, gets every metric
row with ``status = failed`` and ``value = NaN`` (:func:`metrics.failed_rows`); its
runtime and memory are still given, with status failed too.
"""

from __future__ import annotations

import logging
import math
import traceback

import numpy as np
import pandas as pd

from scziva_bench.evaluation import metrics
from scziva_bench.evaluation.tables import COLUMNS

__all__ = ["score_output"]

log = logging.getLogger(__name__)


def _failed(dataset, scenario, method, which, reason):
    log.error("%s / %s / %s marked failed: %s", dataset, scenario, method, reason)
    return metrics.failed_rows(dataset, scenario, method, which=which)


def _metric_rows(scen, imp, dataset, scenario, method, which):
    if str(imp.uns.get("status", "ok")) == "not_applicable":  # e.g. oracle on real data
        rows = metrics.failed_rows(dataset, scenario, method, which=which)
        return rows.assign(status="not_applicable")
    if str(imp.uns.get("status", "ok")) != "ok" or "imputed" not in imp.layers:
        return _failed(dataset, scenario, method, which, imp.uns.get("error", "no imputed layer"))
    try:
        table = metrics.evaluate(scen, np.asarray(imp.layers["imputed"]), dataset, scenario,
                                 method, which=which)
    except Exception as exc:  # noqa: BLE001 -- a broken evaluation is marked, not fatal
        log.error(traceback.format_exc())
        return _failed(dataset, scenario, method, which,
                       f"evaluation raised {type(exc).__name__}: {exc}")
    return table


def score_output(scen, imp, dataset: str, scenario: str, method: str, which,
                 max_rss_mb: float = math.nan) -> pd.DataFrame:
    """Tidy rows (columns :data:`scziva_bench.evaluation.tables.COLUMNS`) for one method output."""
    table = _metric_rows(scen, imp, dataset, scenario, method, which)
    status = "failed" if (table["status"] == "failed").any() else \
        ("not_applicable" if (table["status"] == "not_applicable").all() else "ok")
    extra = pd.DataFrame({"dataset": dataset, "scenario": scenario, "method": method,
                          "metric": ["runtime_s", "max_rss_mb"],
                          "value": [float(imp.uns.get("runtime_s", math.nan)), max_rss_mb],
                          "status": status})
    return pd.concat([table[COLUMNS], extra], ignore_index=True)
