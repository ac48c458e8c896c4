"""Scenarios: a dataset after one perturbation (docs/contract.md, "Scenario").

Kinds:

- ``"dropout"``: logistic dropout (:func:`scziva_bench.simulate.add_dropout`) of a share
  ``rate`` (default 0.5) of the non-zero counts, with expected counts estimated from the
  counts themselves; truth = the counts before, mask = the dropped non-zeros;
- ``"mask"``: a fraction ``rate`` (default 0.1, as in the scVI paper) of the non-zero
  entries, chosen uniformly at random (exactly ``round(rate * nnz)`` of them), set to 0;
- ``"mcv"``: molecular cross-validation (Batson, Royer & Webber 2019): each count is
  split binomially, ``train ~ Binomial(x, train_fraction)``, ``test = x - train``;
  counts = train, truth = test (``train + test == x`` exactly), no mask;
- ``"none"``: counts unchanged; truth = the dataset's own ``layers["truth"]`` (and its
  mask) where it has one, else truth = counts and no mask.

Rates may be given as fractions (0.5) or percents (50).
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError
from scziva.validate import check_counts

from . import scenario_ids, simulate

__all__ = ["KINDS", "DEFAULT_RATE", "MCV_TRAIN_FRACTION", "make", "scenario_id", "parse_scenario_id"]

KINDS = scenario_ids.KINDS
DEFAULT_RATE = {"dropout": 0.5, "mask": 0.1}
#: share of each count's molecules that methods see in an MCV scenario (the rest is the
#: test truth); every other place reads it from ``uns["scenario"]["train_fraction"]``
MCV_TRAIN_FRACTION = 0.9


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
        s = int(seed)
    except (TypeError, ValueError):
        raise InputError(f"scenario seed must be a non-negative integer, got {seed!r}") from None
    if s < 0 or s != seed:
        raise InputError(f"scenario seed must be a non-negative integer, got {seed!r}")
    return s


def scenario_id(kind: str, rate=None, seed: int = 0) -> str:
    """The scenario wildcard (:func:`scziva_bench.scenario_ids.format_id`): ``dropout50_s1``,
    ``mask10_s1``, ``mcv_s1`` or ``none``; a missing rate is the kind's default."""
    _check_kind(kind)
    if kind == "none":
        return "none"
    seed = _check_seed(seed)
    if kind in DEFAULT_RATE:
        rate = _rate_fraction(kind, rate)
    try:
        return scenario_ids.format_id(kind, rate, seed)
    except ValueError as exc:
        raise InputError(f"scenario {kind}: {exc}") from None


def parse_scenario_id(sid: str):
    """Inverse of :func:`scenario_id`: ``(kind, rate, seed)``
    (:func:`scziva_bench.scenario_ids.parse_id`, raising InputError).

    ``rate`` is a fraction (``dropout50_s1`` -> ``("dropout", 0.5, 1)``), ``None`` for
    ``mcv`` and ``none``; ``none`` has seed 0.
    """
    try:
        return tuple(scenario_ids.parse_id(sid))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _counts(adata):
    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if X is None:
        raise InputError("scenario: the dataset has neither layers['counts'] nor X")
    M, _ = check_counts(X, "dataset layers['counts']", allow_round=False)
    M = sp.csr_matrix(M, dtype=np.float32)
    M.sum_duplicates()
    M.eliminate_zeros()
    return M


def make(adata, kind: str, rate=None, seed: int = 0, train_fraction: float = MCV_TRAIN_FRACTION,
         shape: float = -1.0):
    """Turn a dataset into a scenario (a new AnnData; the input is not modified).

    ``layers["counts"]`` (= ``X``) is what methods see, ``layers["truth"]`` the reference,
    ``layers["mask"]`` (dropout / mask only) the removed non-zeros, ``uns["scenario"]``
    describes it. ``obs``, ``var``, ``varm`` and ``uns`` of the dataset are kept. Output
    matrices are CSR float32 (mask: CSR bool). ``shape`` is the logistic dropout shape
    (dropout only; negative: low expected counts drop more often).
    """
    import anndata as ad

    _check_kind(kind)
    seed = _check_seed(seed)
    X = _counts(adata)
    rng = np.random.default_rng(seed)
    info = {"kind": kind, "seed": seed}
    mask = None
    if kind == "dropout":
        r = _rate_fraction(kind, rate)
        counts, mask = simulate.add_dropout(X, r, shape=float(shape), seed=seed)
        truth = X
        info["rate"] = r
        info["realised_rate"] = float(mask.nnz / X.nnz) if X.nnz else 0.0
        info["shape"] = float(shape)
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
        train = rng.binomial(X.data.astype(np.int64), p).astype(np.float32)
        test = X.data - train
        counts = sp.csr_matrix((train, X.indices.copy(), X.indptr.copy()), shape=X.shape)
        truth = sp.csr_matrix((test, X.indices.copy(), X.indptr.copy()), shape=X.shape)
        counts.eliminate_zeros()
        truth.eliminate_zeros()
        info["rate"] = float("nan")
        info["train_fraction"] = p
    else:
        # A dataset that brings its own truth (e.g. the authors' SplatDrop files, dropout
        # made elsewhere) keeps it, with its mask; otherwise truth = counts.
        counts = X
        truth = adata.layers["truth"] if "truth" in adata.layers else X.copy()
        if "mask" in adata.layers and adata.layers["mask"].sum() > 0:
            mask = sp.csr_matrix(adata.layers["mask"], dtype=bool)
        info["rate"] = float("nan")
    info["id"] = scenario_id(kind, info["rate"] if kind in DEFAULT_RATE else None, seed)
    # order the keys as the contract lists them
    info = {k: info[k] for k in ("id", "kind", "rate", "seed", "train_fraction", "realised_rate", "shape") if k in info}

    layers = {"counts": counts, "truth": sp.csr_matrix(truth, dtype=np.float32)}
    if mask is not None:
        layers["mask"] = mask
    out = ad.AnnData(X=counts.copy(), obs=adata.obs.copy(), var=adata.var.copy(), layers=layers)
    for k, v in adata.varm.items():
        out.varm[k] = v.copy()
    for k, v in adata.uns.items():
        out.uns[k] = copy.deepcopy(v)
    out.uns["scenario"] = info
    if "n_counts" in out.obs:
        out.obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel()
    return out
