"""Rule simulate: a Splat simulation without dropout (counts == truth)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench.data import io  # noqa: E402
from scziva_bench.data import simulate  # noqa: E402

params = dict(snakemake.params.simulate)  # noqa: F821
params.pop("dropout_share", None)
dataset = snakemake.wildcards.dataset  # noqa: F821
adata = simulate.splat(**params, dropout_share=None, dataset_id=dataset)
log.info("simulated %s: %d cells x %d genes, %.1f %% zeros", dataset, adata.n_obs,
         adata.n_vars, 100 * (1 - adata.layers["counts"].nnz / (adata.n_obs * adata.n_vars)))
io.write_h5ad_atomic(adata, snakemake.output[0])  # noqa: F821
