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

import csv
import gzip
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from scziva.errors import InputError
from scziva.fileio import atomic_write, h5ad_size_estimate
from scziva.validate import check_counts, check_names, orientation_conflict

__all__ = [
    "OrientationWarning",
    "read_counts",
    "read_labels",
    "qc",
    "write_h5ad_atomic",
    "read_h5ad",
]

ORIENTATIONS = ("cells_x_genes", "genes_x_cells")

_FORMAT_ALIASES = {
    "h5ad": "h5ad",
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "txt": "txt",
    "10x": "10x",
    "mtx": "10x",
    "10x_mtx": "10x",
}


class OrientationWarning(UserWarning):
    """The table's shape suggests the declared orientation may be the wrong one."""


# --------------------------------------------------------------------------- helpers
def _display(path) -> str:
    return str(path)


def _strip_ext(name: str) -> str:
    """File name without its data extensions (``a.csv.gz`` -> ``a``)."""
    low = name.lower()
    for ext in (".gz", ".bz2", ".xz"):
        if low.endswith(ext):
            name, low = name[: -len(ext)], low[: -len(ext)]
    for ext in (".h5ad", ".csv", ".tsv", ".tab", ".txt", ".mtx"):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = str(fmt).lower().lstrip(".")
        if key not in _FORMAT_ALIASES:
            raise InputError(
                f"{_display(path)}: unknown format {fmt!r}; use one of "
                f"{sorted(set(_FORMAT_ALIASES))}"
            )
        return _FORMAT_ALIASES[key]
    if path.is_dir():
        return "10x"
    low = path.name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    if low.endswith(".h5ad"):
        return "h5ad"
    if low.endswith(".mtx"):
        return "10x"
    for ext, kind in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".txt", "txt")):
        if low.endswith(ext):
            return kind
    raise InputError(
        f"{_display(path)}: unknown file extension; expected .h5ad, .csv[.gz], .tsv[.gz], "
        ".txt[.gz], a 10x folder or matrix.mtx[.gz] (or pass fmt=...)"
    )


def _check_file(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise InputError(f"{_display(path)}: {what} not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{_display(path)}: {what} is empty")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, "rt", newline="", encoding="utf-8-sig")  # -sig: drop an Excel BOM


def _few(names, n: int = 3) -> str:
    names = list(names)
    shown = ", ".join(repr(str(x)) for x in names[:n])
    return shown + (", ..." if len(names) > n else "")


def _check_unique(names, kind: str, path: Path) -> None:
    """Every name non-empty and unique (scziva.validate.check_names), for every format."""
    check_names(names, kind, _display(path))


def _check_orientation(cells: pd.Index, genes: pd.Index, path: Path, orientation: str) -> None:
    """Raise when names contradict the declared orientation; warn on a suspicious shape."""
    example = orientation_conflict(cells, genes)
    if example is not None:
        other = "genes_x_cells" if orientation == "cells_x_genes" else "cells_x_genes"
        where = "rows" if orientation == "cells_x_genes" else "columns"
        raise InputError(
            f"{_display(path)}: orientation={orientation!r} was declared but the cell "
            f"{where} look like genes and/or the gene names look like cell barcodes "
            f"(e.g. {example}); pass orientation={other!r} if the table is the other way round"
        )
    n_cells, n_genes = len(cells), len(genes)
    if n_cells > 20 * n_genes and n_cells >= 5000:
        warnings.warn(
            f"{_display(path)}: read as {n_cells} cells x {n_genes} genes "
            f"(orientation={orientation!r}); far more cells than genes is unusual, "
            "check that the orientation is right",
            OrientationWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- readers
class _Raw:
    """What a format reader found: a cells x genes matrix and its annotations."""

    def __init__(self, X, obs_names, var_names, adata=None, var=None):
        self.X = X
        self.obs_names = pd.Index([str(x) for x in obs_names])
        self.var_names = pd.Index([str(x) for x in var_names])
        self.adata = adata  # the full AnnData for .h5ad input
        self.var = var


def _read_table(path: Path, kind: str, orientation: str) -> _Raw:
    _check_file(path)
    with _open_text(path) as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError(f"{_display(path)}: the first line (header) is empty")
    if kind == "txt":
        if "\t" in first:
            kind = "tsv"
        elif "," in first:
            kind = "csv"
    if kind == "csv":
        sep, header = ",", next(csv.reader([first.rstrip("\r\n")], delimiter=","))
    elif kind == "tsv":
        sep, header = "\t", next(csv.reader([first.rstrip("\r\n")], delimiter="\t"))
    else:
        sep, header = r"\s+", first.split()
    try:
        body = pd.read_csv(
            path, sep=sep, header=None, skiprows=1, index_col=0, dtype={0: str},
            engine="c", low_memory=False,
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{_display(path)}: no data rows below the header") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{_display(path)}: cannot be parsed as a table ({msg})") from None
    n_data = body.shape[1]
    if n_data == 0:
        raise InputError(f"{_display(path)}: the table has row names but no value columns")
    if len(header) == n_data + 1:  # header names the row-name column too
        col_names = header[1:]
    elif len(header) == n_data:  # R write.table style: no name above the row names
        col_names = header
    else:
        raise InputError(
            f"{_display(path)}: the header has {len(header)} field(s) but the rows have "
            f"{n_data + 1}; expected one name per value column (plus, optionally, one "
            "for the row-name column)"
        )
    if body.index.isna().any():
        pos = int(np.flatnonzero(body.index.isna())[0])
        raise InputError(f"{_display(path)}: row {pos + 1} (line {pos + 2}) has no row name")
    body.columns = pd.Index([str(c) for c in col_names])
    row_kind, col_kind = ("cell", "gene") if orientation == "cells_x_genes" else ("gene", "cell")
    _check_unique(body.index, row_kind, path)
    _check_unique(body.columns, col_kind, path)
    # Non-numeric entries: name the first one found (column by column).
    for j, name in enumerate(body.columns):
        col = body.iloc[:, j]
        if col.dtype.kind not in "biuf":
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(
                    f"{_display(path)}: non-numeric value {col.iloc[i]!r} at row "
                    f"{body.index[i]!r} (line {i + 2}), column {name!r}"
                )
            body[name] = num
    values = body.to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    if missing.any():
        i, j = (int(v[0]) for v in np.nonzero(missing))
        raise InputError(
            f"{_display(path)}: {int(missing.sum())} missing value(s), the first at row "
            f"{body.index[i]!r} (line {i + 2}), column {body.columns[j]!r}"
        )
    if orientation == "cells_x_genes":
        cells, genes = body.index, body.columns
    else:
        values = values.T
        cells, genes = body.columns, body.index
    _check_orientation(cells, genes, path, orientation)
    return _Raw(values, cells, genes)


def _read_names_file(path: Path, what: str) -> pd.DataFrame:
    """A 10x barcodes/features file: tab-separated, no header, the same number of fields
    on every line; "NA" is a name like any other."""
    try:
        tab = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False,
                          na_values=[], skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{_display(path)}: is empty (no {what}); a 10x {what} file has one "
                         "line per " + ("cell" if what == "barcodes" else "gene")) from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{_display(path)}: cannot be parsed as a tab-separated {what} file "
                         f"({msg}); every line needs the same number of fields") from None
    if tab.isna().to_numpy().any():
        i = int(np.flatnonzero(tab.isna().any(axis=1).to_numpy())[0])
        n = int(tab.iloc[i].notna().sum())
        raise InputError(f"{_display(path)}: line {i + 1} has {n} field(s) but the first has "
                         f"{tab.shape[1]}; every line needs the same number of fields")
    return tab


def _find_one(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for ext in ("", ".gz"):
            cand = folder / f"{stem}{ext}"
            if cand.is_file():
                return cand
    return None


def _read_10x(path: Path) -> _Raw:
    if not path.exists():
        raise InputError(f"{_display(path)}: 10x folder or matrix file not found")
    folder = path if path.is_dir() else path.parent
    mtx = path if path.is_file() else _find_one(folder, ("matrix.mtx",))
    if mtx is None:
        cands = sorted(folder.glob("*matrix.mtx*"))
        if len(cands) != 1:
            raise InputError(
                f"{_display(folder)}: no matrix.mtx[.gz] file in this 10x folder"
                if not cands else
                f"{_display(folder)}: several *matrix.mtx files ({_few(c.name for c in cands)}); "
                "pass the one to read"
            )
        mtx = cands[0]
    prefix = mtx.name[: mtx.name.lower().find("matrix.mtx")]
    barcodes = _find_one(folder, (f"{prefix}barcodes.tsv",))
    features = _find_one(folder, (f"{prefix}features.tsv", f"{prefix}genes.tsv"))
    for f, what in ((barcodes, "barcodes.tsv[.gz]"), (features, "features.tsv[.gz] or genes.tsv[.gz]")):
        if f is None:
            raise InputError(f"{_display(folder)}: 10x folder has no {what} file")
    for f in (mtx, barcodes, features):
        _check_file(f)
    try:
        M = scipy.io.mmread(str(mtx))
    except Exception as exc:  # scipy raises ValueError / others on malformed files
        raise InputError(f"{_display(mtx)}: not a readable Matrix Market file ({exc})") from None
    M = sp.csr_matrix(M).T.tocsr()  # 10x stores genes x cells
    bc = _read_names_file(barcodes, "barcodes")
    ft = _read_names_file(features, "features")
    if bc.shape[0] != M.shape[0]:
        raise InputError(
            f"{_display(barcodes)}: {bc.shape[0]} barcodes but {_display(mtx)} has "
            f"{M.shape[0]} cells (columns)"
        )
    if ft.shape[0] != M.shape[1]:
        raise InputError(
            f"{_display(features)}: {ft.shape[0]} features but {_display(mtx)} has "
            f"{M.shape[1]} genes (rows)"
        )
    # Gene ids (first column) are unique by construction in 10x output; symbols are
    # kept in var["gene_symbols"] (they repeat, e.g. for paralogues).
    _check_unique(bc.iloc[:, 0], "cell", barcodes)
    _check_unique(ft.iloc[:, 0], "gene", features)
    var = pd.DataFrame(index=pd.Index(ft.iloc[:, 0].astype(str)))
    if ft.shape[1] > 1:
        var["gene_symbols"] = ft.iloc[:, 1].astype(str).to_numpy()
    if ft.shape[1] > 2:
        var["feature_types"] = ft.iloc[:, 2].astype(str).to_numpy()
    return _Raw(M, bc.iloc[:, 0], var.index, var=var)


def _read_h5ad_counts(path: Path, layer: str | None) -> _Raw:
    _check_file(path)
    try:
        with warnings.catch_warnings():  # the names are checked below, naming the file
            warnings.filterwarnings("ignore", message=r".*names are not unique")
            adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(f"{_display(path)}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from None
    if layer == "raw":  # scanpy keeps unprocessed counts in .raw (possibly more genes)
        if adata.raw is None:
            raise InputError(f"{_display(path)}: layer='raw' was asked for but the file has no .raw")
        adata = adata.raw.to_adata()
        layer = None
    if layer is None:
        layer = "counts" if "counts" in adata.layers else None
    if layer is not None and layer not in adata.layers:
        raise InputError(f"{_display(path)}: has no layer {layer!r} (layers: {list(adata.layers)})")
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise InputError(f"{_display(path)}: X is empty and there is no 'counts' layer")
    _check_unique(adata.obs_names, "cell", path)
    _check_unique(adata.var_names, "gene", path)
    return _Raw(X, adata.obs_names, adata.var_names, adata=adata)


def _read_any(path, fmt, orientation, layer=None) -> _Raw:
    path = Path(path)
    kind = _detect_format(path, fmt)
    try:
        if kind == "h5ad":
            return _read_h5ad_counts(path, layer)
        if kind == "10x":
            return _read_10x(path)
        return _read_table(path, kind, orientation)
    except OSError as exc:  # permission, I/O error, a file that vanished: one line too
        where = exc.filename or path
        raise InputError(f"{_display(where)}: cannot be read ({exc.strerror or exc})") from None


def _to_csr(M) -> sp.csr_matrix:
    M = sp.csr_matrix(M, dtype=np.float32)
    M.eliminate_zeros()
    M.sort_indices()
    return M


def _fraction_share(X) -> float:
    """Share of the non-zero values that are not integers."""
    vals = np.asarray(X.data if sp.issparse(X) else X, dtype=np.float64).ravel()
    vals = vals[vals != 0]
    return float(np.mean(vals != np.rint(vals))) if vals.size else 0.0


def _validated(raw: _Raw, path: Path) -> tuple[sp.csr_matrix, list[str]]:
    with warnings.catch_warnings():
        # The note goes into uns["notes"]; the warning would only repeat it.
        warnings.filterwarnings("ignore", message=".*non-integer value.*")
        M, notes = check_counts(raw.X, what=_display(path))
    M = _to_csr(M)
    if notes and M.nnz and float(M.data.max()) <= 20 and _fraction_share(raw.X) > 0.5:
        msg = (f"{_display(path)}: most values were non-integer and all <= 20 before rounding; "
               "they look log-transformed or normalised, not counts (for .h5ad, point "
               "layer= at the raw counts, e.g. 'counts' or 'raw')")
        warnings.warn(msg, UserWarning, stacklevel=3)
        notes = list(notes) + [msg]
    return M, list(notes)


def _align(M: sp.csr_matrix, raw: _Raw, cells: pd.Index, genes: pd.Index, path: Path, ref: Path):
    """Reorder ``M`` (named by ``raw``) to the given cells and genes."""
    for have, want, kind in ((raw.obs_names, cells, "cell"), (raw.var_names, genes, "gene")):
        if len(have) != len(want) or not have.isin(want).all() or not want.isin(have).all():
            extra = have.difference(want)
            lack = want.difference(have)
            detail = (f"e.g. {_few(lack)} missing" if len(lack) else f"e.g. {_few(extra)} not in {ref.name}")
            raise InputError(
                f"{_display(path)}: its {len(have)} {kind} names do not match the "
                f"{len(want)} of {_display(ref)} ({detail})"
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
    _check_file(path, "labels file")
    low = path.name.lower().removesuffix(".gz")
    sep = "\t" if low.endswith((".tsv", ".tab", ".txt")) else ","
    try:
        tab = pd.read_csv(path, sep=sep, index_col=0, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{_display(path)}: cannot be parsed as a labels table ({exc})") from None
    tab.index = tab.index.astype(str)
    if label_column is None:
        if "cell_type" in tab.columns:
            label_column = "cell_type"
        elif tab.shape[1] == 1:
            label_column = tab.columns[0]
        else:
            raise InputError(
                f"{_display(path)}: has columns {list(tab.columns)}; say which holds the "
                "labels with label_column=..."
            )
    if label_column not in tab.columns:
        raise InputError(f"{_display(path)}: has no column {label_column!r} (columns: {list(tab.columns)})")
    _check_unique(tab.index, "cell", path)
    missing = adata.obs_names.difference(tab.index)
    if len(missing):
        raise InputError(
            f"{_display(path)}: no label for {len(missing)} of {adata.n_obs} cell(s) "
            f"({_few(missing)})"
        )
    labels = tab.loc[adata.obs_names, label_column]
    if labels.isna().any():
        cell = labels.index[labels.isna().to_numpy()][0]
        raise InputError(f"{_display(path)}: empty label in column {label_column!r} for cell {cell!r}")
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
    """
    if orientation not in ORIENTATIONS:
        raise InputError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    path = Path(path)
    raw = _read_any(path, fmt, orientation, layer)
    counts, notes = _validated(raw, path)

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
                raise InputError(f"{_display(path)}: obs has no column {label_column!r}")
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
        traw = _read_any(truth_path, fmt, orientation, layer)
        truth, tnotes = _validated(traw, truth_path)
        truth = _align(truth, traw, adata.obs_names, adata.var_names, truth_path, path)
        notes += tnotes
        adata.layers["truth"] = truth
        pos_truth = (truth > 0).astype(np.uint8)
        pos_counts = (adata.layers["counts"] > 0).astype(np.uint8)
        mask = sp.csr_matrix(pos_truth - pos_truth.multiply(pos_counts), dtype=np.uint8)
        mask.eliminate_zeros()
        adata.layers["mask"] = mask

    if labels_path is not None:
        read_labels(adata, labels_path, label_column)

    adata.uns["dataset_id"] = str(dataset_id) if dataset_id is not None else _strip_ext(path.name)
    adata.uns["notes"] = list(notes)
    return adata


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
    _check_file(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(f"{_display(path)}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from None
    if "notes" in adata.uns:
        adata.uns["notes"] = [str(n) for n in np.atleast_1d(adata.uns["notes"])]
    return adata
