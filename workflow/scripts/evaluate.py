"""Rule evaluate: tidy metric rows for every method of one (dataset, scenario).

Writes results/metrics/{dataset}/{scenario}/{method}.tsv for each method, columns
dataset, scenario, method, metric, value, status. Besides the configured metrics, two
rows come from the impute job's benchmark file: ``runtime_s`` (wall-clock seconds) and
``max_rss_mb`` (peak resident memory, MB). A method recorded as failed by the impute
rule (``uns["status"] == "failed"``), or whose evaluation raises, gets every metric row
with ``status = failed`` and ``value = NaN`` (runtime and memory are still given, with
status failed too).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import read_benchmark, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import traceback  # noqa: E402

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scziva_bench import metrics  # noqa: E402

sm = snakemake  # noqa: F821
ds, sc = sm.wildcards.dataset, sm.wildcards.scenario
which = list(sm.params.metrics)
COLS = ["dataset", "scenario", "method", "metric", "value", "status"]
scen = ad.read_h5ad(sm.input.scenario)


def failed_rows(meth, reason):
    log.error("%s / %s / %s marked failed: %s", ds, sc, meth, reason)
    return pd.DataFrame({"dataset": ds, "scenario": sc, "method": meth, "metric": which,
                         "value": np.nan, "status": "failed"})


def score(meth, imputed_path):
    imp = ad.read_h5ad(imputed_path)
    if str(imp.uns.get("status", "ok")) != "ok" or "imputed" not in imp.layers:
        return failed_rows(meth, imp.uns.get("error", "no imputed layer"))
    try:
        table = metrics.evaluate(scen, np.asarray(imp.layers["imputed"]), ds, sc, meth,
                                 which=which).copy()
    except Exception as exc:  # noqa: BLE001 -- a broken evaluation is marked, not fatal
        log.error(traceback.format_exc())
        return failed_rows(meth, f"evaluation raised {type(exc).__name__}: {exc}")
    if "status" not in table:
        table["status"] = "ok"
    return table


for meth, imp_path, bench_path, out in zip(sm.params.methods, sm.input.imputed,
                                           sm.input.benchmarks, sm.output):
    table = score(meth, imp_path)
    status = "ok" if (table["status"] == "ok").all() else "failed"
    bench = read_benchmark(bench_path)
    extra = pd.DataFrame({"dataset": ds, "scenario": sc, "method": meth,
                          "metric": ["runtime_s", "max_rss_mb"],
                          "value": [bench["runtime_s"], bench["max_rss_mb"]],
                          "status": status})
    table = pd.concat([table[COLS], extra], ignore_index=True)
    log.info("%s:\n%s", meth, table.to_string())
    metrics.write_tsv_atomic(table, out)
