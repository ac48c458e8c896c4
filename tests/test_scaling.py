"""benchmarks/scaling.py (issue 23): time and peak memory against the number of cells.

One tiny run (100 / 200 / 300 cells x 50 genes, kNN-smoothing and ALRA, one thread, a 3 s
cap) is shared by the tests. The test-only variable SCZIVA_SCALING_TEST makes kNN-smoothing
sleep 30 s inside the timed call from 200 cells on (so that it goes over the cap) and ALRA
raise at 300 cells (a crash).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scaling.py"
TINY = ["--cells", "100", "200", "300", "--genes", "50", "--methods", "knn_smoothing", "alra",
        "--cap", "3", "--threads", "1", "--regime", "umi"]
SLEEP_S = 30


def _script():
    spec = importlib.util.spec_from_file_location("scaling_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(*args, test_env=None, cwd=None):
    env = dict(os.environ)
    env.pop("SCZIVA_SCALING_TEST", None)
    if test_env:
        env["SCZIVA_SCALING_TEST"] = test_env
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                         text=True, env=env, cwd=cwd, timeout=300)
    return res, time.perf_counter() - t0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaling") / "out"
    res, secs = _run(*TINY, "--out", out,
                     test_env=f"knn_smoothing@200=sleep:{SLEEP_S},alra@300=fail")
    assert res.returncode == 0, res.stderr
    return out, res, secs


def _rows(out):
    return {(r["method"], r["n_cells"]): r for r in _script().read_rows(out / "scaling.tsv")}


def test_outputs_exist_and_agree(tiny):
    out, _, _ = tiny
    mod = _script()
    rows = _rows(out)
    assert len(rows) == 6
    header = (out / "scaling.tsv").read_text().splitlines()[0].split("\t")
    assert header[:7] == ["method", "n_cells", "n_genes", "status", "seconds", "peak_mb", "note"]
    for ext in ("png", "pdf"):
        assert (out / f"scaling.{ext}").stat().st_size > 1000
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the markdown table holds the tsv's numbers
    md = (out / "scaling.md").read_text().splitlines()
    table = [ln for ln in md if ln.startswith("| ")]
    assert table[0] == "| method | 100 cells | 200 cells | 300 cells |"
    labels = {"knn_smoothing": "kNN-smoothing (re-impl.)", "alra": "ALRA (re-impl.)"}
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method = next(m for m, lab in labels.items() if lab == cells[0])
        for n, text in zip((100, 200, 300), cells[1:]):
            r = rows[(method, n)]
            assert text == mod.cell_text(r)
            if r["status"] == "ok":
                assert text == f"{mod.seconds_text(r['seconds'])} s / {r['peak_mb']:,.0f} MB"
                assert r["seconds"] > 0 and r["peak_mb"] > 10 and r["n_genes"] == 50
    for n in (100, 200):
        assert rows[("alra", n)]["status"] == "ok"
    assert rows[("knn_smoothing", 100)]["status"] == "ok"
    assert (out / "data" / "umi_dropout50_s1_g4_seed1_300x50.h5ad").is_file()


def test_over_cap_is_killed_and_larger_sizes_skipped(tiny):
    out, res, secs = tiny
    rows = _rows(out)
    over = rows[("knn_smoothing", 200)]
    assert over["status"] == "over_cap" and over["seconds"] is None
    assert over["note"].startswith("killed after")
    skipped = rows[("knn_smoothing", 300)]
    assert skipped["status"] == "skipped" and skipped["note"] == "over cap at 200"
    assert "over cap (3 s)" in (out / "scaling.md").read_text()
    assert secs < SLEEP_S, "the sleeping worker was waited for, not killed at the cap"


def test_crash_is_failed_with_its_error_line(tiny):
    out, _, _ = tiny
    r = _rows(out)[("alra", 300)]
    assert r["status"] == "failed"
    assert r["note"] == "RuntimeError: SCZIVA_SCALING_TEST: injected failure of alra"
    assert "Traceback" in (out / "logs" / "alra_300x50.log").read_text()


def test_resume_runs_nothing_again(tiny):
    out, _, _ = tiny
    before = (out / "scaling.tsv").read_text()
    # without the test variable a rerun would change the over-cap and failed rows
    res, _ = _run(*TINY, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "0 run, 5 kept" in res.stdout
    assert (out / "scaling.tsv").read_text() == before


@pytest.mark.parametrize("config, args, expected", [
    ("methods: [alra, nonesuch]\n", [], "methods: unknown method 'nonesuch'"),
    ("cells: [100, -5]\n", [], "cells: -5 is not a whole number"),
    ("genes: 50\n", ["--cells", "abc"], "cells: 'abc' is not a whole number"),
    ("methods: {alra: {params: {nonesuch: 1}}}\n", [], "unknown parameter of alra"),
    ("cap: 5\n", [], "unknown setting 'cap'"),
])
def test_bad_config_is_one_line(tmp_path, config, args, expected):
    cfg = tmp_path / "scaling.yaml"
    cfg.write_text("regime: umi\n" + config)
    res, _ = _run("--config", cfg, "--out", tmp_path / "out", *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scaling: ") and expected in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


def test_default_config_lists_every_method():
    import yaml

    from scziva_bench import methods
    from scziva_bench.catalog import methods as catalog

    cfg = yaml.safe_load((ROOT / "config" / "scaling.yaml").read_text())
    assert sorted(cfg["methods"]) == sorted(m for m in methods.available() if m not in catalog.CONTROLS)
    assert cfg["cells"] == [1000, 5000, 20000, 100000] and cfg["cap_s"] == 600


def test_readme_quotes_the_committed_scaling_rows():
    """README's scaling table is the one benchmarks/scaling.py writes from the committed
    docs/scaling.tsv (numbers generated, never typed)."""
    from scziva_bench.catalog import methods as catalog

    mod = _script()
    rows = mod.read_rows(ROOT / "docs" / "scaling.tsv")
    assert rows and {r["status"] for r in rows} <= {"ok", "over_cap", "failed", "skipped"}
    readme = (ROOT / "README.md").read_text()
    for r in rows:
        label = catalog.label(r["method"])
        line = next((ln for ln in readme.splitlines() if ln.startswith(f"| {label} |")), None)
        assert line is not None, label
        assert mod.cell_text(r) in line, (label, r["n_cells"], mod.cell_text(r), line)
    # every method measured at 1,000 / 5,000 / 20,000 cells, at or over the cap
    sizes = {r["n_cells"] for r in rows}
    assert {1000, 5000, 20000} <= sizes
    assert (ROOT / "docs" / "img" / "scaling.png").stat().st_size > 10_000


def test_cell_text_agrees_with_the_tsv_round_trip(tmp_path):
    """A peak of 197.46 MB is 197.5 in the tsv: the table written from the run's rows and
    the one read back from the tsv both say 198 (they disagreed, 197 against 198)."""
    mod = _script()
    row = {"method": "alra", "n_cells": 100, "n_genes": 50, "status": "ok", "seconds": 0.01704,
           "peak_mb": 197.46, "note": "", "params": "", "setup": "", "cap_s": 600.0}
    mod.write_tsv([row], tmp_path / "s.tsv")
    back = mod.read_rows(tmp_path / "s.tsv")[0]
    assert mod.cell_text(row) == mod.cell_text(back) == "0.017 s / 198 MB"
