"""docs/contributing.md's worked examples, applied exactly as written to a copy of the
checkout: the new method and the new metric end up in results/metrics.tsv."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow import run_snakemake

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "contributing.md"
BLOCK = re.compile(r"<!-- example: (new file|row in) (\S+) -->\n```python\n(.*?)```", re.S)
MARKERS = {"src/scziva_bench/catalog/methods.py": "    # new methods above this line",
           "src/scziva_bench/catalog/metrics.py": "        # new metrics above this line"}


def examples() -> list[tuple[str, str, str]]:
    found = BLOCK.findall(GUIDE.read_text())
    assert len(found) == 4, "docs/contributing.md: the method and metric examples moved"
    return found


def apply(checkout: Path) -> None:
    """Write each block where the guide says: a new file, or a row above the marker."""
    for how, rel, code in examples():
        path = checkout / rel
        if how == "new file":
            assert not path.exists(), rel
            path.write_text(code)
        else:
            text = path.read_text()
            assert text.count(MARKERS[rel]) == 1, f"{rel}: the marker line is missing"
            path.write_text(text.replace(MARKERS[rel], code + MARKERS[rel]))


def test_each_step_names_at_most_three_files():
    files = {rel for _, rel, _ in examples()}
    method = {f for f in files if "methods" in f}
    metric = files - method
    assert len(method) <= 3 and len(metric) <= 3


def test_the_worked_examples_run_through_the_workflow(tmp_path):
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for part in ("src", "workflow", "envs"):
        shutil.copytree(REPO / part, checkout / part, ignore=ignore)
    shutil.copy2(REPO / "Snakefile", checkout / "Snakefile")
    apply(checkout)
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"datasets": {"sim": {"source": "simulate", "simulate": {
               "n_cells": 60, "n_genes": 80, "n_groups": 2, "seed": 3}}},
           "scenarios": {"dropout": {"rates": [0.5], "seeds": [1]}},
           "methods": {"no_imputation": {}, "perfect": {}, "toy_mean": {}},
           "metrics": ["rmse_all", "toy_zero_share"],
           "figures": {"umap": {"enabled": False}}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = run_snakemake("results/metrics.tsv", "--cores", "2", "--configfile",
                        run / "config.yaml", cwd=run, snakefile=checkout / "Snakefile",
                        timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_csv(run / "results" / "metrics.tsv", sep="\t")
    share = df[df.metric == "toy_zero_share"].set_index("method")
    assert (share["status"] == "ok").all()
    # doing nothing leaves every dropped entry at zero; the toy method fills them all
    assert share.loc["no_imputation", "value"] == 1.0
    assert share.loc["toy_mean", "value"] == 0.0
    assert (df[df.method == "toy_mean"]["status"] == "ok").all()


def test_the_checkout_itself_is_untouched():
    """The examples exist only in the guide (nothing named toy ships)."""
    for _, rel, _ in examples():
        assert "toy" not in (REPO / rel).name or not (REPO / rel).exists()
    for rel in MARKERS:
        assert "toy" not in (REPO / rel).read_text()
