"""Data preparation for scZiva: which cells and genes are modelled, their order, library sizes,
and mini-batches of rows on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .ordering import order_genes
from .settings import ZivaSettings

ORDER_MAX_CELLS = 20000


@dataclass
class PreparedData:
    """The modelled part of a validated count matrix.

    ``matrix`` holds the kept cells and genes, genes in model order (CSR or dense);
    ``keep_cells`` / ``keep_genes`` index the caller's matrix; ``order`` permutes
    ``keep_genes`` into model order; ``library`` is each kept cell's total count.
    """

    matrix: object
    keep_cells: np.ndarray
    keep_genes: np.ndarray
    order: np.ndarray
    library: np.ndarray
    shape: tuple
    # each modelled gene's total count over the cells (model order); None when unknown
    gene_totals: np.ndarray | None = None

    @property
    def columns(self) -> np.ndarray:
        """The caller's gene index of each model column."""
        return self.keep_genes[self.order]

    def full_gene_order(self) -> np.ndarray:
        """Model columns first, then the genes that were left out."""
        cols = self.columns
        return np.concatenate([cols, np.setdiff1d(np.arange(self.shape[1]), cols)])


def _totals(M):
    if sp.issparse(M):
        return np.asarray(M.sum(axis=1)).ravel(), np.asarray(M.sum(axis=0)).ravel()
    return M.sum(axis=1), M.sum(axis=0)


def prepare_data(M, settings: ZivaSettings) -> PreparedData | None:
    """Filter, order and measure a validated count matrix; None when there is nothing to learn.

    Cells and genes with no counts carry no information: they are left out (and returned
    as zeros by the caller), except in the authors' mode, whose code models every one.
    """
    n_cells, n_genes = M.shape
    cell_tot, gene_tot = _totals(M)
    if settings.authors:
        keep_cells, keep_genes = np.arange(n_cells), np.arange(n_genes)
    else:
        keep_cells, keep_genes = np.flatnonzero(cell_tot > 0), np.flatnonzero(gene_tot > 0)
    if keep_cells.size < 2 or keep_genes.size < 1:
        return None
    if keep_cells.size == n_cells and keep_genes.size == n_genes:
        sub = M
    elif sp.issparse(M):
        sub = sp.csr_matrix(M[keep_cells][:, keep_genes])
    else:
        sub = M[np.ix_(keep_cells, keep_genes)]
    library = cell_tot[keep_cells]
    order = _gene_order(sub, library, keep_genes, n_genes, settings)
    sub = sub[:, order]
    if sp.issparse(sub):
        # (a new matrix: made canonical in place, as Batches wants it, instead of copied there;
        # the permutation unsorted its columns)
        sub = canonical_csr(sub, copy=False)
    return PreparedData(matrix=sub, keep_cells=keep_cells, keep_genes=keep_genes, order=order,
                        library=library.astype(np.float32), shape=(n_cells, n_genes),
                        gene_totals=np.asarray(gene_tot, dtype=np.float64)[keep_genes][order])


def _gene_order(sub, library, keep_genes, n_genes, settings: ZivaSettings) -> np.ndarray:
    """A permutation of the kept genes (the columns of ``sub``)."""
    gene_order = settings.gene_order
    if not isinstance(gene_order, str):
        full = np.asarray(gene_order)
        if sorted(full.tolist()) != list(range(n_genes)):
            raise ValueError("gene_order must be a permutation of range(n_genes)")
        pos = {g: i for i, g in enumerate(keep_genes)}
        return np.array([pos[g] for g in full if g in pos])
    # The ordering looks at most ORDER_MAX_CELLS cells (a seeded sample; all of them on data
    # of that size or less), so its cost and memory do not grow with the cells.
    rows = np.arange(sub.shape[0])
    if rows.size > ORDER_MAX_CELLS:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows.size, ORDER_MAX_CELLS, replace=False))
    order_input = sub[rows] if rows.size < sub.shape[0] else sub
    # The authors order on the raw input; we order on log1p of depth-normalised counts,
    # which measures co-expression rather than depth.
    if not settings.authors:
        order_input = log_normalise(order_input, library[rows])
    return order_genes(order_input, method=gene_order, seed=settings.seed)


def log_normalise(X, totals):
    """log1p of counts scaled to the median library size (for gene ordering only)."""
    scale = np.median(totals[totals > 0]) / np.maximum(totals, 1)
    if sp.issparse(X):
        Y = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ X)
        Y.data = np.log1p(Y.data)
        return Y
    return np.log1p(X * scale[:, None].astype(np.float32))


#: :func:`sampling_zero_share` looks at most this many cells (a seeded sample) and the genes
#: with the highest totals, at most this many.
SHARE_MAX_CELLS = 20000
SHARE_MAX_GENES = 2000


def sampling_zero_share(X, library, gene_totals, seed: int = 0, max_cells: int = SHARE_MAX_CELLS,
                        max_genes: int = SHARE_MAX_GENES) -> float:
    """The share of the observed zeros that Poisson sampling alone would produce.

    Each entry's expected count under "no dropout, no over-dispersion" is its cell's
    library size times its gene's share of all counts, ``l_c p_g``, and a Poisson count of
    that mean is zero with probability ``exp(-l_c p_g)``. The share is the sum of those
    probabilities over the entries divided by the number of observed zeros: near 1 when
    the zeros are what shallow sampling gives (UMI data), small when most zeros are in
    places that sampling would have filled (dropout on deep data, or over-dispersion).
    ``X``: cells x genes counts (dense or CSR) whose cells have the totals ``library`` and
    whose genes have the totals ``gene_totals`` (over all cells; ``X`` may be a sample of
    the rows). At most ``max_cells`` rows are used (a seeded sample), and only the
    ``max_genes`` genes with the highest totals (ties: the first): the zeros of rarely
    detected genes are nearly all sampling zeros, and without this the share would depend
    on how many such genes a matrix keeps (all 28,218 genes of goolam, deep full-length
    reads: 0.74; its 2,000 highest: 0.00). 0 when there are no zeros.
    """
    n = X.shape[0]
    rows = np.arange(n)
    if n > max_cells:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))
    totals = np.asarray(gene_totals, dtype=np.float64).ravel()
    cols = np.sort(np.argsort(-totals, kind="stable")[:max_genes])
    gene_share = totals[cols] / max(totals.sum(), 1.0)
    library = np.asarray(library, dtype=np.float64).ravel()
    expected = observed = 0.0
    for start in range(0, rows.size, 1024):
        r = rows[start:start + 1024]
        block = X[r][:, cols] if cols.size < X.shape[1] else X[r]
        nonzero = block.count_nonzero() if sp.issparse(block) else np.count_nonzero(block)
        observed += r.size * cols.size - nonzero
        expected += float(np.exp(-np.outer(library[r], gene_share)).sum())
    return expected / observed if observed else 0.0


class Batches:
    """Rows of a dense array or a CSR matrix, densified one mini-batch at a time."""

    def __init__(self, X, library: np.ndarray, device: torch.device):
        self.sparse = sp.issparse(X)
        if self.sparse:
            X = canonical_csr(X)
        self.X = X
        self.n = X.shape[0]
        self.device = device
        self.library = torch.as_tensor(library, dtype=torch.float32)
        self._dense = None
        if not self.sparse:
            self._dense = torch.as_tensor(X, dtype=torch.float32)
            if device.type != "cpu":
                self._dense = self._dense.to(device)
                self.library = self.library.to(device)

    def epoch_order(self, train_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The training cells in a new random order (streamed data shuffles by block)."""
        return rng.permutation(train_idx)

    def preload(self, idx: np.ndarray) -> None:
        """Nothing to do: every row is in memory (streamed data keeps its held-out cells)."""

    def get(self, idx: np.ndarray, nonzero: bool = False):
        """Counts (cells x genes) and library sizes (cells x 1) of rows ``idx``, on the device;
        with ``nonzero=True`` also the batch's non-zero entries (:func:`csr_nonzero`), or None
        where the rows are dense (the objective then finds them itself)."""
        if self.sparse:
            rows = self.X[idx]
            x = torch.from_numpy(rows.toarray()).to(self.device, non_blocking=True)
            lib = self.library[torch.as_tensor(idx)].to(self.device).unsqueeze(1)
            return (x, lib, csr_nonzero(rows, self.device)) if nonzero else (x, lib)
        t = torch.as_tensor(idx, device=self._dense.device)
        x, lib = self._dense.index_select(0, t), self.library.index_select(0, t).unsqueeze(1)
        return (x, lib, None) if nonzero else (x, lib)


def canonical_csr(X, copy: bool = True) -> sp.csr_matrix:
    """``X`` as CSR with sorted columns, no duplicates and no stored values below 0.5, so
    that a row selection needs no sorting in :func:`csr_nonzero` (a column-permuted matrix,
    as the gene order makes it, has its columns unsorted: sorting each mini-batch cost
    3 ms of a 15 ms step at 2,000 genes). ``X`` itself when it already is; otherwise a new
    matrix (the caller's is never changed), or ``X`` changed in place with ``copy=False``
    (for a matrix the caller has just made)."""
    X = X if sp.isspmatrix_csr(X) else sp.csr_matrix(X)
    if X.has_canonical_format and not (X.nnz and X.data.min() < 0.5):
        return X
    if copy:
        X = X.copy()
    X.sum_duplicates()
    X.data[X.data < 0.5] = 0
    X.eliminate_zeros()
    return X


def csr_nonzero(rows, device: torch.device):
    """Row and column indices of the entries >= 0.5 of a CSR matrix, in row-major order:
    ``(torch.as_tensor(rows.toarray()) >= 0.5).nonzero(as_tuple=True)`` without scanning the
    dense batch (which at 20,000 genes took 4-7 ms a batch of 128 cells on 2 cores, more
    than any other single step of the objective). ``rows`` is a fresh copy (a row
    selection); if it is not canonical (:func:`canonical_csr`) it is made so in place."""
    rows = canonical_csr(rows, copy=False)
    r = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
    c = rows.indices.astype(np.int64)
    return torch.from_numpy(r).to(device), torch.from_numpy(c).to(device)
