"""Faults during a benchmark run: a killed run, a crashing method, broken downloads; and
what every results folder must record (reproducibility).

The runs use tests/slurm/runs.mini_config (config/test.yaml cut down to one scenario and
three methods: a control, scZiva, and MAGIC, which the workflow's test hook
SCZIVA_BENCH_INJECT_FAILURE=magic makes raise inside its job). One uninterrupted local run
(runs.reference_run) is made once and shared.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from slurm import runs

BROKEN = runs.BROKEN_METHOD
SCENARIO = "dropout50_s1"  # the one scenario of runs.mini_config


@pytest.fixture(scope="module")
def reference():
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    return runs.reference_run()


# ---------------------------------------------------------------------------------------
# a method that crashes

@pytest.mark.slow
def test_crashing_method_is_marked_failed_and_the_others_finish(reference):
    res = reference / "results"
    df = runs.read_metrics(res / "metrics.tsv")
    assert "status" in df.columns
    configured = set(runs.test_config()["metrics"])
    methods = {m if isinstance(m, str) else m[0] for m in runs.MINI_METHODS}
    assert set(df["method"]) == methods  # the failed method is in the table, not dropped

    bad = df[df["method"] == BROKEN]
    assert (bad["status"] == "failed").all()
    assert set(bad["metric"]) >= configured
    assert bad.loc[bad["metric"].isin(configured), "value"].isna().all()

    good = df[df["method"] != BROKEN]
    assert (good["status"] == "ok").all(), good[good["status"] != "ok"]
    for m, rows in good.groupby("method"):
        vals = rows.loc[rows["metric"].isin(configured), "value"]
        assert vals.notna().sum() >= len(configured) // 2, (m, vals)
    # the crash is explained where the user looks: the method's log and its output
    log = next((res / "logs" / "impute").rglob(f"{BROKEN}.log")).read_text()
    assert "SCZIVA_BENCH_INJECT_FAILURE" in log
    import anndata as ad

    out = ad.read_h5ad(next((res / "imputed").rglob(f"{BROKEN}.h5ad")))
    assert out.uns["status"] == "failed"
    assert "imputed" not in out.layers
    assert "RuntimeError" in str(out.uns["error"])


@pytest.mark.slow
def test_figures_mark_the_failed_method(reference):
    """The figures of the run are drawn from metrics.tsv by scziva_bench.plots: the
    failed method is drawn as failed (text on the axes), not left out."""
    res = reference / "results"
    names = {p.stem for p in (res / "figures").glob("*.png")}
    assert {"ranks", "resources"} <= names
    assert all(f"metric_{m}" in names for m in runs.test_config()["metrics"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from scziva_bench import plots

    df = pd.read_csv(res / "metrics.tsv", sep="\t")
    fig = plots.plot_metric(df, "rmse_dropped")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    plt.close(fig)
    assert "failed" in texts
    assert any(BROKEN in lab for lab in labels)
    fig = plots.plot_ranks(df, ["rmse_dropped", "log_mse_all"])
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    plt.close(fig)
    assert any(t.split()[-1:] == ["F"] for t in texts), texts  # "<rank> F": failed runs


@pytest.mark.slow
def test_crash_with_on_error_stop_fails_only_its_own_job(tmp_path):
    """on_error: stop makes the crash a failed job; with --keep-going (profiles/default)
    the other method still finishes and nothing is left at the failed job's output."""
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    cfg = runs.mini_config(methods=("no_imputation", BROKEN), on_error="stop")
    wd = tmp_path / "run"
    targets = [f"results/imputed/tiny/{SCENARIO}/{m}.h5ad" for m in ("no_imputation", BROKEN)]
    res = runs.local_run(wd, cfg, *targets, env=runs.base_env(**runs.INJECT))
    assert res.returncode != 0
    assert f"Error in rule impute_{BROKEN}" in res.stdout
    assert (wd / targets[0]).is_file()
    assert not (wd / targets[1]).exists()
    assert not list((wd / "results").rglob("*.tmp"))


# ---------------------------------------------------------------------------------------
# a run killed in the middle

def _all_h5ad_readable(results: Path) -> int:
    import anndata as ad

    n = 0
    for p in sorted(results.rglob("*.h5ad")):
        ad.read_h5ad(p)  # raises on a truncated file
        n += 1
    return n


@pytest.mark.slow
def test_killed_run_restarts_to_the_same_results(reference, tmp_path):
    cfg = runs.mini_config()
    wd = tmp_path / "run"
    env = runs.base_env(**runs.INJECT)
    proc = runs.local_run(wd, cfg, popen=True, env=env)
    logs = wd / "results" / "logs" / "impute"
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 300:
            if logs.is_dir() and any(logs.rglob("*.log")):
                break
            if proc.poll() is not None:
                pytest.fail("the run ended before any impute job started:\n"
                            + proc.stdout.read()[-3000:])
            time.sleep(0.2)
        else:
            pytest.fail("no impute job started within 300 s")
        # the whole run dies at once (Snakemake and the jobs it started), as when the
        # machine or the login session goes away
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert not (wd / "results" / "metrics.tsv").exists()

    res = runs.local_run(wd, cfg, env=env)
    if res.returncode != 0 and "cannot be locked" in res.stdout:
        # a killed Snakemake leaves its lock; the documented way out
        runs.check(runs.local_run(wd, cfg, "--unlock", env=env), "snakemake --unlock")
        res = runs.local_run(wd, cfg, env=env)
    runs.check(res, "the restarted run")
    assert _all_h5ad_readable(wd / "results") >= 4
    diffs = runs.same_values(runs.result_values(reference / "results" / "metrics.tsv"),
                             runs.result_values(wd / "results" / "metrics.tsv"))
    assert not diffs, "restarted run differs from an uninterrupted one:\n" + "\n".join(diffs)


# ---------------------------------------------------------------------------------------
# what a results folder records

@pytest.mark.slow
def test_results_record_config_and_package_versions(reference):
    prov = yaml.safe_load((reference / "results" / "provenance.yaml").read_text())
    cfg = yaml.safe_load((reference.parent / f"{reference.name}.config.yaml").read_text())
    # the config it was made with, as given (JSON round trip: tuples become lists)
    assert prov["config"] == json.loads(json.dumps(cfg))
    pk = prov["packages"]
    from importlib.metadata import version

    for name in ("snakemake", "anndata", "numpy", "torch", "scanpy"):
        assert pk.get(name) == version(name), name
    assert "scziva" in pk
    assert prov["python"].count(".") == 2
    assert prov.get("created_utc")
