"""Splatter-style simulation of single-cell RNA-seq counts, with logistic dropout.

Written from the description of the Splat model in Zappia, Phipson & Oshlack (2017),
"Splatter: simulation of single-cell RNA sequencing data", Genome Biology 18:174.
No R is needed. The steps (cells x genes throughout):

1. gene means ``m_j ~ Gamma(shape=mean_shape, rate=mean_rate)``; with probability
   ``out_prob`` a gene is an expression outlier and its mean becomes
   ``median(m) * LogNormal(out_loc, out_scale)``;
2. library sizes ``L_i ~ LogNormal(lib_loc, lib_scale)``;
3. groups: each cell gets a group (``group_probs``); in each group a gene is
   differentially expressed with probability ``de_prob``, with a factor
   ``LogNormal(de_loc, de_scale)`` that is inverted (down-regulation) with probability
   ``de_down_prob``; in ``path=True`` mode the groups are consecutive steps of one
   linear trajectory and the factors are interpolated along a pseudotime;
4. cell means: the group's gene means turned into proportions and scaled by ``L_i``;
5. biological coefficient of variation: ``bcv_ij = (bcv_common + 1/sqrt(mean_ij)) *
   sqrt(bcv_df / chi2_j(bcv_df))`` (a scaled inverse chi-square per gene), and the
   trended means ``Gamma(shape=1/bcv^2, scale=mean*bcv^2)``;
6. true counts ``Poisson(trended mean)`` -> ``layers["truth"]``;
7. dropout (optional): an entry is dropped with probability
   ``1 / (1 + exp(-shape * (log(mean) - midpoint)))``; the midpoint is solved (Brent's
   method on the expected share) so that the requested share of the true non-zero
   entries is dropped.

Only ``numpy.random.Generator(seed)`` draws random numbers, so a seed gives the same
dataset bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import optimize, stats

from scziva.errors import InputError

__all__ = ["splat", "downsample", "data_seed", "estimate_params", "add_dropout", "solve_midpoint", "zero_entries", "REGIMES",
           "REGIME_SOURCES", "regime"]

# keys of estimate_params() -- all of them are keyword arguments of splat()
PARAM_KEYS = ("mean_shape", "mean_rate", "lib_loc", "lib_scale", "out_prob", "out_loc",
              "out_scale", "bcv_common")


# ----------------------------------------------------------------------------- regimes

#: Splat parameters estimated with :func:`estimate_params` from real datasets (on their
#: largest cell type, so that the differences between types do not inflate the BCV), at
#: the real dataset's size (``n_genes``), plus a DE strength (``de_prob``, ``de_loc``)
#: chosen so that the groups are recoverable from the truth (k-means ARI ~0.9-1 at
#: 300 cells x 1000 genes) but not trivially from the observed counts at 50 % dropout.
#: Use :func:`regime` to get splat() arguments at another size (it keeps the counts per
#: entry). Numbers, so that no data file is needed.
REGIMES = {
    # UMI droplet: ~1.7 counts per entry, ~64 % zeros (the real data: 1.71, 62 %)
    "umi": dict(n_genes=15127, mean_shape=0.7229, mean_rate=0.8663, lib_loc=9.9947,
                lib_scale=0.5216, out_prob=0.019, out_loc=3.875, out_scale=0.565,
                bcv_common=0.0, de_prob=0.2, de_loc=0.8, de_scale=0.4),
    # full-length, deep (reads): ~27 counts per entry, ~75 % zeros (the real data: 26.7,
    # 80 %), very over-dispersed (bcv_common ~3), so DE must be strong to show
    "fulllength": dict(n_genes=21627, mean_shape=0.3492, mean_rate=0.0183, lib_loc=13.1516,
                       lib_scale=0.5703, out_prob=0.0002, out_loc=6.4748, out_scale=0.7827,
                       bcv_common=2.9808, de_prob=0.2, de_loc=2.0, de_scale=0.4),
    # droplet-like UMI (sci-RNA-seq): ~1.8 counts per non-zero, ~92 % zeros (the real
    # data: 1.82, 92 %); BCV 0.18, inside its search interval (0, 5)
    "droplet": dict(n_genes=2000, mean_shape=1.5074, mean_rate=19.0674, lib_loc=5.4514,
                    lib_scale=0.5919, out_prob=0.0514, out_loc=2.3115, out_scale=0.3755,
                    bcv_common=0.1756, de_prob=0.2, de_loc=1.5, de_scale=0.4),
}
REGIME_SOURCES = {
    "umi": "CellBench Drop-seq (Tian et al. 2019), cell line H1975 (92 cells x 15127 genes)",
    "fulllength": "Darmanis et al. 2015 brain (Fluidigm C1 SMARTer reads), neurons (131 cells x 21627 genes)",
    "droplet": ("C. elegans neurons, sci-RNA-seq UMI (Cao et al. 2017; resources/datasets/worm_neuron.h5ad), "
                "its largest class type_3 (1015 cells x 2000 genes)"),
}


def regime(name: str, n_cells: int = 300, n_genes: int = 1000, **overrides) -> dict:
    """splat() keyword arguments of a named regime (:data:`REGIMES`) at ``n_genes`` genes.

    The library size is scaled with the number of genes (``lib_loc + log(n_genes /
    n_genes_real)``), so that the counts per entry, and with them the share of zeros,
    stay those of the real data. ``overrides`` (e.g. ``seed``, ``n_groups``,
    ``de_prob``) are applied last.
    """
    if name not in REGIMES:
        raise InputError(f"unknown simulation regime {name!r}; known: {', '.join(REGIMES)}")
    p = dict(REGIMES[name])
    real_genes = p.pop("n_genes")
    p["lib_loc"] = round(p["lib_loc"] + float(np.log(int(n_genes) / real_genes)), 4)
    p.update(n_cells=int(n_cells), n_genes=int(n_genes))
    p.update(overrides)
    return p


# ----------------------------------------------------------------------------- dropout

def _expected_share(log_means: np.ndarray, shape: float, midpoint: float) -> float:
    """Mean dropout probability of entries with these log means."""
    # 1/(1+exp(-shape*(x-mid))) == expit(shape*(x-mid)), computed stably by scipy
    from scipy.special import expit
    return float(np.mean(expit(shape * (log_means - midpoint))))


def solve_midpoint(log_means, share: float, shape: float = -1.0) -> float:
    """Logistic midpoint such that the mean dropout probability of ``log_means`` is ``share``.

    ``log_means`` are the log expected counts of the entries that may be dropped (the
    non-zero entries of the truth). The expected share is monotone in the midpoint, so
    Brent's method on a bracket that certainly holds the root finds it.
    """
    share = float(share)
    lm = np.asarray(log_means, dtype=np.float64).ravel()
    if lm.size == 0:
        return float("nan")
    if not (0.0 < share < 1.0):
        raise InputError(f"dropout share must be strictly between 0 and 1, got {share}")
    if shape == 0 or not np.isfinite(shape):
        raise InputError(f"dropout shape must be a non-zero finite number, got {shape}")
    # with many entries the exact mean is well approximated on a fixed random subset
    if lm.size > 400_000:
        lm = np.random.default_rng(12345).choice(lm, 400_000, replace=False)
    lo = float(lm.min()) - 60.0 / abs(shape)
    hi = float(lm.max()) + 60.0 / abs(shape)
    return float(optimize.brentq(lambda m: _expected_share(lm, shape, m) - share, lo, hi,
                                 xtol=1e-6))


def _drop_nonzeros(log_means: np.ndarray, share: float, shape: float, rng: np.random.Generator):
    """Boolean 'dropped' for each entry (given their log means) and the solved midpoint."""
    from scipy.special import expit
    mid = solve_midpoint(log_means, share, shape)
    if not np.isfinite(mid):
        return np.zeros(len(log_means), dtype=bool), mid
    p = expit(shape * (log_means - mid))
    return rng.random(len(log_means)) < p, mid


def zero_entries(X: sp.csr_matrix, drop: np.ndarray):
    """Set the stored values of CSR ``X`` where ``drop`` (one bool per stored value) is True
    to zero. Returns ``(counts, mask)``: ``counts`` a CSR copy of ``X`` without them,
    ``mask`` CSR bool, True where a value was removed. ``X`` is not modified."""
    mask = sp.csr_matrix((np.asarray(drop, dtype=bool).copy(), X.indices.copy(), X.indptr.copy()),
                         shape=X.shape, dtype=bool)
    mask.eliminate_zeros()
    out = X.copy()
    out.data = np.where(drop, 0, X.data).astype(X.dtype)
    out.eliminate_zeros()
    return out, mask


def _check_share(share, what="dropout share"):
    try:
        s = float(share)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in (0, 1), got {share!r}") from None
    if not (0.0 < s < 1.0):
        raise InputError(f"{what} must be strictly between 0 and 1, got {share!r}")
    return s


def add_dropout(counts, share: float, shape: float = -1.0, seed: int = 0, means=None):
    """Drop a share of the non-zero entries of ``counts`` with the logistic dropout model.

    The expected count of entry (i, j) is estimated from the counts themselves as
    ``libsize_i * genesum_j / total`` (unless ``means`` gives it, same shape; a sparse
    ``means`` with the stored pattern of ``counts`` is read without indexing), the
    logistic midpoint is solved so that a share ``share`` of the non-zero entries is
    expected to drop, and each non-zero entry is dropped with its probability.
    Sparse input is handled on its stored values only (never densified).

    Returns ``(dropped_counts, mask)``: same type and dtype as ``counts`` (CSR for sparse
    input); ``mask`` is boolean, True where a non-zero entry was set to zero.
    """
    share = _check_share(share)
    rng = np.random.default_rng(seed)
    if sp.issparse(counts):
        X = sp.csr_matrix(counts, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        if X.data.size and X.data.min() < 0:
            raise InputError("add_dropout: counts contain negative values")
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        cols = X.indices
        vals = X.data
    else:
        X = np.array(counts, copy=True)
        if X.ndim != 2:
            raise InputError(f"add_dropout: expected a 2-D cells x genes matrix, got {X.ndim} dimension(s)")
        if X.size and X.min() < 0:
            raise InputError("add_dropout: counts contain negative values")
        rows, cols = np.nonzero(X)
        vals = X[rows, cols]
    if means is None:
        lib = np.asarray(X.sum(axis=1)).ravel().astype(np.float64)
        gsum = np.asarray(X.sum(axis=0)).ravel().astype(np.float64)
        total = lib.sum()
        log_mu = np.log(lib[rows]) + np.log(gsum[cols]) - np.log(max(total, 1e-300))
    else:
        M = means
        if sp.issparse(M):
            M = M.tocsr()
            if sp.issparse(counts) and M.shape == X.shape and np.array_equal(M.indptr, X.indptr) \
                    and np.array_equal(M.indices, X.indices):
                mu = M.data  # the means of exactly the stored counts
            else:
                mu = np.asarray(M[rows, cols]).ravel()
        else:
            M = np.asarray(M)
            if M.shape != X.shape:
                raise InputError(f"add_dropout: means of shape {M.shape} do not match counts {X.shape}")
            mu = M[rows, cols]
        log_mu = np.log(np.maximum(mu.astype(np.float64), 1e-12))
    drop, _ = _drop_nonzeros(log_mu, share, shape, rng)
    if sp.issparse(counts):
        return zero_entries(X, drop)
    mask = np.zeros(X.shape, dtype=bool)
    mask[rows[drop], cols[drop]] = True
    X[mask] = 0
    return X, mask


# ----------------------------------------------------------------------------- splat

def _dense_to_csr(a):
    """float32 CSR of a dense array (faster than scipy's constructor), and the row of each value."""
    rows, cols = np.nonzero(a)
    indptr = np.zeros(a.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
    m = sp.csr_matrix((a[rows, cols].astype(np.float32), cols, indptr), shape=a.shape)
    return m, rows


def _check_pos(name, value, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"splat: {name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(f"splat: {name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def _check_prob(name, value):
    v = _check_pos(name, value, allow_zero=True)
    if v > 1:
        raise InputError(f"splat: {name} must be a probability in [0, 1], got {value!r}")
    return v


def _checked_args(n_cells, n_genes, n_groups, group_probs, dropout_share, dropout_shape, **pos):
    """Validated splat() arguments: sizes, normalised group probabilities, the positive /
    probability parameters (``pos``) as floats, and the dropout share (None: no dropout)."""
    n_cells, n_genes, n_groups = int(n_cells), int(n_genes), int(n_groups)
    if n_cells < 1 or n_genes < 1 or n_groups < 1:
        raise InputError(f"splat: n_cells, n_genes and n_groups must be >= 1, got "
                         f"{n_cells}, {n_genes}, {n_groups}")
    if group_probs is None:
        probs = np.full(n_groups, 1.0 / n_groups)
    else:
        probs = np.asarray(group_probs, dtype=np.float64).ravel()
        if probs.size != n_groups or np.any(probs < 0) or not np.isfinite(probs).all() or probs.sum() <= 0:
            raise InputError(f"splat: group_probs must be {n_groups} non-negative numbers, got {group_probs!r}")
        probs = probs / probs.sum()
    checked = {}
    for name in ("de_prob", "de_down_prob", "out_prob"):
        checked[name] = _check_prob(name, pos[name])
    for name in ("mean_shape", "mean_rate", "bcv_df"):
        checked[name] = _check_pos(name, pos[name])
    for name in ("lib_scale", "de_scale", "out_scale", "bcv_common"):
        checked[name] = _check_pos(name, pos[name], allow_zero=True)
    if dropout_share is not None:
        dropout_share = _check_share(dropout_share, "splat: dropout_share")
        if dropout_shape == 0 or not np.isfinite(dropout_shape):
            raise InputError(f"splat: dropout_shape must be a non-zero number, got {dropout_shape!r}")
    return n_cells, n_genes, n_groups, probs, checked, dropout_share


def _gene_means(rng, n_genes, mean_shape, mean_rate, out_prob, out_loc, out_scale):
    """Step 1: gamma gene means, with expression outliers relative to the median mean."""
    base = rng.gamma(mean_shape, 1.0 / mean_rate, size=n_genes)
    is_out = rng.random(n_genes) < out_prob
    out_fac = rng.lognormal(out_loc, out_scale, size=n_genes)
    return np.where(is_out, np.median(base) * out_fac, base), is_out


def _de_log_factors(rng, n_genes, n_groups, de_prob, de_down_prob, de_loc, de_scale):
    """Step 3: log DE factor of each gene in each group (genes x groups; 0 = not DE)."""
    is_de_g = rng.random((n_genes, n_groups)) < de_prob
    is_down = rng.random((n_genes, n_groups)) < de_down_prob
    fac = rng.lognormal(de_loc, de_scale, size=(n_genes, n_groups))
    return np.where(is_de_g, np.where(is_down, -1.0, 1.0) * np.log(fac), 0.0)


class _CellMeans:
    """Step 4: the mean of each gene in a block of cells, before the BCV (cells x genes).

    Discrete groups: the group's gene means as proportions times the library size. Path
    mode: the groups are consecutive steps of one linear trajectory (node k is the end of
    step k) and the cell's log factor is interpolated between the nodes of its step.
    """

    def __init__(self, rng, gene_mean, log_fac, group, lib, path):
        n_groups = log_fac.shape[1]
        self.gene_mean, self.group, self.lib, self.path = gene_mean, group, lib, path
        self.pseudotime = self.within = None
        if path:
            nodes = np.concatenate([np.zeros((len(gene_mean), 1)), np.cumsum(log_fac, axis=1)], axis=1)
            self.within = rng.random(len(group))
            self.pseudotime = (group + self.within) / n_groups
            self.de_factor = np.exp(nodes[:, 1:])
            self.nodes_t = nodes.T  # (groups + 1) x genes
        else:
            self.de_factor = np.exp(log_fac)
            group_mean = gene_mean[None, :] * self.de_factor.T  # groups x genes
            self.group_prop = group_mean / group_mean.sum(axis=1, keepdims=True)

    def block(self, r0, r1):
        g = self.group[r0:r1]
        if not self.path:
            return self.group_prop[g] * self.lib[r0:r1, None]
        w = self.within[r0:r1, None]
        cm = np.exp(self.nodes_t[g] * (1.0 - w) + self.nodes_t[g + 1] * w)
        cm *= self.gene_mean[None, :]
        cm *= (self.lib[r0:r1] / cm.sum(axis=1))[:, None]
        return cm


def _trended_means(rng, cm, bcv_common, bcv_gene):
    """Step 5 on one block (``cm`` is overwritten): bcv = (bcv_common + 1/sqrt(mean)) *
    sqrt(df/chi2); trended mean ~ Gamma(shape=1/bcv^2, scale=mean*bcv^2)."""
    b2 = np.sqrt(cm)
    np.reciprocal(b2, out=b2)
    b2 += bcv_common
    b2 *= bcv_gene
    b2 *= b2
    cm *= b2
    np.reciprocal(b2, out=b2)
    trended = rng.standard_gamma(b2)
    trended *= cm
    return trended


def _true_counts(rng, means: _CellMeans, n_cells, n_genes, bcv_common, bcv_gene, keep_log_mu,
                 keep_mean):
    """Steps 4-6 in blocks of rows (bounded memory): true counts ``Poisson(trended mean)``
    as float32 CSR, the log trended mean of each stored count (for dropout) if asked, and
    the trended means themselves (dense float32, cells x genes) if asked."""
    blocks, log_mu_blocks = [], []
    true_mean = np.empty((n_cells, n_genes), dtype=np.float32) if keep_mean else None
    step = max(1, 2_000_000 // n_genes)
    for r0 in range(0, n_cells, step):
        r1 = min(n_cells, r0 + step)
        trended = _trended_means(rng, means.block(r0, r1), bcv_common, bcv_gene)
        if keep_mean:
            true_mean[r0:r1] = trended
        block, rows = _dense_to_csr(rng.poisson(trended))
        if keep_log_mu:
            log_mu_blocks.append(np.log(np.maximum(trended[rows, block.indices], 1e-300)))
        blocks.append(block)
        del trended
    truth = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    log_mu = np.concatenate(log_mu_blocks) if keep_log_mu else None
    return sp.csr_matrix(truth, dtype=np.float32), log_mu, true_mean


def _splat_anndata(counts, truth, mask, group, n_groups, means: _CellMeans, gene_mean, is_out,
                   params, seed, dataset_id):
    """The simulation as an AnnData of docs/contract.md "Dataset"."""
    import anndata as ad

    n_cells, n_genes = truth.shape
    group_names = [f"Group{k + 1}" for k in range(n_groups)]
    labels = pd.Categorical.from_codes(group, categories=group_names)
    obs = pd.DataFrame({"group": labels, "cell_type": labels},
                       index=[f"Cell{i + 1}" for i in range(n_cells)])
    if means.pseudotime is not None:
        obs["pseudotime"] = means.pseudotime
    obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel()
    var = pd.DataFrame({"is_de": (means.de_factor != 1.0).any(axis=1),
                        "gene_mean": gene_mean, "is_outlier": is_out},
                       index=[f"Gene{j + 1}" for j in range(n_genes)])
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var,
                       layers={"counts": counts, "truth": truth, "mask": mask})
    adata.varm["de_factor"] = means.de_factor.astype(np.float64)
    adata.uns["group_names"] = group_names
    adata.uns["sim_params"] = params
    adata.uns["dataset_id"] = str(dataset_id)
    adata.uns["notes"] = [f"simulated by scziva_bench.data.simulate.splat (seed {int(seed)})"]
    return adata


def data_seed(base_seed: int, scenario_seed: int) -> int:
    """The simulation seed of a scenario's own dataset: each scenario seed simulates a new
    dataset (same parameters, new draws), so that the spread over seeds includes the
    variation between datasets, not only between dropout masks. Seed 0 (a scenario
    without seed, e.g. ``none``) keeps the dataset's own ``base_seed``; otherwise
    ``base_seed + 1000 x scenario_seed`` (far from the tuning seeds 100-101)."""
    base_seed, scenario_seed = int(base_seed), int(scenario_seed)
    return base_seed if scenario_seed == 0 else base_seed + 1000 * scenario_seed


def binomial_split(X, p: float, rng):
    """Split every molecule of the CSR count matrix ``X`` independently: kept with
    probability ``p`` (``Binomial(x, p)`` per entry), the rest left over. Returns
    ``(kept, rest)``, CSR float32 on ``X``'s pattern with explicit zeros removed;
    ``kept + rest == X`` exactly. Used by binomial downsampling (:func:`downsample`) and
    by molecular cross-validation (:func:`scziva_bench.data.scenarios.make`)."""
    X = sp.csr_matrix(X)
    kept = rng.binomial(X.data.astype(np.int64), p).astype(np.float32)
    rest = X.data.astype(np.float32) - kept
    out = []
    for data in (kept, rest):
        M = sp.csr_matrix((data, X.indices.copy(), X.indptr.copy()), shape=X.shape)
        M.eliminate_zeros()
        out.append(M)
    return out[0], out[1]


def downsample(adata, depth: float, seed: int = 0):
    """A generator that is not ZINB-shaped: binomial downsampling of a deep real dataset.

    Every molecule (read or UMI) of the full-depth counts is kept independently with one
    probability ``p = min(1, depth / median cell total)``, so the cells keep their
    relative depths and the median cell has about ``depth`` counts. Returns a new AnnData
    (the input is not modified): ``X`` = ``layers["counts"]`` = ``Binomial(full, p)``
    (CSR float32), ``layers["true_mean"]`` = ``p x full`` (the expected observed count
    given the full-depth counts: the denoising truth, float32; methods never see it);
    ``obs``/``var`` kept, ``uns["downsample"]``
    records ``depth``, ``p``, ``seed`` and the full-depth median. No cell is dropped
    (a cell may end with no count; the metrics handle that).
    """
    import anndata as ad

    try:
        depth = float(depth)
    except (TypeError, ValueError):
        raise InputError(f"downsample: depth must be a number, got {depth!r}") from None
    if not (np.isfinite(depth) and depth > 0):
        raise InputError(f"downsample: depth must be > 0, got {depth!r}")
    X = _counts_of(adata)
    if X.data.size and (X.data.min() < 0 or not np.all(X.data == np.rint(X.data))):
        raise InputError("downsample: the dataset's counts must be non-negative integers")
    lib = np.asarray(X.sum(axis=1)).ravel()
    med = float(np.median(lib))
    if med <= 0:
        raise InputError("downsample: the median cell has no counts")
    p = min(1.0, depth / med)
    counts, _ = binomial_split(X, p, np.random.default_rng(seed))
    true_mean = (X.toarray() * p).astype(np.float32)
    out = ad.AnnData(X=counts.copy(), obs=adata.obs.copy(), var=adata.var.copy(),
                     layers={"counts": counts, "true_mean": true_mean})
    for k, v in adata.uns.items():
        out.uns[k] = v
    out.uns["downsample"] = {"depth": depth, "p": p, "seed": int(seed), "full_median_total": med}
    notes = [str(n) for n in np.atleast_1d(adata.uns.get("notes", []))]
    out.uns["notes"] = notes + [
        f"binomially downsampled (seed {int(seed)}): each molecule kept with p = {p:.4g} "
        f"(median total {med:.0f} -> {depth:.0f}); true_mean = p x the full-depth counts"]
    return out


def splat(n_cells: int = 600, n_genes: int = 2000, n_groups: int = 5, group_probs=None,
          de_prob: float = 0.1, de_down_prob: float = 0.5, de_loc: float = 0.1,
          de_scale: float = 0.4, mean_shape: float = 0.6, mean_rate: float = 0.3,
          lib_loc: float = 11, lib_scale: float = 0.2, out_prob: float = 0.05,
          out_loc: float = 4, out_scale: float = 0.5, bcv_common: float = 0.1,
          bcv_df: float = 60, dropout_share=None, dropout_shape: float = -1.0,
          path: bool = False, seed: int = 0, dataset_id: str = "sim", true_mean: bool = True):
    """Simulate a Splat-style count dataset (AnnData, cells x genes).

    Returns an AnnData following docs/contract.md "Dataset" for simulations:
    ``layers["counts"]`` (after dropout; ``X`` the same), ``layers["truth"]`` (before
    dropout), ``layers["mask"]`` (truth > 0 and dropped), ``obs["group"]`` and
    ``obs["cell_type"]``, ``var["is_de"]``, ``varm["de_factor"]`` (genes x groups),
    ``uns["group_names"]``, ``uns["sim_params"]``, ``uns["dataset_id"]``; with
    ``path=True`` also ``obs["pseudotime"]`` (0 to 1 along the trajectory). With
    ``true_mean=True`` (default) ``layers["true_mean"]`` holds the pre-Poisson cell-gene
    means (the Poisson rates of ``truth``: the denoising truth), dense float32, i.e.
    4 bytes per cell and gene (``false`` saves that memory; the counts do not change).
    ``dropout_share=None`` gives no dropout (counts == truth, empty mask; stored as NaN
    in ``uns["sim_params"]``, which also records the solved ``dropout_midpoint`` and the
    ``dropout_share_realised`` when dropout was applied).

    As in Splat, gene means only matter through their proportions within a cell (the
    library size sets the scale), so ``mean_rate`` does not change the counts at all
    (outliers are relative to the median mean); it is kept for parity with Splatter.
    """
    n_cells, n_genes, n_groups, probs, p, dropout_share = _checked_args(
        n_cells, n_genes, n_groups, group_probs, dropout_share, dropout_shape,
        de_prob=de_prob, de_down_prob=de_down_prob, out_prob=out_prob, mean_shape=mean_shape,
        mean_rate=mean_rate, bcv_df=bcv_df, lib_scale=lib_scale, de_scale=de_scale,
        out_scale=out_scale, bcv_common=bcv_common)
    rng = np.random.default_rng(seed)
    # the order of the draws below is part of the reproducibility promise (a seed gives
    # the same data bit for bit across versions): do not reorder
    gene_mean, is_out = _gene_means(rng, n_genes, p["mean_shape"], p["mean_rate"], p["out_prob"],
                                    out_loc, p["out_scale"])                           # 1
    lib = rng.lognormal(lib_loc, p["lib_scale"], size=n_cells)                         # 2
    group = rng.choice(n_groups, size=n_cells, p=probs)                                # 3
    log_fac = _de_log_factors(rng, n_genes, n_groups, p["de_prob"], p["de_down_prob"],
                              de_loc, p["de_scale"])
    means = _CellMeans(rng, gene_mean, log_fac, group, lib, path)                      # 4
    chi = rng.chisquare(p["bcv_df"], size=n_genes)                                     # 5
    bcv_gene = np.sqrt(p["bcv_df"] / chi)[None, :]
    truth, log_mu, mean_matrix = _true_counts(rng, means, n_cells, n_genes, p["bcv_common"], bcv_gene,
                                              keep_log_mu=dropout_share is not None,
                                              keep_mean=bool(true_mean))               # 4-6

    params = dict(n_cells=n_cells, n_genes=n_genes, n_groups=n_groups,
                  group_probs=probs.tolist(), de_prob=p["de_prob"], de_down_prob=p["de_down_prob"],
                  de_loc=float(de_loc), de_scale=p["de_scale"], mean_shape=p["mean_shape"],
                  mean_rate=p["mean_rate"], lib_loc=float(lib_loc), lib_scale=p["lib_scale"],
                  out_prob=p["out_prob"], out_loc=float(out_loc), out_scale=p["out_scale"],
                  bcv_common=p["bcv_common"], bcv_df=p["bcv_df"],
                  dropout_share=float("nan") if dropout_share is None else dropout_share,
                  dropout_shape=float(dropout_shape), path=bool(path), seed=int(seed))
    if dropout_share is not None:                                                      # 7
        drop, midpoint = _drop_nonzeros(log_mu, dropout_share, float(dropout_shape), rng)
        counts, mask = zero_entries(truth, drop)
        params["dropout_midpoint"] = float(midpoint)
        params["dropout_share_realised"] = float(mask.nnz / truth.nnz) if truth.nnz else 0.0
    else:
        mask = sp.csr_matrix((n_cells, n_genes), dtype=bool)
        counts = truth.copy()
    adata = _splat_anndata(counts, truth, mask, group, n_groups, means, gene_mean, is_out,
                           params, seed, dataset_id)
    if mean_matrix is not None:
        adata.layers["true_mean"] = mean_matrix
    return adata


# ----------------------------------------------------------------------------- estimation

def _counts_of(adata):
    if hasattr(adata, "layers"):
        X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    else:
        X = adata
    if X is None:
        raise InputError("estimate_params: the dataset has no counts (layers['counts'] or X)")
    return sp.csr_matrix(X, dtype=np.float64)


def estimate_params(adata) -> dict:
    """Estimate Splat parameters from a real count dataset (AnnData or cells x genes matrix).

    - library size: log-normal by maximum likelihood (mean and sd of the log totals);
    - gene means: counts scaled to the median library size, gene means; expression
      outliers are genes whose log mean exceeds median + 2 MAD (normal-consistent) of
      the log means: their share is ``out_prob`` and the log of their ratio to the
      median mean gives ``out_loc`` / ``out_scale``; a gamma distribution (location 0,
      maximum likelihood) fitted to the remaining means gives ``mean_shape`` /
      ``mean_rate``;
    - ``bcv_common``: the value for which the Splat mean-variance relation
      ``var = 2 mu + 2 b mu^1.5 + b^2 mu^2`` (gamma-Poisson with
      ``bcv = b + 1/sqrt(mu)``) best matches the genes' normalised variances on the log
      scale.

    The returned dict holds only keyword arguments of :func:`splat`, so
    ``splat(n_cells=..., **estimate_params(real))`` resembles ``real``.
    """
    X = _counts_of(adata)
    if X.shape[0] < 2 or X.shape[1] < 2:
        raise InputError(f"estimate_params: need at least 2 cells and 2 genes, got {X.shape}")
    if X.data.size and X.data.min() < 0:
        raise InputError("estimate_params: counts contain negative values")
    lib = np.asarray(X.sum(axis=1)).ravel()
    lib = lib[lib > 0]
    if lib.size < 2:
        raise InputError("estimate_params: fewer than 2 cells have any counts")
    log_lib = np.log(lib)
    lib_loc = float(log_lib.mean())
    lib_scale = float(log_lib.std(ddof=1))

    tot = np.asarray(X.sum(axis=1)).ravel()
    keep_cells = tot > 0
    Xc = X[keep_cells]
    sf = np.median(tot[keep_cells]) / tot[keep_cells]
    N = sp.diags(sf) @ Xc
    n = N.shape[0]
    means = np.asarray(N.mean(axis=0)).ravel()
    sq = np.asarray(N.multiply(N).mean(axis=0)).ravel()
    var = np.maximum(sq - means ** 2, 0.0) * n / max(n - 1, 1)
    pos = means > 0
    means_p, var_p = means[pos], var[pos]
    if means_p.size < 2:
        raise InputError("estimate_params: fewer than 2 genes have any counts")

    lm = np.log(means_p)
    med = np.median(lm)
    mad = stats.median_abs_deviation(lm, scale="normal")
    outs = lm > med + 2.0 * mad
    out_prob = float(outs.mean())
    if outs.sum() >= 2:
        lf = lm[outs] - np.log(np.median(means_p))
        out_loc, out_scale = float(lf.mean()), float(max(lf.std(ddof=1), 1e-3))
    else:
        out_loc, out_scale = 4.0, 0.5
    inl = means_p[~outs]
    # winsorise the extremes a little, as Splatter does, before the gamma fit
    lo, hi = np.quantile(inl, [0.05, 0.95])
    inl = np.clip(inl, lo, hi)
    shape, _, scale = stats.gamma.fit(inl, floc=0)

    # BCV: 1-D fit of the Splat mean-variance relation on genes with enough signal
    ok = (means_p > 0.1) & (var_p > 0)
    if ok.sum() >= 5:
        mu, v = means_p[ok], var_p[ok]

        def loss(b):
            return float(np.mean((np.log(v) - np.log(2 * mu + 2 * b * mu ** 1.5 + b * b * mu * mu)) ** 2))
        res = optimize.minimize_scalar(loss, bounds=(0.0, 5.0), method="bounded")
        bcv_common = float(res.x)
    else:
        bcv_common = 0.1
    return dict(mean_shape=float(shape), mean_rate=float(1.0 / scale), lib_loc=lib_loc,
                lib_scale=lib_scale, out_prob=out_prob, out_loc=out_loc, out_scale=out_scale,
                bcv_common=bcv_common)
