"""kNN-smoothing (Wagner, Yan & Yanai 2017, bioRxiv 217737, algorithm version 2.1).

Re-implemented in numpy / scikit-learn, checked against the authors' reference code
(yanailab/knn-smoothing, ``knn_smooth.py``). The raw counts of each cell are replaced by
the sum of the raw counts of its ``k`` nearest cells, the cell itself included (the
authors' ``k``); the neighbours are found iteratively with ``k_step = 2, 4, 8, ...``
(``2**t``, capped at ``k``; ``ceil(log2(k))`` steps, none for ``k = 1``): in each step the
current smoothed matrix is median-normalised (every cell scaled to the median total
count), Freeman-Tukey transformed (``sqrt(x) + sqrt(x + 1)``) and projected on its first
``d`` (10) principal components (randomised PCA, seeded with ``seed`` in every step, as
the authors); a uniform dither (``dither`` times each PC's range) breaks ties; the cell
and its ``k_step - 1`` Euclidean nearest cells in PC space give the new aggregate of the
*raw* counts.

Output on the count scale: the aggregate divided by the number of cells in it (the
authors return the sum and recommend normalising it).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from scziva.errors import InputError

from scziva_bench.methods._common import dense, library_sizes

DEFAULTS = {"k": 15, "d": 10, "dither": 0.03}


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
    k = min(k, n)
    d = int(max(1, min(int(d), n - 1, g)))
    rng = np.random.default_rng(seed)
    n_steps = int(np.ceil(np.log2(k))) if k > 1 else 0
    S = X.copy()
    k_step = 1
    for t in range(1, n_steps + 1):
        k_step = min(2 ** t, k)
        Y = _freeman_tukey(_median_normalize(S))
        pca = PCA(n_components=d, svd_solver="randomized", random_state=int(seed))
        scores = pca.fit_transform(Y)
        if dither > 0:
            span = scores.max(axis=0) - scores.min(axis=0)
            scores = scores + rng.uniform(-0.5, 0.5, size=scores.shape) * (dither * span)[None, :]
        D = cdist(scores, scores)
        # the cell itself first (distance 0), then its k_step - 1 nearest cells
        np.fill_diagonal(D, -1.0)
        nn = np.argsort(D, axis=1, kind="stable")[:, :k_step]
        S = X[nn].sum(axis=1)
    return (S / k_step).astype(np.float32)
