"""The answer of a run, generated from its ranks (never typed): per dataset and metric
family, who wins, who cannot be told apart from the winner, and who beats doing nothing.

:func:`verdict_rows` turns :func:`scziva_bench.evaluation.ranking.summary` into one row
per (dataset, family); :func:`markdown` writes them as ``results/verdicts.md`` (rule
``verdicts``), the table README's verdict section quotes; the HTML report opens with
the same rows (:mod:`scziva_bench.report.html`).

"Beats no_imputation" means: a better mean family rank than ``no_imputation`` and apart
from it beyond noise (the paired test over seeds of :mod:`~scziva_bench.evaluation.ranking`,
Holm-corrected); with one seed nothing is apart, and the row says so.
"""

from __future__ import annotations

import math

import pandas as pd

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.evaluation import ranking

__all__ = ["verdict_rows", "markdown", "COLUMNS", "clipped_interval", "rank_text",
           "references_text", "winner_text", "baseline_text"]

COLUMNS = ["dataset", "family", "winner", "mean", "lo", "hi", "n_seeds", "n_methods",
           "separable", "tied", "beat_baseline", "below_baseline", "baseline_mean",
           "reference_means", "failed"]


def clipped_interval(lo, hi, n) -> tuple[float, float]:
    """The 95 % t-interval clipped to the possible ranks (1 .. n + 1); NaN where there is
    none (one seed)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    return max(1.0, lo), min(float(n) + 1.0, hi)


def verdict_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, family) of a rank summary (see :data:`COLUMNS`): the winner
    (best mean rank among the competitors; no_imputation competes) with its mean rank and
    clipped 95 % interval, the methods tied with it within noise, the methods that beat
    no_imputation beyond noise, those ranked below it, the references' mean ranks, and
    the methods with failed or NaN entries."""
    rows = []
    if summary is None or summary.empty:
        return pd.DataFrame(columns=COLUMNS)
    for (ds, fam), g in summary.groupby(["dataset", "family"], sort=False):
        comp = g[~g["reference"]].sort_values("place")
        if comp.empty:
            continue
        best = comp.iloc[0]
        lo, hi = clipped_interval(best["lo"], best["hi"], best["n"])
        tied = comp[comp["tied_best"] & (comp["method"] != best["method"])]["method"].tolist()
        base = comp[comp["method"] == ranking.BASELINE]
        beat, below, base_mean = [], [], math.nan
        if len(base):
            b = base.iloc[0]
            base_mean = float(b["mean"])
            apart_from_base = {m: (ranking.BASELINE not in str(t).split(", "))
                               for m, t in zip(comp["method"], comp["tied_with"])}
            for r in comp.itertuples(index=False):
                if r.method == ranking.BASELINE:
                    continue
                if r.mean < base_mean and bool(r.separable) and apart_from_base[r.method]:
                    beat.append(r.method)
                elif r.mean > base_mean:
                    below.append(r.method)
        refs = {r.method: float(r.mean) for r in g[g["reference"]].itertuples(index=False)}
        failed = comp[(comp["failed"] > 0) | (comp["missing"] > 0)]["method"].tolist()
        rows.append(dict(dataset=ds, family=fam, winner=best["method"], mean=float(best["mean"]),
                         lo=lo, hi=hi, n_seeds=int(best["n_seeds"]), n_methods=len(comp),
                         separable=bool(best["separable"]), tied=tied, beat_baseline=beat,
                         below_baseline=below, baseline_mean=base_mean,
                         reference_means=refs, failed=failed))
    return pd.DataFrame(rows, columns=COLUMNS)


def rank_text(mean, lo, hi) -> str:
    """``1.61 [1.00, 2.94]`` (no interval where there is none)."""
    txt = f"{mean:.2f}"
    if math.isfinite(lo):
        txt += f" [{lo:.2f}, {hi:.2f}]"
    return txt


def winner_text(r) -> str:
    """The winner cell: name, mean rank [interval], and how sure."""
    txt = f"{r.winner} {rank_text(r.mean, r.lo, r.hi)}"
    if not r.separable:
        return txt + "; one seed: cannot tell apart"
    if r.tied:
        return txt + f"; tied within noise with {len(r.tied)}: {', '.join(r.tied)}"
    return txt + "; apart from every other method"


def baseline_text(r) -> str:
    """Who beats no_imputation beyond noise."""
    if not math.isfinite(r.baseline_mean):
        return "n/a (no_imputation not run)"
    if not r.separable:
        return f"cannot tell (one seed); no_imputation {r.baseline_mean:.2f}"
    if r.winner == ranking.BASELINE:
        return f"no: no_imputation ranks first ({r.baseline_mean:.2f})"
    if not r.beat_baseline:
        return f"no method beyond noise (no_imputation {r.baseline_mean:.2f})"
    return f"{', '.join(r.beat_baseline)} (no_imputation {r.baseline_mean:.2f})"


def references_text(reference_means: dict) -> str:
    """``perfect 1.00; oracle 1.31``, or ``n/a`` without references."""
    return "; ".join(f"{m} {v:.2f}" for m, v in reference_means.items()) or "n/a"


def markdown(rows: pd.DataFrame, heading: str = "") -> str:
    """``results/verdicts.md``: a heading paragraph, then one table row per (dataset,
    family): the winner with its interval and tie group, who beats no_imputation, the
    references' ranks (a reference far from 1 means the family rewards something other
    than closeness to the truth)."""
    lines = []
    if heading:
        lines += [heading.strip(), ""]
    seeds = sorted(set(int(s) for s in rows["n_seeds"])) if len(rows) else []
    lines += [f"Mean family rank over {', '.join(map(str, seeds)) or 'no'} seed(s), 95 % "
              "t-interval clipped to the possible ranks (1 = best; per seed the mean over "
              "the family's ranked metrics and the dataset's scenarios; failed or NaN "
              "entries count as last). \"Tied\" and \"beats\" mean a paired test over "
              "seeds, Holm-corrected, at 0.05.", "",
              "| dataset | family | winner, mean rank [95 %], tie group | beats no_imputation "
              "beyond noise | below no_imputation | references (perfect / oracle) |",
              "|---|---|---|---|---|---|"]
    for r in rows.itertuples(index=False):
        fam = metric_specs.FAMILY_LABELS.get(r.family, r.family)
        lines.append("| " + " | ".join([str(r.dataset), fam, winner_text(r), baseline_text(r),
                                        ", ".join(r.below_baseline) or "none",
                                        references_text(r.reference_means)]) + " |")
    return "\n".join(lines) + "\n"
