"""Rule make_scenario: a dataset after one perturbation (scenarios.make).

For a simulated dataset, a scenario with a seed perturbs its own new simulation (the
dataset's parameters, data seed :func:`scziva_bench.simulate.data_seed`), so that the
seeds replicate the data, not only the dropout mask."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402

from scziva_bench import io, scenarios, simulate  # noqa: E402

sm = snakemake  # noqa: F821
spec = dict(sm.params.scenario)
kind = spec.pop("kind")
adata = ad.read_h5ad(sm.input[0])
seed = int(spec.get("seed", 0))
sim = sm.params.simulate
if sim and seed:
    # a new simulated dataset per seed (same parameters, data seed from the scenario seed)
    params = dict(sim)
    params.pop("dropout_share", None)
    params["seed"] = simulate.data_seed(params.get("seed", 0), seed)
    adata = simulate.splat(**params, dropout_share=None, dataset_id=sm.wildcards.dataset)
    log.info("scenario seed %d: new simulation with data seed %d", seed, params["seed"])
scen = scenarios.make(adata, kind, rate=spec.pop("rate", None), seed=int(spec.pop("seed", 0)),
                      **spec)
sid = scen.uns["scenario"].get("id", sm.wildcards.scenario)
if sid != sm.wildcards.scenario:
    raise ValueError(f"scenarios.make gave id {sid!r} for the requested {sm.wildcards.scenario!r}")
log.info("scenario %s of %s: %s", sid, sm.wildcards.dataset, dict(scen.uns["scenario"]))
io.write_h5ad_atomic(scen, sm.output[0])
