"""Rule load_local: a counts file (local, or downloaded from Zenodo) -> dataset h5ad.

Reads with io.read_counts (and the optional truth and labels files), subsets with
datasets.prepare (``max_cells`` random cells with seed 0, ``qc``, the ``top_genes`` genes
with the largest total counts) and writes the dataset atomically.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench.data import datasets  # noqa: E402
from scziva_bench.data import io  # noqa: E402

spec = dict(snakemake.params.spec)  # noqa: F821
inp = snakemake.input  # noqa: F821
dataset = snakemake.wildcards.dataset  # noqa: F821

adata = io.read_counts(
    inp.counts,
    fmt=spec.get("format"),
    orientation=spec.get("orientation", "cells_x_genes"),
    dataset_id=dataset,
    truth_path=inp.get("truth"),
    test_path=inp.get("test"),
    labels_path=inp.get("labels"),
    label_column=spec.get("label_column"),
    layer=spec.get("layer"),
    round_values=bool(spec.get("round_values", False)),
)
log.info("read %s: %d cells x %d genes", inp.counts, adata.n_obs, adata.n_vars)
adata = datasets.prepare(adata, spec, dataset_id=dataset)
log.info("after QC and subsetting: %d cells x %d genes", adata.n_obs, adata.n_vars)
for note in adata.uns.get("notes", []):
    log.info("note: %s", note)
io.write_h5ad_atomic(adata, snakemake.output[0])  # noqa: F821
