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
    # ok, or not applicable (e.g. MCV metrics in a dropout scenario), never failed
    assert good["status"].isin(["ok", "not_applicable"]).all(), good[good["status"] == "failed"]
    for m, rows in good.groupby("method"):
        vals = rows.loc[rows["metric"].isin(configured), "value"]
        assert vals.notna().sum() >= len(configured) // 2, (m, vals)
    # the crash is explained where the user looks: the method's log and its output
    log = next((res / "logs" / "impute").rglob(f"{BROKEN}.log")).read_text()
    assert "SCZIVA_BENCH_INJECT_FAILURE" in log
    import anndata as ad

    out = ad.read_h5ad(res / "imputed" / "tiny" / BROKEN / f"{SCENARIO}.h5ad")
    assert out.uns["status"] == "failed"
    assert "imputed" not in out.layers
    assert "RuntimeError" in str(out.uns["error"])


@pytest.mark.slow
def test_figures_mark_the_failed_method(reference):
    """The figures of the run are drawn from metrics.tsv by scziva_bench.report.plots: the
    failed method is drawn as failed (text on the axes), not left out."""
    res = reference / "results"
    names = {p.stem for p in (res / "figures").glob("*.png")}
    assert {"ranks", "resources"} <= names
    assert all(f"metric_{m}" in names for m in runs.test_config()["metrics"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from scziva_bench.report import plots

    df = pd.read_csv(res / "metrics.tsv", sep="\t")
    fig = plots.plot_metric(df, "rmse_dropped")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    labels = [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]
    plt.close(fig)
    assert "failed" in texts
    assert any(plots.method_label(BROKEN) in lab for lab in labels)
    fig = plots.plot_ranks(df, ["zeros_gene_pearson", "ari_kmeans"])  # ranked metrics
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
    targets = [f"results/imputed/tiny/{m}" for m in ("no_imputation", BROKEN)]
    res = runs.local_run(wd, cfg, *targets, env=runs.base_env(**runs.INJECT))
    assert res.returncode != 0
    assert f"Error in rule impute_{BROKEN}" in res.stdout
    assert (wd / targets[0] / f"{SCENARIO}.h5ad").is_file()
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
    # outputs are written to a temporary name and renamed: whatever .h5ad exists right
    # after the kill is complete
    _all_h5ad_readable(wd / "results")

    # the restart goes up to the metrics table (figures are drawn from it)
    target = "results/metrics.tsv"
    res = runs.local_run(wd, cfg, target, env=env)
    if res.returncode != 0 and "cannot be locked" in res.stdout:
        # a killed Snakemake leaves its lock; the documented way out
        runs.check(runs.local_run(wd, cfg, "--unlock", env=env), "snakemake --unlock")
        res = runs.local_run(wd, cfg, target, env=env)
    runs.check(res, "the restarted run")
    assert _all_h5ad_readable(wd / "results") >= 4
    diffs = runs.same_values(runs.result_values(reference / "results" / "metrics.tsv"),
                             runs.result_values(wd / "results" / "metrics.tsv"))
    assert not diffs, "restarted run differs from an uninterrupted one:\n" + "\n".join(diffs)


# ---------------------------------------------------------------------------------------
# what a results folder records

def _assert_contains(got, given, where="config"):
    if isinstance(given, dict):
        assert isinstance(got, dict), where
        for k, v in given.items():
            assert k in got, f"{where}.{k} missing"
            _assert_contains(got[k], v, f"{where}.{k}")
    else:
        assert got == given, where


@pytest.mark.slow
def test_results_record_config_and_package_versions(reference):
    prov = yaml.safe_load((reference / "results" / "provenance.yaml").read_text())
    cfg = yaml.safe_load((reference.parent / f"{reference.name}.config.yaml").read_text())
    # the config it was made with, as given (JSON round trip: tuples become lists)
    # every key as given (the schema adds its defaults for the keys not given)
    _assert_contains(prov["config"], json.loads(json.dumps(cfg)))
    pk = prov["packages"]
    from importlib.metadata import version

    for name in ("snakemake", "anndata", "numpy", "torch", "scanpy"):
        assert pk.get(name) == version(name), name
    assert "scziva" in pk
    assert prov["python"].count(".") == 2
    assert prov.get("created_utc")


# ---------------------------------------------------------------------------------------
# downloads: the workflow's download rule against a local stand-in for Zenodo

ZENODO_API_VAR = "SCZIVA_ZENODO_API"


def _zenodo_url_configurable() -> bool:
    """Whether the download rule lets the Zenodo API URL be set (SCZIVA_ZENODO_API)."""
    for p in (runs.REPO / "workflow" / "scripts" / "download_zenodo.py",
              runs.REPO / "src" / "scziva_bench" / "zenodo.py"):
        if p.exists() and ZENODO_API_VAR in p.read_text():
            return True
    return False


class FakeZenodo:
    """A Zenodo look-alike on 127.0.0.1: ``GET /api/records/<id>`` lists one file;
    ``GET /files/<name>`` serves it, each request taking the next action of ``plan``
    (then "ok"): ``"500"``, ``"cut"`` (headers for the whole file, half of it, then the
    connection closes), ``"corrupt"`` (right length, wrong bytes), ``"404"``, ``"ok"``.
    Range requests are honoured (206), as Zenodo does."""

    def __init__(self, record: str, name: str, data: bytes, plan=()):
        import hashlib

        self.record, self.name, self.data = record, name, data
        self.md5 = hashlib.md5(data).hexdigest()
        self.plan = list(plan)
        self.log: list[tuple[str, str, str]] = []  # (path, range header, action)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep pytest's output clean
                pass

            def _send(self, code, body: bytes, ctype="application/octet-stream", extra=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def handle(self, h) -> None:
        if h.path.rstrip("/") == f"/api/records/{self.record}":
            body = json.dumps({"id": int(self.record), "files": [{
                "key": self.name, "size": len(self.data), "checksum": f"md5:{self.md5}",
                "links": {"self": f"{self.url}/files/{self.name}"}}]}).encode()
            self.log.append((h.path, "", "listing"))
            h._send(200, body, "application/json")
            return
        if h.path != f"/files/{self.name}":
            h._send(404, b"not found")
            return
        action = self.plan.pop(0) if self.plan else "ok"
        rng = h.headers.get("Range", "")
        self.log.append((h.path, rng, action))
        start = int(rng.split("=")[1].split("-")[0]) if rng.startswith("bytes=") else 0
        body = self.data[start:]
        extra = [("Content-Range", f"bytes {start}-{len(self.data) - 1}/{len(self.data)}")] if start else []
        code = 206 if start else 200
        if action in ("500", "404"):
            h._send(int(action), b"server error" if action == "500" else b"gone")
        elif action == "cut":
            h.send_response(code)
            h.send_header("Content-Length", str(len(body)))
            for k, v in extra:
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            import socket as _s

            h.connection.shutdown(_s.SHUT_RDWR)
        elif action == "corrupt":
            h._send(code, bytes(b ^ 0x5A for b in body), extra=extra)
        else:
            h._send(code, body, extra=extra)


def _zenodo_config(record: str, name: str) -> dict:
    cfg = runs.mini_config(methods=("no_imputation",))
    cfg["datasets"] = {"zen": {"source": "zenodo", "record": record, "file": name,
                               "qc": {"min_cells_per_gene": 1, "min_genes_per_cell": 1}}}
    cfg.pop("figures", None)
    return cfg


def _csv_bytes(n_cells=40, n_genes=30, seed=3) -> bytes:
    import numpy as np

    X = np.random.default_rng(seed).poisson(2.0, size=(n_cells, n_genes))
    lines = ["cell," + ",".join(f"Gene{j}" for j in range(n_genes))]
    lines += [f"cell{i}," + ",".join(map(str, r)) for i, r in enumerate(X)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def zenodo_workflow():
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)
    if not _zenodo_url_configurable():
        pytest.skip(f"the download rule does not let the Zenodo API URL be set yet "
                    f"(needs the environment variable {ZENODO_API_VAR})")


@pytest.mark.slow
def test_download_recovers_from_server_errors_cuts_and_bad_checksums(zenodo_workflow, tmp_path):
    data = _csv_bytes()
    with FakeZenodo("4242", "counts.csv", data, plan=["500", "cut", "corrupt"]) as srv:
        wd = tmp_path / "run"
        res = runs.local_run(wd, _zenodo_config("4242", "counts.csv"),
                             "results/datasets/zen.h5ad",
                             env=runs.base_env(**{ZENODO_API_VAR: srv.api}))
        runs.check(res, "snakemake with a flaky Zenodo")
        actions = [a for _, _, a in srv.log if a != "listing"]
    # every fault was met, and the last request fetched the whole, right file
    assert actions[:3] == ["500", "cut", "corrupt"] and actions[-1] == "ok", srv.log
    got = wd / "resources" / "zenodo" / "4242" / "counts.csv"
    assert got.read_bytes() == data
    assert not list(got.parent.glob("*.part"))
    import anndata as ad
    import numpy as np

    adata = ad.read_h5ad(wd / "results" / "datasets" / "zen.h5ad")
    assert adata.shape == (40, 30)
    expect = np.loadtxt(data.decode().splitlines()[1:], delimiter=",",
                        converters={0: lambda s: 0}, usecols=range(1, 31))
    np.testing.assert_array_equal(np.asarray(adata.layers["counts"].todense()), expect)


@pytest.mark.slow
def test_download_that_cannot_succeed_is_reported_and_leaves_nothing(zenodo_workflow, tmp_path):
    with FakeZenodo("4243", "counts.csv", _csv_bytes(), plan=["404"] * 10) as srv:
        wd = tmp_path / "run"
        res = runs.local_run(wd, _zenodo_config("4243", "counts.csv"),
                             "results/datasets/zen.h5ad",
                             env=runs.base_env(**{ZENODO_API_VAR: srv.api}))
    assert res.returncode != 0
    assert "Error in rule download_zenodo" in res.stdout
    logs = list((wd / "results" / "logs" / "download_zenodo").rglob("*.log"))
    assert logs and any("counts.csv" in p.read_text() and "404" in p.read_text() for p in logs)
    assert not (wd / "resources" / "zenodo" / "4243" / "counts.csv").exists()
    assert not (wd / "results" / "datasets" / "zen.h5ad").exists()
