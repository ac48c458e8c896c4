"""Scenarios: a dataset after one perturbation (docs/contract.md, "Scenario").

Kinds:

- ``"dropout"``: logistic dropout (:func:`scziva_bench.data.simulate.add_dropout`) of a share
  ``rate`` (default 0.5) of the non-zero counts, in each cell's own expected counts as
  Splatter does: a simulation's pre-Poisson means (``layers["true_mean"]``) where the
  dataset has them, else a label-free kNN-smoothed estimate (:func:`knn_means`), which
  follows the groups; ``uns["scenario"]["means"]`` says which (``true_mean`` / ``knn``);
  truth = the counts before, mask = the dropped non-zeros;
- ``"mask"``: a fraction ``rate`` (default 0.1, as in the scVI paper) of the non-zero
  entries, chosen uniformly at random (exactly ``round(rate * nnz)`` of them), set to 0;
- ``"mcv"``: molecular cross-validation (Batson, Royer & Webber 2019): each count is
  split binomially, ``train ~ Binomial(x, train_fraction)``, ``test = x - train``;
  counts = train, truth = test (``train + test == x`` exactly), no mask;
- ``"sampling"``: counts unchanged, no dropout on top: the sampling noise of the data is
  the only perturbation (for a simulation or a downsampled dataset, whose workflow step
  draws new counts per seed; truth = ``layers["true_mean"]``, scored by the denoising,
  clustering, DE, gene-gene and trajectory families, no mask);
- ``"split"``: a molecular cross-validation split that came with the data (Open Problems'
  ``train.h5ad`` / ``test.h5ad`` pair: the dataset's counts are the train molecules, its
  ``layers["mcv_test"]`` the test molecules, from dataset key ``test_path``); scored as
  ``"mcv"`` with ``train_fraction`` = train total / (train + test total);
- ``"none"``: counts unchanged; truth = the dataset's own ``layers["truth"]`` (and its
  mask) where it has one, else truth = counts and no mask (a truth equal to the counts
  is no truth: :mod:`scziva_bench.evaluation.metrics` scores no truth-based metric on it).

A simulation's ``layers["true_mean"]`` (the denoising truth) is carried into every
scenario as dense float32 (in MCV it is the mean of the whole count, of which the train
molecules are a share ``train_fraction``: the metrics compare log-normalised profiles,
where the scale cancels).

Rates may be given as fractions (0.5) or percents (50).
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError
from scziva.validate import check_counts

from scziva_bench.catalog import scenarios as scenario_ids
from scziva_bench.data import simulate

__all__ = ["KINDS", "DEFAULT_RATE", "MCV_TRAIN_FRACTION", "make"]

KINDS = scenario_ids.KINDS
DEFAULT_RATE = {"dropout": 0.5, "mask": 0.1}
MCV_TRAIN_FRACTION = scenario_ids.MCV_TRAIN_FRACTION


def _rate_fraction(kind: str, rate) -> float:
    """Rate as a fraction in (0, 1); percents (> 1) are divided by 100."""
    if rate is None:
        return DEFAULT_RATE[kind]
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise InputError(f"scenario {kind}: rate must be a number, got {rate!r}") from None
    if r > 1:
        r = r / 100.0
    if not (0.0 < r < 1.0):
        raise InputError(f"scenario {kind}: rate must be in (0, 1) or a percent in (1, 100), got {rate!r}")
    return r


def _check_kind(kind):
    if kind not in KINDS:
        raise InputError(f"unknown scenario kind {kind!r}; expected one of {', '.join(KINDS)}")


def _check_seed(seed):
    try:
        return scenario_ids.check_seed(seed)
    except ValueError as exc:
        raise InputError(f"scenario {exc}") from None


def _format_id(kind: str, rate, seed: int) -> str:
    """The id of a scenario made from a kind (``rate`` a fraction; None for mcv and none)."""
    try:
        return scenario_ids.format_id(kind, rate, seed)
    except ValueError as exc:
        raise InputError(f"scenario {kind}: {exc}") from None


def _from_id(scenario, rate, seed):
    """``(kind, rate, seed, id)`` of ``make``'s arguments: a scenario id carries its kind,
    rate and seed (``rate`` and ``seed`` must then be left out); a kind takes them."""
    if isinstance(scenario, str) and scenario not in scenario_ids.UNSEEDED and scenario_ids.is_id(scenario):
        if rate is not None or seed not in (None, 0):
            raise InputError(f"scenario {scenario!r}: an id carries its rate and seed; give "
                             "either an id, or a kind with rate= and seed=")
        sid = scenario_ids.parse_id(scenario)
        return sid.kind, sid.rate, sid.seed, scenario
    _check_kind(scenario)
    return scenario, rate, _check_seed(0 if seed is None else seed), None


def _counts(adata):
    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if X is None:
        raise InputError("scenario: the dataset has neither layers['counts'] nor X")
    M, _ = check_counts(X, "dataset layers['counts']", allow_round=False)
    M = sp.csr_matrix(M, dtype=np.float32)
    M.sum_duplicates()
    M.eliminate_zeros()
    return M


def knn_means(X, k: int = 15, n_pcs: int = 30, n_top: int = 2000):
    """Each cell's own expected counts, estimated label-free from its neighbours.

    Cells are embedded by PCA (randomised SVD, fixed state) of ``log1p(1e4 x proportions)``
    on the ``n_top`` genes of highest variance; the expected count of entry (i, j) is
    ``libsize_i x`` the mean proportion of gene j over cell i and its ``k`` nearest
    neighbours. Unlike the rank-1 ``libsize_i x genesum_j / total`` it follows the
    groups (a gene up in one group is expected high there only). Deterministic.
    Returns CSR float64 with the stored pattern of ``X`` (CSR), holding the means there.
    """
    from sklearn.neighbors import NearestNeighbors
    from sklearn.utils.extmath import randomized_svd

    X = sp.csr_matrix(X, dtype=np.float64)
    n, g = X.shape
    lib = np.asarray(X.sum(axis=1)).ravel()
    P = sp.diags(np.divide(1.0, lib, out=np.zeros_like(lib), where=lib > 0)) @ X
    P = sp.csr_matrix(P)
    k = int(min(k, n - 1))
    nc = int(min(n_pcs, n - 1, g - 1))
    if k < 1 or nc < 1:
        return None
    L = P.copy()
    L.data = np.log1p(L.data * 1e4)
    mean = np.asarray(L.mean(axis=0)).ravel()
    var = np.asarray(L.multiply(L).mean(axis=0)).ravel() - mean ** 2
    top = np.sort(np.argsort(-var, kind="stable")[: min(n_top, g)])
    D = L[:, top].toarray()
    D -= D.mean(axis=0)
    U, S, _ = randomized_svd(D, nc, random_state=0)
    emb = U * S
    idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb, return_distance=False)
    # k neighbours other than the cell itself, then the cell: k + 1 equal weights
    is_self = idx == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    nb = np.hstack([idx[~is_self].reshape(n, k), np.arange(n)[:, None]])
    W = sp.csr_matrix((np.full(nb.size, 1.0 / (k + 1)), nb.ravel(), np.arange(0, nb.size + 1, k + 1)),
                      shape=(n, n))
    out = np.empty(X.nnz)
    step = max(1, 2_000_000 // max(g, 1))
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        Mb = np.asarray((W[r0:r1] @ P).todense())
        a, b = X.indptr[r0], X.indptr[r1]
        local = np.repeat(np.arange(r1 - r0), np.diff(X.indptr[r0:r1 + 1]))
        out[a:b] = Mb[local, X.indices[a:b]] * lib[r0 + local]
    return sp.csr_matrix((out, X.indices.copy(), X.indptr.copy()), shape=X.shape)


def _dropout_means(adata, X):
    """Expected counts at the stored entries of ``X`` for the dropout model, and their
    source: the simulation's own pre-Poisson means (``layers["true_mean"]``) where the
    dataset has them, else :func:`knn_means` (``"rank1"`` only for tiny data)."""
    if "true_mean" in adata.layers:
        M = adata.layers["true_mean"]
        M = M.toarray() if sp.issparse(M) else np.asarray(M)
        if M.shape != X.shape:
            raise InputError(f"scenario dropout: layers['true_mean'] has shape {M.shape}, counts {X.shape}")
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        vals = M[rows, X.indices].astype(np.float64)
        return sp.csr_matrix((vals, X.indices.copy(), X.indptr.copy()), shape=X.shape), "true_mean"
    M = knn_means(X)
    return (M, "knn") if M is not None else (None, "rank1")


def make(adata, scenario: str, rate=None, seed: int = 0,
         train_fraction: float = MCV_TRAIN_FRACTION, shape: float = -1.0):
    """Turn a dataset into a scenario (a new AnnData; the input is not modified).

    ``scenario`` is a scenario id (``"dropout50_s1"``, ``"mask10_s2"``, ``"mcv_s3"``,
    ``"none"``: kind, rate and seed come from it, as in the workflow) or a kind
    (``"dropout"``, ``"mask"``, ``"mcv"``, ``"none"``) with ``rate`` (a fraction, or a
    percent > 1; default :data:`DEFAULT_RATE`) and ``seed``.

    ``layers["counts"]`` (= ``X``) is what methods see, ``layers["truth"]`` the reference,
    ``layers["mask"]`` (dropout / mask only) the removed non-zeros, ``layers["true_mean"]``
    (simulations) the denoising truth, ``uns["scenario"]`` describes it. ``obs``, ``var``, ``varm`` and ``uns`` of the dataset are kept. Output
    matrices are CSR float32 (mask: CSR bool). ``shape`` is the logistic dropout shape
    (dropout only; negative: low expected counts drop more often).
    """
    import anndata as ad

    kind, rate, seed, given_id = _from_id(scenario, rate, seed)
    X = _counts(adata)
    rng = np.random.default_rng(seed)
    info = {"kind": kind, "seed": seed}
    mask = None
    if kind == "dropout":
        r = _rate_fraction(kind, rate)
        means, source = _dropout_means(adata, X)
        counts, mask = simulate.add_dropout(X, r, shape=float(shape), seed=seed, means=means)
        truth = X
        info["rate"] = r
        info["realised_rate"] = float(mask.nnz / X.nnz) if X.nnz else 0.0
        info["shape"] = float(shape)
        info["means"] = source
    elif kind == "mask":
        r = _rate_fraction(kind, rate)
        n_drop = int(round(r * X.nnz))
        drop = np.zeros(X.nnz, dtype=bool)
        drop[rng.choice(X.nnz, size=n_drop, replace=False)] = True
        counts, mask = simulate.zero_entries(X, drop)
        truth = X
        info["rate"] = r
        info["realised_rate"] = float(n_drop / X.nnz) if X.nnz else 0.0
    elif kind == "mcv":
        p = float(train_fraction)
        if not (0.0 < p < 1.0):
            raise InputError(f"scenario mcv: train_fraction must be in (0, 1), got {train_fraction!r}")
        counts, truth = simulate.binomial_split(X, p, rng)
        info["rate"] = float("nan")
        info["train_fraction"] = p
    elif kind == "split":
        if "mcv_test" not in adata.layers:
            raise InputError("scenario split: the dataset has no test molecules (layers['mcv_test']); "
                             "give its test file with the dataset key test_path")
        counts = X
        truth = sp.csr_matrix(adata.layers["mcv_test"], dtype=np.float32)
        if truth.shape != X.shape:
            raise InputError(f"scenario split: the test molecules have shape {truth.shape}, the counts {X.shape}")
        n_train, n_test = float(X.sum(dtype=np.float64)), float(truth.sum(dtype=np.float64))
        if n_train <= 0 or n_test <= 0:
            raise InputError(f"scenario split: the train half has {n_train:g} molecules and the test half "
                             f"{n_test:g}; both need some")
        info["rate"] = float("nan")
        info["train_fraction"] = n_train / (n_train + n_test)
    elif kind == "sampling":
        counts = X
        truth = X.copy()  # equal to the counts: no entry-wise truth (metrics.available)
        info["rate"] = float("nan")
    else:
        # A dataset that brings its own truth (e.g. the authors' SplatDrop files, dropout
        # made elsewhere) keeps it, with its mask; otherwise truth = counts.
        counts = X
        truth = adata.layers["truth"] if "truth" in adata.layers else X.copy()
        if "mask" in adata.layers and adata.layers["mask"].sum() > 0:
            mask = sp.csr_matrix(adata.layers["mask"], dtype=bool)
        info["rate"] = float("nan")
    info["id"] = given_id or _format_id(kind, info["rate"] if kind in DEFAULT_RATE else None, seed)
    # order the keys as the contract lists them
    info = {k: info[k] for k in ("id", "kind", "rate", "seed", "train_fraction", "realised_rate", "shape",
                                 "means") if k in info}

    layers = {"counts": counts, "truth": sp.csr_matrix(truth, dtype=np.float32)}
    if mask is not None:
        layers["mask"] = mask
    if "true_mean" in adata.layers:  # denoising truth of a simulation (methods never see it)
        tm = adata.layers["true_mean"]
        layers["true_mean"] = (tm.toarray() if sp.issparse(tm) else np.asarray(tm)).astype(np.float32)
    out = ad.AnnData(X=counts.copy(), obs=adata.obs.copy(), var=adata.var.copy(), layers=layers)
    for k, v in adata.varm.items():
        out.varm[k] = v.copy()
    for k, v in adata.uns.items():
        out.uns[k] = copy.deepcopy(v)
    out.uns["scenario"] = info
    if "n_counts" in out.obs:
        out.obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel()
    return out
