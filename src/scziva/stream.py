"""scZiva on data larger than memory: train from an ``.h5ad`` on disk, write the output in chunks.

:func:`impute_h5ad` never holds a dense cells x genes matrix, nor the whole count matrix:

* one pass over the file (blocks of :data:`BLOCK_CELLS` rows) checks the values (the same
  rules as :func:`scziva.validate.check_counts`), sums each cell's and gene's counts, and
  keeps a seeded sample of at most ``ORDER_MAX_CELLS`` cells for the gene order;
* training holds one pool of ``block_cells`` cells at a time, made of pieces of
  :data:`READ_CELLS` consecutive rows read from random places in the file: every epoch
  draws the pieces in a new random order, a pool from each run of them, and visits a
  pool's cells in a new random order (a block-wise shuffle, as out-of-core trainers such
  as scvi-tools' do). Pieces rather than whole blocks because files are often sorted (by
  sample, donor, tissue): with one contiguous block per pool, the mini-batches of a pool
  all came from one part of the file, and the last pools trained on pulled the shared
  weights towards their part (measured: ``benchmarks/bench_scziva.py disk``, docs/scziva.md);
  the held-out cells for early stopping are kept in memory (sparse);
* the output is computed block by block and written into the output file's ``X`` as it
  goes (an HDF5 dataset created at full size, filled in row chunks), then the file is
  renamed into place (atomic, as every output here).

The counts must be stored row-wise: ``X`` (or a layer) as CSR (anndata's default for sparse
data) or as a dense array. CSC is refused with a message (rows cannot be streamed from it).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from .data import canonical_csr, csr_nonzero
from .errors import InputError
from .validate import (RAW_COUNTS_HINT, RoundedInputWarning, check_non_integers, check_not_log_transformed,
                       check_values, rounding_note)

#: Cells per pool held in memory for training (and per chunk written). A pool of 16,384
#: cells x 2,000 genes at 10 % non-zeros is about 26 MB in memory.
BLOCK_CELLS = 16384
#: Consecutive rows per read while training: a pool is BLOCK_CELLS // READ_CELLS pieces
#: from random places in the file.
READ_CELLS = 1024

__all__ = ["impute_h5ad", "H5adRows", "BLOCK_CELLS", "READ_CELLS"]


def _attr(node, key, default=None):
    value = node.attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


class H5adRows:
    """Row blocks of the counts in an ``.h5ad`` (``X`` or ``layers[layer]``), read with h5py."""

    def __init__(self, path, layer: str | None = None):
        import h5py

        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(f"{self.path}: not a readable .h5ad file ({exc})") from None
        f = self.file
        where = f"layers/{layer}" if layer else "X"
        if layer is not None and ("layers" not in f or layer not in f["layers"]):
            have = sorted(f["layers"].keys()) if "layers" in f else []
            raise InputError(f"{self.path}: no layer {layer!r} (layers: {have or 'none'})")
        if where not in f:
            raise InputError(f"{self.path}: has no X; name the counts layer")
        node = f[where]
        self.layer = layer
        kind = _attr(node, "encoding-type", "array" if not hasattr(node, "keys") else "")
        if kind == "csr_matrix":
            self.sparse = True
            self.shape = tuple(int(v) for v in node.attrs["shape"])
            self.indptr = node["indptr"][:].astype(np.int64)
            self.data, self.indices = node["data"], node["indices"]
        elif kind == "csc_matrix":
            raise InputError(f"{self.path}: {where} is stored column-wise (CSC), so its cells cannot be read "
                             "one block at a time; store it as CSR (adata.X = adata.X.tocsr()) or run "
                             "without streaming")
        elif kind == "array" and not hasattr(node, "keys"):
            self.sparse = False
            self.shape = tuple(int(v) for v in node.shape)
            self.dense = node
        else:
            raise InputError(f"{self.path}: {where} has an unsupported encoding {kind!r}")
        if len(self.shape) != 2:
            raise InputError(f"{self.path}: {where} is not a 2-D matrix")

    def names(self):
        """(obs, var) DataFrames, as anndata reads them."""
        from anndata.io import read_elem

        return read_elem(self.file["obs"]), read_elem(self.file["var"])

    @property
    def uns(self):
        """The file's ``uns`` group (keys as in memory), or None."""
        return self.file["uns"] if "uns" in self.file else None

    def read(self, start: int, stop: int) -> sp.csr_matrix:
        """File rows ``start`` to ``stop`` as CSR float32 (values as stored)."""
        if self.sparse:
            a, b = int(self.indptr[start]), int(self.indptr[stop])
            ptr = self.indptr[start:stop + 1] - a
            return sp.csr_matrix((self.data[a:b].astype(np.float32), self.indices[a:b], ptr),
                                 shape=(stop - start, self.shape[1]))
        return sp.csr_matrix(np.asarray(self.dense[start:stop], dtype=np.float32))

    def close(self):
        self.file.close()


@dataclass
class Scan:
    """What one pass over the file found."""

    cell_totals: np.ndarray
    gene_totals: np.ndarray
    n_nonzero: int
    n_non_integer: int
    largest: float
    sample_rows: np.ndarray  # file rows of the gene-order sample (sorted)
    sample: sp.csr_matrix  # their counts


def scan(rows: H5adRows, seed: int, max_sample: int, block: int = BLOCK_CELLS) -> Scan:
    n, g = rows.shape
    rng = np.random.default_rng(seed)
    sample_rows = np.arange(n) if n <= max_sample else np.sort(rng.choice(n, max_sample, replace=False))
    cell_tot = np.zeros(n, np.float64)
    gene_tot = np.zeros(g, np.float64)
    n_nz = n_frac = 0
    largest = 0.0
    parts = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        B = rows.read(start, stop)
        vals = B.data
        check_values(vals, str(rows.path))  # the rules of check_counts, block by block
        if vals.size:
            largest = max(largest, float(vals.max()))
        n_nz += int(np.count_nonzero(vals))
        n_frac += int((np.rint(vals) != vals).sum())
        B.data = np.rint(vals)
        cell_tot[start:stop] = np.asarray(B.sum(axis=1)).ravel()
        gene_tot += np.asarray(B.sum(axis=0)).ravel()
        lo, hi = np.searchsorted(sample_rows, [start, stop])
        if hi > lo:
            parts.append(B[sample_rows[lo:hi] - start])
    sample = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, g), dtype=np.float32)
    return Scan(cell_tot, gene_tot, n_nz, n_frac, largest, sample_rows, sample)


class StreamedBatches:
    """Mini-batches of the kept cells and genes (genes in model order), read from disk in
    pieces of ``read`` kept cells (default ``min(READ_CELLS, block)``), ``block // read``
    pieces a pool; the same interface as :class:`scziva.data.Batches`."""

    def __init__(self, rows: H5adRows, keep_cells: np.ndarray, columns: np.ndarray, library: np.ndarray,
                 device: torch.device, block: int = BLOCK_CELLS, read: int | None = None):
        self.rows, self.keep_cells, self.columns = rows, keep_cells, columns
        self.n = keep_cells.size
        self.block = block
        self.read = max(1, min(int(read or READ_CELLS), int(block)))
        self.pool = max(1, int(block) // self.read)  # pieces per pool
        self.device = device
        self.library = torch.as_tensor(library, dtype=torch.float32)
        self._cache: dict[int, sp.csr_matrix] = {}
        self._held: dict[int, int] = {}
        self._held_rows = None

    def _load(self, b: int) -> sp.csr_matrix:
        """Piece ``b`` (kept cells b*read ... ), model columns, rounded counts."""
        if b not in self._cache:
            if len(self._cache) >= 2 * self.pool:  # a batch spans at most two pools
                self._cache.pop(next(iter(self._cache)))
            cells = self.keep_cells[b * self.read:(b + 1) * self.read]
            first, last = int(cells[0]), int(cells[-1]) + 1
            B = self.rows.read(first, last)[cells - first][:, self.columns]
            B.data = np.rint(B.data)
            self._cache[b] = canonical_csr(B, copy=False)  # (the column selection unsorts each row's columns)
        return self._cache[b]

    def preload(self, idx: np.ndarray) -> None:
        """Keep the rows ``idx`` (the held-out cells) in memory."""
        idx = np.sort(idx)
        parts = [self._load(b)[idx[(idx // self.read) == b] - b * self.read]
                 for b in np.unique(idx // self.read)]
        self._held_rows = sp.vstack(parts).tocsr() if parts else None
        self._held = {int(i): k for k, i in enumerate(idx)}
        self._cache.clear()

    def epoch_order(self, train_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The pieces in random order, ``pool`` of them to a pool, the cells of each pool in
        random order. (With one piece a pool: the pieces in random order, each one's cells
        in random order.)"""
        if train_idx.size == 0:
            return train_idx
        pieces = train_idx // self.read
        uniq = np.unique(pieces)
        drawn = rng.permutation(uniq)
        pool_of = np.empty(int(uniq[-1]) + 1, np.int64)
        pool_of[drawn] = np.arange(drawn.size) // self.pool
        pools = pool_of[pieces]
        grouped = train_idx[np.argsort(pools, kind="stable")]  # by pool, file order within
        ends = np.cumsum(np.bincount(pools))
        return np.concatenate([rng.permutation(grouped[a:b]) for a, b in zip(np.r_[0, ends[:-1]], ends)])

    def get(self, idx: np.ndarray, nonzero: bool = False):
        idx = np.asarray(idx)
        if self._held_rows is not None and all(int(i) in self._held for i in idx):  # held-out cells
            X = self._held_rows[[self._held[int(i)] for i in idx]]
        else:
            blocks = idx // self.read
            uniq = list(dict.fromkeys(blocks.tolist()))
            parts = [self._load(b)[idx[blocks == b] - b * self.read] for b in uniq]
            X = sp.vstack(parts).tocsr() if len(parts) > 1 else parts[0]
            if len(uniq) > 1:  # vstack grouped the rows by piece: back to the order asked for
                pos = np.concatenate([np.flatnonzero(blocks == b) for b in uniq])
                X = X[np.argsort(pos)]
        x = torch.from_numpy(np.asarray(X.toarray(), dtype=np.float32)).to(self.device)
        lib = self.library[torch.as_tensor(idx)].to(self.device).unsqueeze(1)
        if not nonzero:
            return x, lib
        return x, lib, csr_nonzero(X, self.device)  # (X: a row selection, a new matrix)


def _output_file(out: Path, obs, var, n: int, g: int, uns: dict):
    """An .h5ad at ``out`` with obs, var, uns and an empty dense float32 X to fill."""
    import anndata as ad
    import h5py

    skeleton = ad.AnnData(obs=obs, var=var)
    skeleton.uns["scziva"] = uns
    skeleton.write_h5ad(out)
    f = h5py.File(out, "a")
    chunk_rows = max(1, min(n, (1 << 22) // max(g, 1)))  # ~16 MB chunks
    X = f.create_dataset("X", shape=(n, g), dtype="float32", chunks=(chunk_rows, g))
    X.attrs["encoding-type"] = "array"
    X.attrs["encoding-version"] = "0.2.0"
    return f, X


def impute_h5ad(input, output, *, layer: str | None = None, block_cells: int = BLOCK_CELLS,
                seed=1, device=None, verbose=False, progress=None, overwrite: bool = False, **options):
    """Impute an ``.h5ad`` that need not fit in memory; write ``output`` (``.h5ad``) in chunks.

    ``X`` of the output holds scZiva's output (dense float32, the input's cells and genes in
    their order; cells and genes without counts stay zero), ``obs`` and ``var`` are the
    input's, ``uns["scziva"]`` the settings and training facts. Options are those of
    :func:`scziva.ZIVAimpute` (``num_epochs``, ``impute_value``, ...). Returns the fitted
    model (:class:`scziva.core.FittedZIVA`, without ``pi`` / ``mu`` matrices).
    """
    from .core import FittedZIVA, fit, resolve_device, rule_pi_ridge
    from .data import ORDER_MAX_CELLS, PreparedData, log_normalise
    from .fileio import atomic_write, check_free_space, check_writable
    from .ordering import order_genes
    from .settings import ZivaSettings

    s = ZivaSettings(seed=seed, **options)
    if s.authors:
        raise ValueError("mode='authors' trains on the full batch; it cannot stream from disk")
    if s.pi_ridge == "select":  # one fit only: the held-out comparison would double the disk passes
        s = ZivaSettings(seed=seed, **{**options, "pi_ridge": 0.0})
    out = Path(output)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists; pass overwrite=True to replace it")
    if out.resolve() == Path(input).resolve():
        raise InputError(f"{out}: is the input file; choose another name")
    check_writable(out)
    dev = resolve_device(device)
    rows = H5adRows(input, layer)
    try:
        if layer is None:
            check_not_log_transformed(rows.uns, str(input), RAW_COUNTS_HINT)
        n, g = rows.shape
        check_free_space(out, 4 * n * g)
        sc = scan(rows, s.seed, ORDER_MAX_CELLS, block_cells)
        check_non_integers(sc.n_non_integer, sc.n_nonzero, sc.largest, str(input), RAW_COUNTS_HINT)
        if sc.n_non_integer:
            warnings.warn(rounding_note(sc.n_non_integer, str(input)), RoundedInputWarning, stacklevel=2)
        keep_cells = np.flatnonzero(sc.cell_totals > 0)
        keep_genes = np.flatnonzero(sc.gene_totals > 0)
        if keep_cells.size < 2:
            raise InputError(f"{input}: fewer than two cells with counts; nothing to learn")
        sample = sc.sample[sc.cell_totals[sc.sample_rows] > 0][:, keep_genes]
        lib_sample = sc.cell_totals[sc.sample_rows][sc.cell_totals[sc.sample_rows] > 0]
        order = order_genes(log_normalise(sp.csr_matrix(sample), lib_sample), method=s.gene_order, seed=s.seed)
        # pi_ridge="auto": the rule's statistic from the scan's sample of cells
        s, rule = rule_pi_ridge(s, sample, lib_sample, sc.gene_totals[keep_genes], verbose=verbose)
        library = sc.cell_totals[keep_cells].astype(np.float32)
        prepared = PreparedData(matrix=None, keep_cells=keep_cells, keep_genes=keep_genes, order=order,
                                library=library, shape=(n, g),
                                gene_totals=np.asarray(sc.gene_totals, dtype=np.float64)[keep_genes][order])
        data = StreamedBatches(rows, keep_cells, prepared.columns, library, dev, block_cells)
        model, plan, _ = fit(prepared, s, dev, verbose=verbose, progress=progress, data=data)
        obs, var = rows.names()
        uns = {**{k: v for k, v in plan.s.recorded().items() if v is not None},
               "epochs_trained": int(plan.stopped_epoch), "train_seconds": float(plan.train_seconds),
               "device": str(dev), "layer": layer if layer is not None else "X", "streamed": True}
        if rule is not None:
            uns["sampling_zero_share"] = float(rule["sampling_zero_share"])
        uns["gene_order"] = "auto" if isinstance(s.gene_order, str) else "given"
        t0 = time.perf_counter()
        with atomic_write(out, suffix=".h5ad") as tmp:
            f, X = _output_file(tmp, obs, var, n, g, uns)
            try:
                _write_output(model, data, prepared, s, X, block_cells)
            finally:
                f.close()
        return FittedZIVA(module=model, gene_order=prepared.full_gene_order(), mode=s.mode, history=plan.history,
                          device=str(dev), train_seconds=plan.train_seconds, stopped_epoch=plan.stopped_epoch,
                          config={**plan.s.recorded(), "write_seconds": time.perf_counter() - t0},
                          pi_ridge_selection=rule)
    finally:
        rows.close()


def _write_output(model, data: StreamedBatches, prepared, s, X, block_cells: int) -> None:
    """The output of every file row, a block of rows at a time (cells left out are zero)."""
    from .allocator import reuse_freed_memory
    from .core import impute_batch_cells, impute_rule, log1p_table

    model.eval()
    n, g = prepared.shape
    cols = prepared.columns
    keep = prepared.keep_cells
    step = min(block_cells, impute_batch_cells(g))
    with torch.no_grad(), reuse_freed_memory(next(model.parameters()).device.type):
        table = log1p_table(model, s, float(prepared.library.max()), data.n)
        for start in range(0, n, block_cells):
            stop = min(start + block_cells, n)
            dense = np.zeros((stop - start, g), dtype=np.float32)
            lo, hi = np.searchsorted(keep, [start, stop])
            for a in range(lo, hi, step):
                idx = np.arange(a, min(a + step, hi))
                x, lib = data.get(idx)
                pi, mu, theta, _, _ = model(x, lib, sample=False)
                dense[np.ix_(keep[idx] - start, cols)] = impute_rule(x, pi, mu, theta, s, table).cpu().numpy()
            X[start:stop] = dense
