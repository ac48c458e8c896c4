"""Rule evaluate: tidy metric rows for one (dataset, scenario, method).

Columns: dataset, scenario, method, metric, value, status. Besides the configured
metrics, two rows come from the impute job's benchmark file: ``runtime_s`` (wall clock
seconds) and ``max_rss_mb`` (peak resident memory, MB). A method recorded as failed by
the impute rule (``uns["status"] == "failed"``), or whose evaluation raises, gets every
row with ``status = failed`` and ``value = NaN`` (runtime and memory are still given).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # noqa: F821
from scziva_bench.workflow_utils import read_benchmark, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scziva_bench import metrics  # noqa: E402

sm = snakemake  # noqa: F821
ds, sc, meth = sm.wildcards.dataset, sm.wildcards.scenario, sm.wildcards.method
which = list(sm.params.metrics)
COLS = ["dataset", "scenario", "method", "metric", "value", "status"]


def failed_rows(reason):
    log.error("%s/%s/%s marked failed: %s", ds, sc, meth, reason)
    return pd.DataFrame({"dataset": ds, "scenario": sc, "method": meth, "metric": which,
                         "value": np.nan, "status": "failed"})


imp = ad.read_h5ad(sm.input.imputed)
status = str(imp.uns.get("status", "ok"))
if status != "ok" or "imputed" not in imp.layers:
    table = failed_rows(imp.uns.get("error", "no imputed layer"))
else:
    scen = ad.read_h5ad(sm.input.scenario)
    try:
        table = metrics.evaluate(scen, np.asarray(imp.layers["imputed"]), ds, sc, meth,
                                 which=which)
        table = table.copy()
        if "status" not in table:
            table["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 -- a broken evaluation is marked, not fatal
        table = failed_rows(f"evaluation raised {type(exc).__name__}: {exc}")
    status = "ok" if (table["status"] == "ok").all() else "failed"

bench = read_benchmark(sm.input.benchmark)
extra = pd.DataFrame({"dataset": ds, "scenario": sc, "method": meth,
                      "metric": ["runtime_s", "max_rss_mb"],
                      "value": [bench["runtime_s"], bench["max_rss_mb"]],
                      "status": status})
table = pd.concat([table[COLS], extra], ignore_index=True)
log.info("\n%s", table.to_string())
metrics.write_tsv_atomic(table, sm.output[0])
