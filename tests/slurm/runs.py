"""Run the benchmark workflow on a small config in a scratch folder, for the end-to-end tests.

The workflow lives in the repository (``Snakefile``, ``workflow/``); a run here uses its own
working directory (``-d``), so ``results/``, ``resources/`` and ``.snakemake/`` of the
checkout are never touched. :func:`reference_run` makes one local run of the test config
per pytest process and keeps it for every test that compares against it.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
TEST_CONFIG = REPO / "config" / "test.yaml"
BIN = Path(sys.executable).parent
SNAKEMAKE = BIN / "snakemake"


def workflow_missing() -> str | None:
    """None when the workflow and its test config are in the checkout, else why not."""
    for p in (SNAKEFILE, TEST_CONFIG, REPO / "workflow" / "rules"):
        if not p.exists():
            return f"the workflow is not in the checkout yet ({p.relative_to(REPO)} missing)"
    if not SNAKEMAKE.exists():
        return f"snakemake is not installed next to {sys.executable}"
    return None


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env["PYTHONHASHSEED"] = "0"
    env.update(extra)
    return env


def snakemake(workdir, *args: str, env: dict | None = None, timeout: float = 600,
              profile: str | None = None, configfile=TEST_CONFIG, popen: bool = False):
    """Run ``snakemake`` on the repository's Snakefile in ``workdir``.

    ``profile``: a folder under ``profiles/`` (``--workflow-profile``), or None for a plain
    local run on 2 cores with no profile at all. Returns the CompletedProcess (stdout and
    stderr together in ``.stdout``), or the Popen when ``popen`` is true.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "-d", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if profile is None:
        cmd += ["--workflow-profile", "none", "--cores", "2"]
    else:
        cmd += ["--workflow-profile", str(REPO / "profiles" / profile)]
    cmd += ["--nocolor", *args]
    kw = dict(cwd=workdir, env=env or base_env(), stdout=subprocess.PIPE,
              stderr=subprocess.STDOUT, text=True)
    if popen:
        return subprocess.Popen(cmd, start_new_session=True, **kw)
    return subprocess.run(cmd, timeout=timeout, **kw)


def check(res, what: str = "snakemake") -> None:
    """Raise AssertionError with the end of the output when a run failed."""
    if res.returncode != 0:
        raise AssertionError(f"{what} exited with {res.returncode}:\n{res.stdout[-6000:]}")


def read_metrics(path):
    """``results/metrics.tsv`` as a DataFrame in a fixed row order (float values)."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t")
    keys = [c for c in ("dataset", "scenario", "method", "metric") if c in df.columns]
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def metric_values(path) -> dict:
    """{(dataset, scenario, method, metric): value} with NaN kept as NaN."""
    df = read_metrics(path)
    return {(r.dataset, r.scenario, r.method, r.metric): float(r.value)
            for r in df.itertuples(index=False)}


def same_values(a: dict, b: dict) -> list[str]:
    """Differences between two metric dicts (bit-for-bit, NaN equal to NaN)."""
    diffs = []
    for key in sorted(set(a) | set(b), key=str):
        if key not in a or key not in b:
            diffs.append(f"{key}: only in {'first' if key in a else 'second'} run")
            continue
        x, y = a[key], b[key]
        if not (x == y or (math.isnan(x) and math.isnan(y))):
            diffs.append(f"{key}: {x!r} != {y!r}")
    return diffs


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_config() -> dict:
    with open(TEST_CONFIG) as fh:
        return yaml.safe_load(fh)


def write_config(cfg: dict, path) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


_SCRATCH: list[Path] = []


def scratch(prefix: str) -> Path:
    """A temporary folder removed when the pytest process exits."""
    d = Path(tempfile.mkdtemp(prefix=f"scziva-{prefix}-"))
    _SCRATCH.append(d)
    return d


@atexit.register
def _cleanup() -> None:
    for d in _SCRATCH:
        shutil.rmtree(d, ignore_errors=True)


_REFERENCE: dict[str, Path] = {}


def reference_run() -> Path:
    """Working directory of one uninterrupted local run of :func:`mini_config`, with the
    crash of :data:`BROKEN_METHOD` injected (made once per pytest process, shared by the
    tests that compare against it)."""
    if "local" not in _REFERENCE:
        wd = scratch("reference") / "run"
        res = local_run(wd, mini_config(), env=base_env(**INJECT))
        check(res, "local reference run of the mini config")
        _REFERENCE["local"] = wd
    return _REFERENCE["local"]


# measurements of the run itself, not results: they differ between any two runs
RESOURCE_METRICS = ("runtime_s", "max_rss_mb")

# A method that crashes: the workflow's impute script raises a RuntimeError inside the
# method's job for every method named in SCZIVA_BENCH_INJECT_FAILURE (its test hook).
BROKEN_METHOD = "magic"
INJECT = {"SCZIVA_BENCH_INJECT_FAILURE": BROKEN_METHOD}

# a control, the GPU-capable scZiva, and a CPU method that crashes (with INJECT)
MINI_METHODS = ("no_imputation", "scziva", BROKEN_METHOD)


def mini_config(methods=MINI_METHODS, **overrides) -> dict:
    """config/test.yaml cut down for the end-to-end tests of this folder.

    Same simulated dataset, seeds and method settings, but one scenario (the first
    dropout rate), a few methods (:data:`MINI_METHODS`: a control, the GPU-capable
    scZiva, a method that crashes), PNG figures only and no UMAP figure, so that a whole
    run is a dozen short jobs.
    ``overrides`` replace top-level keys; ``methods`` entries may be names (settings from
    the test config) or (name, settings) pairs.
    """
    cfg = test_config()
    rates = cfg["scenarios"]["dropout"]["rates"][:1]
    cfg["scenarios"] = {"dropout": {"rates": rates,
                                    "seeds": cfg["scenarios"]["dropout"]["seeds"][:1]}}
    chosen = {}
    for m in methods:
        if isinstance(m, tuple):
            chosen[m[0]] = m[1]
        else:
            chosen[m] = cfg["methods"].get(m) or {}
    cfg["methods"] = chosen
    cfg["figures"] = {**(cfg.get("figures") or {}), "formats": ["png"],
                      "umap": {"enabled": False}}
    cfg.update(overrides)
    return cfg


def local_run(workdir, cfg: dict, *args: str, timeout: float = 600, **kw):
    """Write ``cfg`` next to ``workdir`` and run it locally with profiles/default."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfgfile = write_config(cfg, workdir.parent / f"{workdir.name}.config.yaml")
    return snakemake(workdir, *args, profile="default", configfile=cfgfile,
                     timeout=timeout, **kw)


def result_values(path) -> dict:
    """:func:`metric_values` without the run's own time and memory measurements."""
    return {k: v for k, v in metric_values(path).items() if k[3] not in RESOURCE_METRICS}
