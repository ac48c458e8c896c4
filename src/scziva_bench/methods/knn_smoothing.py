"""kNN-smoothing (Wagner, Yan & Yanai 2017, bioRxiv 217737, algorithm version 2).

Re-implemented in numpy / scikit-learn from the preprint. The raw counts of each cell
are replaced by the sum of its own counts and those of its ``k`` nearest neighbours; the
neighbours are found iteratively with ``k_step = 1, 3, 7, 15, ...`` (``2**p - 1``,
capped at ``k``): in each step the current smoothed matrix is median-normalised (every
cell scaled to the median total count), Freeman-Tukey transformed (``sqrt(x) +
sqrt(x + 1)``) and projected on its first ``d`` (10) principal components; a small uniform
dither (``dither`` times each PC's range, as in version 2.1) breaks ties; the ``k_step``
Euclidean nearest cells in PC space (plus the cell itself) give the new aggregate of the
*raw* counts.

Output on the count scale: the aggregate divided by ``k + 1`` (the mean raw profile of
the cell and its neighbours).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from scziva.errors import InputError

from ._common import dense, library_sizes

USES_GPU = False
KIND = "reimplementation"
LABEL = "kNN-smoothing (re-impl.)"
DEFAULTS = {"k": 15, "d": 10, "dither": 0.03}
SOURCE = "re-implemented in numpy/scikit-learn from Wagner, Yan & Yanai 2017 (bioRxiv 217737)"


def _median_normalize(X):
    lib = library_sizes(X)
    return X * (np.median(lib) / lib)[:, None]


def _freeman_tukey(X):
    return np.sqrt(X) + np.sqrt(X + 1.0)


def impute(counts, *, seed, device, adata, k, d, dither):
    X = dense(counts)
    n, g = X.shape
    k = int(k)
    if k < 1:
        raise InputError(f"method 'knn_smoothing': k must be >= 1, got {k}")
    k = min(k, n - 1)
    d = int(max(1, min(int(d), n - 1, g)))
    rng = np.random.default_rng(seed)
    n_steps = int(np.ceil(np.log2(k + 1)))
    S = X.copy()
    k_step = 0
    for p in range(1, n_steps + 1):
        k_step = min(2 ** p - 1, k)
        Y = _freeman_tukey(_median_normalize(S))
        pca = PCA(n_components=d, svd_solver="randomized", random_state=int(rng.integers(2**31 - 1)))
        scores = pca.fit_transform(Y)
        if dither > 0:
            span = scores.max(axis=0) - scores.min(axis=0)
            scores = scores + rng.uniform(-0.5, 0.5, size=scores.shape) * (dither * span)[None, :]
        D = cdist(scores, scores)
        # the cell itself first (distance 0), then its k_step nearest neighbours
        np.fill_diagonal(D, -1.0)
        nn = np.argsort(D, axis=1, kind="stable")[:, : k_step + 1]
        S = X[nn].sum(axis=1)
    return (S / (k_step + 1)).astype(np.float32)
