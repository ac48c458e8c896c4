"""Figures of the benchmark, each a function of the tidy metrics table.

The table is ``results/metrics.tsv`` (docs/contract.md "Metrics"): columns ``dataset,
scenario, method, metric, value`` and ``status`` (``ok`` / ``failed``). Every function
returns a :class:`matplotlib.figure.Figure` (and never calls ``plt.show``):

* :func:`plot_metric` -- one metric, methods side by side, one panel per dataset and
  scenario (seeds of a scenario pooled: dots per seed, bar = mean); the controls
  ``no_imputation`` and ``perfect`` are horizontal reference lines, not bars;
* :func:`plot_ranks` -- heatmap of mean ranks (1 = best) of the methods per metric and
  dataset, annotated with the ranks; see :func:`rank_table`;
* :func:`plot_resources` -- runtime and peak memory per method, log scale;
* :func:`plot_umaps` -- UMAPs of the truth, the observed counts and each imputation,
  coloured by the true groups (computed with scanpy).

Failed runs (``status == "failed"``) are never dropped: they are drawn as a red cross
with the word "failed" on the metric panels, counted as last and marked ``F`` on the
rank heatmap, drawn in red on the resource plot, and as an empty panel saying "failed"
among the UMAPs.

Ranks and metric directions live in :mod:`scziva_bench.ranking` (re-exported here).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import matplotlib.transforms as mtransforms  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scziva_bench import scenario_ids  # noqa: E402
from scziva_bench.ranking import (  # noqa: E402
    _ABS_BEST_ZERO, CONTROLS, RESOURCE_METRICS, higher_is_better, method_order, rank_table)

__all__ = [
    "CONTROLS", "RESOURCE_METRICS", "higher_is_better", "scenario_group", "scenario_label",
    "method_order", "plot_metric", "rank_table", "plot_ranks", "plot_resources",
    "umap_embedding", "plot_umaps", "save_figure",
]

CONTROL_STYLE = {
    "no_imputation": dict(color="0.3", linestyle="--", linewidth=1.4),
    "perfect": dict(color="tab:green", linestyle=":", linewidth=1.8),
}
FAILED_COLOR = "tab:red"


def _status(df: pd.DataFrame) -> pd.Series:
    if "status" in df:
        return df["status"].fillna("ok").astype(str)
    return pd.Series("ok", index=df.index)


scenario_group = scenario_ids.group_of
scenario_label = scenario_ids.label_of


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, scenario group) pairs in order of first appearance."""
    keys = zip(df["dataset"].astype(str), df["scenario"].map(scenario_group))
    return list(dict.fromkeys(keys))


def _grid(n: int, ncols: int, w: float, h: float):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _method_colors(methods) -> dict:
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def _has_values(sub: pd.DataFrame) -> bool:
    """A panel is drawn when some run has a value, or when every run failed (so that a
    failure is never hidden); not when the metric merely does not apply."""
    ok = sub.loc[sub["status"] == "ok", "value"].astype(float)
    return bool(np.isfinite(ok).any() or (len(sub) and (sub["status"] == "failed").all()))


def plot_metric(df: pd.DataFrame, metric: str, ncols: int = 3) -> plt.Figure:
    """Methods side by side for one metric; one panel per (dataset, scenario group).

    Bars are the mean over seeds of a scenario, dots the single runs. The controls are
    horizontal lines at their mean. A failed run is a red cross at the bottom of its
    column, labelled "failed". A method with no value (metric not applicable) is "n/a";
    panels where the metric applies to no method (e.g. MCV metrics on a dropout
    scenario) are left out and listed under the figure.
    """
    d = df[df["metric"] == metric].copy()
    d["status"] = _status(d)
    d["group"] = d["scenario"].map(scenario_group)
    methods = method_order(df)
    colors = _method_colors(methods)
    all_panels = _panels(d)
    panels = [p for p in all_panels
              if _has_values(d[(d["dataset"].astype(str) == p[0]) & (d["group"] == p[1])])]
    skipped = [p for p in all_panels if p not in panels]
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    if metric in _ABS_BEST_ZERO:
        direction = "best at 0"
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{metric}: no values (the metric does not apply to these "
                "scenarios)", ha="center", va="center", fontsize=10, wrap=True)
        return fig
    fig, axes = _grid(len(panels), ncols, w=max(3.4, 0.55 * len(methods) + 1.4), h=3.4)
    x = np.arange(len(methods))
    for ax, (ds, grp) in zip(axes, panels):
        sub = d[(d["dataset"].astype(str) == ds) & (d["group"] == grp)]
        trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
        for i, m in enumerate(methods):
            rows = sub[sub["method"] == m]
            ok = rows.loc[rows["status"] == "ok", "value"].astype(float)
            ok = ok[np.isfinite(ok)]
            if len(ok):
                ax.bar(i, ok.mean(), width=0.7, color=colors[m], alpha=0.45, zorder=2)
                ax.scatter(np.full(len(ok), i), ok, s=18, color=colors[m], edgecolor="k",
                           linewidth=0.4, zorder=3)
            if (rows["status"] == "failed").any():
                ax.plot(i, 0.04, marker="x", color=FAILED_COLOR, markersize=9, mew=2.2,
                        transform=trans, zorder=4, clip_on=False)
                ax.text(i, 0.09, "failed", color=FAILED_COLOR, rotation=90, ha="center",
                        va="bottom", fontsize=8, transform=trans, zorder=4)
            elif not len(ok):
                ax.text(i, 0.04, "n/a", color="0.4", rotation=90, ha="center",
                        va="bottom", fontsize=8, transform=trans)
        for ctl in CONTROLS:
            rows = sub[(sub["method"] == ctl) & (sub["status"] == "ok")]
            vals = rows["value"].astype(float)
            vals = vals[np.isfinite(vals)]
            if len(vals):
                ax.axhline(vals.mean(), zorder=1, label=ctl, **CONTROL_STYLE[ctl])
            elif (sub.loc[sub["method"] == ctl, "status"] == "failed").any():
                ax.text(0.99, 0.98, f"{ctl} failed", color=FAILED_COLOR, ha="right",
                        va="top", fontsize=8, transform=ax.transAxes)
        ax.set_xticks(x)
        ax.set_xticklabels(methods, rotation=40, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_title(f"{ds} - {scenario_label(grp)}", fontsize=10)
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes[: len(panels)][:: max(1, min(ncols, len(panels)))]:
        ax.set_ylabel(metric)
    handles = [plt.Line2D([], [], label=c, **CONTROL_STYLE[c]) for c in CONTROLS
               if (d["method"] == c).any()]
    handles.append(plt.Line2D([], [], marker="x", color=FAILED_COLOR, linestyle="none",
                              mew=2, label="failed run"))
    title = f"{metric} ({direction}); bars: mean over seeds, dots: single runs"
    if skipped:
        title += "\nnot applicable, not drawn: " + ", ".join(
            f"{a} - {scenario_label(b)}" for a, b in skipped)
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0.05, 1, 0.92 if skipped else 0.95))
    fig.legend(handles=handles, loc="lower left", fontsize=8, frameon=False,
               ncol=len(handles), bbox_to_anchor=(0.0, 0.0))
    return fig


def plot_ranks(df: pd.DataFrame, metrics=None) -> plt.Figure:
    """Heatmap of :func:`rank_table`: one row per metric (and dataset), one column per
    method (sorted by mean rank), annotated with the mean ranks (1 = best, yellow); a
    cell with failed runs (counted as last) is marked ``F``. Row labels carry the
    metric's direction: up arrow = higher is better, down arrow = lower is better."""
    ranks, failed = rank_table(df, metrics)
    order = ranks["mean"].sort_values(na_position="last").index
    ranks = ranks.loc[order].T
    failed = failed.loc[order].T
    n_r, n_m = ranks.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * n_m + 3.2), max(2.6, 0.3 * n_r + 1.8)))
    vals = ranks.to_numpy(dtype=float)
    n_methods = max(1, n_m)
    im = ax.imshow(np.ma.masked_invalid(vals), cmap="viridis_r", vmin=1,
                   vmax=max(2, n_methods), aspect="auto")
    for i in range(n_r):
        for j in range(n_m):
            v = vals[i, j]
            f = failed.iloc[i, j]
            if np.isfinite(v):
                txt = f"{v:.1f}" + (" F" if f else "")
                frac = (v - 1) / max(1, n_methods - 1)
                color = "black" if frac < 0.6 else "white"
            else:
                txt, color = "n/a", "0.4"
            ax.text(j, i, txt, ha="center", va="center", fontsize=7.5, color=color,
                    fontweight="bold" if f else "normal")
    ax.axhline(n_r - 1.5, color="white", linewidth=3)
    labels = []
    for row in ranks.index:
        met = str(row).split(" / ")[0]
        if row == "mean":
            labels.append("mean over rows")
        else:
            arrow = "\u2193" if not higher_is_better(met) else "\u2191"
            labels.append(f"{row} {arrow}")
    ax.set_yticks(range(n_r))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xticks(range(n_m))
    ax.set_xticklabels(ranks.columns, rotation=40, ha="right", fontsize=9)
    ax.xaxis.tick_top()
    plt.setp(ax.get_xticklabels(), rotation=40, ha="left")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("mean rank (1 = best)")
    ax.set_xlabel("Mean rank over scenarios and seeds (controls excluded). \u2191 higher is "
                  "better, \u2193 lower is better (genecorr_inflation: |value|).\n"
                  "F: the cell includes failed runs, counted as last.", fontsize=8)
    fig.tight_layout()
    return fig


def plot_resources(df: pd.DataFrame) -> plt.Figure:
    """Runtime (s) and peak memory (MB) of every method (controls included), log scale.

    Dots: single (dataset, scenario) runs; black bar: median of the runs. Failed runs are
    red crosses at their measured time and memory.
    """
    methods = method_order(df, controls=True)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.1 * len(methods) + 2.5), 3.8))
    d = df.copy()
    d["status"] = _status(d)
    for ax, met, label in zip(axes, RESOURCE_METRICS, ("runtime (s)", "peak memory (MB)")):
        sub = d[d["metric"] == met]
        rng = np.random.default_rng(0)
        for i, m in enumerate(methods):
            rows = sub[sub["method"] == m]
            vals = rows["value"].astype(float)
            ok_mask = (rows["status"] == "ok").to_numpy() & np.isfinite(vals.to_numpy())
            bad_mask = (rows["status"] == "failed").to_numpy()
            jit = rng.uniform(-0.15, 0.15, size=len(rows))
            good = vals.to_numpy()[ok_mask]
            if len(good):
                ax.scatter(i + jit[ok_mask], np.maximum(good, 1e-3), s=16, color="tab:blue",
                           alpha=0.7, zorder=3)
                ax.hlines(np.median(np.maximum(good, 1e-3)), i - 0.3, i + 0.3, color="k",
                          linewidth=2, zorder=4)
            bad = vals.to_numpy()[bad_mask]
            fin = np.isfinite(bad)
            if fin.any():
                ax.scatter(i + jit[bad_mask][fin], np.maximum(bad[fin], 1e-3), marker="x",
                           s=40, color=FAILED_COLOR, linewidth=2, zorder=5)
            if bad_mask.any():
                trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
                ax.text(i, 0.98, "failed", color=FAILED_COLOR, rotation=90, ha="center",
                        va="top", fontsize=8, transform=trans)
        ax.set_yscale("log")
        plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=40, ha="right", fontsize=9)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(label)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", color="tab:blue", linestyle="none", label="run"),
               plt.Line2D([], [], color="k", linewidth=2, label="median"),
               plt.Line2D([], [], marker="x", color=FAILED_COLOR, linestyle="none", mew=2,
                          label="failed run")]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Runtime and peak memory per method (Snakemake benchmark files)", fontsize=11,
                 x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


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
        if X is None:
            ax.text(0.5, 0.5, "failed", color=FAILED_COLOR, fontsize=14, ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_title(name, fontsize=10, color=FAILED_COLOR)
            for s in ax.spines.values():
                s.set_edgecolor(FAILED_COLOR)
            continue
        emb = (embeddings or {}).get(name)
        if emb is None:
            emb = umap_embedding(X, seed=seed)
        ax.scatter(emb[:, 0], emb[:, 1], c=colors[labels.codes], s=6, linewidths=0,
                   rasterized=True)
        ax.set_title(name, fontsize=10)
    handles = [plt.Line2D([], [], marker="o", linestyle="none", color=colors[i], label=c)
               for i, c in enumerate(cats)]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False,
               title="true group", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.88, 0.94 if title else 1))
    return fig


def save_figure(fig: plt.Figure, stem, formats=("png", "pdf"), dpi: int = 150) -> list:
    """Save ``fig`` as ``stem.<ext>`` for every format, each through a temporary file and
    ``os.replace``; close the figure; return the paths."""
    import os
    import tempfile
    from pathlib import Path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in formats:
        path = stem.with_name(f"{stem.name}.{ext}")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".{ext}")
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=dpi, format=ext, bbox_inches="tight")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        out.append(path)
    plt.close(fig)
    return out
