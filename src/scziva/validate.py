"""Checks on count matrices given by users.

One function, :func:`check_counts`, turns whatever the user passed (numpy array, scipy
sparse matrix, pandas DataFrame, list of lists) into a float32 matrix of non-negative
integer counts, or raises :class:`scziva.errors.InputError` with a sentence that names
what is wrong and where. Non-integer values are rounded with a warning, as the scZiva
authors' own scripts do (``np.round(X).clip(min=0)``), so RPKM-like inputs still work.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import scipy.sparse as sp

from .errors import InputError


#: The largest count accepted. float32 (the dtype every count matrix is converted to)
#: holds every integer up to 2**24 exactly and no longer every integer above it, so
#: larger values could not be returned unchanged ("non-zero counts are kept"). Real
#: UMI or read counts of one gene in one cell stay far below it; a larger value is
#: almost always scaled or corrupt data.
MAX_COUNT = 2 ** 24

#: Above this share of non-integer values among the non-zero ones, the input is refused as
#: not counts (log1p(CP10k) or TPM data are non-integer almost everywhere; counts with a
#: few corrected entries are not).
NON_INTEGER_LIMIT = 0.5

#: What to do about values that are not counts (appended to the error; callers that know
#: the user's options, such as the command line's --layer, pass their own).
RAW_COUNTS_HINT = ("pass the raw counts (for an AnnData, the layer that holds them, e.g. "
                   "layer='counts'); if the values really are counts, round them first")


class RoundedInputWarning(UserWarning):
    """Non-integer values were rounded to the nearest integer count."""


def _values(X):
    """The array of stored values (the non-zeros for sparse input)."""
    return X.data if sp.issparse(X) else X


def _number(v) -> str:
    """A value as the user wrote it: 16777217, 1000000000000, 1e+40 (never 'inf')."""
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def check_values(vals, what: str) -> None:
    """Finite, non-negative, at most :data:`MAX_COUNT`; checked in the input's own dtype
    (before float32, where 1e40 would already be infinite)."""
    if not vals.size:
        return
    if vals.dtype.kind == "f":
        finite = np.isfinite(vals)
        if not finite.all():
            n_nan = int(np.isnan(vals).sum())
            n_inf = int(vals.size - finite.sum()) - n_nan
            raise InputError(f"{what}: contains {n_nan} NaN and {n_inf} infinite value(s); counts must be finite")
    n_neg = int((vals < 0).sum()) if vals.dtype.kind in "if" else 0
    if n_neg:
        raise InputError(f"{what}: contains {n_neg} negative value(s); counts must be >= 0")
    big = vals > MAX_COUNT
    n_big = int(big.sum())
    if n_big:
        largest = _number(vals.max())
        raise InputError(
            f"{what}: largest value {largest} ({n_big} value(s) above {MAX_COUNT:,} = 2^24) cannot be "
            "held exactly in float32, so observed counts could not be kept unchanged; counts must be "
            f"integers <= {MAX_COUNT:,} (raw counts, not scaled values)"
        )


def check_names(names, kind: str, what: str) -> None:
    """Raise :class:`InputError` unless every name is non-empty and unique.

    ``kind`` is "cell" or "gene"; ``what`` names the file. Missing values (None, NaN)
    and names of only white space count as empty. Messages: "FILE: N empty cell
    name(s) (the first at position P); every cell needs a name" and "FILE: N
    duplicate gene name(s) ('a', 'b'); gene names must be unique".
    """
    import pandas as pd

    idx = pd.Index(list(names), dtype=object)
    empty = np.asarray(idx.isna()) | np.array([str(x).strip() == "" for x in idx], dtype=bool)
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        raise InputError(f"{what}: {int(empty.sum())} empty {kind} name(s) (the first at position "
                         f"{first + 1}); every {kind} needs a name")
    text = pd.Index([str(x) for x in idx])
    dup = text[text.duplicated()].unique()
    if len(dup):
        shown = ", ".join(repr(str(x)) for x in dup[:3]) + (", ..." if len(dup) > 3 else "")
        raise InputError(f"{what}: {len(dup)} duplicate {kind} name(s) ({shown}); "
                         f"{kind} names must be unique")


def check_non_integers(n_non_integer: int, n_nonzero: int, largest: float, what: str,
                       hint: str = RAW_COUNTS_HINT) -> None:
    """Raise when more than :data:`NON_INTEGER_LIMIT` of the non-zero values are not integers
    (log-transformed or normalised data), saying which it looks like from the largest value."""
    if n_non_integer and n_non_integer > NON_INTEGER_LIMIT * n_nonzero:
        looks = "log-transformed" if largest <= 20 else "normalised (e.g. CPM, TPM)"
        raise InputError(f"{what}: {n_non_integer / n_nonzero:.0%} of the non-zero values are not "
                         f"integers (largest {largest:.4g}); they look {looks}, not raw counts; {hint}")


def rounding_note(n_non_integer: int, what: str) -> str:
    """The warning (and note) for a few non-integer values rounded."""
    return (f"{what}: {n_non_integer} non-integer value(s) rounded to the nearest integer "
            "(count likelihoods need integers)")


def check_not_log_transformed(uns, what: str, hint: str = RAW_COUNTS_HINT) -> None:
    """Raise when an AnnData's ``uns`` says scanpy log-transformed its ``X``
    (``uns["log1p"]``, set by ``sc.pp.log1p``). Pass the ``uns`` only when the values
    checked are that ``X``: a counts layer beside a log-transformed X is fine."""
    if uns is not None and "log1p" in uns:
        raise InputError(f"{what}: uns['log1p'] is set, so the values were log-transformed "
                         f"(scanpy's pp.log1p), not raw counts; {hint}")


def check_counts(X, what: str = "input matrix", *, allow_round: bool | str = True, uns=None,
                 hint: str = RAW_COUNTS_HINT):
    """Validate a cells x genes count matrix.

    ``allow_round``: True rounds a few non-integer values (with a warning); False refuses
    any; ``"all"`` rounds them however many there are: for data published only as
    normalised values (Yan et al.'s RPKM), rounded on purpose as the scZiva authors do.
    ``uns``: the AnnData's ``uns`` when the matrix came from one (``"log1p"`` in it means
    scanpy log-transformed the data). ``hint``: what the user can do about values that are
    not counts (appended to that error).

    Returns ``(M, notes)``: ``M`` a float32 ``np.ndarray`` or ``scipy.sparse.csr_matrix``
    (sparse input stays sparse, never densified), ``notes`` a list of str describing what
    was changed (for example rounding).
    """
    notes: list[str] = []
    if X is None:
        raise InputError(f"{what}: no data (got None)")
    if hasattr(X, "to_numpy") and not sp.issparse(X):  # pandas DataFrame
        try:
            X = X.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what}: contains non-numeric values ({exc})") from None
    if sp.issparse(X):
        M = sp.csr_matrix(X)
        if M.dtype.kind not in "biuf":
            raise InputError(f"{what}: sparse matrix of dtype {M.dtype} is not numeric")
        if M.shape[0] and M.shape[1]:
            check_values(M.data, what)  # the input's own values, not changed
        M = M.astype(np.float32, copy=True)
        M.sum_duplicates()
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise InputError(f"{what}: cannot be read as a matrix ({exc})") from None
        if arr.dtype.kind not in "biuf":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError(f"{what}: contains non-numeric values") from None
        if arr.dtype == np.float16:  # compared with 2^24 below, which float16 cannot hold
            arr = arr.astype(np.float32)
        if arr.ndim == 2 and arr.size:
            check_values(arr, what)
        M = np.array(arr, dtype=np.float32, copy=True)
    if uns is not None:
        check_not_log_transformed(uns, what, hint)
    if M.ndim != 2:
        raise InputError(f"{what}: expected a 2-D cells x genes matrix, got {M.ndim} dimension(s)")
    n_cells, n_genes = M.shape
    if n_cells == 0 or n_genes == 0:
        raise InputError(f"{what}: empty matrix ({n_cells} cells x {n_genes} genes)")
    vals = _values(M)
    if vals.size:
        check_values(vals, what)  # again in float32 (a no-op unless the input was odd)
        rounded = np.rint(vals)
        n_frac = int((rounded != vals).sum())
        if allow_round != "all":
            check_non_integers(n_frac, int(np.count_nonzero(vals)), float(vals.max()), what, hint)
        if n_frac:
            if not allow_round:
                raise InputError(f"{what}: contains {n_frac} non-integer value(s); counts must be integers")
            msg = rounding_note(n_frac, what)
            warnings.warn(msg, RoundedInputWarning, stacklevel=2)
            notes.append(msg)
            if sp.issparse(M):
                M.data = rounded.astype(np.float32)
                M.eliminate_zeros()
            else:
                M = rounded.astype(np.float32)
    return M, notes


# Name patterns: cheap hints of which axis a list of names belongs to (Ensembl and
# model-organism gene ids, "GeneN"; barcodes, "CellN", GEO/SRA run ids).
_GENE_LIKE = re.compile(
    r"^(ENS[A-Z]*G\d{6,}(\.\d+)?|gene[\W_]?\d+|FBgn\d+|WBGene\d+|ERCC-\d+)$", re.IGNORECASE
)
_CELL_LIKE = re.compile(
    r"^([ACGTN]{8,}(-\d+)?|cell[\W_]?\d+|GSM\d+|SRR\d+|ERR\d+|[A-Za-z0-9]+_[ACGTN]{8,}(-\d+)?)$",
    re.IGNORECASE,
)


# Gene symbols that no cell is ever named: ribosomal and mitochondrial genes and genes
# expressed in almost every cell (human upper case, mouse capitalised; matched ignoring
# case). Two or more of them among the "cell" names, and none among the "gene" names,
# mean a table of gene symbols read the wrong way round (Ensembl ids are caught above).
_UBIQUITOUS_GENE = re.compile(
    r"^(RP[LS]\d+[A-Z]?\d*[A-Z]?|MT-[A-Z0-9]+|ACTB|ACTG1|GAPDH|MALAT1|NEAT1|B2M|TMSB4X|TMSB10|"
    r"EEF1A1|EEF2|FTL1?|FTH1|TPT1|UBB|UBC|PPIA|MYL6|TUBA1B|HMGB1|VIM|CD74|HSP90AB1|PTMA|"
    r"NPM1|NACA|LDHA|PKM|ENO1|PFN1|CFL1|ARPC2|SRGN|TMSB4X|H3F3A|H3F3B|HNRNPA1|SERF2)$",
    re.IGNORECASE,
)
_MIN_UBIQUITOUS = 2


def _share(names, pattern) -> float:
    names = [str(x) for x in list(names)[:2000]]
    if not names:
        return 0.0
    return sum(bool(pattern.match(x)) for x in names) / len(names)


def _matching(names, pattern) -> list[str]:
    return [str(x) for x in list(names)[:20000] if pattern.match(str(x))]


def orientation_conflict(cell_names, gene_names):
    """Names that contradict a cells x genes reading, or None.

    Returns a short example string when at least 90 % of the "cell" names look like gene
    identifiers (and almost no "gene" name does), when the "cell" names include at least
    two ubiquitous gene symbols (ACTB, GAPDH, MALAT1, ribosomal RPL/RPS, MT- genes, ...)
    and the "gene" names none, or the other way round (gene names that look like cell
    barcodes).
    """
    cells_look_genes = _share(cell_names, _GENE_LIKE) >= 0.9 and _share(gene_names, _GENE_LIKE) < 0.1
    genes_look_cells = _share(gene_names, _CELL_LIKE) >= 0.9 and _share(cell_names, _CELL_LIKE) < 0.1
    if not (cells_look_genes or genes_look_cells):
        found = _matching(cell_names, _UBIQUITOUS_GENE)
        if len(found) >= _MIN_UBIQUITOUS and not _matching(gene_names, _UBIQUITOUS_GENE):
            return ", ".join(found[:2])
        return None
    names = list(cell_names if cells_look_genes else gene_names)[:2]
    return ", ".join(map(str, names))
