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
import re

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError
from scziva.validate import check_counts

from . import simulate

__all__ = ["KINDS", "DEFAULT_RATE", "make", "scenario_id", "parse_scenario_id"]

KINDS = ("dropout", "mask", "mcv", "none")
DEFAULT_RATE = {"dropout": 0.5, "mask": 0.1}


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
    """The scenario wildcard: ``dropout50_s1``, ``mask10_s1``, ``mcv_s1`` or ``none``."""
    _check_kind(kind)
    if kind == "none":
        return "none"
    seed = _check_seed(seed)
    if kind == "mcv":
        return f"mcv_s{seed}"
    pct = _rate_fraction(kind, rate) * 100.0
    ipct = int(round(pct))
    if abs(pct - ipct) > 1e-6:
        raise InputError(f"scenario {kind}: rate {rate!r} is not a whole percent, which scenario ids need")
    return f"{kind}{ipct:02d}_s{seed}"


_ID_RE = re.compile(r"^(?:(?P<kind>dropout|mask)(?P<pct>\d{1,2})_s(?P<seed>\d+)|mcv_s(?P<mseed>\d+)|(?P<none>none))$")


def parse_scenario_id(sid: str):
    """Inverse of :func:`scenario_id`: ``(kind, rate, seed)``.

    ``rate`` is a fraction (``dropout50_s1`` -> ``("dropout", 0.5, 1)``), ``None`` for
    ``mcv`` and ``none``; ``none`` has seed 0.
    """
    m = _ID_RE.match(sid) if isinstance(sid, str) else None
    if m is None:
        raise InputError(f"scenario id {sid!r} is not one of dropoutNN_sS, maskNN_sS, mcv_sS, none")
    if m.group("none"):
        return "none", None, 0
    if m.group("mseed") is not None:
        return "mcv", None, int(m.group("mseed"))
    pct = int(m.group("pct"))
    if pct == 0:
        raise InputError(f"scenario id {sid!r}: rate 0 % is not a perturbation")
    return m.group("kind"), pct / 100.0, int(m.group("seed"))


def _counts(adata):
    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if X is None:
        raise InputError("scenario: the dataset has neither layers['counts'] nor X")
    M, _ = check_counts(X, "dataset layers['counts']", allow_round=False)
    M = sp.csr_matrix(M, dtype=np.float32)
    M.sum_duplicates()
    M.eliminate_zeros()
    return M


def make(adata, kind: str, rate=None, seed: int = 0, train_fraction: float = 0.9,
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
        mask = sp.csr_matrix((drop.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape, dtype=bool)
        mask.eliminate_zeros()
        counts = X.copy()
        counts.data = np.where(drop, 0, X.data).astype(np.float32)
        counts.eliminate_zeros()
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
