"""Outputs that carry no biology, as user methods (examples/validation.yaml): the check of
issue 22 that the ranks cannot be fooled. Each function gets the observed counts only."""
import numpy as np


def _counts(adata):
    X = adata.X
    return (X.toarray() if hasattr(X, "toarray") else np.asarray(X)).astype(np.float64)


def constant(adata, seed=0, device="cpu"):
    """Every entry the mean observed count."""
    X = _counts(adata)
    return np.full(X.shape, X.mean())


def zeros_to_one(adata, seed=0, device="cpu"):
    """The observed counts with every zero set to 1."""
    X = _counts(adata)
    return np.where(X == 0, 1.0, X)


def rank_one(adata, seed=0, device="cpu"):
    """Each cell's total times each gene's share of all counts: no cell types."""
    X = _counts(adata)
    return np.outer(X.sum(axis=1), X.sum(axis=0) / max(X.sum(), 1.0))


def poisson_noise(adata, seed=0, device="cpu"):
    """Poisson draws at each gene's mean observed count."""
    X = _counts(adata)
    rng = np.random.default_rng(seed)
    return rng.poisson(np.broadcast_to(X.mean(axis=0), X.shape)).astype(np.float64)
