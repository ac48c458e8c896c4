"""Putting genes in an order where co-expressed genes sit next to each other.

The convolution in scZiva's encoder only sees ``kernel`` neighbouring genes, so the
gene order matters. The authors order genes by the leaves of an average-linkage
hierarchical clustering whose distance is ``1 - minmax(cov)``, ``cov`` the gene-gene
covariance of the input. That needs a dense G x G matrix and an O(G^2) linkage: fine for
a few thousand genes, gigabytes and minutes at 20,000.

:func:`order_genes` keeps the authors' exact ordering up to ``exact_max_genes`` genes and
switches above it to a two-level version of the same idea that never forms G x G:

1. a low-rank gene embedding from a randomised SVD of the centred (cells x genes) matrix
   of at most ``max_cells`` sampled cells, scaled so that inner products of gene vectors
   approximate the gene-gene covariance;
2. k-means of the genes into about ``G / cluster_size`` clusters in that embedding;
3. clusters put in order by the authors' rule applied to the centroids (average linkage on
   ``1 - minmax(cov)`` with the covariance approximated by centroid inner products),
   genes within each cluster by the same rule on their (small) covariance block.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform


def _linkage_order(sim: np.ndarray) -> np.ndarray:
    """Leaves of the average-linkage tree on distance ``1 - minmax(sim)`` (authors' rule)."""
    n = sim.shape[0]
    if n <= 2:
        return np.arange(n)
    sim = np.asarray(sim, dtype=np.float64)
    smin, smax = sim.min(), sim.max()
    if smax > smin:
        sim = (sim - smin) / (smax - smin)
    else:
        sim = np.zeros_like(sim)
    dist = 1.0 - sim
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    np.clip(dist, 0.0, None, out=dist)
    return leaves_list(linkage(squareform(dist, checks=False), method="average"))


def _dense_rows(X, rows=None, dtype=np.float64, order="C") -> np.ndarray:
    """Rows of X (all by default) as a new dense array of ``dtype`` (callers modify it)."""
    M = X if rows is None else X[rows]
    if sp.issparse(M):
        return np.asarray(M.toarray(order=order), dtype=dtype, order=order)  # already a fresh array
    return np.array(M, dtype=dtype, order=order, copy=True)


def exact_order(X) -> np.ndarray:
    """The authors' ordering: average linkage on 1 - minmax(gene-gene covariance)."""
    D = _dense_rows(X)
    if D.shape[0] < 2:
        return np.arange(D.shape[1])
    return _linkage_order(np.cov(D, rowvar=False))


def approximate_order(X, rank: int = 32, cluster_size: int = 64, max_cells: int = 4000,
                      seed: int = 0) -> np.ndarray:
    """Two-level ordering for many genes (see the module docstring)."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.utils.extmath import randomized_svd

    rng = np.random.default_rng(seed)
    n, G = X.shape
    rows = np.sort(rng.choice(n, size=max_cells, replace=False)) if n > max_cells else None
    # float32, genes as contiguous columns (Fortran order): cluster blocks are cheap slices.
    D = _dense_rows(X, rows, dtype=np.float32, order="F")
    D -= D.mean(axis=0, keepdims=True)
    r = max(1, min(rank, min(D.shape) - 1))
    _, s, Vt = randomized_svd(D, n_components=r, random_state=int(seed))
    # cov ~= V diag(s^2) V^T / (n-1): gene i's coordinates are V[i] * s / sqrt(n-1).
    emb = (Vt.T * s) / np.sqrt(max(D.shape[0] - 1, 1))
    n_clusters = int(np.clip(round(G / cluster_size), 2, 4096))
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=int(seed), n_init=1,
                         batch_size=min(4096, G), max_iter=100)
    labels = km.fit_predict(emb)
    present = np.unique(labels)
    centroids = np.stack([emb[labels == c].mean(axis=0) for c in present])
    cluster_order = present[_linkage_order(centroids @ centroids.T)]
    order = []
    for c in cluster_order:
        members = np.flatnonzero(labels == c)
        if members.size > 2:
            B = D[:, members]
            cov_block = (B.T @ B) / max(D.shape[0] - 1, 1)
            members = members[_linkage_order(cov_block)]
        order.append(members)
    return np.concatenate(order)


def order_genes(X, method: str = "auto", exact_max_genes: int = 4000, seed: int = 0) -> np.ndarray:
    """A permutation of the columns of ``X`` (cells x genes) that puts co-expressed genes together.

    ``method``: ``"exact"`` (the authors' rule), ``"approx"`` (scales to any G), ``"auto"``
    (exact up to ``exact_max_genes`` genes), or ``"none"`` (identity).
    """
    G = X.shape[1]
    if method == "none" or G <= 2:
        return np.arange(G)
    if method == "exact" or (method == "auto" and G <= exact_max_genes):
        return exact_order(X)
    if method in ("approx", "auto"):
        return approximate_order(X, seed=seed)
    raise ValueError(f"unknown gene ordering method {method!r}; use 'auto', 'exact', 'approx' or 'none'")
