"""Rule make_scenario: a dataset after one perturbation (scenarios.make).

For a simulated dataset, a scenario with a seed perturbs its own new simulation (the
dataset's parameters, data seed :func:`scziva_bench.data.simulate.data_seed`), so that the
seeds replicate the data, not only the dropout mask. A dataset with ``downsample:`` is
binomially downsampled first (:func:`scziva_bench.data.simulate.downsample`), with the
same data seed, so that each seed draws new counts from the full-depth data."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402

from scziva_bench.catalog import scenarios as scenario_ids  # noqa: E402
from scziva_bench.data import io  # noqa: E402
from scziva_bench.data import scenarios  # noqa: E402
from scziva_bench.data import simulate  # noqa: E402

sm = snakemake  # noqa: F821
sid = sm.wildcards.scenario
adata = ad.read_h5ad(sm.input[0])
seed = scenario_ids.parse_id(sid).seed
sim = sm.params.simulate
if sim and seed:
    # a new simulated dataset per seed (same parameters, data seed from the scenario seed)
    params = dict(sim)
    params.pop("dropout_share", None)
    params["seed"] = simulate.data_seed(params.get("seed", 0), seed)
    adata = simulate.splat(**params, dropout_share=None, dataset_id=sm.wildcards.dataset)
    log.info("scenario seed %d: new simulation with data seed %d", seed, params["seed"])
down = sm.params.downsample
if down:
    dseed = simulate.data_seed(0, seed)
    adata = simulate.downsample(adata, down["depth"], seed=dseed)
    log.info("downsampled to a median of %s counts per cell (p = %.4g, data seed %d)",
             down["depth"], adata.uns["downsample"]["p"], dseed)
scen = scenarios.make(adata, sid, **dict(sm.params.options))
log.info("scenario %s of %s: %s", sid, sm.wildcards.dataset, dict(scen.uns["scenario"]))
io.write_h5ad_atomic(scen, sm.output[0])
