"""Rule impute_<method>: one method on every scenario of one dataset.

Writes results/imputed/{dataset}/{method}/{scenario}.h5ad (docs/contract.md "Method
output"), one scenario after the other; the method's seed is the config's ``seed`` plus
the scenario's seed. The work is scziva_bench.methods.runner.impute_scenario: the method sees the
observed counts only, its output is checked, and a failure (with ``on_error: mark``) is
recorded in the output (uns status/error) and as one ERROR line in this log, without
stopping the run. InputError (bad configuration) fails the job with its one sentence.
The folder also gets messages.tsv: each scenario's error, warnings and note (if any).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.targets import imputed_file, method_resources  # noqa: E402
from scziva_bench.pipeline.job import start_script, write_text_atomic  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench.data import io  # noqa: E402
from scziva_bench.methods import runner  # noqa: E402
from scziva_bench.catalog import scenarios as scenario_ids  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.params.method
spec = dict((sm.config.get("methods") or {}).get(name) or {})
timeout_s = 60 * float(method_resources(sm.config, name)["runtime"])  # per scenario
outdir = Path(sm.output.imputed)
outdir.mkdir(parents=True, exist_ok=True)
messages = []  # errors, warnings and notes of every scenario -> messages.tsv

for scenario, path in zip(sm.params.scenario_ids, sm.input.scenarios, strict=True):
    record = runner.impute_scenario(
        io.read_h5ad(path), name, spec=spec, params=dict(sm.params.method_params or {}),
        seed=int(sm.params.seed) + scenario_ids.parse_id(scenario).seed,
        device=None if int(sm.params.gpu) > 0 else "cpu", threads=int(sm.threads),
        timeout_s=timeout_s, dataset_id=str(sm.wildcards.dataset), scenario_id=scenario,
        on_error=sm.params.on_error, workdir=outdir, log=log)
    io.write_h5ad_atomic(record, imputed_file(outdir, scenario))
    messages += runner.record_messages(record)
write_text_atomic(runner.messages_tsv(messages), outdir / "messages.tsv")
