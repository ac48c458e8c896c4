"""The user's own methods (callable / command, issue 15), what every method sees (only the
observed counts), and the impute job's output checks and records (scziva_bench.methods.runner).

The fast tests run methods written into pytest's temporary folder (outside the
repository) on a hand-made scenario. The end-to-end test (slow) runs the workflow on a
tiny simulation with two built-in methods, a callable and a command.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from scziva.errors import InputError
from scziva_bench import methods
from scziva_bench.methods import runner
from scziva_bench.methods import external

REPO = Path(__file__).resolve().parents[1]
PY = shlex.quote(sys.executable)
N_CELLS, N_GENES = 30, 12


@pytest.fixture
def scenario():
    """A dropout scenario with everything a method must not see: truth, mask, true
    groups, DE facts, true means, scenario facts."""
    rng = np.random.default_rng(7)
    mean = rng.gamma(2.0, 20.0, size=N_GENES)  # some counts well above 50
    truth = rng.poisson(mean, size=(N_CELLS, N_GENES)).astype(np.float32)
    mask = (rng.random(truth.shape) < 0.3) & (truth > 0)
    counts = np.where(mask, 0, truth).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical(rng.choice(["a", "b"], N_CELLS))},
                       index=[f"cell{i}" for i in range(N_CELLS)])
    obs["group"] = obs["cell_type"]
    var = pd.DataFrame({"is_de": rng.random(N_GENES) < 0.2},
                       index=[f"gene{j}" for j in range(N_GENES)])
    a = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(counts)
    a.layers["truth"] = sp.csr_matrix(truth)
    a.layers["mask"] = sp.csr_matrix(mask.astype(np.uint8))
    a.layers["true_mean"] = np.tile(mean, (N_CELLS, 1)).astype(np.float32)
    a.varm["de_factor"] = np.ones((N_GENES, 2))
    a.uns["scenario"] = {"id": "dropout30_s1", "kind": "dropout", "rate": 0.3, "seed": 1}
    a.uns["sim_params"] = {"n_groups": 2}
    return a


def _counts(a):
    return a.layers["counts"].toarray()


def _write(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(code))
    return path


def _run(a, spec, name="mine", **kw):
    kw.setdefault("dataset_id", "d")
    return runner.impute_scenario(a, name, spec=spec, **kw)


def _failed(rec, name, *words):
    """The record is a failure whose one-line error names the method and the cause."""
    assert rec.uns["status"] == "failed"
    assert "imputed" not in rec.layers and rec.X is None
    err = str(rec.uns["error"])
    assert "\n" not in err and f"'{name}'" in err, err
    for w in words:
        assert w.lower() in err.lower(), (w, err)
    return err


# ---------------------------------------------------------------------------------------
# what a method sees

def test_method_input_holds_the_observed_counts_only(scenario):
    seen = methods.method_input(scenario)
    assert set(seen.layers) == {"counts"}
    assert list(seen.obs.columns) == ["n_counts"] and list(seen.var.columns) == []
    assert dict(seen.uns) == {} and not seen.obsm and not seen.varm
    np.testing.assert_array_equal(seen.X.toarray(), _counts(scenario))
    assert seen.layers["counts"] is seen.X
    np.testing.assert_allclose(seen.obs["n_counts"], _counts(scenario).sum(1))
    assert list(seen.obs_names) == list(scenario.obs_names)
    assert list(seen.var_names) == list(scenario.var_names)
    seen.X.data[:] = -1  # a method that writes into its input changes nothing upstream
    assert scenario.layers["counts"].min() >= 0


def test_registered_methods_get_the_counts_only_and_perfect_the_truth(scenario, monkeypatch):
    got = {}

    def spy(counts, *, seed, device, adata):
        got["adata"] = adata
        return counts.toarray()

    real_load = methods._load
    monkeypatch.setattr(methods, "_load", lambda name: methods.Adapter(
        name=name, uses_gpu=False, impute=spy) if name == "spy" else real_load(name))
    methods.run("spy", scenario)
    assert set(got["adata"].layers) == {"counts"} and "cell_type" not in got["adata"].obs
    rec = runner.impute_scenario(scenario, "perfect", dataset_id="d")
    np.testing.assert_array_equal(rec.layers["imputed"], scenario.layers["truth"].toarray())


def test_a_callable_gets_the_counts_seed_device_and_params(scenario, tmp_path):
    _write(tmp_path, "spy.py", """
        import json, os
        def impute(adata, seed, device, k=1):
            json.dump({"layers": sorted(adata.layers), "obs": list(adata.obs.columns),
                       "var": list(adata.var.columns), "uns": sorted(adata.uns),
                       "seed": seed, "device": device, "k": k},
                      open(os.path.join(os.path.dirname(__file__), "seen.json"), "w"))
            return adata.X.toarray() + k
    """)
    rec = _run(scenario, {"callable": f"{tmp_path}/spy.py:impute", "params": {"k": 2}}, seed=5)
    import json

    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"layers": ["counts"], "obs": ["n_counts"], "var": [], "uns": [],
                    "seed": 5, "device": "cpu", "k": 2}
    assert rec.uns["status"] == "ok"
    np.testing.assert_array_equal(rec.layers["imputed"], _counts(scenario) + 2)
    assert rec.uns["method_kind"] == "user" and rec.uns["method_label"] == "mine (user)"
    assert rec.uns["method_source"] == f"callable: {tmp_path}/spy.py:impute"
    assert rec.uns["method_source_sha256"][0].endswith(f"  {tmp_path}/spy.py")
    assert rec.uns["method_params"] == {"k": 2} and rec.uns["runtime_s"] > 0
    assert rec.uns["scenario_id"] == "dropout30_s1" and rec.uns["dataset_id"] == "d"


# ---------------------------------------------------------------------------------------
# callables: the ways of naming one, the kinds of output

@pytest.mark.parametrize("kind", ["dense", "sparse", "anndata", "dataframe", "named_dataframe"])
def test_callable_output_kinds(scenario, tmp_path, kind):
    _write(tmp_path, "m.py", f"""
        import anndata as ad, numpy as np, pandas as pd, scipy.sparse as sp
        def impute(adata, **kw):
            X = adata.X.toarray() + 0.5
            kind = {kind!r}
            if kind == "sparse":
                return sp.csr_matrix(X)
            if kind == "anndata":
                out = ad.AnnData(obs=adata.obs[[]], var=adata.var[[]])
                out.layers["imputed"] = X
                return out
            if kind == "dataframe":
                return pd.DataFrame(X)
            if kind == "named_dataframe":
                return pd.DataFrame(X, index=adata.obs_names, columns=adata.var_names)
            return X
    """)
    rec = _run(scenario, {"callable": f"{tmp_path}/m.py:impute"})
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    np.testing.assert_allclose(rec.layers["imputed"], _counts(scenario) + 0.5)
    assert rec.layers["imputed"].dtype == np.float32


def test_callable_by_module_name_and_relative_path(scenario, tmp_path, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(pkg, "impute.py", "def run(adata, seed=0):\n    return adata.X.toarray() * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rec = _run(scenario, {"callable": "mypkg.impute:run"})
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    monkeypatch.chdir(tmp_path)  # relative paths: from the working directory
    rec = _run(scenario, {"callable": "mypkg/impute.py:run"})
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    np.testing.assert_array_equal(rec.layers["imputed"], 2 * _counts(scenario))


# ---------------------------------------------------------------------------------------
# everything a user's method may get wrong: failed, one line, the run goes on

BAD_CALLABLES = {
    # name: (function body, words the one-line error must contain)
    "raises": ("raise ValueError('my bug')", ["raised ValueError", "my bug"]),
    "wrong_shape": ("return adata.X.toarray()[:, :5]", ["shape (30, 5)", "expected (30, 12)"]),
    "transposed": ("return adata.X.toarray().T", ["shape (12, 30)", "genes x cells"]),
    "nan": ("X = adata.X.toarray(); X[0, 0] = np.nan; return X", ["1 NaN"]),
    "inf": ("X = adata.X.toarray(); X[:2, 0] = np.inf; return X", ["2 infinite"]),
    "negative": ("return adata.X.toarray() - 5", ["negative"]),
    "none": ("return None", ["returned None"]),
    "not_a_matrix": ("return 'hello'", ["str", "not a cells x genes matrix"]),
    "anndata_other_cells": (
        "out = ad.AnnData(obs=pd.DataFrame(index=[f'x{i}' for i in range(adata.n_obs)]), "
        "var=adata.var[[]]); out.layers['imputed'] = adata.X.toarray(); return out",
        ["cell names", "'x0'"]),
    "anndata_reordered_genes": (
        "out = adata[:, adata.var_names[::-1]].copy(); out.layers['imputed'] = out.X.toarray(); "
        "return out", ["genes in another order"]),
    "anndata_no_layer": ("return adata.copy()", ["layers['imputed']"]),
    "bad_param": (None, ["does not accept parameter(s) zeta"]),
    "sys_exit": ("import sys; sys.exit(3)", ["raised SystemExit"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLABLES))
def test_bad_callable_output_fails_alone_with_one_line(scenario, tmp_path, case, caplog):
    body, words = BAD_CALLABLES[case]
    _write(tmp_path, "bad.py", "import anndata as ad, numpy as np, pandas as pd\n"
           "def impute(adata, seed=0, device='cpu'):\n    " + (body or "return adata.X") + "\n")
    spec = {"callable": f"{tmp_path}/bad.py:impute"}
    if case == "bad_param":
        spec["params"] = {"zeta": 1}
    with caplog.at_level(logging.INFO, logger="scziva_bench.methods.runner"):
        rec = _run(scenario, spec)
        good = runner.impute_scenario(scenario, "no_imputation", dataset_id="d")
    err = _failed(rec, "mine", *words)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and err in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()
    assert rec.shape == scenario.shape and list(rec.obs_names) == list(scenario.obs_names)
    assert rec.uns["method_kind"] == "user" and rec.uns["runtime_s"] >= 0
    assert good.uns["status"] == "ok"  # the next method of the run is not affected


@pytest.mark.parametrize("case, words", [
    ("missing_file", ["nope.py not found"]),
    ("syntax_error", ["could not be imported", "SyntaxError"]),
    ("import_error", ["could not be imported", "ModuleNotFoundError", "not_a_package_xyz"]),
    ("missing_module", ["could not be imported", "no_such_mod_xyz"]),
    ("missing_function", ["has no attribute 'impute'"]),
    ("not_callable", ["is a int, not a function"]),
])
def test_callable_that_does_not_import(scenario, tmp_path, case, words):
    files = {"syn.py": "def impute(:\n", "imp.py": "import not_a_package_xyz\n",
             "nofn.py": "def other(a):\n    pass\n", "val.py": "impute = 3\n"}
    for fname, code in files.items():
        _write(tmp_path, fname, code)
    target = {
        "missing_file": f"{tmp_path}/nope.py:impute",
        "syntax_error": f"{tmp_path}/syn.py:impute",
        "import_error": f"{tmp_path}/imp.py:impute",
        "missing_module": "no_such_mod_xyz.sub:impute",
        "missing_function": f"{tmp_path}/nofn.py:impute",
        "not_callable": f"{tmp_path}/val.py:impute",
    }[case]
    rec = _run(scenario, {"callable": target})
    _failed(rec, "mine", *words)


def test_callable_that_never_finishes_is_stopped(scenario, tmp_path):
    _write(tmp_path, "slow.py", "import time\ndef impute(adata):\n    time.sleep(60)\n")
    rec = _run(scenario, {"callable": f"{tmp_path}/slow.py:impute"}, timeout_s=0.5)
    _failed(rec, "mine", "did not finish within its runtime limit of 0.5 s")
    assert rec.uns["runtime_s"] < 10


def test_log_transformed_output_is_kept_with_a_named_warning(scenario, tmp_path, caplog):
    assert _counts(scenario).max() >= 50
    _write(tmp_path, "logm.py", "import numpy as np\n"
           "def impute(adata):\n    return np.log1p(adata.X.toarray())\n")
    with caplog.at_level(logging.WARNING, logger="scziva_bench.methods.runner"):
        rec = _run(scenario, {"callable": f"{tmp_path}/logm.py:impute"})
    assert rec.uns["status"] == "ok"
    assert any("log-scale check" in w for w in rec.uns["warnings"])
    assert any("log-scale check" in r.getMessage() and "'mine'" in r.getMessage()
               for r in caplog.records)
    # a count-scale output raises no warning
    assert "warnings" not in runner.impute_scenario(scenario, "perfect", dataset_id="d").uns


def test_output_equal_to_the_input_is_noted(scenario, tmp_path):
    _write(tmp_path, "same.py", "def impute(adata):\n    return adata.X\n")
    rec = _run(scenario, {"callable": f"{tmp_path}/same.py:impute"})
    assert rec.uns["status"] == "ok"
    assert "no_imputation" in rec.uns["note"] and "changed nothing" in rec.uns["note"]
    assert "note" not in runner.impute_scenario(scenario, "no_imputation", dataset_id="d").uns


def test_tiny_negative_rounding_is_clipped(scenario, tmp_path):
    _write(tmp_path, "r.py", "def impute(adata):\n    return adata.X.toarray() + 1 - 1 - 1e-7\n")
    rec = _run(scenario, {"callable": f"{tmp_path}/r.py:impute"})
    assert rec.uns["status"] == "ok" and rec.layers["imputed"].min() >= 0


# ---------------------------------------------------------------------------------------
# commands

CSV_TOOL = """
    import csv, sys
    inp, out, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rows = list(csv.reader(open(inp, newline="")))
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        for r in rows[1:]:
            w.writerow([r[0]] + [float(v) * scale + 1 for v in r[1:]])
    print("tool done")
"""

H5AD_TOOL = """
    import sys, anndata as ad
    a = ad.read_h5ad(sys.argv[1])
    assert set(a.layers) == {"counts"}, a
    a.layers["imputed"] = a.X.toarray() + int(sys.argv[3])
    a.write_h5ad(sys.argv[2])
"""


def test_command_csv_and_h5ad(scenario, tmp_path, caplog):
    folder = tmp_path / "a folder with spaces"
    folder.mkdir()
    tool = _write(folder, "tool.py", CSV_TOOL)
    spec = {"command": f"{PY} {shlex.quote(str(tool))} {{input}} {{output}} {{scale}}",
            "input_format": "csv", "params": {"scale": 2}}
    with caplog.at_level(logging.INFO, logger="scziva_bench.methods.runner"):
        rec = _run(scenario, spec, workdir=folder)
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    np.testing.assert_allclose(rec.layers["imputed"], 2 * _counts(scenario) + 1)
    assert "tool done" in caplog.text  # the command's output is in the job's log
    assert sorted(p.name for p in folder.iterdir()) == ["tool.py"]  # temp files removed
    assert rec.uns["method_source"].startswith("command: ")
    tool = _write(folder, "h5.py", H5AD_TOOL)
    rec = _run(scenario, {"command": [sys.executable, str(tool), "{input}", "{output}",
                                      "{threads}"]}, threads=3, workdir=folder)
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    np.testing.assert_allclose(rec.layers["imputed"], _counts(scenario) + 3)


def test_command_substitutes_values_without_a_shell(scenario, tmp_path):
    """A parameter holding shell syntax is one argument, never run."""
    marker = tmp_path / "pwned"
    tool = _write(tmp_path, "echo.py", """
        import sys, shutil, json
        json.dump(sys.argv[1:], open(sys.argv[2] + ".argv.json", "w"))
        import anndata as ad
        a = ad.read_h5ad(sys.argv[1]); a.layers["imputed"] = a.X.toarray() + 1
        a.write_h5ad(sys.argv[2])
        shutil.copy(sys.argv[2] + ".argv.json", sys.argv[4])
    """)
    evil = f"x; touch {marker} $(touch {marker})"
    spec = {"command": f"{PY} {tool} {{input}} {{output}} {{evil}} {tmp_path}/argv.json",
            "params": {"evil": evil}}
    rec = _run(scenario, spec, workdir=tmp_path)
    assert rec.uns["status"] == "ok", rec.uns.get("error")
    import json

    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[2] == evil and not marker.exists()


@pytest.mark.parametrize("case, words", [
    ("exit_status", ["command exited with status 3", "last output line: boom"]),
    ("no_output", ["wrote no output file"]),
    ("wrong_shape", ["shape (30, 11)"]),
    ("other_gene_order", ["genes in another order"]),
    ("other_cells", ["cell names that differ", "'zz'"]),
    ("not_numeric", ["non-numeric"]),
    ("not_found", ["could not be started", "no_such_program_xyz"]),
    ("timeout", ["did not finish within its runtime limit of 1 s", "killed"]),
])
def test_bad_command_fails_alone_with_one_line(scenario, tmp_path, case, words):
    code = {
        "exit_status": "print('working'); print('boom', file=sys.stderr); sys.exit(3)",
        "no_output": "pass",
        "wrong_shape": "rows = [r[:-1] for r in rows]; write(rows)",
        "other_gene_order": "rows = [[r[0]] + r[1:][::-1] for r in rows]; write(rows)",
        "other_cells": "rows[1][0] = 'zz'; write(rows)",
        "not_numeric": "rows[1][1] = 'abc'; write(rows)",
        "timeout": "import time; time.sleep(60)",
        "not_found": "pass",
    }[case]
    tool = _write(tmp_path, "bad.py", "import csv, sys\n"
                  "rows = list(csv.reader(open(sys.argv[1], newline='')))\n"
                  "def write(rows):\n"
                  "    csv.writer(open(sys.argv[2], 'w', newline='')).writerows(rows)\n" + code + "\n")
    cmd = f"{PY} {tool} {{input}} {{output}}"
    if case == "not_found":
        cmd = "no_such_program_xyz {input} {output}"
    rec = _run(scenario, {"command": cmd, "input_format": "csv"}, timeout_s=1, workdir=tmp_path)
    _failed(rec, "mine", *words)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".work")] == []


# ---------------------------------------------------------------------------------------
# bad configuration: the job stops with one sentence (the workflow checks it at start)

@pytest.mark.parametrize("spec, words", [
    ({"callable": "x.py:f", "command": "a {input} {output}"}, ["exactly one"]),
    ({"callable": "no_function_part"}, ["not of the form"]),
    ({"command": "tool {input} {output} {nope}"}, ["unknown placeholder", "{nope}"]),
    ({"command": "tool {input}"}, ["{output}"]),
    ({"command": "tool 'unclosed {input} {output}"}, ["cannot be split"]),
    ({"command": "tool {input} {output}", "input_format": "tsv"}, ["input_format"]),
    ({"callable": "x.py:f", "input_format": "csv"}, ["only a command"]),
    ({"callable": "x.py:f", "colour": "red"}, ["unknown key", "colour"]),
])
def test_bad_external_spec_is_an_input_error(scenario, spec, words):
    with pytest.raises(InputError) as exc:
        external.check_spec("mine", spec)
    msg = str(exc.value)
    assert "methods.mine" in msg and "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    with pytest.raises(InputError):
        _run(scenario, spec)


def test_on_error_stop_and_the_injection_hook(scenario, tmp_path, monkeypatch):
    _write(tmp_path, "bad.py", "def impute(adata):\n    raise ValueError('x')\n")
    with pytest.raises(external.MethodFailure):
        _run(scenario, {"callable": f"{tmp_path}/bad.py:impute"}, on_error="stop")
    monkeypatch.setenv(runner.INJECT_VAR, "no_imputation@dropout30_s1")
    rec = runner.impute_scenario(scenario, "no_imputation", dataset_id="d")
    _failed(rec, "no_imputation", "RuntimeError", runner.INJECT_VAR)
    assert runner.impute_scenario(scenario, "no_imputation", dataset_id="d",
                                  scenario_id="other").uns["status"] == "ok"


def test_unknown_builtin_parameter_stops_the_job(scenario):
    with pytest.raises(InputError, match="unknown parameter"):
        runner.impute_scenario(scenario, "knn_smoothing", params={"kk": 3}, dataset_id="d")


# ---------------------------------------------------------------------------------------
# method facts

def test_describe_covers_every_method_without_importing_them():
    for name in methods.available():
        facts = methods.describe(name)
        assert facts["kind"] in methods.KINDS and facts["label"] and facts["source"], name
        assert methods.get(name).kind == facts["kind"]
    assert {methods.describe(m)["kind"] for m in methods.CONTROLS} == {"control"}
    assert methods.describe("dca")["label"].endswith("(re-impl.)")
    cfg = {"mine": {"callable": "a.py:f", "label": "Mine"}, "r": {"command": "Rscript x.R"}}
    assert methods.describe("mine", cfg) == {"kind": "user", "label": "Mine",
                                             "source": "callable: a.py:f"}
    assert methods.describe("r", cfg) == {"kind": "user", "label": "r (user)",
                                          "source": "command: Rscript x.R"}
    assert methods.describe("unknown_from_a_table")["kind"] == "user"
    code = ("import sys; from scziva_bench import methods; "
            "[methods.describe(m) for m in methods.available()]; "
            "heavy = [m for m in ('torch', 'scvi', 'magic', 'anndata', 'scanpy') if m in sys.modules]; "
            "assert not heavy, heavy")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_example_config_validates_and_its_methods_run(scenario, monkeypatch):
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "examples" / "config.yaml").read_text())
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    users = {k: v for k, v in cfg["methods"].items() if methods.is_external(v)}
    assert {"callable" in v for v in users.values()} == {True, False}
    assert len([m for m in cfg["methods"] if m in methods.available()
                and m not in methods.CONTROLS]) >= 2
    monkeypatch.chdir(REPO)  # the example's paths are relative to the repository root
    for name, spec in users.items():
        spec = dict(spec)
        if "command" in spec:  # `python3` of the example: this interpreter here
            spec["command"] = spec["command"].replace("python3", PY, 1)
        rec = _run(scenario, spec, name=name)
        assert rec.uns["status"] == "ok", rec.uns.get("error")
        assert "note" not in rec.uns and "warnings" not in rec.uns
        imp, obs = rec.layers["imputed"], _counts(scenario)
        np.testing.assert_array_equal(imp[obs > 0], obs[obs > 0])  # observed counts kept
        assert (imp[obs == 0] > 0).mean() > 0.5  # and zeros filled
    assert len((REPO / "examples" / "my_method.py").read_text().splitlines()) <= 12


# ---------------------------------------------------------------------------------------
# end to end: the workflow with a callable and a command written outside the repository

def _snakemake(*args, cwd, timeout=900):
    exe = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([str(exe), "-s", str(REPO / "Snakefile"), "-d", str(cwd), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_workflow_benchmarks_a_callable_and_a_command(tmp_path):
    mine = tmp_path / "my methods"  # outside the repository, with a space in its name
    mine.mkdir()
    for f in ("my_method.py", "my_command.py"):
        (mine / f).write_text((REPO / "examples" / f).read_text())
    cfg = {
        "datasets": {"tiny": {"source": "simulate",
                              "simulate": {"n_cells": 60, "n_genes": 80, "n_groups": 2, "seed": 1}}},
        "scenarios": {"dropout": {"rates": [0.5], "seeds": [1]}},
        "methods": {
            "no_imputation": {}, "knn_smoothing": {},
            "mine": {"callable": f"{mine}/my_method.py:impute", "params": {"k": 5},
                     "label": "Mine (py)"},
            "mycmd": {"command": f"{PY} {shlex.quote(str(mine / 'my_command.py'))} "
                                 "{input} {output} --threads {threads}",
                      "input_format": "csv", "resources": {"runtime": 2}},
            "broken": {"command": f"{PY} -c \"import sys; sys.exit('my tool broke')\" "
                                  "{input} {output}"},
        },
        "default_resources": {"threads": 1, "mem_mb": 2000, "runtime": 10},
        "metrics": ["pearson_dropped", "rmse_dropped", "ari_kmeans"],
        "figures": {"formats": ["png"], "dpi": 60, "umap": {"enabled": False}},
    }
    run = tmp_path / "run"
    run.mkdir()
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = _snakemake("--cores", "2", "--configfile", str(cfg_path), cwd=run)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]

    R = run / "results"
    df = pd.read_csv(R / "metrics.tsv", sep="\t")
    for m in ("mine", "mycmd", "no_imputation", "knn_smoothing"):
        rows = df[df.method == m]
        assert set(cfg["metrics"]) <= set(rows.metric), m
        assert (rows.status == "ok").all(), rows
    # the broken method fails alone, with its one-line reason in its log and its output
    assert (df[df.method == "broken"].status == "failed").all()
    line = "method 'broken' failed: command exited with status 1; last output line: my tool broke"
    errors = [ln for ln in (R / "logs" / "impute" / "tiny" / "broken.log").read_text().splitlines()
              if " ERROR " in ln]
    assert len(errors) == 1 and line in errors[0], errors
    bad = ad.read_h5ad(R / "imputed" / "tiny" / "broken" / "dropout50_s1.h5ad")
    assert bad.uns["status"] == "failed" and bad.uns["error"] == line
    msgs = pd.read_csv(R / "imputed" / "tiny" / "broken" / "messages.tsv", sep="\t")
    assert list(msgs.level) == ["error"] and msgs.message[0] == line
    vals = df[df.metric == "pearson_dropped"].set_index("method").value
    assert vals["mine"] > vals["no_imputation"] or np.isnan(vals["no_imputation"])
    rec = ad.read_h5ad(R / "imputed" / "tiny" / "mycmd" / "dropout50_s1.h5ad")
    assert rec.uns["method_kind"] == "user" and "my_command.py" in rec.uns["method_source"]
    assert rec.uns["method_seed"] == 1  # seed 0 + the scenario's seed
    msgs = pd.read_csv(R / "imputed" / "tiny" / "mine" / "messages.tsv", sep="\t")
    assert list(msgs.columns) == runner.MESSAGE_COLUMNS and msgs.empty  # nothing to say
    assert (R / "figures" / "ranks.png").stat().st_size > 1000
    import matplotlib

    matplotlib.use("Agg")
    from scziva_bench.report import plots

    fig = plots.plot_ranks(df)  # the rank figure, drawn again from the same table
    ticks = " ".join(t.get_text() for ax in fig.axes for t in ax.get_yticklabels() +
                     ax.get_xticklabels())
    assert ("mine" in ticks or "Mine (py)" in ticks) and "mycmd" in ticks, ticks
    html = (R / "report.html").read_text()
    assert "mine" in html and "mycmd" in html and "broken" in html


def test_record_messages_and_provenance(scenario, tmp_path):
    _write(tmp_path, "logm.py", "import numpy as np\n"
           "def impute(adata):\n    return np.log1p(adata.X.toarray())\n")
    spec = {"callable": f"{tmp_path}/logm.py:impute"}
    rec = _run(scenario, spec)
    path = tmp_path / "rec.h5ad"
    from scziva_bench.data import io

    io.write_h5ad_atomic(rec, path)  # the record survives the round trip
    rows = runner.record_messages(ad.read_h5ad(path))
    assert [r["level"] for r in rows] == ["warning"] and "log-scale" in rows[0]["message"]
    assert rows[0]["method"] == "mine" and rows[0]["scenario"] == "dropout30_s1"
    bad = runner.failure_record(scenario, "method 'x' failed:\tboom", method="x", dataset_id="d")
    assert runner.record_messages(bad)[0]["level"] == "error"
    text = runner.messages_tsv(rows + runner.record_messages(bad))
    table = pd.read_csv(__import__("io").StringIO(text), sep="\t")
    assert list(table.columns) == runner.MESSAGE_COLUMNS and list(table.level) == ["warning", "error"]
    assert table.message[1] == "method 'x' failed: boom"
    cfg = {"mine": spec, "alra": {}, "cmd": {"command": f"{PY} {tmp_path}/logm.py {{input}} {{output}}"}}
    prov = external.provenance(cfg)
    assert prov["alra"]["kind"] == "reimplementation" and prov["mine"]["kind"] == "user"
    assert f"{tmp_path}/logm.py" in prov["cmd"]["source_sha256"]
    external.check_config(cfg)
    with pytest.raises(InputError, match="methods.bad"):
        external.check_config({**cfg, "bad": {"command": "x {input}"}})


def test_a_file_is_loaded_once_per_job_and_again_when_it_changes(scenario, tmp_path):
    code = ("import pathlib\n"
            "p = pathlib.Path(__file__).with_suffix('.count')\n"
            "p.write_text(str(int(p.read_text()) + 1 if p.exists() else 1))\n"
            "def impute(adata):\n    return adata.X.toarray() + {}\n")
    path = _write(tmp_path, "once.py", code.format(1))
    spec = {"callable": f"{path}:impute"}
    for _ in range(2):
        assert _run(scenario, spec).uns["status"] == "ok"
    assert path.with_suffix(".count").read_text() == "1"
    path.write_text(code.format(2))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10 ** 9))
    rec = _run(scenario, spec)
    np.testing.assert_array_equal(rec.layers["imputed"], _counts(scenario) + 2)
    assert path.with_suffix(".count").read_text() == "2"
