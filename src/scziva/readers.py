"""Readers of count matrices in the formats users have: ``.h5ad``, text tables and 10x folders.

Shared by the command line (``scziva impute``) and the benchmark's loaders
(:mod:`scziva_bench.data.io`), so that both read names and values the same way:

* ``.h5ad``: ``X``, or a named layer (``"raw"`` reads ``adata.raw``); everything else kept.
* ``.csv`` / ``.tsv`` / ``.txt`` (optionally ``.gz``): a table whose first column holds
  the row names and whose header holds the column names, with or without a name above
  the row names (R's ``write.table`` leaves it out). Names are read as text exactly as
  written (``000`` stays ``000``; pandas' type guessing and its renaming of duplicates to
  ``g.1`` never touch them) and checked non-empty and unique as they will be written.
  Which axis holds the cells is never guessed: ``orientation`` is ``"cells_x_genes"``
  (default) or ``"genes_x_cells"``, and names that contradict it raise an error.
* a 10x Genomics folder (or its ``matrix.mtx[.gz]`` file) with ``barcodes.tsv[.gz]``
  and ``features.tsv[.gz]`` / ``genes.tsv[.gz]``.

:func:`read_any` returns a :class:`RawCounts` (matrix and names, not yet checked as
counts: :func:`scziva.validate.check_counts` does that). Bad input raises
:class:`scziva.errors.InputError` with one sentence naming the file.
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

from .errors import InputError
from .validate import check_names, orientation_conflict

__all__ = ["ORIENTATIONS", "OrientationWarning", "RawCounts", "read_any", "detect_format",
           "check_file", "strip_ext", "few"]

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
def strip_ext(name: str) -> str:
    """File name without its data extensions (``a.csv.gz`` -> ``a``)."""
    low = name.lower()
    for ext in (".gz", ".bz2", ".xz"):
        if low.endswith(ext):
            name, low = name[: -len(ext)], low[: -len(ext)]
    for ext in (".h5ad", ".csv", ".tsv", ".tab", ".txt", ".mtx"):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = str(fmt).lower().lstrip(".")
        if key not in _FORMAT_ALIASES:
            raise InputError(
                f"{str(path)}: unknown format {fmt!r}; use one of "
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
        f"{str(path)}: unknown file extension; expected .h5ad, .csv[.gz], .tsv[.gz], "
        ".txt[.gz], a 10x folder or matrix.mtx[.gz] (or pass fmt=...)"
    )


def check_file(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise InputError(f"{str(path)}: {what} not found")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{str(path)}: {what} is empty")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return open(path, "rt", newline="", encoding="utf-8-sig")  # -sig: drop an Excel BOM


def few(names, n: int = 3) -> str:
    names = list(names)
    shown = ", ".join(repr(str(x)) for x in names[:n])
    return shown + (", ..." if len(names) > n else "")


def _check_unique(names, kind: str, path: Path) -> None:
    """Every name non-empty and unique (scziva.validate.check_names), for every format."""
    check_names(names, kind, str(path))


def _check_orientation(cells: pd.Index, genes: pd.Index, path: Path, orientation: str,
                       flip_hint: str | None = None) -> None:
    """Raise when names contradict the declared orientation; warn on a suspicious shape.
    ``flip_hint``: how the caller's user reads the table the other way round (default:
    "pass orientation=...")."""
    example = orientation_conflict(cells, genes)
    if example is not None:
        other = "genes_x_cells" if orientation == "cells_x_genes" else "cells_x_genes"
        where = "rows" if orientation == "cells_x_genes" else "columns"
        declared = (f"orientation={orientation!r} was declared" if flip_hint is None
                    else f"the {where} were read as cells")
        flip = flip_hint or f"pass orientation={other!r}"
        raise InputError(
            f"{str(path)}: {declared} but the cell names look like genes and/or the gene "
            f"names look like cells (e.g. {example}); {flip} if the table is the other way round"
        )
    n_cells, n_genes = len(cells), len(genes)
    if n_cells > 20 * n_genes and n_cells >= 5000:
        warnings.warn(
            f"{str(path)}: read as {n_cells} cells x {n_genes} genes "
            f"(orientation={orientation!r}); far more cells than genes is unusual, "
            "check that the orientation is right",
            OrientationWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- readers
class RawCounts:
    """What a format reader found: a cells x genes matrix and its annotations."""

    def __init__(self, X, obs_names, var_names, adata=None, var=None, layer=None):
        self.X = X
        self.obs_names = pd.Index([str(x) for x in obs_names])
        self.var_names = pd.Index([str(x) for x in var_names])
        self.adata = adata  # the full AnnData for .h5ad input
        self.var = var
        self.layer = layer  # for .h5ad: the layer read ("raw" for adata.raw), None for X

    @property
    def uns(self):
        """The ``uns`` that describes the values read: the AnnData's when they came from
        its ``X`` (scanpy records ``uns["log1p"]`` for X), else None (a counts layer or
        ``.raw`` is not what ``uns["log1p"]`` describes)."""
        return self.adata.uns if self.adata is not None and self.layer is None else None


_SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "vertical bar"}


def _separator_hint(first_line: str, sep: str) -> str:
    """" (the header is ';'-separated ...)" when the first line splits better on another
    separator than the one the file name implies; "" otherwise."""
    if sep not in _SEPARATORS:
        return ""
    mine = first_line.count(sep)
    other = max((c for c in _SEPARATORS if c != sep), key=first_line.count)
    if first_line.count(other) <= mine:
        return ""
    want = "a .csv file must be comma-separated" if sep == "," else "a .tsv file must be tab-separated"
    fix = {",": "rename it to .csv", "\t": "rename it to .tsv"}.get(other, "save it comma- or tab-separated")
    return f" (the header looks {_SEPARATORS[other]}-separated ({other!r}); {want}: {fix})"


def _read_table(path: Path, kind: str, orientation: str, flip_hint: str | None = None) -> RawCounts:
    check_file(path)
    with _open_text(path) as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError(f"{str(path)}: the first line (header) is empty")
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
        # header=None: pandas never sees the names (they come from `header`, as written);
        # the row names as text (dtype str), and only an empty field is a missing value
        # ("NA" is a cell name, or a non-numeric value reported as such).
        body = pd.read_csv(
            path, sep=sep, header=None, skiprows=1, index_col=0, dtype={0: str},
            keep_default_na=False, na_values=[""], engine="c", low_memory=False,
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{str(path)}: no data rows below the header") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{str(path)}: cannot be parsed as a table ({msg})") from None
    n_data = body.shape[1]
    if n_data == 0:
        raise InputError(f"{str(path)}: the table has row names but no value columns"
                         f"{_separator_hint(first, sep)}")
    if len(header) == n_data + 1:  # header names the row-name column too
        col_names = header[1:]
    elif len(header) == n_data:  # R write.table style: no name above the row names
        col_names = header
    else:
        raise InputError(
            f"{str(path)}: the header has {len(header)} field(s) but the rows have "
            f"{n_data + 1}; expected one name per value column (plus, optionally, one "
            f"for the row-name column){_separator_hint(first, sep)}"
        )
    if body.index.isna().any():
        pos = int(np.flatnonzero(body.index.isna())[0])
        raise InputError(f"{str(path)}: row {pos + 1} (line {pos + 2}) has no row name")
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
                    f"{str(path)}: non-numeric value {col.iloc[i]!r} at row "
                    f"{body.index[i]!r} (line {i + 2}), column {name!r}"
                )
            body[name] = num
    values = body.to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    if missing.any():
        i, j = (int(v[0]) for v in np.nonzero(missing))
        raise InputError(
            f"{str(path)}: {int(missing.sum())} missing value(s), the first at row "
            f"{body.index[i]!r} (line {i + 2}), column {body.columns[j]!r}"
        )
    if orientation == "cells_x_genes":
        cells, genes = body.index, body.columns
    else:
        values = values.T
        cells, genes = body.columns, body.index
    _check_orientation(cells, genes, path, orientation, flip_hint)
    return RawCounts(values, cells, genes)


def _read_names_file(path: Path, what: str) -> pd.DataFrame:
    """A 10x barcodes/features file: tab-separated, no header, the same number of fields
    on every line; "NA" is a name like any other."""
    try:
        tab = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False,
                          na_values=[], skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{str(path)}: is empty (no {what}); a 10x {what} file has one "
                         "line per " + ("cell" if what == "barcodes" else "gene")) from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{str(path)}: cannot be parsed as a tab-separated {what} file "
                         f"({msg}); every line needs the same number of fields") from None
    if tab.isna().to_numpy().any():
        i = int(np.flatnonzero(tab.isna().any(axis=1).to_numpy())[0])
        n = int(tab.iloc[i].notna().sum())
        raise InputError(f"{str(path)}: line {i + 1} has {n} field(s) but the first has "
                         f"{tab.shape[1]}; every line needs the same number of fields")
    return tab


def _find_one(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for ext in ("", ".gz"):
            cand = folder / f"{stem}{ext}"
            if cand.is_file():
                return cand
    return None


def _read_10x(path: Path) -> RawCounts:
    if not path.exists():
        raise InputError(f"{str(path)}: 10x folder or matrix file not found")
    folder = path if path.is_dir() else path.parent
    mtx = path if path.is_file() else _find_one(folder, ("matrix.mtx",))
    if mtx is None:
        cands = sorted(folder.glob("*matrix.mtx*"))
        if len(cands) != 1:
            raise InputError(
                f"{str(folder)}: no matrix.mtx[.gz] file in this 10x folder"
                if not cands else
                f"{str(folder)}: several *matrix.mtx files ({few(c.name for c in cands)}); "
                "pass the one to read"
            )
        mtx = cands[0]
    prefix = mtx.name[: mtx.name.lower().find("matrix.mtx")]
    barcodes = _find_one(folder, (f"{prefix}barcodes.tsv",))
    features = _find_one(folder, (f"{prefix}features.tsv", f"{prefix}genes.tsv"))
    for f, what in ((barcodes, "barcodes.tsv[.gz]"), (features, "features.tsv[.gz] or genes.tsv[.gz]")):
        if f is None:
            raise InputError(f"{str(folder)}: 10x folder has no {what} file")
    for f in (mtx, barcodes, features):
        check_file(f)
    try:
        M = scipy.io.mmread(str(mtx))
    except Exception as exc:  # scipy raises ValueError / others on malformed files
        raise InputError(f"{str(mtx)}: not a readable Matrix Market file ({exc})") from None
    M = sp.csr_matrix(M).T.tocsr()  # 10x stores genes x cells
    bc = _read_names_file(barcodes, "barcodes")
    ft = _read_names_file(features, "features")
    if bc.shape[0] != M.shape[0]:
        raise InputError(
            f"{str(barcodes)}: {bc.shape[0]} barcodes but {str(mtx)} has "
            f"{M.shape[0]} cells (columns)"
        )
    if ft.shape[0] != M.shape[1]:
        raise InputError(
            f"{str(features)}: {ft.shape[0]} features but {str(mtx)} has "
            f"{M.shape[1]} genes (rows)"
        )
    # Gene ids (first column) are unique by construction in 10x output; symbols are
    # kept in var["gene_symbols"] (they repeat, e.g. for paralogues).
    _check_unique(bc.iloc[:, 0], "cell", barcodes)
    _check_unique(ft.iloc[:, 0], "gene", features)
    var = pd.DataFrame(index=pd.Index(ft.iloc[:, 0].astype(str).to_numpy()))  # unnamed (h5ad keys are str)
    if ft.shape[1] > 1:
        var["gene_symbols"] = ft.iloc[:, 1].astype(str).to_numpy()
    if ft.shape[1] > 2:
        var["feature_types"] = ft.iloc[:, 2].astype(str).to_numpy()
    return RawCounts(M, bc.iloc[:, 0], var.index, var=var)


def _read_h5ad_counts(path: Path, layer: str | None, counts_layer_first: bool = True) -> RawCounts:
    check_file(path)
    try:
        with warnings.catch_warnings():  # the names are checked below, naming the file
            warnings.filterwarnings("ignore", message=r".*names are not unique")
            adata = ad.read_h5ad(path)
    except Exception as exc:
        raise InputError(f"{str(path)}: not a readable .h5ad file ({type(exc).__name__}: {exc})") from None
    if layer == "raw":  # scanpy keeps unprocessed counts in .raw (possibly more genes)
        if adata.raw is None:
            raise InputError(f"{str(path)}: layer='raw' was asked for but the file has no .raw")
        adata = adata.raw.to_adata()
        X = adata.X
    else:
        if layer is None and counts_layer_first and "counts" in adata.layers:
            layer = "counts"
        if layer is not None and layer not in adata.layers:
            raise InputError(f"{str(path)}: has no layer {layer!r} (layers: {list(adata.layers)})")
        X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise InputError(f"{str(path)}: X is empty" + (" and there is no 'counts' layer" if counts_layer_first
                                                         else f"; name the counts layer (layers: {list(adata.layers)})"))
    _check_unique(adata.obs_names, "cell", path)
    _check_unique(adata.var_names, "gene", path)
    return RawCounts(X, adata.obs_names, adata.var_names, adata=adata, layer=layer)


def read_any(path, fmt: str | None = None, orientation: str = "cells_x_genes", layer: str | None = None, *,
             counts_layer_first: bool = True, flip_hint: str | None = None) -> RawCounts:
    """Read ``path`` (format from its name, or ``fmt``) as cells x genes.

    ``orientation``: of a text table (10x is genes x cells on disk, ``.h5ad`` cells x
    genes). ``layer``: of an ``.h5ad``; None means ``layers["counts"]`` when present and
    ``counts_layer_first``, else ``X``. ``flip_hint``: the words that tell the user how
    to read a table the other way round (the command line names its flag).
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    try:
        if kind == "h5ad":
            return _read_h5ad_counts(path, layer, counts_layer_first)
        if kind == "10x":
            return _read_10x(path)
        return _read_table(path, kind, orientation, flip_hint)
    except OSError as exc:  # permission, I/O error, a file that vanished: one line too
        where = exc.filename or path
        raise InputError(f"{str(where)}: cannot be read ({exc.strerror or exc})") from None
