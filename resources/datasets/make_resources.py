"""Maintainer tool: rebuild the trimmed real datasets of resources/datasets/.

Not needed to run the benchmark (the .h5ad files it writes are committed). It reads the
maintainers' collection of converted public datasets (one ``.h5ad`` per dataset, cells
x genes raw counts in ``X``, ``obs["cell_type"]``, ``uns["source"]`` with repository,
path, commit, citation and licence; see README.md here for where each came from) and
writes, per dataset of PANEL below:

- all cells (none of these is large), the ``n_genes`` genes with the largest total
  counts (``scziva_bench.data.datasets.top_genes``, the rule ``top_genes:`` uses at load time);
- ``X`` as integer counts (CSR, int32; Yan's RPKM values rounded with ``np.rint``, as the
  scZiva authors' preprocessing rounds its inputs);
- ``obs["cell_type"]`` and a few of the authors' metadata columns, no per-gene columns;
- ``uns["source"]`` (unchanged), ``uns["scale"] = "counts"``, ``uns["notes"]`` (what was
  done, also shown in the workflow's dataset notes), ``uns["derived_from"]`` (file name
  and MD5 of the input);
- gzip-compressed, written byte-for-byte reproducibly (same input -> same MD5).

Usage (from the repository root):

    python resources/datasets/make_resources.py --source DIR [--out resources/datasets] [name ...]

then update the MD5 column of README.md (the script prints the table rows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from scziva_bench.data.datasets import is_integer_counts, md5sum, top_genes  # noqa: E402

# name -> (input file, genes kept, obs columns kept besides cell_type, extra note)
PANEL: dict[str, dict] = {
    "yan": dict(file="yan.h5ad", n_genes=3000, obs=["original_name"], rpkm=True),
    "deng": dict(file="deng.h5ad", n_genes=3000, obs=["stage_coarse", "geo_sample"]),
    "darmanis": dict(file="darmanis.h5ad", n_genes=3000, obs=["tissue", "age"]),
    "cellbench_celseq2": dict(file="cellbench_celseq2.h5ad", n_genes=3000,
                              obs=["cell_line_demuxlet"]),
    "cellbench_dropseq": dict(file="cellbench_dropseq.h5ad", n_genes=3000,
                              obs=["cell_line_demuxlet"]),
    "islam": dict(file="islam.h5ad", n_genes=3000, obs=[]),
    "worm_neuron": dict(file="worm_neuron.h5ad", n_genes=2000, obs=[]),
    "mouse_bladder_2100": dict(file="mouse_bladder_2100.h5ad", n_genes=2000, obs=[]),
}


def build(name: str, source_dir: Path) -> ad.AnnData:
    """The trimmed AnnData of one PANEL entry (not yet written)."""
    entry = PANEL[name]
    src = source_dir / entry["file"]
    full = ad.read_h5ad(src)
    X = sp.csr_matrix(full.X, dtype=np.float64)
    notes = []
    if entry.get("rpkm"):
        n_frac = int(np.count_nonzero(X.data != np.rint(X.data)))
        X.data = np.rint(X.data)
        X.eliminate_zeros()
        notes.append(
            f"RPKM values rounded to the nearest integer (np.rint; {n_frac} non-integer "
            "values), as the scZiva authors round their inputs; not read counts")
    if not is_integer_counts(X):
        raise SystemExit(f"{src}: X holds non-integer values; only counts can be shipped")
    obs = pd.DataFrame(index=full.obs_names.astype(str))
    obs["cell_type"] = pd.Categorical(full.obs["cell_type"].astype(str))
    for col in entry["obs"]:
        obs[col] = full.obs[col].astype(str).to_numpy()
    var = pd.DataFrame(index=full.var_names.astype(str))
    a = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    a = top_genes(a, entry["n_genes"])
    notes += [str(n) for n in a.uns.get("notes", [])]
    X = sp.csr_matrix(a.X, dtype=np.int32)
    X.sort_indices()
    out = ad.AnnData(X=X, obs=a.obs.copy(), var=a.var.copy())
    empty = int((np.diff(X.indptr) == 0).sum())
    if empty:
        notes.append(f"{empty} cell(s) have no count in the genes kept")
    source = {str(k): str(v) for k, v in dict(full.uns.get("source", {})).items()}
    out.uns["source"] = source
    out.uns["scale"] = "counts"
    out.uns["derived_from"] = {"file": entry["file"], "md5": md5sum(src)}
    out.uns["notes"] = [
        f"resources/datasets/{name}.h5ad: {full.n_obs} cells (all) of {entry['file']}"
    ] + notes
    return out


def write(adata: ad.AnnData, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    adata.write_h5ad(tmp, compression="gzip", compression_opts=9)
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, type=Path,
                   help="folder with the maintainers' converted .h5ad files")
    p.add_argument("--out", type=Path, default=HERE, help="output folder (default: this one)")
    p.add_argument("names", nargs="*", help=f"datasets to build (default: all of {list(PANEL)})")
    args = p.parse_args(argv)
    names = args.names or list(PANEL)
    unknown = sorted(set(names) - set(PANEL))
    if unknown:
        p.error(f"unknown dataset(s) {unknown}; known: {list(PANEL)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        a = build(name, args.source)
        path = args.out / f"{name}.h5ad"
        write(a, path)
        labels = a.obs["cell_type"].value_counts()
        zeros = 100 * (1 - a.X.nnz / (a.n_obs * a.n_vars))
        print(f"| {path.name} | {a.n_obs} | {a.n_vars} | {zeros:.1f} | {len(labels)} | "
              f"{path.stat().st_size / 1e6:.2f} MB | `{md5sum(path)}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
