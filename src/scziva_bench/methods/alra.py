"""ALRA: adaptively-thresholded low-rank approximation.

Re-implemented in numpy from Linderman, Zhao, Roulis, Bielecki, Flavell & Kluger (2022),
"Zero-preserving imputation of single-cell RNA-seq data", Nat Commun 13:192 (no Python
package exists). Steps:

1. library-size normalise each cell to ``scale`` (10,000) and take ``log1p``;
2. rank ``k``: the top ``K`` (100) singular values ``s`` (randomised SVD with
   ``power_iters_k`` = 2 power iterations, the R package's ``choose_k(q=2)``); the gaps
   ``d_i = s_i - s_{i+1}`` for ``i = noise_start - 1, ..., K - 1`` (1-based; the gaps
   between the singular values ``noise_start`` (80) to ``K``, as the R package's
   ``diffs[(noise_start - 1):(K - 1)]``) are taken as noise, with mean ``m`` and s.d. ``sd``;
   ``k`` is the last gap more than ``n_sd`` (6) noise s.d. above ``m`` (the authors' rule);
3. rank-``k`` reconstruction by randomised SVD (``power_iters`` = 10 power iterations,
   the R package's ``alra(q=10)``);
4. per gene, entries below the magnitude of the gene's 0.001 quantile (the most negative
   values, which are symmetric noise around the true zeros) are set to 0;
5. per gene, the remaining non-zeros are shifted and scaled so that their mean and s.d.
   equal those of the gene's observed non-zeros (skipped, as in the R package, where either
   side has fewer than two non-zeros or the reconstruction's non-zeros have s.d. 0);
   values that become negative are set to 0;
6. observed non-zeros that ended as 0 get their observed value back;
7. back to counts: ``expm1`` and each cell's library size ``/ scale``.

Biological zeros are kept: ALRA leaves many entries exactly at zero by design.

Checked against the authors' R package (KlugerLab/ALRA, ``R/alra.R``). One deviation: the
R package refuses matrices with fewer than ``K`` cells or genes; here ``K`` shrinks to
``min(n_cells, n_genes) - 1`` and ``noise_start`` shrinks in proportion.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.extmath import randomized_svd

from scziva_bench.methods._common import dense, library_sizes

DEFAULTS = {"k": None, "K": 100, "noise_start": 80, "n_sd": 6.0, "quantile": 0.001,
            "power_iters": 10, "power_iters_k": 2, "scale": 1e4}


def choose_k(s: np.ndarray, noise_start: int = 80, n_sd: float = 6.0) -> int:
    """The authors' spectral-gap rule on decreasing singular values ``s``.

    Gaps ``d_i = s_i - s_{i+1}`` (1-based); the gaps ``d_{noise_start - 1}`` to
    ``d_{K - 1}`` (those between the singular values ``noise_start`` to ``K``, the R
    package's ``diffs[(noise_start - 1):(K - 1)]``) describe noise (mean ``m``, s.d.
    ``sd``); ``k`` is the largest ``i`` with ``d_i > m + n_sd * sd``. Returns at least 1.
    """
    s = np.asarray(s, dtype=np.float64)
    d = s[:-1] - s[1:]
    start = min(max(int(noise_start) - 2, 1), len(d) - 2)  # 0-based index of d_{noise_start-1}
    noise = d[start:]
    m, sd = noise.mean(), noise.std(ddof=1) if noise.size > 1 else 0.0
    if sd == 0:
        sd = np.finfo(float).eps
    above = np.nonzero((d - m) / sd > n_sd)[0]
    return int(above[-1] + 1) if above.size else 1


def match_moments(A, Ak):
    """Per gene, shift and scale the non-zeros of ``Ak`` to the mean and s.d. of ``A``'s.

    ``A`` the observed (log-normalised) matrix, ``Ak`` the thresholded reconstruction
    (changed in place and returned). A gene is left as it is when either has fewer than
    two non-zeros or ``Ak``'s non-zeros have s.d. 0 (the R package's ``toscale``).
    """
    for j in range(A.shape[1]):
        a = A[A[:, j] > 0, j]
        b_idx = Ak[:, j] > 0
        b = Ak[b_idx, j]
        if a.size < 2 or b.size < 2:
            continue
        sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
        if sd_b == 0:
            continue
        Ak[b_idx, j] = (b - b.mean()) * (sd_a / sd_b) + a.mean()
    return Ak


def impute(counts, *, seed, device, adata, k, K, noise_start, n_sd, quantile, power_iters,
           power_iters_k, scale):
    X = dense(counts)
    n, g = X.shape
    lib = library_sizes(X)
    A = np.log1p(X / lib[:, None] * scale)

    if k is None:
        K_eff = int(min(K, min(n, g) - 1))
        if K_eff < 3:
            k = 1
        else:
            _, s, _ = randomized_svd(A, K_eff, n_iter=int(power_iters_k), random_state=seed)
            ns = int(round(noise_start * K_eff / K)) if K_eff < K else int(noise_start)
            k = choose_k(s, ns, n_sd)
    k = int(max(1, min(int(k), min(n, g) - 1)))
    U, s, Vt = randomized_svd(A, k, n_iter=int(power_iters), random_state=seed)
    Ak = (U * s) @ Vt

    # per-gene threshold at the magnitude of the lower `quantile`
    thr = np.abs(np.quantile(Ak, quantile, axis=0))
    Ak[Ak <= thr[None, :]] = 0.0

    # match mean / s.d. of the non-zeros to the observed non-zeros, per gene
    obs_nz = A > 0
    match_moments(A, Ak)
    Ak[Ak < 0] = 0.0

    # observed non-zeros that were zeroed get their observed value back
    lost = obs_nz & (Ak == 0)
    Ak[lost] = A[lost]

    out = np.expm1(Ak) * (lib[:, None] / scale)
    return out.astype(np.float32)
