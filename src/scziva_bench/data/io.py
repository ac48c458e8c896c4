"""Read count matrices from users' files into the benchmark's dataset contract.

Every reader returns an :class:`anndata.AnnData` laid out as ``docs/contract.md`` asks
for a dataset: cells x genes, ``layers["counts"]`` a ``scipy.sparse.csr_matrix`` of
float32 integer counts, ``X`` the same counts, ``uns["dataset_id"]`` a str and
``uns["notes"]`` a list of str saying what was changed on the way in (rounding, QC).

Formats (chosen from the file name, or given with ``fmt``):

* ``.h5ad``: ``layers["counts"]`` when present, else ``X``; everything else is kept.
* ``.csv`` / ``.tsv`` / ``.txt`` (optionally ``.gz``): a table whose first column holds
  the row names and whose header holds the column names. Which axis holds the cells is
  never guessed: ``orientation`` is ``"cells_x_genes"`` (default) or ``"genes_x_cells"``.
  A declared orientation that the row/column names contradict raises an error.
* a 10x Genomics folder (or its ``matrix.mtx[.gz]`` file) with ``barcodes.tsv[.gz]``
  and ``features.tsv[.gz]`` / ``genes.tsv[.gz]``.

Bad input raises :class:`scziva.errors.InputError` with one sentence naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scziva.errors import InputError
from scziva.fileio import atomic_write, h5ad_size_estimate
from scziva.readers import ORIENTATIONS, OrientationWarning, RawCounts, check_file, few, read_any, strip_ext
from scziva.validate import check_counts, check_names

__all__ = [
    "OrientationWarning",
    "h5_safe",
    "read_counts",
    "read_labels",
    "qc",
    "write_h5ad_atomic",
    "read_h5ad",
]

# --------------------------------------------------------------------------- helpers
def _to_csr(M) -> sp.csr_matrix:
    M = sp.csr_matrix(M, dtype=np.float32)
    M.eliminate_zeros()
    M.sort_indices()
    return M


def _validated(raw: RawCounts, path: Path, round_values: bool = False) -> tuple[sp.csr_matrix, list[str]]:
    """The counts as CSR float32, and notes on what was changed. Values that are not counts
    (log-transformed or normalised, or uns['log1p'] set) stop here, by the check the
    command line and ZIVAimpute share (scziva.validate.check_counts)."""
    hint = ("point layer= at the raw counts (e.g. 'counts' or 'raw')" if raw.adata is not None
            else "give the raw counts")
    with warnings.catch_warnings():
        # The note goes into uns["notes"]; the warning would only repeat it.
        warnings.filterwarnings("ignore", message=".*non-integer value.*")
        M, notes = check_counts(raw.X, what=str(path), uns=raw.uns, hint=hint,
                                allow_round="all" if round_values else True)
    return _to_csr(M), list(notes)


def _align(M: sp.csr_matrix, raw: RawCounts, cells: pd.Index, genes: pd.Index, path: Path, ref: Path):
    """Reorder ``M`` (named by ``raw``) to the given cells and genes."""
    for have, want, kind in ((raw.obs_names, cells, "cell"), (raw.var_names, genes, "gene")):
        if len(have) != len(want) or not have.isin(want).all() or not want.isin(have).all():
            extra = have.difference(want)
            lack = want.difference(have)
            detail = (f"e.g. {few(lack)} missing" if len(lack) else f"e.g. {few(extra)} not in {ref.name}")
            raise InputError(
                f"{str(path)}: its {len(have)} {kind} names do not match the "
                f"{len(want)} of {str(ref)} ({detail})"
            )
    r = raw.obs_names.get_indexer(cells)
    c = raw.var_names.get_indexer(genes)
    return _to_csr(M[r][:, c])


def read_labels(adata: ad.AnnData, labels_path, label_column: str | None = None) -> ad.AnnData:
    """Attach ``obs["cell_type"]`` from a CSV/TSV table (first column = cell names).

    ``label_column`` picks the column; when ``None`` the table must have a
    ``cell_type`` column or exactly one column. Every cell must have a label.
    Works in place and returns ``adata``.
    """
    path = Path(labels_path)
    check_file(path, "labels file")
    low = path.name.lower().removesuffix(".gz")
    sep = "\t" if low.endswith((".tsv", ".tab", ".txt")) else ","
    try:
        tab = pd.read_csv(path, sep=sep, index_col=0, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{str(path)}: cannot be parsed as a labels table ({exc})") from None
    tab.index = tab.index.astype(str)
    if label_column is None:
        if "cell_type" in tab.columns:
            label_column = "cell_type"
        elif tab.shape[1] == 1:
            label_column = tab.columns[0]
        else:
            raise InputError(
                f"{str(path)}: has columns {list(tab.columns)}; say which holds the "
                "labels with label_column=..."
            )
    if label_column not in tab.columns:
        raise InputError(f"{str(path)}: has no column {label_column!r} (columns: {list(tab.columns)})")
    check_names(tab.index, "cell", str(path))
    missing = adata.obs_names.difference(tab.index)
    if len(missing):
        raise InputError(
            f"{str(path)}: no label for {len(missing)} of {adata.n_obs} cell(s) "
            f"({few(missing)})"
        )
    labels = tab.loc[adata.obs_names, label_column]
    if labels.isna().any():
        cell = labels.index[labels.isna().to_numpy()][0]
        raise InputError(f"{str(path)}: empty label in column {label_column!r} for cell {cell!r}")
    adata.obs["cell_type"] = pd.Categorical(labels.to_numpy())
    return adata


def read_counts(
    path,
    fmt: str | None = None,
    orientation: str = "cells_x_genes",
    dataset_id: str | None = None,
    truth_path=None,
    labels_path=None,
    label_column: str | None = None,
    layer: str | None = None,
    round_values: bool = False,
    test_path=None,
) -> ad.AnnData:
    """Read a count matrix into the dataset contract (see module docstring).

    Parameters
    ----------
    path : a ``.h5ad``, ``.csv[.gz]``, ``.tsv[.gz]``, ``.txt[.gz]`` file or a 10x folder.
    fmt : force a format (``"h5ad"``, ``"csv"``, ``"tsv"``, ``"txt"``, ``"10x"``).
    orientation : for text tables, ``"cells_x_genes"`` (rows are cells) or
        ``"genes_x_cells"`` (rows are genes). Ignored for ``.h5ad`` (always cells x
        genes) and 10x folders (always genes x cells on disk).
    dataset_id : stored in ``uns["dataset_id"]``; default: the file name without its
        extensions (for ``.h5ad``, an existing ``uns["dataset_id"]`` first).
    truth_path : optional file with the true counts of the same cells and genes, in the
        same format and orientation (e.g. ``SplatDrop_TrueCounts.csv`` beside
        ``SplatDrop_counts.csv``); adds ``layers["truth"]`` and ``layers["mask"]``
        (1 where the truth is > 0 and the observed count is 0).
    labels_path, label_column : attach ``obs["cell_type"]`` from a table (see
        :func:`read_labels`). For ``.h5ad`` input without ``labels_path``,
        ``label_column`` names an ``obs`` column to copy into ``obs["cell_type"]``.
    layer : for ``.h5ad`` input, the layer holding the counts (default ``"counts"``
        when present, else ``X``; ``"raw"`` reads ``adata.raw``).
    test_path : optional file with the test half of a molecular cross-validation split
        whose train half is ``path`` (Open Problems' denoising task writes ``train.h5ad``
        and ``test.h5ad``, each with ``layers["counts"]``, the same cells and genes, and
        ``uns["train_sum"]`` in the test file); adds ``layers["mcv_test"]``, which scenario
        ``split`` scores as MCV. A ``train_sum`` that differs from the train file's total
        (files of two different splits) is refused.
    round_values : round non-integer values however many there are (a note says how
        many), for data published only as normalised values (Yan et al.'s RPKM, rounded as
        the scZiva authors do). Without it, mostly non-integer values are refused as not
        counts.
    """
    if orientation not in ORIENTATIONS:
        raise InputError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    path = Path(path)
    raw = read_any(path, fmt, orientation, layer)
    counts, notes = _validated(raw, path, round_values)

    if raw.adata is not None:
        adata = raw.adata
        old_notes = adata.uns.get("notes", [])
        notes = [str(n) for n in np.atleast_1d(old_notes)] + notes if len(old_notes) else notes
        adata.X = counts
        adata.layers["counts"] = counts.copy()
        if dataset_id is None:
            dataset_id = adata.uns.get("dataset_id")
        if label_column is not None and labels_path is None:
            if label_column not in adata.obs:
                raise InputError(f"{str(path)}: obs has no column {label_column!r}")
            adata.obs["cell_type"] = pd.Categorical(adata.obs[label_column].astype(str))
    else:
        obs = pd.DataFrame(index=raw.obs_names)
        var = raw.var if raw.var is not None else pd.DataFrame(index=raw.var_names)
        adata = ad.AnnData(X=counts, obs=obs, var=var)
        adata.layers["counts"] = counts.copy()
    if "cell_type" in adata.obs and not isinstance(adata.obs["cell_type"].dtype, pd.CategoricalDtype):
        adata.obs["cell_type"] = pd.Categorical(adata.obs["cell_type"].astype(str))

    if truth_path is not None:
        truth_path = Path(truth_path)
        traw = read_any(truth_path, fmt, orientation, layer)
        truth, tnotes = _validated(traw, truth_path, round_values)
        truth = _align(truth, traw, adata.obs_names, adata.var_names, truth_path, path)
        notes += tnotes
        adata.layers["truth"] = truth
        pos_truth = (truth > 0).astype(np.uint8)
        pos_counts = (adata.layers["counts"] > 0).astype(np.uint8)
        mask = sp.csr_matrix(pos_truth - pos_truth.multiply(pos_counts), dtype=np.uint8)
        mask.eliminate_zeros()
        adata.layers["mask"] = mask

    if test_path is not None:
        if truth_path is not None:
            raise InputError(f"{str(path)}: give either truth_path (true counts) or test_path "
                             "(the test half of an MCV split), not both")
        adata.layers["mcv_test"] = _read_test_half(Path(test_path), path, adata, fmt, orientation, layer,
                                                   round_values, notes)

    if labels_path is not None:
        read_labels(adata, labels_path, label_column)

    adata.uns["dataset_id"] = str(dataset_id) if dataset_id is not None else strip_ext(path.name)
    adata.uns["notes"] = list(notes)
    return adata


def _read_test_half(test_path: Path, path: Path, adata, fmt, orientation, layer, round_values, notes):
    """The test molecules of an MCV split (:func:`read_counts`' ``test_path``), aligned to
    the train file's cells and genes; checked against the test file's ``train_sum``."""
    traw = read_any(test_path, fmt, orientation, layer)
    test, tnotes = _validated(traw, test_path, round_values)
    test = _align(test, traw, adata.obs_names, adata.var_names, test_path, path)
    notes += tnotes
    train_sum = traw.adata.uns.get("train_sum") if traw.adata is not None else None
    if train_sum is not None:
        try:
            want = float(np.asarray(train_sum).ravel()[0])
        except (TypeError, ValueError, IndexError):
            raise InputError(f"{str(test_path)}: uns['train_sum'] is not a number ({train_sum!r})") from None
        have = float(adata.layers["counts"].sum(dtype=np.float64))
        if not np.isfinite(want) or abs(want - have) > 0.5:
            raise InputError(f"{str(test_path)}: uns['train_sum'] = {want:g}, but {path.name} holds "
                             f"{have:g} counts: these are not the two halves of one split")
    if test.nnz == 0:
        raise InputError(f"{str(test_path)}: the test half has no counts")
    return test


# --------------------------------------------------------------------------- QC
def qc(
    adata: ad.AnnData,
    min_cells_per_gene: int = 1,
    min_genes_per_cell: int = 1,
    min_counts_per_cell: float = 0,
) -> ad.AnnData:
    """Drop poor cells, then rarely seen genes; return a filtered copy.

    Cells are kept when they have at least ``min_genes_per_cell`` detected genes and at
    least ``min_counts_per_cell`` counts; then genes are kept when detected (count > 0)
    in at least ``min_cells_per_gene`` of the kept cells. One pass, in that order. What
    was removed is appended to ``uns["notes"]``. Raises :class:`InputError` naming the
    dataset when no cell or no gene is left.
    """
    name = adata.uns.get("dataset_id", "dataset")
    C = adata.layers["counts"] if "counts" in adata.layers else adata.X
    C = sp.csr_matrix(C)
    genes_per_cell = np.asarray((C > 0).sum(axis=1)).ravel()
    counts_per_cell = np.asarray(C.sum(axis=1)).ravel()
    keep_cells = (genes_per_cell >= min_genes_per_cell) & (counts_per_cell >= min_counts_per_cell)
    if not keep_cells.any():
        raise InputError(
            f"dataset {name!r}: QC removed all {adata.n_obs} cells (min_genes_per_cell="
            f"{min_genes_per_cell}, min_counts_per_cell={min_counts_per_cell})"
        )
    cells_per_gene = np.asarray((C[keep_cells] > 0).sum(axis=0)).ravel()
    keep_genes = cells_per_gene >= min_cells_per_gene
    if not keep_genes.any():
        raise InputError(
            f"dataset {name!r}: QC removed all {adata.n_vars} genes (min_cells_per_gene="
            f"{min_cells_per_gene})"
        )
    out = adata[keep_cells, keep_genes].copy()
    n_cells_out = int((~keep_cells).sum())
    n_genes_out = int((~keep_genes).sum())
    notes = [str(n) for n in np.atleast_1d(adata.uns.get("notes", []))]
    notes.append(
        f"qc: removed {n_cells_out} of {adata.n_obs} cells (fewer than {min_genes_per_cell} "
        f"detected genes or {min_counts_per_cell} counts) and {n_genes_out} of "
        f"{adata.n_vars} genes (detected in fewer than {min_cells_per_gene} cells)"
    )
    out.uns["notes"] = notes
    out.uns["qc"] = {
        "min_cells_per_gene": int(min_cells_per_gene),
        "min_genes_per_cell": int(min_genes_per_cell),
        "min_counts_per_cell": float(min_counts_per_cell),
        "cells_removed": n_cells_out,
        "genes_removed": n_genes_out,
    }
    return out


# --------------------------------------------------------------------------- h5ad I/O
def _csr32(M):
    if sp.issparse(M):
        if isinstance(M, sp.csr_matrix) and M.dtype == np.float32:
            return M
        return sp.csr_matrix(M, dtype=np.float32)
    return sp.csr_matrix(np.asarray(M, dtype=np.float32))


def write_h5ad_atomic(adata: ad.AnnData, path) -> Path:
    """Write ``adata`` to ``path`` through a temporary file and ``os.replace``.

    ``layers["counts"]`` (and ``X`` when it is the counts) are stored as CSR float32; the
    caller's object is not changed. A reader never sees a half-written file. The free
    disk space is checked first (h5py can crash the process when the disk fills during
    a write); it and any other file-system error raise
    :class:`scziva.errors.OutputError` (an InputError) with one line naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create the output folder ({exc.strerror})") from None
    out = adata
    if "counts" in adata.layers:
        counts = adata.layers["counts"]
        fixed = _csr32(counts)
        if fixed is not counts:
            out = adata.copy()
            x_is_counts = adata.X is counts
            out.layers["counts"] = fixed
            if x_is_counts:
                out.X = fixed.copy()
    with atomic_write(path, need_bytes=h5ad_size_estimate(out)) as tmp:
        out.write_h5ad(tmp)
    return path


def read_h5ad(path) -> ad.AnnData:
    """Read a contract ``.h5ad``; ``uns["notes"]`` comes back as a list of str."""
    path = Path(path)
    check_file(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(f"{str(path)}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from None
    if "notes" in adata.uns:
        adata.uns["notes"] = [str(n) for n in np.atleast_1d(adata.uns["notes"])]
    return adata


def h5_safe(value):
    """A copy of ``value`` that h5ad can store in ``uns`` (None -> "None", tuples -> lists,
    anything unusual -> its repr)."""
    if isinstance(value, dict):
        return {str(k): h5_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [h5_safe(v) for v in value]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items) or \
                all(isinstance(v, str) for v in items):
            return items
        return repr(list(value))
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
