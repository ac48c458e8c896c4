"""Figures of the benchmark, each a function of the tidy metrics table.

The table is ``results/metrics.tsv`` (docs/contract.md "Metrics"): columns ``dataset,
scenario, method, metric, value`` and ``status`` (``ok`` / ``failed`` /
``not_applicable``). Seeds are the ``_sN`` suffix of the scenario id; every figure shows
the mean over seeds and a 95 % t-interval (none with one seed, and it says so). Every
function returns a :class:`matplotlib.figure.Figure` (never calls ``plt.show``):

* :func:`plot_metric` -- one metric, methods side by side, one panel per dataset and
  scenario; controls (``no_imputation``, ``perfect``) are reference lines;
* :func:`plot_ranks` -- family ranks per dataset (:mod:`scziva_bench.evaluation.ranking`), with
  their 95 % intervals; boxed cells cannot be told apart from the best within noise;
* :func:`plot_rates` -- every metric of one dataset against the dropout rate, one line
  per method, interval bands;
* :func:`plot_families` -- per dataset and metric family, each method's score on the
  scale ``no_imputation`` = 0, ``perfect`` = 1;
* :func:`plot_paper` -- the scZiva paper's layout for one dataset: PCC, RMSE, MAE and
  log-MSE on the dropped entries, then ARI and NMI, methods side by side;
* :func:`plot_hexbin` -- imputed against true values on the dropped entries;
* :func:`plot_resources` -- runtime and peak memory per method, log scale;
* :func:`plot_umaps` -- UMAPs of the truth, the observed counts and each imputation.

Method colours come from one map (:func:`method_color`, keyed by the method's name, the
same in every figure and unchanged when methods are added); axis labels use the
registry's display label (re-implementations marked as such). Failed runs are never
dropped: red crosses marked "failed", counted as last (``F``) in the ranks.
"""

from __future__ import annotations

import contextlib
import math
import zlib

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.catalog import figures as figure_list  # noqa: E402
from scziva_bench.catalog import methods as method_catalog  # noqa: E402
from scziva_bench.catalog import scenarios as scenario_ids  # noqa: E402
from scziva_bench.catalog.figures import figure_names  # noqa: E402,F401
from scziva_bench.catalog.metrics import higher_is_better  # noqa: E402,F401
from scziva_bench.evaluation import ranking  # noqa: E402
from scziva_bench.evaluation.ranking import (  # noqa: E402
    BASELINE, CONTROLS, REFERENCE, REFERENCES, RESOURCE_METRICS, method_order)

__all__ = [
    "CONTROLS", "RESOURCE_METRICS", "PAPER_METRICS", "method_color", "method_colors",
    "method_label", "method_order", "higher_is_better", "mean_ci", "figure_names", "draw",
    "plot_metric", "plot_ranks", "plot_rates", "plot_families", "plot_paper", "plot_hexbin",
    "plot_resources", "plot_cost",
    "draw_imputed",
    "umap_embedding", "plot_umaps", "save_figure",
]

#: the scZiva paper's figures: four accuracy metrics on the dropped entries, then ARI and
#: NMI (the first of each tuple that has values)
PAPER_METRICS = ("pearson_dropped", "rmse_dropped", "mae_dropped", "log_mse_dropped",
                 ("ari_kmeans", "ari_leiden"), ("nmi_kmeans", "nmi_leiden"))
FAILED_COLOR = "tab:red"
CONTROL_STYLE = {
    BASELINE: dict(color="0.3", linestyle="--", linewidth=1.4),
    REFERENCE: dict(color="tab:green", linestyle=":", linewidth=1.8),
    "oracle": dict(color="tab:olive", linestyle="-.", linewidth=1.6),
}

# ------------------------------------------------------------------ colours and labels

# Colours of the built-in methods are in their catalog rows; any other name gets one from
# a hash of the name, so a method keeps its colour whatever else is in the run.
_SPARE = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
          "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8",
          "#fdae6b", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#c5b0d5"]

#: ``{method: label}`` of the figures being drawn (see :func:`labelled`)
_LABELS: dict = {}


@contextlib.contextmanager
def labelled(labels):
    """Within the block, figures name methods by ``labels`` (``{method: label}``, from
    :func:`scziva_bench.catalog.methods.labels` of the config: its ``label:`` values);
    methods not in it keep the catalog's label."""
    global _LABELS
    before, _LABELS = _LABELS, dict(labels or {})
    try:
        yield
    finally:
        _LABELS = before


def method_color(name: str) -> str:
    """The colour of a method in every figure (hex string)."""
    name = str(name)
    row = method_catalog.row(name)
    if row is not None and row.color:
        return row.color
    return _SPARE[zlib.crc32(name.encode()) % len(_SPARE)]


def method_colors(methods) -> dict:
    return {m: method_color(m) for m in methods}


def method_label(name: str) -> str:
    """Display label: the config's (inside :func:`labelled`), else the catalog's (e.g.
    ``"DCA (re-impl.)"``), else the name. Never imports a method's module."""
    return _LABELS.get(str(name)) or method_catalog.label(str(name))


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % t-interval (NaN for one value) and count of the
    finite ``values``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    k = len(v)
    if k == 0:
        return math.nan, math.nan, 0
    if k == 1:
        return float(v[0]), math.nan, 1
    return float(v.mean()), ranking._t975(k) * float(v.std(ddof=1)) / math.sqrt(k), k


def _seeds_note(d: pd.DataFrame) -> str:
    n = d.groupby(["dataset", "group", "method"])["seed"].nunique()
    n = n[n > 0]
    if n.empty:
        return ""
    lo, hi = int(n.min()), int(n.max())
    if hi <= 1:
        return "1 seed: no interval"
    k = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"mean and 95 % interval over {k} seeds"


def _grid(n: int, ncols: int, w: float, h: float):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _header(fig, title: str, handles=(), ncol: int = 6) -> float:
    """Title at the top left, the legend under it; returns the top of the panel area
    (figure fraction) for ``tight_layout(rect=...)``."""
    h = fig.get_figheight()
    n_lines = title.count("\n") + 1
    fig.text(0.01, 1 - 0.08 / h, title, fontsize=10, ha="left", va="top")
    used = 0.12 + 0.19 * n_lines
    if handles:
        ncol = max(1, min(ncol, len(handles)))
        fig.legend(handles=handles, loc="upper left", ncol=ncol, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.01, 1 - used / h))
        used += 0.08 + 0.2 * math.ceil(len(handles) / ncol)
    return 1 - (used + 0.05) / h


def _empty(text: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True)
    return fig


def _has_values(sub: pd.DataFrame) -> bool:
    """A panel is drawn when some run has a value, or when every run failed (so that a
    failure is never hidden); not when the metric merely does not apply."""
    ok = sub.loc[sub["status"] == "ok", "value"]
    return bool(np.isfinite(ok).any() or (len(sub) and (sub["status"] == "failed").all()))


# ------------------------------------------------------------------ figure names

def draw(name: str, df: pd.DataFrame, datasets: dict | None = None) -> plt.Figure:
    """The figure called ``name`` (:func:`scziva_bench.catalog.figures.figure_names`) drawn
    from the tidy metrics table; ``datasets`` (name -> description, e.g. the simulation
    regime, from the config) is written next to each dataset. ValueError for a name it
    does not know."""
    if name.startswith("metric_"):
        return plot_metric(df, name[len("metric_"):], datasets=datasets)
    if name.startswith("rates_"):
        return plot_rates(df, name[len("rates_"):], datasets=datasets)
    if name.startswith("paper_"):
        return plot_paper(df, name[len("paper_"):], datasets=datasets)
    if name in ("ranks", "families"):
        return (plot_ranks if name == "ranks" else plot_families)(df, datasets=datasets)
    if name == "resources":
        return plot_resources(df)
    if name == "cost":
        return plot_cost(df, datasets=datasets)
    raise ValueError(f"no figure called {name!r} is drawn from the metrics table")


# ------------------------------------------------------------------ one metric

def _bars(ax, sub: pd.DataFrame, methods: list, trans_y=0.04):
    """Mean bar, 95 % interval and seed dots per method; failed cross; n/a text (one
    artist per kind and panel, so that panels with many methods stay fast)."""
    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    ok_rows = sub[(sub["status"] == "ok") & np.isfinite(sub["value"])]
    by = {m: g["value"].to_numpy(dtype=float) for m, g in ok_rows.groupby("method")}
    failed = set(sub.loc[sub["status"] == "failed", "method"])
    xs, means, halves, colors, dx, dy, dc, bad, na = [], [], [], [], [], [], [], [], []
    for i, m in enumerate(methods):
        v = by.get(m, np.array([]))
        if len(v):
            mean, half, _ = mean_ci(v)
            xs.append(i)
            means.append(mean)
            halves.append(half)
            colors.append(method_color(m))
            dx += [i] * len(v)
            dy += list(v)
            dc += [method_color(m)] * len(v)
        if m in failed:
            bad.append(i)
        elif not len(v):
            na.append(i)
    if xs:
        ax.bar(xs, means, width=0.7, color=colors, alpha=0.45, zorder=2)
        h = np.asarray(halves, dtype=float)
        fin = np.isfinite(h)
        if fin.any():
            ax.errorbar(np.asarray(xs)[fin], np.asarray(means)[fin], yerr=h[fin], fmt="none",
                        ecolor="k", capsize=3, linewidth=1, zorder=4)
        ax.scatter(dx, dy, s=14, c=dc, edgecolors="k", linewidths=0.4, zorder=3)
    if bad:
        ax.plot(bad, [trans_y] * len(bad), linestyle="none", marker="x", color=FAILED_COLOR,
                markersize=9, mew=2.2, transform=trans, zorder=5, clip_on=False)
    for i in bad:
        ax.text(i, trans_y + 0.05, "failed", color=FAILED_COLOR, rotation=90, ha="center",
                va="bottom", fontsize=8, transform=trans, zorder=5)
    for i in na:
        ax.text(i, trans_y, "n/a", color="0.4", rotation=90, ha="center", va="bottom",
                fontsize=8, transform=trans)


def _control_lines(ax, sub: pd.DataFrame):
    for ctl in CONTROLS:
        rows = sub[sub["method"] == ctl]
        vals = rows.loc[rows["status"] == "ok", "value"]
        vals = vals[np.isfinite(vals)]
        if len(vals):
            ax.axhline(vals.mean(), zorder=1, label=ctl, **CONTROL_STYLE[ctl])
        elif (rows["status"] == "failed").any():
            ax.text(0.99, 0.98, f"{ctl} failed", color=FAILED_COLOR, ha="right", va="top",
                    fontsize=8, transform=ax.transAxes)


def _method_axis(ax, methods):
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([method_label(m) for m in methods], rotation=40, ha="right",
                       fontsize=8.5)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.tick_params(axis="y", labelsize=8)


def _legend(fig, d):
    handles = [plt.Line2D([], [], label=c, **CONTROL_STYLE[c]) for c in CONTROLS
               if (d["method"] == c).any()]
    handles.append(plt.Line2D([], [], marker="x", color=FAILED_COLOR, linestyle="none",
                              mew=2, label="failed run"))
    handles.append(plt.Line2D([], [], color="k", marker="_", label="95 % interval"))
    fig.legend(handles=handles, loc="lower left", fontsize=8, frameon=False,
               ncol=len(handles), bbox_to_anchor=(0.0, 0.0))


def plot_metric(df: pd.DataFrame, metric: str, ncols: int = 3,
                datasets: dict | None = None) -> plt.Figure:
    """Methods side by side for one metric; one panel per (dataset, scenario group).

    Bars: mean over seeds, black whisker: 95 % interval, dots: single seeds. Controls
    are horizontal lines at their mean. A failed run is a red cross labelled "failed";
    a method with no value is "n/a"; panels where the metric applies to no method are
    left out and listed in the title.
    """
    d = ranking.tidy(df[df["metric"] == metric])
    methods = method_order(df)
    keys = list(dict.fromkeys(zip(d["dataset"], d["group"])))
    panels = [k for k in keys if _has_values(d[(d["dataset"] == k[0]) & (d["group"] == k[1])])]
    skipped = [k for k in keys if k not in panels]
    if not panels:
        return _empty(f"{metric}: no values (the metric does not apply to these scenarios)")
    fig, axes = _grid(len(panels), ncols, w=max(3.4, 0.5 * len(methods) + 1.6), h=3.6)
    for ax, (ds, grp) in zip(axes, panels):
        sub = d[(d["dataset"] == ds) & (d["group"] == grp)]
        _bars(ax, sub, methods)
        _control_lines(ax, sub)
        _method_axis(ax, methods)
        ax.set_title(f"{ds} - {scenario_ids.label_of(grp)}", fontsize=10)
    for ax in axes[: len(panels)][:: max(1, min(ncols, len(panels)))]:
        ax.set_ylabel(metric)
    title = (f"{metric} ({metric_specs.spec(metric).direction_label}); bars: {_seeds_note(d)}, "
             "dots: single seeds")
    if skipped:
        title += "\nnot applicable, not drawn: " + ", ".join(
            f"{a} - {scenario_ids.label_of(b)}" for a, b in skipped)
    note = _datasets_note(dict.fromkeys(k[0] for k in panels), datasets)
    if note:
        title += "\n" + note
    top = _header(fig, title)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, top))
    _legend(fig, d)
    return fig


# ------------------------------------------------------------------ ranks

def plot_ranks(df: pd.DataFrame, metrics=None, datasets: dict | None = None) -> plt.Figure:
    """Family ranks (:func:`ranking.summary`): one row per (dataset, family), one column
    per method (best overall first, ``no_imputation`` among them, ``perfect`` apart as a
    reference). Cells: mean rank over seeds (1 = best, colour) and its 95 % interval;
    a black box marks the methods that cannot be told apart from the row's best within
    noise; ``F``: failed or NaN entries counted as last."""
    s = ranking.summary(df, metrics)
    if s.empty:
        return _empty("no ranked metric has values in these results")
    comp = s[~s["reference"]]
    order = comp.groupby("method", sort=False)["mean"].mean().sort_values().index.tolist()
    refs = [r for r in REFERENCES if (s["method"] == r).any()]
    cols = order + refs
    rows = list(dict.fromkeys(zip(s["dataset"], s["family"])))
    n_r, n_c = len(rows), len(cols)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.05 * n_c + 4.0), max(2.8, 0.5 * n_r + 2.4)))
    vmax = max(2, int(comp["n"].max()))
    cmap = plt.get_cmap("viridis_r")
    idx = s.set_index(["dataset", "family", "method"])
    for i, (ds, fam) in enumerate(rows):
        for j, m in enumerate(cols):
            x = j + (0.3 if m in refs else 0)
            if (ds, fam, m) not in idx.index:
                ax.text(x, i, "n/a", ha="center", va="center", fontsize=7, color="0.4")
                continue
            r = idx.loc[(ds, fam, m)]
            frac = (r["mean"] - 1) / max(1, vmax - 1)
            face = "0.92" if m in refs else cmap(min(1.0, max(0.0, frac)))
            ax.add_patch(plt.Rectangle((x - 0.5, i - 0.5), 1, 1, facecolor=face,
                                       edgecolor="white", linewidth=1))
            if r["tied_best"] and r["separable"]:
                ax.add_patch(plt.Rectangle((x - 0.46, i - 0.44), 0.92, 0.88, fill=False,
                                           edgecolor="black", linewidth=2.0, zorder=3))
            txt = f"{r['mean']:.1f}"
            if np.isfinite(r["lo"]):
                txt += f"\n[{max(1.0, r['lo']):.1f}, {min(r['n'] + 1.0, r['hi']):.1f}]"
            if r["failed"] or r["missing"]:
                txt += " F"
            dark = m not in refs and frac > 0.55
            ax.text(x, i, txt, ha="center", va="center", fontsize=6.8,
                    color="white" if dark else "black",
                    fontweight="bold" if (r["failed"] or r["missing"]) else "normal")
    for i in range(1, n_r):
        if rows[i][0] != rows[i - 1][0]:  # a new dataset: a gap
            ax.axhline(i - 0.5, color="white", linewidth=5, zorder=4)
    ax.set_xlim(-0.5, n_c - 0.5 + (0.3 if refs else 0))
    ax.set_ylim(n_r - 0.5, -0.5)
    ax.set_yticks(range(n_r))
    ax.set_yticklabels([f"{ds}: {ranking.FAMILY_LABELS.get(f, f)}" for ds, f in rows],
                       fontsize=8)
    ax.set_xticks([j + (0.3 if m in refs else 0) for j, m in enumerate(cols)])
    ax.set_xticklabels([method_label(m) + (" (reference)" if m in refs else "")
                        for m in cols], rotation=40, ha="left", fontsize=8.5)
    ax.xaxis.tick_top()
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, vmax))
    cb = fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("mean rank (1 = best)", fontsize=8)
    seeds = int(comp["n_seeds"].max())
    note = (f"Rank within each scenario and seed (no_imputation included; failed or NaN = "
            f"last), averaged over the family's ranked metrics and scenarios, then mean and "
            f"[95 % interval] over {seeds} seed{'s' if seeds != 1 else ''}.\n")
    note += ("Black box: cannot be told apart from the row's best within noise (paired "
             "t-interval over seeds). " if seeds >= 2 else
             "One seed: no interval, ties cannot be judged. ")
    note += ("perfect / oracle: the place the truth / the true means would take (a check "
             "of the metric). F: failed/NaN.")
    ds_note = _datasets_note(dict.fromkeys(r[0] for r in rows), datasets)
    if ds_note:
        note += "\n" + ds_note
    ax.set_xlabel(note, fontsize=7.5)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ against the rate

def plot_rates(df: pd.DataFrame, dataset: str, metrics=None, ncols: int = 4,
               datasets: dict | None = None) -> plt.Figure:
    """Each metric of ``dataset`` against the dropout (or masking) rate: one line per
    method (mean over seeds), band = 95 % interval, controls dashed/dotted; failed
    points are red crosses on the axis."""
    d = ranking.tidy(df[df["dataset"].astype(str) == str(dataset)])
    rates = figure_list.rated(d["scenario"].unique())
    if len(rates) < 2:
        return _empty(f"{dataset}: fewer than two rates, nothing to draw against the rate")
    kind = d.loc[d["rate"].isin(rates), "kind"].mode().iloc[0]
    d = d[(d["kind"] == kind)]
    if metrics is None:
        metrics = [m for m in dict.fromkeys(d["metric"]) if m not in RESOURCE_METRICS]
    metrics = [m for m in metrics if _has_values(d[d["metric"] == m])]
    if not metrics:
        return _empty(f"{dataset}: no metric has values")
    methods = method_order(d, controls=True)
    fig, axes = _grid(len(metrics), ncols, w=3.4, h=2.9)
    for ax, met in zip(axes, metrics):
        sub = d[d["metric"] == met]
        for m in methods:
            rows = sub[sub["method"] == m]
            pts = []
            for rate, g in rows.groupby("rate"):
                ok = g.loc[g["status"] == "ok", "value"]
                mean, half, _ = mean_ci(ok)
                pts.append((rate, mean, half, (g["status"] == "failed").any()))
            if not pts:
                continue
            x, y, h, bad = (np.array(v, dtype=float) for v in zip(*pts))
            style = CONTROL_STYLE.get(m, dict(linestyle="-", linewidth=1.4))
            style = {**style, "color": method_color(m)}
            ax.plot(100 * x, y, marker="o", markersize=3, label=method_label(m), **style)
            if np.isfinite(h).any():
                ax.fill_between(100 * x, y - h, y + h, color=method_color(m), alpha=0.15,
                                linewidth=0)
            if bad.astype(bool).any():
                trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
                ax.plot(100 * x[bad.astype(bool)], np.full(int(bad.sum()), 0.03), "x",
                        color=FAILED_COLOR, mew=2, transform=trans, clip_on=False, gid="failed")
        _limit_to_lines(ax)
        ax.set_title(f"{met} {metric_specs.spec(met).arrow}", fontsize=9)
        ax.set_xticks([100 * r for r in rates])
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.3)
    for ax in axes[: len(metrics)][-min(ncols, len(metrics)):]:
        ax.set_xlabel(f"{kind} rate (%)", fontsize=8)
    handles = [plt.Line2D([], [], color=method_color(m), label=method_label(m),
                          **{k: v for k, v in CONTROL_STYLE.get(m, {}).items()
                             if k != "color"}) for m in methods]
    handles.append(plt.Line2D([], [], marker="x", color=FAILED_COLOR, linestyle="none",
                              mew=2, label="failed (some seed)"))
    top = _header(fig, f"{_named(dataset, datasets)}: metrics against the {kind} rate; "
                  f"lines and bands: {_seeds_note(d)}", handles, ncol=8)
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def _limit_to_lines(ax):
    """y-limits from the lines (means), so that one wide band (e.g. 2 seeds left after a
    failure) does not flatten the others; bands are clipped at the axes."""
    ys = np.concatenate([np.asarray(ln.get_ydata(), dtype=float) for ln in ax.lines
                         if ln.get_gid() != "failed"] or [np.array([0.0, 1.0])])
    ys = ys[np.isfinite(ys)]
    if not len(ys):
        return
    lo, hi = float(ys.min()), float(ys.max())
    pad = 0.25 * (hi - lo) if hi > lo else 0.1 * max(1.0, abs(hi))
    ax.set_ylim(lo - pad, hi + pad)


# ------------------------------------------------------------------ metric families

def family_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, family, method, seed): the mean over the family's ranked metrics and
    the scenarios of ``(value - no_imputation) / (perfect - no_imputation)`` in the
    metric's direction: 0 = as good as doing nothing, 1 = as good as the truth, below 0 =
    worse than no imputation. Metrics where ``perfect`` is missing or does not beat
    ``no_imputation`` (no scale to measure on) are left out; failed runs give NaN."""
    d = ranking.tidy(df)
    d = d[d["metric"].map(lambda m: m not in RESOURCE_METRICS and metric_specs.spec(m).ranked)]
    d = d[d["status"] != "not_applicable"]
    key = ["dataset", "scenario", "metric"]
    base = d[d["method"] == BASELINE].set_index(key)["value"]
    ref = d[d["method"] == REFERENCE].set_index(key)["value"]
    d = d[~d["method"].isin(CONTROLS)].copy()
    idx = pd.MultiIndex.from_frame(d[key])
    b = base.reindex(idx).to_numpy()
    r = ref.reindex(idx).to_numpy()
    v = d["value"].to_numpy()
    sign = np.array([1.0 if metric_specs.spec(m).maximize is not False else -1.0 for m in d["metric"]])
    zero = np.array([metric_specs.spec(m).maximize == "zero" for m in d["metric"]])
    v, b, r = (np.where(zero, -np.abs(a), a * sign) for a in (v, b, r))
    gap = r - b  # > 0 where the truth scores better than doing nothing
    usable = np.isfinite(gap) & (gap > 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(usable, (v - b) / np.where(usable, gap, 1.0), np.nan)
    d["score"] = score
    d["usable"] = usable
    d = d[d["usable"]]
    d["family"] = d["metric"].map(lambda m: metric_specs.spec(m).family)
    d["failed"] = d["status"] == "failed"
    return (d.groupby(["dataset", "family", "method", "seed"], sort=False)
            .agg(score=("score", "mean"), failed=("failed", "any")).reset_index())


def plot_families(df: pd.DataFrame, clip=(-1.0, 1.2),
                  datasets: dict | None = None) -> plt.Figure:
    """Summary by metric family, one panel per dataset: grouped bars of
    :func:`family_scores` (mean over seeds, 95 % interval), no_imputation at 0 and
    perfect at 1; bars beyond ``clip`` are cut at the axis and marked with a triangle;
    ``F`` above a bar: some run failed (left out of its mean)."""
    fs = family_scores(df)
    if fs.empty:
        return _empty("no family summary: no ranked metric with both controls")
    shown = list(dict.fromkeys(fs["dataset"]))
    methods = [m for m in method_order(df) if m in set(fs["method"])]
    n_f = fs.groupby("dataset")["family"].nunique().max()
    w = max(5.0, 0.2 * len(methods) * n_f + 2)
    fig, axes = _grid(len(shown), 2 if w < 8 else 1, w=w, h=3.2)
    width = 0.8 / max(1, len(methods))
    for ax, ds in zip(axes, shown):
        sub = fs[fs["dataset"] == ds]
        fams = [f for f in ranking.FAMILY_ORDER if f in set(sub["family"])]
        for j, m in enumerate(methods):
            for i, fam in enumerate(fams):
                g = sub[(sub["method"] == m) & (sub["family"] == fam)]
                if g.empty:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                if not np.isfinite(g["score"]).any():
                    ax.plot(x, 0, "x", color=FAILED_COLOR, mew=2, zorder=4)
                    continue
                mean, half, _ = mean_ci(g["score"])
                shown = float(np.clip(mean, *clip))
                ax.bar(x, shown, width=width * 0.95, color=method_color(m), zorder=2)
                if np.isfinite(half) and shown == mean:
                    ax.errorbar(x, mean, yerr=half, color="k", linewidth=0.8, capsize=1.5,
                                zorder=3)
                if shown != mean:  # beyond the axis: a triangle at the edge, and the value
                    ax.plot(x, shown, marker="^" if mean > 0 else "v", color="k",
                            markersize=4, zorder=4, clip_on=False)
                    ax.text(x, shown + (0.07 if mean > 0 else -0.07), f"{mean:.3g}",
                            rotation=90, fontsize=5.5, ha="center",
                            va="bottom" if mean > 0 else "top", clip_on=False, zorder=5)
                if g["failed"].any():
                    ax.text(x, max(shown, 0) + 0.03, "F", color=FAILED_COLOR, fontsize=7,
                            ha="center", va="bottom", fontweight="bold")
        ax.axhline(0, **CONTROL_STYLE[BASELINE])
        ax.axhline(1, **CONTROL_STYLE[REFERENCE])
        ax.set_xticks(range(len(fams)))
        ax.set_xticklabels([ranking.FAMILY_SHORT.get(f, f) for f in fams], fontsize=7.5)
        ax.set_xlim(-0.5, len(fams) - 0.5)
        ax.set_ylim(clip[0] - 0.45, clip[1] + 0.5)  # room for the values of cut bars
        ax.set_title(_named(ds, datasets), fontsize=9.5)
        ax.set_ylabel("0 = no_imputation, 1 = perfect", fontsize=8)
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.tick_params(axis="y", labelsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=method_color(m), label=method_label(m))
               for m in methods]
    handles += [plt.Line2D([], [], label=c, **CONTROL_STYLE[c]) for c in CONTROLS]
    handles.append(plt.Line2D([], [], color=FAILED_COLOR, marker="$F$", linestyle="none",
                              label="some run failed"))
    handles.append(plt.Line2D([], [], color="k", marker="^", linestyle="none", markersize=4,
                              label=f"cut at {clip[0]:g} / {clip[1]:g}: value written"))
    top = _header(fig, "Summary by metric family: mean over the family's ranked metrics of "
                  "the score scaled to no_imputation = 0, perfect = 1 (below 0: worse than "
                  f"no imputation)\n{_seeds_note(ranking.tidy(df))}; failed runs left out "
                  "of the mean (their ranks count them last)", handles, ncol=8)
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def _named(ds, datasets) -> str:
    """``ds (description)`` where the config describes the dataset."""
    desc = (datasets or {}).get(ds)
    return f"{ds} ({desc})" if desc else str(ds)


def _datasets_note(names, datasets) -> str:
    known = [f"{d}: {(datasets or {}).get(d)}" for d in names if (datasets or {}).get(d)]
    return ("Datasets - " + "; ".join(known)) if known else ""


# ------------------------------------------------------------------ paper layout

def plot_paper(df: pd.DataFrame, dataset: str, metrics=PAPER_METRICS,
               datasets: dict | None = None) -> plt.Figure:
    """The scZiva paper's per-dataset layout: one row per scenario group (e.g. dropout
    20/50/80 %), one panel per metric in the paper's order (PCC, RMSE, MAE, log-MSE on
    the dropped entries, then ARI, NMI), methods side by side (mean, 95 % interval, seed
    dots), controls as lines. Metrics without values for the dataset are left out."""
    d = ranking.tidy(df[df["dataset"].astype(str) == str(dataset)])
    mets = []
    for m in metrics:
        options = [m] if isinstance(m, str) else list(m)
        mets += [o for o in options if _has_values(d[d["metric"] == o])][:1]
    groups = [g for g in dict.fromkeys(d["group"])
              if any(_has_values(d[(d["group"] == g) & (d["metric"] == m)]) for m in mets)]
    if not mets or not groups:
        return _empty(f"{dataset}: none of the paper's metrics (PCC, RMSE, MAE, log-MSE, ARI, "
                      "NMI) has values")
    methods = method_order(df)
    w = max(2.8, 0.38 * len(methods) + 1.0)
    fig, axes = plt.subplots(len(groups), len(mets), figsize=(w * len(mets), 3.5 * len(groups)),
                             squeeze=False)
    for r, grp in enumerate(groups):
        for c, met in enumerate(mets):
            ax = axes[r, c]
            sub = d[(d["group"] == grp) & (d["metric"] == met)]
            if not _has_values(sub):
                ax.axis("off")
                ax.text(0.5, 0.5, f"{met}\nnot applicable", ha="center", va="center",
                        fontsize=8, color="0.4", transform=ax.transAxes)
                continue
            _bars(ax, sub, methods)
            _control_lines(ax, sub)
            _method_axis(ax, methods)
            ax.set_title(f"{scenario_ids.label_of(grp)}: {met} "
                         f"{metric_specs.spec(met).arrow}", fontsize=9)
    top = _header(fig, f"{_named(dataset, datasets)}: the paper's metrics (PCC, RMSE, MAE, "
                  f"log-MSE on the dropped entries, ARI, NMI), {_seeds_note(d)}; one row per "
                  "scenario")
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, top))
    _legend(fig, d)
    return fig


# ------------------------------------------------------------------ imputed vs true

def plot_hexbin(truth, mask, imputed: dict, title: str = "", ncols: int = 4,
                gridsize: int = 40) -> plt.Figure:
    """Imputed against true values on the dropped/masked entries, one hexbin per method
    (log1p of the count scale, shared axes, y = x dashed, Pearson r of the log values in
    the corner). ``truth`` and ``mask`` are the scenario's ``layers["truth"]`` and
    ``layers["mask"]``; ``imputed`` maps a method to its cells x genes matrix, or to
    ``None`` for a failed method (an empty panel saying "failed")."""
    import scipy.sparse as sp

    if mask is None or (sp.issparse(mask) and mask.nnz == 0) or \
            (not sp.issparse(mask) and not np.asarray(mask).any()):
        return _empty(f"{title}: this scenario drops no entries (no hexbin)")
    M = sp.csr_matrix(mask).astype(bool).tocoo()
    rows, cols = M.row, M.col

    def entries(X):
        if sp.issparse(X):
            return np.asarray(sp.csr_matrix(X)[rows, cols]).ravel().astype(float)
        return np.asarray(X)[rows, cols].astype(float)

    t = np.log1p(np.clip(entries(truth), 0, None))
    lim = float(np.nanmax(t)) * 1.05 if len(t) else 1.0
    vals = {m: (None if X is None else np.log1p(np.clip(entries(X), 0, None)))
            for m, X in imputed.items()}
    lim = max([lim] + [float(np.nanpercentile(v, 99.5)) for v in vals.values()
                       if v is not None and len(v)])
    fig, axes = _grid(len(vals), ncols, w=2.9, h=2.9)
    for ax, (m, v) in zip(axes, vals.items()):
        ax.set_title(method_label(m), fontsize=9, color=method_color(m))
        if v is None:
            ax.text(0.5, 0.5, "failed", color=FAILED_COLOR, fontsize=13, ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.hexbin(t, v, gridsize=gridsize, bins="log", cmap="Greys", mincnt=1,
                  extent=(0, lim, 0, lim))
        ax.plot([0, lim], [0, lim], "--", color="tab:red", linewidth=0.8)
        ok = np.isfinite(v)
        r = np.corrcoef(t[ok], v[ok])[0, 1] if ok.sum() > 1 and np.std(v[ok]) > 0 else np.nan
        ax.text(0.04, 0.95, f"r = {r:.2f}" if np.isfinite(r) else "r = n/a (constant)",
                transform=ax.transAxes, fontsize=8, va="top")
        ax.set_xlim(0, lim)
        ax.set_ylim(0, lim)
        ax.tick_params(labelsize=7)
    for ax in axes[: len(vals)]:
        ax.set_xlabel("log1p(true)", fontsize=8)
    for ax in axes[: len(vals)][::max(1, min(ncols, len(vals)))]:
        ax.set_ylabel("log1p(imputed)", fontsize=8)
    top = _header(fig, (title + ": " if title else "") + f"imputed vs true on the {len(t):,} "
                  "dropped entries\n(hexbin, log colour scale; dashed: y = x)")
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


# ------------------------------------------------------------------ resources

def plot_resources(df: pd.DataFrame) -> plt.Figure:
    """Runtime (s) and peak memory (MB) of every method (controls included), log scale.

    Dots: single runs (method colour); black bar: median. Failed runs: red crosses.
    """
    methods = method_order(df, controls=True)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.1 * len(methods) + 2.5), 3.8))
    d = df.copy()
    d["status"] = d["status"].fillna("ok").astype(str) if "status" in d else "ok"
    for ax, met, label in zip(axes, RESOURCE_METRICS, ("runtime (s)", "peak memory (MB)")):
        sub = d[d["metric"] == met]
        rng = np.random.default_rng(0)
        for i, m in enumerate(methods):
            rows = sub[sub["method"] == m]
            vals = pd.to_numeric(rows["value"], errors="coerce").to_numpy(dtype=float)
            ok_mask = (rows["status"] == "ok").to_numpy() & np.isfinite(vals)
            bad_mask = (rows["status"] == "failed").to_numpy()
            jit = rng.uniform(-0.15, 0.15, size=len(rows))
            good = np.maximum(vals[ok_mask], 1e-3)
            if len(good):
                ax.scatter(i + jit[ok_mask], good, s=16, color=method_color(m), alpha=0.8,
                           zorder=3)
                ax.hlines(np.median(good), i - 0.3, i + 0.3, color="k", linewidth=2, zorder=4)
            bad = vals[bad_mask]
            fin = np.isfinite(bad)
            if fin.any():
                ax.scatter(i + jit[bad_mask][fin], np.maximum(bad[fin], 1e-3), marker="x",
                           s=40, color=FAILED_COLOR, linewidth=2, zorder=5)
            if bad_mask.any():
                trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
                ax.text(i + 0.3, 0.98, "failed", color=FAILED_COLOR, rotation=90,
                        ha="center", va="top", fontsize=7.5, transform=trans)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        _method_axis(ax, methods)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.set_ylabel(label)
    handles = [plt.Line2D([], [], marker="o", color="0.5", linestyle="none", label="run"),
               plt.Line2D([], [], color="k", linewidth=2, label="median"),
               plt.Line2D([], [], marker="x", color=FAILED_COLOR, linestyle="none", mew=2,
                          label="failed run")]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Runtime and peak memory per method and job (Snakemake benchmark files)",
                 fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def plot_cost(df: pd.DataFrame, datasets: dict | None = None) -> plt.Figure:
    """Accuracy against runtime per dataset: x = median ``runtime_s`` of a method's impute
    jobs (log scale), y = its mean family rank (mean over the dataset's ranked families of
    :func:`scziva_bench.evaluation.ranking.summary`'s mean rank; 1 = best). References
    (perfect, oracle) are left out: they cost nothing and are not competitors."""
    summ = ranking.summary(df)
    d = df.copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    secs = d[d["metric"] == "runtime_s"].groupby(["dataset", "method"])["value"].median()
    if summ.empty or secs.dropna().empty:
        return _empty("no ranked metric or no runtime recorded: nothing to draw")
    comp = summ[~summ["reference"]]
    dsets = list(dict.fromkeys(comp["dataset"]))
    ncols = min(3, len(dsets))
    fig, axes = _grid(len(dsets), ncols, 4.6, 3.6)
    for ax, ds in zip(axes, dsets):
        rank = comp[comp["dataset"] == ds].groupby("method", sort=False)["mean"].mean()
        for m, r in rank.items():
            x = secs.get((ds, m), np.nan)
            if not np.isfinite(x):
                continue
            x = max(float(x), 1e-2)
            ax.scatter(x, r, s=36, color=method_color(m), zorder=3)
            ax.annotate(method_label(m), (x, r), xytext=(4, 3), textcoords="offset points",
                        fontsize=6.5)
            if m == BASELINE:
                ax.axhline(r, **CONTROL_STYLE[BASELINE])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.invert_yaxis()  # rank 1 at the top
        ax.set_xlabel("median seconds per scenario (log)", fontsize=8)
        ax.set_ylabel("mean family rank (1 = best)", fontsize=8)
        ax.set_title(_named(ds, datasets), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[len(dsets):]:
        ax.set_visible(False)
    fig.suptitle("Accuracy against cost: mean family rank vs runtime (better: up and left)",
                 fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# ------------------------------------------------------------------ UMAPs

def umap_embedding(X, seed: int = 0, n_pcs: int = 30, n_neighbors: int = 15) -> np.ndarray:
    """2-D UMAP of a cells x genes count matrix: normalize_total(1e4), log1p, PCA,
    neighbours, UMAP (scanpy, ``random_state=seed``)."""
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    M = X.toarray() if sp.issparse(X) else np.asarray(X)
    M = np.clip(np.nan_to_num(M.astype(np.float32), nan=0.0), 0, None)
    a = ad.AnnData(M)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    n_comps = int(max(2, min(n_pcs, a.n_obs - 1, a.n_vars - 1)))
    sc.pp.pca(a, n_comps=n_comps, random_state=seed)
    sc.pp.neighbors(a, n_neighbors=int(min(n_neighbors, a.n_obs - 1)), random_state=seed)
    sc.tl.umap(a, random_state=seed)
    return np.asarray(a.obsm["X_umap"])


def plot_umaps(panels: dict, labels, seed: int = 0, ncols: int = 4, title: str = "",
               embeddings: dict | None = None) -> plt.Figure:
    """One UMAP per panel, points coloured by ``labels`` (the true groups).

    ``panels`` maps a title (``"truth"``, ``"observed"``, a method) to a cells x genes
    matrix, or to ``None`` for a failed method (an empty panel saying "failed").
    ``embeddings`` may hold precomputed 2-D coordinates by title.
    """
    labels = pd.Categorical(np.asarray(labels).astype(str))
    cats = list(labels.categories)
    cmap = plt.get_cmap("tab10" if len(cats) <= 10 else "tab20")
    colors = np.array([cmap(i % cmap.N) for i in range(len(cats))])
    fig, axes = _grid(len(panels), ncols, w=3.0, h=3.0)
    for ax, (name, X) in zip(axes, panels.items()):
        ax.set_xticks([])
        ax.set_yticks([])
        shown = name if name in ("truth", "observed") else method_label(name)
        if X is None:
            ax.text(0.5, 0.5, "failed", color=FAILED_COLOR, fontsize=14, ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_title(shown, fontsize=10, color=FAILED_COLOR)
            for s in ax.spines.values():
                s.set_edgecolor(FAILED_COLOR)
            continue
        emb = (embeddings or {}).get(name)
        if emb is None:
            emb = umap_embedding(X, seed=seed)
        ax.scatter(emb[:, 0], emb[:, 1], c=colors[labels.codes], s=6, linewidths=0,
                   rasterized=True)
        ax.set_title(shown, fontsize=10)
    handles = [plt.Line2D([], [], marker="o", linestyle="none", color=colors[i], label=c)
               for i, c in enumerate(cats)]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False,
               title="true group", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.88, 0.94 if title else 1))
    return fig


def draw_imputed(name: str, scenario, imputed: dict, where: str = "") -> plt.Figure:
    """A figure drawn from one scenario's AnnData (``layers["counts"]``, ``"truth"``,
    ``"mask"``, ``obs["group"]`` or ``obs["cell_type"]``) and the methods' imputed
    matrices (``imputed``: method -> matrix, ``None`` for a failed one; controls left
    out): ``"umap"`` or ``"hexbin"``. ``where`` names the dataset and scenario."""
    if name == "hexbin":
        truth = scenario.layers["truth"] if "truth" in scenario.layers else None
        mask = scenario.layers["mask"] if "mask" in scenario.layers else None
        if truth is None:
            return _empty(f"{where}: no truth in this scenario (no hexbin)")
        return plot_hexbin(truth, mask, imputed, title=where)
    if name != "umap":
        raise ValueError(f"no figure called {name!r} is drawn from imputed matrices")
    labels = None
    for key in ("group", "cell_type"):
        if key in scenario.obs:
            labels = scenario.obs[key].astype(str).to_numpy()
            break
    if labels is None:
        labels = np.full(scenario.n_obs, "unlabelled")
    panels = {"truth": scenario.layers["truth"]} if "truth" in scenario.layers else {}
    panels["observed"] = scenario.layers["counts"]
    panels.update(imputed)
    return plot_umaps(panels, labels, seed=0,
                      title=f"{where}: UMAP (log1p CPM, PCA), seed 0")


def save_figure(fig: plt.Figure, stem, formats=("png", "pdf"), dpi: int = 150) -> list:
    """Save ``fig`` as ``stem.<ext>`` for every format, each atomically
    (:func:`scziva.fileio.atomic_write`); close the figure; return the paths."""
    from pathlib import Path

    from scziva.fileio import atomic_write

    stem = Path(stem)
    out = []
    for ext in formats:
        path = stem.with_name(f"{stem.name}.{ext}")
        with atomic_write(path, make_parents=True, suffix=f".{ext}") as tmp:
            fig.savefig(tmp, dpi=dpi, format=ext, bbox_inches="tight")
        out.append(path)
    plt.close(fig)
    return out
