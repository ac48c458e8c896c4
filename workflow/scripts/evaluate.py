"""Rule evaluate: tidy metric rows for every method of one (dataset, scenario).

Writes results/metrics/{dataset}/{scenario}/{method}.tsv for each method, columns
dataset, scenario, method, metric, value, status. Besides the configured metrics, two
rows describe the run: ``runtime_s`` (wall-clock seconds of this scenario, measured in
the impute job) and ``max_rss_mb`` (peak resident memory, MB, of the impute job, which
covers every scenario of the dataset). A method recorded as failed by the impute
rule (``uns["status"] == "failed"``), or whose evaluation raises, gets every metric row
with ``status = failed`` and ``value = NaN`` (runtime and memory are still given, with
status failed too).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # noqa: F821
from scziva_bench.workflow_utils import imputed_file, read_benchmark, start_script  # noqa: E402

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


def score(meth, imp):
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


for meth, imp_dir, bench_path, out in zip(sm.params.methods, sm.input.imputed,
                                          sm.input.benchmarks, sm.output):
    imp = ad.read_h5ad(imputed_file(imp_dir, sc))
    table = score(meth, imp)
    status = "ok" if (table["status"] == "ok").all() else "failed"
    # time of this scenario, measured in the impute job; peak memory of the whole job
    # (one job per method and dataset, see impute.smk)
    bench = read_benchmark(bench_path)
    runtime = float(imp.uns.get("runtime_s", bench["runtime_s"]))
    extra = pd.DataFrame({"dataset": ds, "scenario": sc, "method": meth,
                          "metric": ["runtime_s", "max_rss_mb"],
                          "value": [runtime, bench["max_rss_mb"]],
                          "status": status})
    table = pd.concat([table[COLS], extra], ignore_index=True)
    log.info("%s:\n%s", meth, table.to_string())
    metrics.write_tsv_atomic(table, out)
