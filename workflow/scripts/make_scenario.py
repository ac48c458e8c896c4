"""Rule make_scenario: a dataset after one perturbation (scenarios.make)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402

from scziva_bench import io, scenarios  # noqa: E402

sm = snakemake  # noqa: F821
spec = dict(sm.params.scenario)
kind = spec.pop("kind")
adata = ad.read_h5ad(sm.input[0])
scen = scenarios.make(adata, kind, rate=spec.pop("rate", None), seed=int(spec.pop("seed", 0)),
                      **spec)
sid = scen.uns["scenario"].get("id", sm.wildcards.scenario)
if sid != sm.wildcards.scenario:
    raise ValueError(f"scenarios.make gave id {sid!r} for the requested {sm.wildcards.scenario!r}")
log.info("scenario %s of %s: %s", sid, sm.wildcards.dataset, dict(scen.uns["scenario"]))
io.write_h5ad_atomic(scen, sm.output[0])
