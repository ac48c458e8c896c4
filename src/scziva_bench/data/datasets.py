"""Subsetting a dataset on the way in: random cells, QC, the most expressed genes.

The ``load_local`` rule reads a file with :func:`scziva_bench.data.io.read_counts` and hands
the result to :func:`prepare` with the dataset's config entry; the maintainer script
``resources/datasets/make_resources.py`` uses :func:`top_genes` to trim the shipped
datasets by the same rule. Every step appends a sentence to ``uns["notes"]``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError

from scziva_bench.data import io

__all__ = ["counts_of", "subsample_cells", "top_genes", "variable_genes", "drop_empty_cells", "prepare", "md5sum",
           "is_integer_counts"]


def _notes(adata: ad.AnnData) -> list[str]:
    return [str(n) for n in np.atleast_1d(adata.uns.get("notes", []))]


def counts_of(adata: ad.AnnData):
    """The count matrix: ``layers["counts"]`` when present, else ``X``."""
    return adata.layers["counts"] if "counts" in adata.layers else adata.X


def subsample_cells(adata: ad.AnnData, max_cells: int | None, seed: int = 0) -> ad.AnnData:
    """At most ``max_cells`` cells drawn without replacement (``seed``), in file order.

    Returns ``adata`` itself when it has no more cells than that (or ``max_cells`` is
    None/0), else a copy with a note.
    """
    if not max_cells or adata.n_obs <= max_cells:
        return adata
    if max_cells < 1:
        raise InputError(f"max_cells must be >= 1, got {max_cells!r}")
    keep = np.sort(np.random.default_rng(seed).choice(adata.n_obs, int(max_cells), replace=False))
    out = adata[keep].copy()
    out.uns["notes"] = _notes(adata) + [
        f"kept a random subset of {max_cells} of {adata.n_obs} cells (seed {seed})"]
    return out


def top_genes(adata: ad.AnnData, n: int | None) -> ad.AnnData:
    """The ``n`` genes with the largest total counts, in their original order.

    Ties are broken by the original gene order (the earlier gene wins), so the choice
    is deterministic. Returns ``adata`` itself when it has at most ``n`` genes (or
    ``n`` is None/0), else a copy with a note.
    """
    if not n or adata.n_vars <= n:
        return adata
    if n < 1:
        raise InputError(f"top_genes must be >= 1, got {n!r}")
    C = counts_of(adata)
    totals = np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
    keep = np.sort(np.argsort(-totals, kind="stable")[: int(n)])
    out = adata[:, keep].copy()
    out.uns["notes"] = _notes(adata) + [
        f"kept the {n} of {adata.n_vars} genes with the largest total counts"]
    return out


def variable_genes(adata: ad.AnnData, n: int | None) -> ad.AnnData:
    """The ``n`` most variable genes, in their original order (scanpy's
    ``highly_variable_genes``, flavour ``seurat``: dispersion normalised within bins of
    mean expression, on ``log1p`` of the counts scaled to 10,000 per cell; ties by the
    original gene order). Unlike :func:`top_genes` it does not keep only the most
    expressed genes, so the scores see lowly expressed, sparse genes too. Returns
    ``adata`` itself when it has at most ``n`` genes (or ``n`` is None/0), else a copy
    with a note.
    """
    import scanpy as sc

    if not n or adata.n_vars <= n:
        return adata
    if n < 1:
        raise InputError(f"hvg must be >= 1, got {n!r}")
    tmp = ad.AnnData(X=sp.csr_matrix(counts_of(adata), dtype=np.float64))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    hv = sc.pp.highly_variable_genes(tmp, flavor="seurat", n_top_genes=int(n), inplace=False)
    disp = np.nan_to_num(np.asarray(hv["dispersions_norm"], dtype=np.float64), nan=-np.inf)
    keep = np.sort(np.argsort(-disp, kind="stable")[: int(n)])
    out = adata[:, keep].copy()
    out.uns["notes"] = _notes(adata) + [
        f"kept the {n} of {adata.n_vars} most variable genes (scanpy highly_variable_genes, seurat)"]
    return out


def prepare(adata: ad.AnnData, spec: dict | None = None, dataset_id: str | None = None) -> ad.AnnData:
    """Apply a dataset's config entry: ``max_cells``, then ``qc``, then ``top_genes``,
    then ``hvg`` (:func:`variable_genes`).

    ``spec`` is the dataset's entry of ``config["datasets"]`` (other keys are ignored).
    The cell subset is drawn first so that QC sees the cells that will be used; the
    gene selection comes last so that it counts only cells that passed QC.
    """
    spec = dict(spec or {})
    if dataset_id is not None:
        adata.uns["dataset_id"] = str(dataset_id)
    adata = subsample_cells(adata, spec.get("max_cells"), seed=0)
    adata = io.qc(adata, **(spec.get("qc") or {}))
    adata = top_genes(adata, spec.get("top_genes"))
    adata = variable_genes(adata, spec.get("hvg"))
    adata = drop_empty_cells(adata)
    if dataset_id is not None:
        adata.uns["dataset_id"] = str(dataset_id)
    return adata


def drop_empty_cells(adata: ad.AnnData) -> ad.AnnData:
    """Drop cells without any count (possible after :func:`top_genes`), with a note."""
    C = counts_of(adata)
    has = np.asarray((C > 0).sum(axis=1)).ravel() > 0
    if has.all():
        return adata
    if not has.any():
        name = adata.uns.get("dataset_id", "dataset")
        raise InputError(f"dataset {name!r}: no cell has a count in the genes kept")
    out = adata[has].copy()
    out.uns["notes"] = _notes(adata) + [
        f"removed {int((~has).sum())} cell(s) with no count in the genes kept"]
    return out


def md5sum(path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file (as listed in resources/datasets/README.md)."""
    h = hashlib.md5()
    with open(Path(path), "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def is_integer_counts(M) -> bool:
    """True when every value of ``M`` is a finite non-negative integer."""
    vals = M.data if sp.issparse(M) else np.asarray(M)
    vals = np.asarray(vals, dtype=np.float64)
    return bool(np.all(np.isfinite(vals)) and np.all(vals >= 0) and np.all(vals == np.rint(vals)))
