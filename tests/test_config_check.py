"""Config checks at the workflow's start (issue 24): one line per problem naming its key,
method parameters checked against what each method accepts, unknown methods named as such."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from _configs import workflow_configs
from scziva_bench.pipeline.config_check import problems

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def base():
    return yaml.safe_load((REPO / "config" / "test.yaml").read_text())


def _check(cfg):
    lines = problems(cfg, SCHEMA)
    assert all("\n" not in ln and ln.startswith("config: ") for ln in lines), lines
    return lines


@pytest.mark.parametrize("path", workflow_configs(), ids=lambda p: p.name)
def test_shipped_configs_have_no_problem(path):
    assert _check(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("method,params,expect", [
    ("scziva", {"num_epoch": 3}, r"^config: methods\.scziva\.params\.num_epoch: unknown parameter of scziva; accepted: .*num_epochs"),
    ("scziva", {"num_epochs": "three"}, r"^config: methods\.scziva\.params\.num_epochs: must be an integer >= 1, got 'three'$"),
    ("scziva", {"lr": float("nan")}, r"methods\.scziva\.params\.lr: must be a finite number > 0"),
    ("scziva", {"impute_value": "median"}, r"methods\.scziva\.params: impute_value must be one of"),
    ("scziva_authors", {"pi_ridge": 1}, r"methods\.scziva_authors\.params: pi_ridge is not part of mode='authors'"),
    ("scziva", {"seed": 4}, r"methods\.scziva\.params\.seed: set by the benchmark"),
    ("magic", {"knn": "five"}, r"^config: methods\.magic\.params\.knn: must be a number, got 'five' \(default 5\)$"),
    ("magic", {"knnn": 5}, r"methods\.magic\.params\.knnn: unknown parameter of magic; accepted: decay, knn"),
    ("dca", {"restore_best": "yes"}, r"methods\.dca\.params\.restore_best: must be true or false"),
])
def test_method_parameters_are_checked(base, method, params, expect):
    import re

    cfg = copy.deepcopy(base)
    cfg["methods"][method] = {"params": params}
    lines = _check(cfg)
    assert len(lines) == 1 and re.search(expect, lines[0]), lines


def test_values_methods_take_beside_the_default_type_pass(base):
    cfg = copy.deepcopy(base)
    cfg["methods"]["magic"] = {"params": {"t": "auto", "decay": 0.5}}  # MAGIC's own choices
    cfg["methods"]["scziva"] = {"params": {"num_epochs": 5, "pi_ridge": 0.5, "tau": 1}}
    assert _check(cfg) == []


def test_unknown_method_is_named_as_such_not_as_a_missing_command(base):
    cfg = copy.deepcopy(base)
    cfg["methods"]["magik"] = {"params": {"knn": 3}}
    lines = _check(cfg)
    assert len(lines) == 1, lines
    assert "unknown method 'magik'" in lines[0] and "magic" in lines[0] and "callable" in lines[0]
    assert "command" in lines[0] and "required" not in lines[0]


def test_schema_errors_are_one_short_line_each(base):
    cfg = copy.deepcopy(base)
    cfg["seed"] = -1
    cfg["on_error"] = "maybe"
    cfg["scenarios"]["dropout"]["rates"] = [1.5]
    cfg["dataset"] = {}
    lines = _check(cfg)
    assert len(lines) == 4, lines
    joined = "\n".join(lines)
    assert "config: seed: -1 is less than the minimum of 0" in joined
    assert "config: on_error: 'maybe' is not one of mark, stop" in joined
    assert "config: scenarios.dropout.rates.0:" in joined and "1.5" in joined
    assert "'dataset' was unexpected" in joined
    assert all(len(ln) < 300 for ln in lines)


def test_user_callable_parameters_checked_against_its_signature(base, tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("def impute(adata, k=3, seed=0):\n    return adata.X\n")
    cfg = copy.deepcopy(base)
    cfg["methods"]["mine"] = {"callable": f"{f}:impute", "params": {"kk": 2}}
    lines = _check(cfg)
    assert len(lines) == 1 and "methods.mine.params.kk" in lines[0] and "accepted: k" in lines[0], lines
    cfg["methods"]["mine"]["params"] = {"k": 2}
    assert _check(cfg) == []


def test_dry_run_stops_with_the_one_line(tmp_path, base):
    from test_workflow import run_snakemake, write_config

    cfg = copy.deepcopy(base)
    cfg["methods"]["scziva"] = {"params": {"num_epoch": 3}}
    res = run_snakemake("-n", "--configfile", write_config(cfg, tmp_path / "c.yaml"), cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    hits = [ln for ln in out.splitlines() if "methods.scziva.params.num_epoch" in ln]
    assert len(hits) == 1 and hits[0].startswith("config: methods.scziva.params.num_epoch: unknown parameter"), out
    assert "jsonschema" not in out and "Failed validating" not in out
    assert not (tmp_path / "results").exists()


def test_a_broken_user_entry_is_one_line_in_the_users_words(base):
    cfg = copy.deepcopy(base)
    cfg["methods"]["mine"] = {"callable": "pkg.mod:f", "command": "prog {input} {output}"}
    cfg["methods"]["theirs"] = {"command": "prog {input}"}
    cfg["metrics"] = None
    lines = _check(cfg)
    assert lines[0] == ("config: methods.mine: give exactly one of `callable` (a Python function) "
                        "or `command` (a program)"), lines
    assert lines[1].startswith("config: methods.theirs.command: must contain {input} and {output}"), lines
    assert any(ln.startswith("config: metrics: None is not of type array") for ln in lines), lines
    assert not any("should not be valid" in ln for ln in lines), lines
