"""Hand-made tidy metrics tables for the figure and report tests (no workflow run)."""
import numpy as np
import pandas as pd

COLUMNS = ["dataset", "scenario", "method", "metric", "value", "status"]
METHODS = ["scziva", "magic", "dca", "scvi", "no_imputation", "perfect"]
# quality of each method: 1 = perfect, 0 = no imputation
QUALITY = {"scziva": 0.7, "magic": 0.5, "dca": 0.65, "scvi": -0.2, "no_imputation": 0.0,
           "perfect": 1.0}


def _value(metric, q, rate, rng):
    from scziva_bench.catalog import metrics as metric_specs
    from scziva_bench.evaluation import ranking

    mx = metric_specs.spec(metric).maximize
    noise = rng.normal(0, 0.05)
    if mx == "zero":
        return (1 - q) * 0.3 + noise
    if mx:
        return min(1.0, max(-1.0, 0.2 + 0.75 * q * (1 - 0.3 * rate) + noise))
    return max(0.0, (1 - q) * (1 + rate) + noise)


def tidy_table(seeds=(1, 2, 3), fail=(), nan=(), metrics=None, rng_seed=0, methods=None,
               datasets=None):
    """``fail``: (method, scenario) pairs whose rows are status=failed, NaN;
    ``nan``: (method, metric) pairs with NaN and status ok."""
    from scziva_bench.evaluation import metrics as mt

    metrics = metrics or [m for m in mt.METRICS]
    rng = np.random.default_rng(rng_seed)
    rows = []
    plan = {"splat_a": [f"dropout{r}_s{s}" for r in (20, 50, 80) for s in seeds],
            "real_b": [f"mask10_s{s}" for s in seeds] + [f"mcv_s{s}" for s in seeds]}
    for extra in (datasets or []):
        plan[extra] = plan["splat_a"] if extra.startswith("sim") else plan["real_b"]
    quality = dict(QUALITY)
    for m in methods or []:
        quality.setdefault(m, float(rng.uniform(-0.3, 0.9)))
    methods = list(methods or METHODS)
    for ds, scs in plan.items():
        for sc in scs:
            rate = int(sc[7:9]) / 100 if sc.startswith("dropout") else 0.1
            for m in methods:
                for met in metrics + ["runtime_s", "max_rss_mb"]:
                    status = "ok"
                    if met.startswith("mcv") != sc.startswith("mcv") and \
                            met not in ("runtime_s", "max_rss_mb") and \
                            not met.startswith(("ari", "nmi", "silhouette", "de_", "genecorr")):
                        v, status = np.nan, "not_applicable"
                    elif met == "runtime_s":
                        v = float(rng.uniform(1, 100))
                    elif met == "max_rss_mb":
                        v = float(rng.uniform(100, 2000))
                    else:
                        v = _value(met, quality[m], rate, rng)
                    if (m, sc) in fail and met not in ("runtime_s", "max_rss_mb"):
                        v, status = np.nan, "failed"
                    elif (m, sc) in fail:
                        status = "failed"
                    if (m, met) in nan:
                        v = np.nan
                    rows.append((ds, sc, m, met, v, status))
    return pd.DataFrame(rows, columns=COLUMNS)
