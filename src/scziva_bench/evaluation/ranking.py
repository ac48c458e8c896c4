"""Ranks of the methods, from the tidy metrics table (``results/metrics.tsv``).

What a rank means (also in the report and docs/metrics.md):

* Within one dataset, scenario (one seed of it) and ranked metric, every method and the
  control ``no_imputation`` is ranked in the metric's direction (1 = best, ties share the
  mean rank). A failed method, or one whose value is NaN, takes the last place.
* ``perfect`` (the truth itself) and ``oracle`` (a simulation's true means) are
  references, not competitors: they are left out of the others' ranks, and each one's
  *reference rank* is the place it would take among them (1 where the metric does its
  job; larger where the metric rewards something else).
* Metrics are ranked by **family** (imputation of dropped/masked entries, denoising,
  MCV, clustering, DE, gene-gene correlation); only metrics with ``ranked=True`` in
  :mod:`scziva_bench.catalog.metrics` enter a rank.
* Per seed, a method's family rank is the mean of its ranks over the family's metrics and
  the dataset's scenarios (e.g. dropout 20, 50 and 80 %) of that seed. Over seeds we
  report the mean and a 95 % t-interval. The unit of replication is the seed: each seed
  is a new dropout mask or split and, for simulations, a new simulated dataset. Two
  methods are **apart beyond noise** only when a paired test over seeds of their family
  ranks (:func:`paired_p`: paired t-test with the differences' standard deviation
  floored at half a rank, so zero variance alone never separates) is significant after Holm's correction
  over all pairs of the (dataset, family) at :data:`ALPHA`; otherwise **tied within
  noise** (with one seed nothing can be told apart).
* Values of a ranked metric within :data:`TIE_TOLERANCE` of each other share a rank.

Metric facts (direction, family, ranked) come from one place: :func:`spec`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.catalog import scenarios as scenario_ids
from scziva_bench.methods import CONTROLS, REFERENCES

__all__ = [
    "CONTROLS", "RESOURCE_METRICS", "BASELINE", "REFERENCE", "REFERENCES", "FAMILY_LABELS", "oriented",
    "method_order", "tidy", "rank_runs", "seed_ranks", "summary", "rank_table",
    "ranks_tsv", "RANKS_COLUMNS", "paired_p", "holm", "TIE_TOLERANCE", "ALPHA", "SD_FLOOR",
]

RESOURCE_METRICS = metric_specs.RESOURCE_METRICS
#: the control methods (the registry's list): the observed counts, a competitor that every
#: method should beat, and the references (the truth itself, ``perfect``; a simulation's
#: true means, ``oracle``), shown apart rather than ranked among the competitors
BASELINE = CONTROLS[0]
REFERENCE = REFERENCES[0]

FAMILY_LABELS = metric_specs.FAMILY_LABELS
FAMILY_SHORT = metric_specs.FAMILY_SHORT
FAMILY_ORDER = list(FAMILY_LABELS)


# ------------------------------------------------------------------ metric facts

def oriented(metrics, values) -> np.ndarray:
    """``values`` turned so that smaller is better, NaN -> +inf, element-wise (the same
    rule as :func:`scziva_bench.catalog.metrics.oriented`, vectorised); ``metrics`` is one
    name or one per value."""
    v = np.asarray(values, dtype=float)
    names = [metrics] * len(v) if isinstance(metrics, str) else list(metrics)
    mx = [metric_specs.spec(m).maximize for m in names]
    zero = np.array([m == "zero" for m in mx], dtype=bool)
    up = np.array([m is True for m in mx], dtype=bool)
    out = np.where(zero, np.abs(v), np.where(up, -v, v))
    return np.where(np.isnan(out), np.inf, out)


# ------------------------------------------------------------------ the table

def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``status`` filled (``ok``), ``value`` as float and the columns
    ``group`` (scenario without seed, e.g. ``dropout50``), ``seed`` (int, 0 for ``none``),
    ``kind`` and ``rate`` (from :mod:`scziva_bench.catalog.scenarios`)."""
    d = df.copy()
    d["status"] = d["status"].fillna("ok").astype(str) if "status" in d else "ok"
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d["dataset"] = d["dataset"].astype(str)
    d["method"] = d["method"].astype(str)
    d["scenario"] = d["scenario"].astype(str)
    parsed = {s: scenario_ids.parse_id(s) for s in d["scenario"].unique()}
    d["group"] = d["scenario"].map(scenario_ids.group_of)
    d["seed"] = d["scenario"].map(lambda s: int(parsed[s].seed or 0))
    d["kind"] = d["scenario"].map(lambda s: parsed[s].kind)
    d["rate"] = d["scenario"].map(lambda s: _rate(parsed[s].rate))
    return d


def _rate(rate):
    """Rates as fractions (the id grammar may give a percentage)."""
    if rate is None:
        return np.nan
    r = float(rate)
    return r / 100.0 if r > 1 else r


def method_order(df: pd.DataFrame, controls: bool = False) -> list[str]:
    """Methods in order of first appearance; controls (last) only if ``controls``."""
    names = list(dict.fromkeys(df["method"].astype(str)))
    out = [m for m in names if m not in CONTROLS]
    return out + [m for m in CONTROLS if m in names] if controls else out


def rank_runs(df: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """One rank per (dataset, scenario, ranked metric, method), ``perfect`` included as a
    reference rank (column ``reference`` True).

    Columns: ``dataset, scenario, group, seed, metric, family, method, rank, n, failed,
    missing, reference`` (``n``: number of ranked entries, so the last place is ``n``).
    Rows with ``status = not_applicable`` never enter; a (dataset, scenario, metric)
    where no competitor has a finite value is skipped (nothing to rank).
    """
    d = tidy(df)
    if metrics is None:
        metrics = list(dict.fromkeys(d["metric"]))
    metrics = [m for m in metrics if metric_specs.spec(m).ranked]
    d = d[d["metric"].isin(metrics) & (d["status"] != "not_applicable")]
    d = d.drop_duplicates(["dataset", "scenario", "metric", "method"], keep="last").copy()
    cols = ["dataset", "scenario", "group", "seed", "metric", "family", "method", "rank",
            "n", "failed", "missing", "reference"]
    keys = ["dataset", "scenario", "metric"]
    d["failed"] = d["status"] == "failed"
    d["missing"] = ~d["failed"] & ~np.isfinite(d["value"])
    d["loss"] = np.where(d["failed"], np.inf, oriented(d["metric"], d["value"]))
    d["reference"] = d["method"].isin(REFERENCES)
    comp = d[~d["reference"]].copy()
    # groups where no competitor has a value: nothing to rank (metric not applicable)
    comp = comp[comp.groupby(keys, sort=False)["loss"].transform(
        lambda x: np.isfinite(x).any())]
    if comp.empty:
        return pd.DataFrame(columns=cols)
    comp["loss"] = comp.groupby(keys, sort=False)["loss"].transform(_snap_ties)
    g = comp.groupby(keys, sort=False)["loss"]
    comp["rank"] = g.rank(method="average")  # failed / NaN (+inf) share the last places
    comp["n"] = g.transform("size")
    ref = d[d["reference"]].merge(comp[keys + ["loss"]].rename(columns={"loss": "other"}),
                                  on=keys)
    if not ref.empty:
        ref["_b"] = (ref["other"] < ref["loss"]).astype(float) + \
            0.5 * (ref["other"] == ref["loss"]).astype(float)
        rk = keys + ["method"]  # one reference rank per reference method
        first = ref.drop_duplicates(rk).set_index(rk)
        agg = ref.groupby(rk, sort=False).agg(b=("_b", "sum"), n=("other", "size"))
        first = first.join(agg)
        first["rank"] = np.where(np.isfinite(first["loss"]), 1.0 + first["b"],
                                 first["n"] + 1.0)
        ref = first.reset_index()
    out = pd.concat([comp, ref], ignore_index=True) if not ref.empty else comp
    out["family"] = out["metric"].map(lambda m: metric_specs.spec(m).family)
    out["n"] = out["n"].astype(int)
    return out[cols].reset_index(drop=True)


#: values of a ranked metric closer than this (absolute, on the metric's own scale; every
#: ranked metric is on a 0-1 scale) are tied and share their rank
TIE_TOLERANCE = 1e-3


def _snap_ties(loss: pd.Series) -> pd.Series:
    """Losses within :data:`TIE_TOLERANCE` of the best of a run of values get that best
    value, so that they share a rank (greedy from the best: a tie group never spans more
    than the tolerance). +inf (failed, NaN) stays."""
    v = loss.to_numpy(dtype=float).copy()
    order = np.argsort(v, kind="stable")
    head = None
    for i in order:
        if not np.isfinite(v[i]):
            break
        if head is None or v[i] - head > TIE_TOLERANCE:
            head = v[i]
        else:
            v[i] = head
    return pd.Series(v, index=loss.index)


@functools.lru_cache(maxsize=None)
def _t975(n: int) -> float:
    """The 97.5 % quantile of Student's t with ``n - 1`` degrees of freedom."""
    from scipy.special import stdtrit  # lighter than importing scipy.stats

    return float(stdtrit(n - 1, 0.975)) if n >= 2 else math.nan


def seed_ranks(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean rank per (dataset, family, method, seed) over the family's metrics and the
    dataset's scenarios of that seed; ``failed`` counts the failed entries behind it."""
    keys = ["dataset", "family", "method", "reference", "seed"]
    if runs.empty:
        return pd.DataFrame(columns=keys + ["rank", "failed", "n"])
    return (runs.groupby(keys, sort=False)
            .agg(rank=("rank", "mean"), failed=("failed", "sum"), missing=("missing", "sum"),
                 n=("n", "max"))
            .reset_index())


def summary(df: pd.DataFrame, metrics=None) -> pd.DataFrame:
    """Family ranks per dataset: mean over seeds, 95 % interval, ties.

    One row per (dataset, family, method): ``mean``, ``lo``, ``hi`` (95 % t-interval over
    seeds; NaN with one seed), ``n_seeds``, ``failed`` (failed entries counted as last),
    ``missing`` (NaN entries counted as last), ``n`` (places), ``reference`` (``perfect``),
    ``place`` (1 = best mean), ``tied_best`` (not separable from the best method within
    noise), ``separable`` (False when a single seed makes ties impossible to judge) and
    ``tied_with`` (comma-separated methods it cannot be told apart from).
    """
    runs = rank_runs(df, metrics)
    sr = seed_ranks(runs)
    cols = ["dataset", "family", "method", "reference", "mean", "lo", "hi", "n_seeds",
            "failed", "missing", "n", "place", "tied_best", "separable", "tied_with"]
    if sr.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (ds, fam), g in sr.groupby(["dataset", "family"], sort=False):
        wide = g[~g["reference"]].pivot_table(index="seed", columns="method", values="rank")
        stats_ = {}
        for m, col in wide.items():
            v = col.dropna().to_numpy()
            k = len(v)
            mean = float(v.mean())
            half = _t975(k) * float(v.std(ddof=1)) / math.sqrt(k) if k >= 2 else math.nan
            stats_[m] = (mean, half, k)
        order = sorted(stats_, key=lambda m: stats_[m][0])
        cols_ = {m: wide[m].to_numpy(dtype=float) for m in order}
        apart = _separated(order, cols_)
        tied = {m: [o for o in order if o != m and frozenset((m, o)) not in apart]
                for m in order}
        best = order[0]
        sub = g.groupby("method", sort=False).agg(failed=("failed", "sum"),
                                                  missing=("missing", "sum"), n=("n", "max"),
                                                  reference=("reference", "first"))
        for place, m in enumerate(order, 1):
            mean, half, k = stats_[m]
            rows.append(dict(dataset=ds, family=fam, method=m, reference=False, mean=mean,
                             lo=mean - half, hi=mean + half, n_seeds=k,
                             failed=int(sub.loc[m, "failed"]),
                             missing=int(sub.loc[m, "missing"]), n=int(sub.loc[m, "n"]),
                             place=place, tied_best=(m == best or best in tied[m]),
                             separable=k >= 2, tied_with=", ".join(tied[m])))
        for rname, ref in g[g["reference"]].groupby("method", sort=False):
            v = ref["rank"].to_numpy(dtype=float)
            k = len(v)
            half = _t975(k) * float(v.std(ddof=1)) / math.sqrt(k) if k >= 2 else math.nan
            rows.append(dict(dataset=ds, family=fam, method=rname, reference=True,
                             mean=float(v.mean()), lo=float(v.mean()) - half,
                             hi=float(v.mean()) + half, n_seeds=k,
                             failed=int(ref["failed"].sum()),
                             missing=int(ref["missing"].sum()), n=int(ref["n"].max()),
                             place=np.nan, tied_best=False, separable=k >= 2, tied_with=""))
    out = pd.DataFrame(rows, columns=cols)
    fam_order = {f: i for i, f in enumerate(FAMILY_ORDER)}
    out["_f"] = out["family"].map(lambda f: fam_order.get(f, 99))
    ds_order = {d: i for i, d in enumerate(dict.fromkeys(df["dataset"].astype(str)))}
    out["_d"] = out["dataset"].map(ds_order)
    return out.sort_values(["_d", "_f", "reference", "place"], kind="stable") \
        .drop(columns=["_f", "_d"]).reset_index(drop=True)


#: family-wise error rate of the "beyond noise" statements within one (dataset, family)
ALPHA = 0.05


#: the smallest standard deviation of per-seed rank differences that :func:`paired_p`
#: uses: half a rank (family ranks are means of whole ranks)
SD_FLOOR = 0.5


def paired_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value that paired per-seed ranks ``a``, ``b`` (aligned by seed, NaN
    where absent) differ: a paired t-test over the common seeds whose standard deviation
    of the differences is at least :data:`SD_FLOOR` (half a rank). So zero or near-zero
    variance alone never separates two methods (differences of 0.10, 0.11, 0.10 ranks are
    not apart), while a gap of several ranks on every seed does (7 ranks on 5 seeds: p
    about 1e-6; an exact sign test could never go below 0.0625 there). 1.0 where nothing
    can be said (fewer than 2 seeds, or all differences 0)."""
    from scipy import stats

    dif = a - b
    ok = np.isfinite(dif)
    k = int(ok.sum())
    if k < 2 or not np.any(dif[ok] != 0):
        return 1.0
    d = dif[ok]
    sd = max(float(np.std(d, ddof=1)), SD_FLOOR)
    t = float(np.mean(d)) / (sd / np.sqrt(k))
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), k - 1)))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels' ``multipletests(method="holm")``
    gives the same; written here so that ranking needs scipy only)."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _separated(order, cols_) -> set:
    """Pairs of methods (frozensets) whose per-seed ranks differ beyond noise: paired
    test per pair (:func:`paired_p`), Holm-corrected over all pairs of the (dataset,
    family), adjusted p < :data:`ALPHA`."""
    pairs = [(m, o) for i, m in enumerate(order) for o in order[i + 1:]]
    if not pairs:
        return set()
    p = holm([paired_p(cols_[m], cols_[o]) for m, o in pairs])
    return {frozenset(pr) for pr, q in zip(pairs, p) if q < ALPHA}


def _tied(a: np.ndarray, b: np.ndarray) -> bool:
    """One pair alone (no multiplicity correction): not separable at :data:`ALPHA`."""
    return paired_p(a, b) >= ALPHA


def rank_table(df: pd.DataFrame, metrics=None, by_dataset: bool = True):
    """Mean rank per method (rows, ``no_imputation`` included, ``perfect`` as its
    reference rank) and metric (columns ``metric`` or ``metric / dataset``), averaged
    over scenarios and seeds; returns ``(ranks, failed)`` where ``failed`` counts the
    failed entries (counted as last) behind each cell. Only ranked metrics."""
    runs = rank_runs(df, metrics)
    d = tidy(df)
    methods = method_order(d, controls=True)
    multi = by_dataset and d["dataset"].nunique() > 1
    if runs.empty:
        empty = pd.DataFrame(index=methods, dtype=float)
        return empty, empty.astype(int)
    runs = runs.assign(column=runs["metric"] + (" / " + runs["dataset"] if multi else ""))
    cols = list(dict.fromkeys(runs["column"]))
    ranks = runs.pivot_table(index="method", columns="column", values="rank", aggfunc="mean")
    failed = runs.pivot_table(index="method", columns="column", values="failed",
                              aggfunc="sum")
    ranks = ranks.reindex(index=methods, columns=cols)
    failed = failed.reindex(index=methods, columns=cols).fillna(0).astype(int)
    return ranks, failed


#: columns of results/ranks.tsv
RANKS_COLUMNS = ["dataset", "family", "method", "mean_rank", "ci_low", "ci_high", "n_seeds"]


def ranks_tsv(df: pd.DataFrame, metrics=None, summary_table=None) -> pd.DataFrame:
    """The machine-readable verdicts (``results/ranks.tsv``): one row per (dataset, family,
    method) of :func:`summary`, competitors by place, then the references (``perfect``,
    ``oracle``: their reference ranks). ``ci_low``/``ci_high``: the 95 % t-interval over
    seeds (empty with one seed); ``n_seeds``: the seeds behind the mean.
    ``summary_table``: :func:`summary` of ``df`` when the caller has it already."""
    s = summary(df, metrics) if summary_table is None else summary_table
    out = pd.DataFrame({"dataset": s["dataset"], "family": s["family"], "method": s["method"],
                        "mean_rank": s["mean"], "ci_low": s["lo"], "ci_high": s["hi"],
                        "n_seeds": s["n_seeds"]}, columns=RANKS_COLUMNS)
    return out.reset_index(drop=True)
