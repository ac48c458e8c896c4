"""Metrics of an imputation, as tidy rows (docs/metrics.md describes every metric).

:func:`evaluate` scores one method's imputed matrix on one scenario and returns a
``pandas.DataFrame`` with columns ``dataset, scenario, method, metric, value, status``
(one row per metric). The facts about each metric (direction, family, what it needs,
whether it is ranked) live in :mod:`scziva_bench.catalog.metrics`; a metric whose needs the
scenario does not meet is ``not_applicable`` (NaN, never computed against the input).
Metric groups (``which``): ``"entries"``, ``"denoising"``, ``"mcv"``, ``"clustering"``,
``"de"``, ``"genecorr"``.

Controls: :func:`perfect` (the truth, on the scale a method should return) scores best on
every truth-scored metric; :func:`no_imputation` is the observed counts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import gammaln

from scziva.errors import InputError

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.catalog.scenarios import MCV_KINDS
from scziva_bench.data.scenarios import MCV_TRAIN_FRACTION
from scziva_bench.evaluation.tables import COLUMNS, aggregate, write_tsv_atomic

__all__ = ["GROUPS", "METRICS", "evaluate", "failed_rows", "available",
           "aggregate", "write_tsv_atomic", "lognorm",
           "entry_metrics", "mcv_metrics", "denoise_metrics", "gene_pearson"]

TARGET_SUM = 1e4
_ENTRY = ("pearson", "rmse", "mae", "log_mse", "median_l1")

#: computation group -> metric names (from :data:`scziva_bench.catalog.metrics.SPECS`)
GROUPS = {g: metric_specs.names(group=g) for g in metric_specs.GROUPS if g != "resources"}
METRICS = [m for g in GROUPS.values() for m in g]
#: True where a larger value is better, False where smaller is better (derived from
#: metric_specs; genecorr_inflation is best at 0 and listed as False: compare |value|).


# ----------------------------------------------------------------------------- helpers

def _dense(M, dtype=np.float32):
    if sp.issparse(M):
        return M.toarray().astype(dtype, copy=False)
    return np.asarray(M, dtype=dtype)


def _chunks(n_rows: int, n_cols: int, target: int = 2_000_000):
    """Row slices of about ``target`` entries (bounded float64 temporaries)."""
    step = max(1, target // max(n_cols, 1))
    for r0 in range(0, n_rows, step):
        yield slice(r0, min(n_rows, r0 + step))


def lognorm(M, target_sum: float = TARGET_SUM, dtype=np.float32) -> np.ndarray:
    """Each cell scaled to ``target_sum`` then ``log1p`` (cells with zero total stay 0).

    Same as ``scanpy.pp.normalize_total(target_sum=...)`` + ``scanpy.pp.log1p``;
    negative values (some methods return them) are clipped to 0 first. Computed in
    float64 block by block, returned as ``dtype`` (float32 by default, to save memory).
    """
    if sp.issparse(M):
        M = M.tocsr()
    out = np.empty(M.shape, dtype=dtype)
    for sl in _chunks(*M.shape):
        X = np.clip(_dense(M[sl], np.float64), 0, None)
        s = X.sum(axis=1, keepdims=True)
        scale = np.divide(target_sum, s, out=np.zeros_like(s), where=s > 0)
        out[sl] = np.log1p(X * scale)
    return out


def _pearson(a, b) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def gene_pearson(L, R, where=None, min_cells: int = 3) -> float:
    """Mean over genes of the Pearson correlation across cells of ``L`` and ``R`` (cells x
    genes, e.g. log-normalised output and reference).

    ``where`` (bool, cells x genes, optional) restricts each gene to its own cells (e.g.
    the entries observed as zero). Genes with fewer than ``min_cells`` such cells, or whose
    reference does not vary there, are left out; a gene constant in ``L`` (but not in
    ``R``) correlates 0. NaN when no gene qualifies. An output without cell-level signal
    per gene (a constant, ``depth x gene share`` after normalisation, noise) scores about 0.
    """
    L = np.asarray(L, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    W = np.ones(L.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
    n = W.sum(axis=0).astype(np.float64)
    nz = np.maximum(n, 1.0)
    mL = (L * W).sum(axis=0) / nz
    mR = (R * W).sum(axis=0) / nz
    A = np.where(W, L - mL, 0.0)
    B = np.where(W, R - mR, 0.0)
    sa, sb = np.sqrt((A * A).sum(axis=0)), np.sqrt((B * B).sum(axis=0))
    # a reference that varies by less than float rounding does not vary
    use = (n >= min_cells) & (sb > 1e-9 * np.maximum(1.0, np.abs(mR)) * np.sqrt(nz))
    if not use.any():
        return float("nan")
    # an output that varies by less than float32 rounding (methods return float32; e.g.
    # depth x gene share, normalised) is constant: it correlates 0, not at random
    flat_L = sa <= 1e-6 * np.maximum(1.0, np.abs(mL)) * np.sqrt(nz)
    den = np.where(flat_L, 0.0, sa * sb)
    r = np.divide((A * B).sum(axis=0), den, out=np.zeros(L.shape[1]), where=den > 0)
    return float(np.clip(r[use], -1.0, 1.0).mean())


def entry_metrics(imputed, truth) -> dict:
    """pearson, rmse, mae, log_mse, median_l1 of two equal-size arrays (count scale).

    pearson is the plain Pearson correlation of the flattened values (0 for a constant
    prediction, NaN when the truth is constant); rmse, mae and
    median_l1 (median absolute error, as in the scVI paper) are on counts;
    ``log_mse = mean((log1p(imputed) - log1p(truth))^2)`` (imputed clipped at 0 for the log).
    Accumulated in float64 over row blocks, so large matrices need no float64 copy.
    """
    x_all = np.asarray(imputed)
    y_all = np.asarray(truth)
    if x_all.shape != y_all.shape:
        raise InputError(f"metrics: imputed values of shape {x_all.shape} do not match the truth {y_all.shape}")
    n = x_all.size
    if n == 0:
        return {m: float("nan") for m in _ENTRY}
    if x_all.ndim != 2:
        x_all, y_all = x_all.reshape(1, -1), y_all.reshape(1, -1)
    sx = sy = 0.0
    for sl in _chunks(*x_all.shape):
        sx += float(x_all[sl].sum(dtype=np.float64))
        sy += float(y_all[sl].sum(dtype=np.float64))
    mx, my = sx / n, sy / n
    sxx = syy = sxy = sdd = sad = sld = 0.0
    absd = np.empty(x_all.shape, dtype=np.float64 if n <= 2_000_000 else np.float32)
    for sl in _chunks(*x_all.shape):
        x = x_all[sl].astype(np.float64)
        y = y_all[sl].astype(np.float64)
        d = x - y
        absd[sl] = np.abs(d)
        sdd += float((d * d).sum())
        sad += float(np.abs(d).sum())
        ld = np.log1p(np.clip(x, 0, None)) - np.log1p(y)
        sld += float((ld * ld).sum())
        x -= mx
        y -= my
        sxx += float((x * x).sum())
        syy += float((y * y).sum())
        sxy += float((x * y).sum())
    den = np.sqrt(sxx * syy)
    if n < 2 or syy == 0:
        pearson = float("nan")  # the truth does not vary: undefined (not applicable)
    elif sxx == 0:
        pearson = 0.0  # a constant prediction (e.g. zeros on dropped entries) explains nothing
    else:
        pearson = float(sxy / den)
    return {"pearson": pearson, "rmse": float(np.sqrt(sdd / n)), "mae": sad / n,
            "log_mse": sld / n, "median_l1": float(np.median(absd))}


def mcv_metrics(imputed, test, train_fraction: float) -> dict:
    """Molecular cross-validation scores of a denoised train matrix against test counts.

    - ``mcv_mse``: mean squared error between ``lognorm(imputed)`` and ``lognorm(test)``
      (each cell normalised to the same target sum, then log1p: the train/test molecule
      ratio cancels);
    - ``mcv_poisson``: mean Poisson negative log-likelihood of the TEST counts ``y``
      under the prediction ``mu = imputed * (1 - p) / p`` (``p`` = train fraction):
      ``mean(mu - y log(mu) + log(y!))``, with ``mu`` floored at 1e-6;
    - ``mcv_gene_pearson``: :func:`gene_pearson` of ``lognorm(imputed)`` and
      ``lognorm(test)`` (per gene across cells: the train and test molecules share the
      cells' biology, not their sampling noise).
    """
    p = float(train_fraction)
    if not (0.0 < p < 1.0):
        raise InputError(f"metrics: MCV train_fraction must be in (0, 1), got {train_fraction!r}")
    X_all = imputed
    Y_all = test.tocsr() if sp.issparse(test) else np.asarray(test)
    n = int(np.prod(X_all.shape))
    sse = nll = 0.0
    for sl in _chunks(*X_all.shape):
        X = np.clip(_dense(X_all[sl], np.float64), 0, None)
        Y = _dense(Y_all[sl], np.float64)
        d = lognorm(X, dtype=np.float64) - lognorm(Y, dtype=np.float64)
        sse += float((d * d).sum())
        mu = np.maximum(X * ((1.0 - p) / p), 1e-6)
        nll += float((mu - Y * np.log(mu) + gammaln(Y + 1.0)).sum())
    out = {"mcv_mse": sse / n, "mcv_poisson": nll / n}
    r = gene_pearson(lognorm(X_all), lognorm(Y_all))
    if np.isfinite(r):
        out["mcv_gene_pearson"] = r
    return out


def _scenario_info(adata):
    info = dict(adata.uns.get("scenario", {}) or {})
    kind = info.get("kind", "none")
    return kind, info


# ----------------------------------------------------------------------------- clustering

def _labels(adata):
    if "cell_type" not in adata.obs:
        return None
    lab = adata.obs["cell_type"]
    lab = lab.astype("object").where(lab.notna(), None)
    arr = np.array([None if v is None else str(v) for v in lab], dtype=object)
    ok = np.array([v is not None for v in arr])
    if len(set(arr[ok])) < 2:
        return None
    return arr


def _pca(L, seed: int, n_top: int = 2000, n_comps: int = 30):
    """PCA of a log-normalised matrix (scanpy), on the top-variance genes when there are many."""
    import anndata as ad
    import scanpy as sc

    A = ad.AnnData(np.asarray(L, dtype=np.float32))
    if A.n_vars > n_top:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sc.pp.highly_variable_genes(A, n_top_genes=n_top, flavor="seurat")
            keep = A.var["highly_variable"].to_numpy()
        except Exception:  # degenerate input (e.g. constant genes): fall back to variance
            keep = np.zeros(A.n_vars, dtype=bool)
            keep[np.argsort(-A.X.var(axis=0))[:n_top]] = True
        A = A[:, keep].copy()
    nc = int(min(n_comps, A.n_obs - 1, A.n_vars - 1))
    if nc < 1:
        return None
    Xd = np.asarray(A.X, dtype=np.float64)
    # every cell the same (up to float32 rounding, e.g. a rank-one output normalised):
    # no structure at all
    if float(Xd.var(axis=0).sum()) <= 1e-10 * max(1.0, float(np.mean(Xd * Xd)) * Xd.shape[1]):
        return "constant"
    try:
        sc.pp.pca(A, n_comps=nc, random_state=seed, svd_solver="arpack")
    except Exception:  # ARPACK fails on some rank-deficient inputs: exact SVD instead
        sc.pp.pca(A, n_comps=nc, random_state=seed, svd_solver="full")
    return A.obsm["X_pca"].astype(np.float64)


def _knn_adjacency(P, k: int = 15):
    from sklearn.neighbors import NearestNeighbors

    k = int(min(k, P.shape[0] - 1))
    nn = NearestNeighbors(n_neighbors=k + 1).fit(P)
    G = nn.kneighbors_graph(P, mode="connectivity")
    G.setdiag(0)
    G.eliminate_zeros()
    return G.maximum(G.T).tocsr()


def _leiden(P, n_true: int, seed: int):
    """Leiden on a kNN graph of the PCA; resolution picked (from a grid, label-free) so
    that the number of clusters is closest to the true number of groups."""
    import anndata as ad
    import scanpy as sc

    A = ad.AnnData(np.zeros((P.shape[0], 1), dtype=np.float32))
    adj = _knn_adjacency(P)
    best = None
    for res in (1.0, 0.5, 1.5, 0.25, 2.0, 0.1, 3.0):
        sc.tl.leiden(A, resolution=res, adjacency=adj, flavor="igraph", n_iterations=2,
                     directed=False, random_state=seed, key_added="leiden")
        lab = A.obs["leiden"].to_numpy()
        gap = abs(len(set(lab)) - n_true)
        if best is None or gap < best[0]:
            best = (gap, lab, res)
        if gap == 0:
            break
    return best[1], best[2]


def _silhouette(P, y):
    """Silhouette width of labels ``y`` on the embedding ``P`` ("constant": every cell the
    same point, 0 as scikit-learn defines it for zero distances)."""
    from sklearn.metrics import silhouette_score

    if isinstance(P, str):
        return 0.0
    return float(silhouette_score(P, y))


def _clustering(L, labels, seed, T_log=None):
    """ARI / NMI of k-means and Leiden vs the labels, silhouette, and the gap to the
    truth's silhouette (when ``T_log`` is given). Returns only the metrics that apply."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    out = {}
    if labels is None:
        return out
    ok = np.array([v is not None for v in labels])
    y = labels[ok].astype(str)
    n_true = len(set(y))
    P = _pca(L[ok], seed)
    if P is None:
        return out
    if isinstance(P, str):  # a constant matrix puts every cell in one cluster
        one = np.zeros(len(y), dtype=int)
        for m in ("kmeans", "leiden"):
            out[f"ari_{m}"] = float(adjusted_rand_score(y, one))
            out[f"nmi_{m}"] = float(normalized_mutual_info_score(y, one))
    else:
        km = KMeans(n_clusters=n_true, n_init=10, random_state=seed).fit_predict(P)
        out["ari_kmeans"] = float(adjusted_rand_score(y, km))
        out["nmi_kmeans"] = float(normalized_mutual_info_score(y, km))
        le, _ = _leiden(P, n_true, seed)
        out["ari_leiden"] = float(adjusted_rand_score(y, le))
        out["nmi_leiden"] = float(normalized_mutual_info_score(y, le))
    if len(set(y)) < len(y):
        out["silhouette"] = _silhouette(P, y)
        if T_log is not None:
            Pt = _pca(T_log[ok], seed)
            if Pt is not None:
                out["silhouette_gap"] = abs(out["silhouette"] - _silhouette(Pt, y))
    return out


# ----------------------------------------------------------------------------- DE

def _ranks_and_ties(block):
    """Average ranks (1-based) along axis 1 of ``block`` (genes x cells) and, per gene,
    the tie term ``sum(t^3 - t)`` over groups of tied values."""
    g, n = block.shape
    order = np.argsort(block, axis=1, kind="stable")
    srt = np.take_along_axis(block, order, axis=1)
    new_run = np.ones((g, n), dtype=bool)
    new_run[:, 1:] = srt[:, 1:] != srt[:, :-1]
    flat = new_run.ravel()
    starts = np.flatnonzero(flat)
    lengths = np.diff(np.append(starts, flat.size))
    start_in_row = starts % n
    avg = start_in_row + (lengths + 1) / 2.0  # mean of the 1-based ranks start+1 .. start+len
    run_id = np.cumsum(flat) - 1
    ranks = np.empty((g, n), dtype=np.float64)
    np.put_along_axis(ranks, order, avg[run_id].reshape(g, n), axis=1)
    lt = lengths.astype(np.float64)
    ties = np.bincount(starts // n, weights=lt ** 3 - lt, minlength=g)
    return ranks, ties


def _wilcoxon(L, codes, n_groups: int):
    """Wilcoxon rank-sum tests of each group against all other cells, per gene.

    The same test as ``scanpy.tl.rank_genes_groups(method="wilcoxon", tie_correct=True)``
    (normal approximation with tie correction; z-scores of zero variance set to 0;
    Benjamini-Hochberg adjusted p-values), which the tests check; computed once for all
    groups (scanpy re-does the tie correction for every group, ~20x slower on large data).
    ``L``: cells x genes; ``codes``: group index (0..n_groups-1) of each cell.
    Returns ``(z, p_adj)``, both ``n_groups x genes``.
    """
    from scipy import stats

    L = np.asarray(L)
    n, G = L.shape
    codes = np.asarray(codes)
    onehot = np.zeros((n_groups, n), dtype=np.float64)
    onehot[codes, np.arange(n)] = 1.0
    n1 = onehot.sum(axis=1)[:, None]
    rank_sums = np.empty((n_groups, G))
    ties = np.empty(G)
    step = max(1, 2_000_000 // max(n, 1))
    for g0 in range(0, G, step):
        g1 = min(G, g0 + step)
        r, t = _ranks_and_ties(np.ascontiguousarray(L[:, g0:g1].T))
        rank_sums[:, g0:g1] = onehot @ r.T
        ties[g0:g1] = t
    tie_coef = 1.0 - ties / (n ** 3 - n) if n > 1 else np.zeros(G)
    sd = np.sqrt(tie_coef[None, :] * n1 * (n - n1) * (n + 1) / 12.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (rank_sums - n1 * (n + 1) / 2.0) / sd
    z[~np.isfinite(z)] = 0.0
    p = 2.0 * stats.norm.sf(np.abs(z))
    p_adj = np.vstack([_bh(row) for row in p])
    return z, p_adj


def _bh(p):
    """Benjamini-Hochberg adjusted p-values (scipy >= 1.11 has it; a fallback for 1.10)."""
    from scipy import stats

    if hasattr(stats, "false_discovery_control"):
        return stats.false_discovery_control(p, method="bh")
    m = p.size
    order = np.argsort(p)
    adj = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _de_groups(labels, min_cells=3):
    ok = np.array([v is not None for v in labels])
    vals, cnt = np.unique(labels[ok].astype(str), return_counts=True)
    return ok, [v for v, c in zip(vals, cnt) if c >= min_cells]


def _de_truth(adata, labels):
    """Simulated DE factors (genes x groups) and group names, or None."""
    if labels is None or "de_factor" not in adata.varm or "group_names" not in adata.uns:
        return None
    F = np.asarray(adata.varm["de_factor"])
    names = [str(g) for g in adata.uns["group_names"]]
    if F.ndim != 2 or F.shape[1] != len(names):
        return None
    return F, names


def _de_recovery(z, names_present, F, names):
    """Mean AUROC / AUPRC over groups of |z| (group vs rest) for the group's true DE genes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    aucs, aps = [], []
    for k, g in enumerate(names):
        hit = np.flatnonzero(names_present == g)
        truth = F[:, k] != 1.0
        if hit.size == 0 or not (0 < truth.sum() < F.shape[0]):
            continue
        score = np.abs(z[hit[0]])
        aucs.append(roc_auc_score(truth, score))
        aps.append(average_precision_score(truth, score))
    return {"de_auroc": float(np.mean(aucs)), "de_auprc": float(np.mean(aps))} if aucs else {}


def _de_pairs(names_present, names, max_pairs, seed):
    """Pairs (a, b) of group indices (into ``names``) present in the data; at most
    ``max_pairs`` of them (a seeded sample where there are more)."""
    idx = [k for k, g in enumerate(names) if g in set(names_present)]
    pairs = [(a, b) for i, a in enumerate(idx) for b in idx[i + 1:]]
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    return pairs


def _de_null_fpr(X, y, F, names, seed, alpha=0.05, max_pairs=10):
    """Invented DE (after Andrews & Hemberg 2018): for pairs of groups, the share of the
    genes whose simulated factor is the same in both groups (not DE between them) that a
    Wilcoxon test of the two groups calls DE (BH-adjusted p < ``alpha``); mean over pairs.

    ``X``: count-scale cells x genes. The test runs on the null genes only, each cell
    normalised by its total over those genes (then log1p): their true proportions among
    themselves are identical in both groups, whereas the usual per-cell total would shift
    them all by the groups' different DE totals (a compositional effect that is not
    invented DE), so the true counts give about ``alpha`` x (share of pairs with any
    call) at most.
    """
    rates = []
    for a, b in _de_pairs(np.unique(y), names, max_pairs, seed):
        null = np.flatnonzero(F[:, a] == F[:, b])
        cells = np.flatnonzero((y == names[a]) | (y == names[b]))
        if null.size == 0 or cells.size < 6:
            continue
        Lp = lognorm(X[np.ix_(cells, null)])
        _, padj = _wilcoxon(Lp, (y[cells] == names[b]).astype(int), 2)
        rates.append(float(np.mean(padj[0] < alpha)))
    return {"de_null_fpr": float(np.mean(rates))} if rates else {}


def _de_pair_f1(X, y, F, names, seed, alpha=0.05, max_pairs=10):
    """DE calls between pairs of groups scored against the simulation: for each pair (at
    most ``max_pairs``, as :func:`_de_null_fpr`), a Wilcoxon test of the two groups on
    every gene, each cell normalised by its total over the pair's null genes (same factor
    in both groups, so their true proportions are equal: no compositional shift), then
    log1p; a call is BH-adjusted p < ``alpha``; the truth is ``factor_a != factor_b``.
    F1 = 2 TP / (2 TP + FP + FN), mean over pairs. Calling nothing scores 0 (unlike the
    false-positive rate alone); calling everything scores the share of DE genes."""
    f1s = []
    for a, b in _de_pairs(np.unique(y), names, max_pairs, seed):
        de = F[:, a] != F[:, b]
        null = np.flatnonzero(~de)
        cells = np.flatnonzero((y == names[a]) | (y == names[b]))
        if null.size == 0 or not de.any() or cells.size < 6:
            continue
        Xp = np.clip(X[cells].astype(np.float64), 0, None)
        s = Xp[:, null].sum(axis=1, keepdims=True)
        scale = np.divide(TARGET_SUM, s, out=np.zeros_like(s), where=s > 0)
        Lp = np.log1p(Xp * scale)
        _, padj = _wilcoxon(Lp, (y[cells] == names[b]).astype(int), 2)
        call = padj[0] < alpha
        tp = float(np.sum(call & de))
        fp = float(np.sum(call & ~de))
        fn = float(np.sum(~call & de))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"de_pair_f1": float(np.mean(f1s))} if f1s else {}


def _de_jaccard(z, zt, n_top=100):
    """Mean over groups of the Jaccard index of the top-``n_top`` genes by z-score."""
    n_top = min(n_top, z.shape[1])
    js = []
    for k in range(z.shape[0]):
        if np.ptp(z[k]) == 0:  # no ranking at all (e.g. a constant output)
            js.append(0.0)
            continue
        a, b = _top(z[k], n_top), _top(zt[k], n_top)
        js.append(len(a & b) / len(a | b))
    return {"de_jaccard_top100": float(np.mean(js))}


def _de(L, labels, adata, T_log, seed, X=None):
    """DE metrics that apply: recovery of simulated DE genes, invented DE between groups,
    agreement with the truth's DE genes."""
    out = {}
    if labels is None:
        return out
    ok, groups = _de_groups(labels)
    if len(groups) < 2:
        return out
    keep = ok & np.isin(labels.astype(str), groups)
    y = labels[keep].astype(str)
    Lk = L[keep]
    names_present, codes = np.unique(y, return_inverse=True)
    z, _ = _wilcoxon(Lk, codes, len(names_present))
    sim = _de_truth(adata, labels)
    if sim is not None:
        F, names = sim
        out.update(_de_recovery(z, names_present, F, names))
        if X is not None:
            out.update(_de_null_fpr(X[keep], y, F, names, seed))
            out.update(_de_pair_f1(X[keep], y, F, names, seed))
    if T_log is not None:
        zt, _ = _wilcoxon(T_log[keep], codes, len(names_present))
        out.update(_de_jaccard(z, zt))
    return out


def _top(z, n_top):
    """Indices of the ``n_top`` highest z-scores (ties broken by gene order)."""
    order = np.lexsort((np.arange(z.size), -z))
    return set(order[:n_top].tolist())


# ----------------------------------------------------------------------------- gene-gene

def _corr_cols(M):
    M = np.asarray(M, dtype=np.float64)
    M = M - M.mean(axis=0)
    sd = np.sqrt((M * M).sum(axis=0))
    C = (M.T @ M) / np.outer(sd, sd).clip(min=1e-300)
    C[:, sd == 0] = 0.0
    C[sd == 0, :] = 0.0
    return C


def _genecorr(L, T_log, n_top=200):
    out = {}
    if T_log is None:
        return out
    v = T_log.var(axis=0, dtype=np.float64)
    cand = np.flatnonzero(v > 0)
    if cand.size < 3:
        return out
    genes = cand[np.argsort(-v[cand], kind="stable")[:n_top]]
    Ct = _corr_cols(T_log[:, genes])
    Ci = _corr_cols(L[:, genes])
    iu = np.triu_indices(len(genes), k=1)
    # an output without any gene-gene correlation (e.g. constant) agrees with nothing: 0
    out["genecorr_agreement"] = _pearson(Ct[iu], Ci[iu]) if np.ptp(Ci[iu]) > 0 else 0.0
    out["genecorr_inflation"] = float(np.mean(np.abs(Ci[iu])) - np.mean(np.abs(Ct[iu])))
    return out


# ----------------------------------------------------------------------------- trajectory

#: developmental stages in their true order, for real data whose labels are stages
#: (Deng et al. 2014 mouse preimplantation embryos, as shipped in resources/datasets/)
STAGE_ORDERS = {
    "deng": ("zy", "early2cell", "mid2cell", "late2cell", "4cell", "8cell", "16cell",
             "earlyblast", "midblast", "lateblast"),
}


def true_order(adata):
    """The cells' true order (float per cell, NaN where unknown) or None: a path
    simulation's ``obs["pseudotime"]``, else the position of each cell's label in a known
    stage order (:data:`STAGE_ORDERS`) when every label is one of its stages."""
    if "pseudotime" in adata.obs:
        t = pd.to_numeric(adata.obs["pseudotime"], errors="coerce").to_numpy(dtype=float)
        return t if np.isfinite(t).sum() >= 3 and np.nanstd(t) > 0 else None
    labels = _labels(adata)
    if labels is None:
        return None
    present = {str(v) for v in labels if v is not None}
    for order in STAGE_ORDERS.values():
        if present <= set(order) and len(present) >= 3:
            pos = {s: i for i, s in enumerate(order)}
            return np.array([np.nan if v is None else float(pos[str(v)]) for v in labels])
    return None


#: PCs of the trajectory embedding: a one-dimensional path lives in a few components;
#: past ~10 they are noise that folds the diffusion map (the default run's sim_path,
#: seed 3: the oracle's Spearman 0.60 with 30 PCs, 0.93 with 10; seeds 1-2: 0.91/0.89 ->
#: 0.95/0.96; Deng's stages: 0.920 -> 0.926)
TRAJECTORY_PCS = 10


def _trajectory(L, order, seed):
    """Spearman correlation of scanpy's diffusion pseudotime (15-NN graph of the first
    :data:`TRAJECTORY_PCS` PCs of ``L``, rooted at the first cell with the smallest true
    order) with the true order.
    An output whose cells are all one point has no order: 0. Cells the graph cannot reach
    (dpt infinite) are put last."""
    import anndata as ad
    import scanpy as sc
    from scipy import stats

    ok = np.isfinite(order)
    t = order[ok]
    P = _pca(L[ok], seed, n_comps=TRAJECTORY_PCS)
    if P is None:
        return {}
    if isinstance(P, str):
        return {"trajectory_spearman": 0.0}
    A = ad.AnnData(np.zeros((P.shape[0], 1), dtype=np.float32))
    A.obsm["X_pca"] = P
    # the symmetrised 15-nearest-neighbour graph of the PCA (as for Leiden), given to
    # scanpy as its neighbours: scanpy's own UMAP weights would import the umap package
    # (a heavy import that a folder on sys.path can shadow), and its Gaussian weights are NaN
    # for duplicated cells (which smoothers produce)
    k = int(min(15, P.shape[0] - 1))
    A.obsp["connectivities"] = _knn_adjacency(P, k)
    A.obsp["distances"] = A.obsp["connectivities"].copy()
    A.uns["neighbors"] = {"connectivities_key": "connectivities",
                          "distances_key": "distances",
                          "params": {"n_neighbors": k, "method": "umap", "use_rep": "X_pca"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sc.tl.diffmap(A, n_comps=int(min(15, P.shape[0] - 2)), random_state=seed)
        except Exception:  # noqa: BLE001 -- ARPACK failed: the metric cannot be computed
            return {"trajectory_spearman": float("nan")}
        A.uns["iroot"] = int(np.flatnonzero(t == t.min())[0])
        sc.tl.dpt(A)
    dpt = A.obs["dpt_pseudotime"].to_numpy(dtype=float)
    fin = np.isfinite(dpt)
    if not fin.any() or np.ptp(dpt[fin]) == 0:
        return {"trajectory_spearman": 0.0}
    dpt = np.where(fin, dpt, dpt[fin].max() + 1.0)
    rho = stats.spearmanr(dpt, t).statistic
    return {"trajectory_spearman": float(rho) if np.isfinite(rho) else 0.0}


# ----------------------------------------------------------------------------- denoising

def denoise_metrics(L, M_log) -> dict:
    """``lognorm(imputed)`` ``L`` against ``lognorm(true means)`` ``M_log`` (cells x genes):

    - ``denoise_log_mse``: mean over all entries of ``(L - M_log)^2``;
    - ``denoise_pearson``: mean over the genes that vary in ``M_log`` of the Pearson
      correlation across cells of ``L`` and ``M_log`` (a gene constant in ``L``: 0).
    """
    out = {}
    n = L.shape[0] * L.shape[1]
    if n == 0:
        return out
    sse = 0.0
    for sl in _chunks(*L.shape):
        d = L[sl].astype(np.float64) - M_log[sl].astype(np.float64)
        sse += float((d * d).sum())
    out["denoise_log_mse"] = sse / n
    if L.shape[0] < 2:
        return out
    A = L.astype(np.float64) - L.mean(axis=0, dtype=np.float64)
    B = M_log.astype(np.float64) - M_log.mean(axis=0, dtype=np.float64)
    sa, sb = np.sqrt((A * A).sum(axis=0)), np.sqrt((B * B).sum(axis=0))
    var = sb > 0
    if var.any():
        r = np.divide((A * B).sum(axis=0), sa * sb, out=np.zeros(L.shape[1]), where=(sa * sb) > 0)
        out["denoise_pearson"] = float(r[var].mean())
    return out


# ----------------------------------------------------------------------------- evaluate

def _which_groups(which):
    if which is None:
        return list(GROUPS), METRICS
    if isinstance(which, str):
        which = [which]
    groups, names = [], []
    for w in which:
        if w in GROUPS:
            g = w
            names += GROUPS[w]
        else:
            g = next((k for k, v in GROUPS.items() if w in v), None)
            if g is None:
                raise InputError(f"metrics: unknown metric or group {w!r}; groups are {', '.join(GROUPS)}")
            names.append(w)
        if g not in groups:
            groups.append(g)
    return groups, [m for m in METRICS if m in names]


def _rows(values: dict, names, dataset, scenario, method, status):
    return pd.DataFrame({"dataset": dataset, "scenario": scenario, "method": method,
                         "metric": list(names), "value": [float(values.get(m, np.nan)) for m in names],
                         "status": [status[m] if isinstance(status, dict) else status for m in names]},
                        columns=COLUMNS)


def failed_rows(dataset, scenario, method, which=None) -> pd.DataFrame:
    """Rows (value NaN, status 'failed') for a method that did not produce an output.

    ``which`` as in :func:`evaluate` (groups or metric names; all metrics by default)."""
    _, names = _which_groups(which)
    return _rows({}, names, dataset, scenario, method, status="failed")


def available(scenario_adata) -> dict:
    """What the scenario offers, per need of :data:`scziva_bench.catalog.metrics.NEEDS`.

    ``truth`` is a count-scale reference the methods did not see: the scenario's
    ``layers["truth"]``, except in MCV (``mcv`` instead: the test molecules) and where it
    equals the counts exactly (e.g. ``none`` on real data, a simulation without dropout):
    nothing is ever scored against the input itself.
    """
    A = scenario_adata
    kind, _ = _scenario_info(A)
    truth = "truth" in A.layers and kind not in MCV_KINDS
    if truth:
        C = A.layers["counts"] if "counts" in A.layers else A.X
        T = A.layers["truth"]
        same = (sp.csr_matrix(T, dtype=np.float32) != sp.csr_matrix(C, dtype=np.float32)).nnz == 0
        truth = not same
    mask = False
    if "mask" in A.layers and truth:
        mask = sp.csr_matrix(A.layers["mask"]).astype(bool).count_nonzero() > 0
    labels = _labels(A)
    return {"truth": bool(truth), "mask": bool(mask), "labels": labels is not None,
            "de_truth": _de_truth(A, labels) is not None,
            "mcv": kind in MCV_KINDS and "truth" in A.layers,
            "true_mean": "true_mean" in A.layers, "pseudotime": true_order(A) is not None}


def _imputed_matrix(A, imputed, scenario, method):
    if hasattr(imputed, "layers"):  # a method's output AnnData
        imputed = imputed.layers["imputed"] if "imputed" in imputed.layers else imputed.X
    try:
        Ximp = _dense(imputed, np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"metrics: imputed matrix for method {method!r} cannot be read ({exc})") from None
    if Ximp.shape != A.shape:
        raise InputError(f"metrics: imputed matrix for method {method!r} has shape {Ximp.shape}, "
                         f"the scenario {scenario!r} has {A.shape}")
    if not np.isfinite(Ximp).all():
        raise InputError(f"metrics: imputed matrix for method {method!r} contains NaN or infinite values")
    return Ximp


def _observed_zeros(A) -> np.ndarray:
    """Bool cells x genes: the entries methods saw as 0 (dropped or truly zero)."""
    C = A.layers["counts"] if "counts" in A.layers else A.X
    return _dense(C, np.float32) == 0


def _entries(Ximp, A, T, avail) -> dict:
    vals = {}
    if not avail["truth"]:
        return vals
    for k, v in entry_metrics(Ximp, T).items():
        vals[f"{k}_all"] = v
    if avail["mask"]:
        Mk = sp.csr_matrix(A.layers["mask"]).astype(bool)
        Mk.eliminate_zeros()
        r, c = Mk.nonzero()
        for k, v in entry_metrics(Ximp[r, c], T[r, c]).items():
            vals[f"{k}_dropped"] = v
    # pearson is NaN only where the truth does not vary: undefined, not the method's fault
    return {k: v for k, v in vals.items() if not (k.startswith("pearson") and np.isnan(v))}


@dataclass(frozen=True)
class Inputs:
    """What a metric with its own function (``MetricSpec.compute``) is given.

    ``imputed``: the method's output, dense float32 on the count scale; ``log``: its
    log-normalised form (:func:`lognorm`); ``truth_log`` / ``true_mean_log``: the same of
    the scenario's truth and (simulations) true means, or None; ``labels``: the cell
    labels (an object array of strings, None where a cell has none), or None where
    there are fewer than two; ``scenario``: the scenario AnnData (with the truth
    and mask layers); ``seed``: the evaluation seed.
    """

    scenario: object
    imputed: np.ndarray
    log: np.ndarray
    truth_log: np.ndarray | None
    true_mean_log: np.ndarray | None
    labels: np.ndarray | None
    seed: int


def _own_functions(names) -> dict:
    """``{metric: function}`` of the requested metrics whose spec names a function."""
    import importlib

    out = {}
    for m in names:
        target = metric_specs.SPECS[m].compute
        if target:
            module, _, attr = target.partition(":")
            out[m] = getattr(importlib.import_module(module), attr)
    return out


def evaluate(scenario_adata, imputed, dataset, scenario, method, which=None, seed: int = 0) -> pd.DataFrame:
    """Score ``imputed`` (dense, count scale, cells x genes as the scenario) on a scenario.

    Returns tidy rows ``dataset, scenario, method, metric, value, status`` for the metric
    groups in ``which`` (group names from :data:`GROUPS` or single metric names; all by
    default). ``status``: ``ok``; ``not_applicable`` (value NaN) where the scenario lacks
    what the metric needs (:data:`scziva_bench.catalog.metrics.SPECS` ``needs``, see
    :func:`available`) or its reference is degenerate; ``failed`` (value NaN) where the
    metric could not be computed on this output.
    """
    groups, names = _which_groups(which)
    A = scenario_adata
    Ximp = _imputed_matrix(A, imputed, scenario, method)
    kind, info = _scenario_info(A)
    avail = available(A)
    T = _dense(A.layers["truth"], np.float32) if (avail["truth"] or avail["mcv"]) else None
    vals: dict = {}

    if "entries" in groups:
        vals.update(_entries(Ximp, A, T, avail))
    if "mcv" in groups and avail["mcv"]:
        vals.update(mcv_metrics(Ximp, T, info.get("train_fraction", MCV_TRAIN_FRACTION)))
    own = _own_functions(names)
    if own or any(g in groups for g in ("entries", "denoising", "clustering", "de", "genecorr",
                                        "trajectory")):
        L = lognorm(Ximp)
        T_log = lognorm(T) if avail["truth"] else None
        M_log = lognorm(A.layers["true_mean"]) if avail["true_mean"] else None
        # the reference of DE overlap and gene-gene structure: the true means where a
        # simulation has them (the truth counts carry Poisson noise that the input shares,
        # so against them keeping the input wins), else the truth counts
        R_log = M_log if (M_log is not None and T_log is not None) else T_log
        labels = _labels(A)
        if "entries" in groups and avail["mask"]:
            r = gene_pearson(L, T_log, where=_observed_zeros(A))
            if np.isfinite(r):
                vals["zeros_gene_pearson"] = r
        if "denoising" in groups and M_log is not None:
            vals.update(denoise_metrics(L, M_log))
        if "clustering" in groups:
            vals.update(_clustering(L, labels, seed, T_log))
        if "de" in groups:
            vals.update(_de(L, labels, A, R_log, seed, X=Ximp))
        if "genecorr" in groups:
            vals.update(_genecorr(L, R_log))
        if "trajectory" in groups and avail["pseudotime"]:
            vals.update(_trajectory(L, true_order(A), seed))
        if own:
            inputs = Inputs(A, Ximp, L, T_log, M_log, labels, seed)
            for m, fn in own.items():
                if all(avail[n] for n in metric_specs.SPECS[m].needs):
                    try:
                        vals[m] = float(fn(inputs))
                    except Exception as exc:  # the metric failed on this output
                        warnings.warn(f"metric {m}: {type(exc).__name__}: {exc}")
                        vals[m] = float("nan")
    status = {}
    for m in names:
        needs_met = all(avail[n] for n in metric_specs.SPECS[m].needs)
        if not needs_met or m not in vals:
            status[m] = "not_applicable"
            vals.pop(m, None)
        else:
            status[m] = "ok" if np.isfinite(vals[m]) else "failed"
    return _rows(vals, names, dataset, scenario, method, status)
