"""Rule impute_<method>: run one method on every scenario of one dataset.

Writes results/imputed/{dataset}/{method}/{scenario}.h5ad (docs/contract.md "Method
output"), one scenario after the other; the method's seed is the config's ``seed`` plus
the scenario's seed. With ``on_error: mark`` (the default) a method that raises is logged with its
traceback and recorded as failed: the output is written anyway, without
``layers["imputed"]``, with ``uns["status"] = "failed"`` and ``uns["error"]``, so that
the evaluate rule marks the method as failed instead of the whole run stopping.
:class:`scziva.errors.InputError` (bad user input, such as an unknown method parameter)
always fails the job, with its one-sentence message in the log.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import h5_safe, imputed_file, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import os  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402

from scziva.errors import InputError  # noqa: E402
from scziva_bench import io, methods, scenario_ids  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.params.method
params = dict(sm.params.method_params or {})
device = None if int(sm.params.gpu) > 0 else "cpu"


def injected_failure(scenario):
    """Crash injection for tests: SCZIVA_BENCH_INJECT_FAILURE holds comma-separated
    ``method`` or ``method@scenario`` entries whose runs raise a RuntimeError."""
    spec = os.environ.get("SCZIVA_BENCH_INJECT_FAILURE", "")
    wanted = {e.strip() for e in spec.split(",") if e.strip()}
    return bool(wanted & {name, f"{name}@{scenario}"})


def run_one(scen, scenario, seed):
    t0 = time.perf_counter()
    try:
        if injected_failure(scenario):
            raise RuntimeError(f"failure injected by SCZIVA_BENCH_INJECT_FAILURE for {name}")
        X = methods.run(name, scen, seed=seed, device=device, **params)
        X = np.asarray(X, dtype=np.float32)
        if X.shape != scen.shape:
            raise ValueError(f"{name} returned a {X.shape} matrix for a {scen.shape} scenario")
        n_bad = int((~np.isfinite(X)).sum())
        if n_bad:
            raise ValueError(f"{name} returned {n_bad} non-finite value(s)")
        runtime = time.perf_counter() - t0
        out = ad.AnnData(X=X, obs=scen.obs.copy(), var=scen.var.copy())
        out.layers["imputed"] = X
        out.uns["status"] = "ok"
        log.info("%s done in %.2f s", scenario, runtime)
    except InputError:
        raise  # a configuration or data error (e.g. an unknown parameter): stop, not "failed"
    except Exception as exc:  # noqa: BLE001 -- recorded, see the module docstring
        runtime = time.perf_counter() - t0
        if sm.params.on_error == "stop":
            raise
        log.error("method %s FAILED on %s after %.2f s: %s: %s\n%s", name, scenario, runtime,
                  type(exc).__name__, exc, traceback.format_exc())
        out = ad.AnnData(obs=scen.obs[[]].copy(), var=scen.var[[]].copy())
        out.uns["status"] = "failed"
        out.uns["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    out.uns["method_id"] = name
    out.uns["method_params"] = h5_safe(params)
    out.uns["method_seed"] = int(seed)
    out.uns["runtime_s"] = float(runtime)
    out.uns["dataset_id"] = str(sm.wildcards.dataset)
    out.uns["scenario_id"] = str(scenario)
    return out


outdir = Path(sm.output.imputed)
outdir.mkdir(parents=True, exist_ok=True)
for scenario, path in zip(sm.params.scenario_ids, sm.input.scenarios):
    scen = ad.read_h5ad(path)
    # the method's seed follows the scenario's seed, so that replicates vary both
    seed = int(sm.params.seed) + scenario_ids.parse_id(scenario).seed
    log.info("method %s on %s/%s (%d cells x %d genes), device %s, seed %s, params %s",
             name, sm.wildcards.dataset, scenario, scen.n_obs, scen.n_vars,
             device or "auto", seed, params)
    io.write_h5ad_atomic(run_one(scen, scenario, seed), imputed_file(outdir, scenario))
