"""Rule impute_<method>: one method on every scenario of one dataset.

For each (scenario, output) pair writes results/imputed/{dataset}/{scenario}/{method}.h5ad
(docs/contract.md "Method output"); the work is scziva_bench.runner.impute_scenario: the
method sees the observed counts only, its output is checked, and a failure is recorded
(uns status/error, one ERROR line in this log) without stopping the run.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # noqa: F821
from scziva_bench.workflow_utils import method_resources, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench import io, runner  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.params.method
spec = dict((sm.config.get("methods") or {}).get(name) or {})
inputs = list(getattr(sm.input, "scenarios", sm.input))
outputs = list(getattr(sm.output, "imputed", sm.output))
ids = list(getattr(sm.params, "scenario_ids", None) or [sm.wildcards.scenario])
timeout_s = 60 * float(method_resources(sm.config, name)["runtime"])  # per scenario

for sid, src, dst in zip(ids, inputs, outputs, strict=True):
    record = runner.impute_scenario(
        io.read_h5ad(src), name, spec=spec, params=dict(sm.params.method_params or {}),
        seed=int(sm.params.seed), device=None if int(sm.params.gpu) > 0 else "cpu",
        threads=int(sm.threads), timeout_s=timeout_s, dataset_id=str(sm.wildcards.dataset),
        scenario_id=str(sid), on_error=sm.params.on_error, workdir=Path(dst).parent, log=log)
    io.write_h5ad_atomic(record, dst)
