"""Bad input through the command line (`scziva impute IN OUT`) and through the workflow.

Every case must end with one clear message that names the file or config key, a non-zero
exit, no Python traceback, no output that could pass for a result, and the user's input
file unchanged (hashed before and after).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from slurm import runs

# ---------------------------------------------------------------------------------------
# bad files (cells x genes CSV unless said otherwise)

GENES = ["Actb", "Gapdh", "Cd3e", "Ms4a1", "Lyz2", "Nkg7"]
CELLS = [f"c{i}" for i in range(8)]


def _table(values, cells=CELLS, genes=GENES) -> str:
    lines = ["cell," + ",".join(genes)]
    for c, row in zip(cells, values):
        lines.append(c + "," + ",".join(str(v) for v in row))
    return "\n".join(lines) + "\n"


def _counts(seed=0, shape=(len(CELLS), len(GENES))):
    return np.random.default_rng(seed).poisson(3.0, size=shape).astype(int).tolist()


def _with(value, i=2, j=3):
    rows = _counts()
    rows[i][j] = value
    return _table(rows)


def _transposed() -> str:
    # genes x cells: Ensembl ids down the rows, 10x barcodes across the columns
    genes = [f"ENSG{100000 + i:011d}" for i in range(6)]
    cells = ["AAACCTGAGAAACCAT-1", "AAACCTGAGAAACCTA-1", "AAACCTGAGAAACGAG-1",
             "AAACCTGAGAAAGTGG-1", "AAACCTGCAAACAACA-1", "AAACCTGCAAACCTAC-1",
             "AAACCTGCAAACGCGA-1", "AAACCTGCAAAGCAAT-1"]
    vals = _counts(shape=(len(genes), len(cells)))
    lines = ["gene," + ",".join(cells)]
    lines += [g + "," + ",".join(map(str, r)) for g, r in zip(genes, vals)]
    return "\n".join(lines) + "\n"


# name -> (file content, regular expression the message must match besides the file name)
BAD_FILES = {
    "nan": (_with("NaN"), r"nan|finite|missing"),
    "inf": (_with("inf"), r"inf|finite"),
    "negative": (_with(-4), r"negative|>= ?0"),
    "text": (_with("abc"), r"numeric|number|parse|abc"),
    "empty": ("", r"empty"),
    "transposed": (_transposed(), r"orientation|genes_x_cells|look like"),
    "dup_genes": (_table(_counts(), genes=GENES[:-1] + ["Actb"]), r"duplicate"),
    "dup_cells": (_table(_counts(), cells=CELLS[:-1] + ["c0"]), r"duplicate"),
    "all_zero": (_table([[0] * len(GENES)] * len(CELLS)), r"zero|no cell|empty|qc|removed"),
    # issue 9: counts float32 cannot hold exactly, and empty names
    "huge": (_with(10 ** 12), r"16,777,216.*float32"),
    "huge_1e40": (_with("1e40"), r"1e\+40.*16,777,216"),
    "just_above_2_24": (_with(2 ** 24 + 1), r"16,777,216"),
    "empty_gene_name": (_table(_counts(), genes=GENES[:-2] + ["", GENES[-1]]), r"empty gene name"),
    "blank_gene_name": (_table(_counts(), genes=GENES[:-2] + ["  ", GENES[-1]]), r"empty gene name"),
    "empty_cell_name": (_table(_counts(), cells=CELLS[:-1] + [""]), r"empty cell name|no row name"),
}


def _write_h5ad_with_nan(path):
    import anndata as ad

    X = np.asarray(_counts(), dtype=np.float32)
    X[1, 2] = np.nan
    ad.AnnData(X=X).write_h5ad(path)


def _write_h5ad_names(obs_names, var_names, value=None):
    def write(path):
        import warnings

        import anndata as ad

        X = np.asarray(_counts(), dtype=np.float32)
        if value is not None:
            X = X.astype(np.float64)
            X[1, 2] = value
        a = ad.AnnData(X=X)
        a.obs_names, a.var_names = obs_names, var_names
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a.write_h5ad(path)
    return write


# binary cases: name -> (writer, pattern)
BAD_H5AD = {
    "dup_obs_h5ad": (_write_h5ad_names(CELLS[:-1] + ["c0"], GENES), r"duplicate cell"),
    "dup_var_h5ad": (_write_h5ad_names(CELLS, GENES[:-1] + ["Actb"]), r"duplicate gene"),
    "empty_obs_h5ad": (_write_h5ad_names(CELLS[:-1] + [""], GENES), r"empty cell name"),
    "empty_var_h5ad": (_write_h5ad_names(CELLS, GENES[:-1] + [" "]), r"empty gene name"),
    "huge_h5ad": (_write_h5ad_names(CELLS, GENES, value=1e40), r"1e\+40.*16,777,216"),
    "nan_h5ad": (_write_h5ad_with_nan, r"nan|finite"),
    "garbage_h5ad": (lambda p: p.write_bytes(b"this is not HDF5\n" * 10),
                     r"h5ad|hdf5|read|format|valid"),
}


@pytest.fixture
def bad_file(tmp_path, request):
    name = request.param
    d = tmp_path / "in"
    d.mkdir()
    if name in BAD_H5AD:
        writer, pattern = BAD_H5AD[name]
        path = d / f"{name}.h5ad"
        writer(path)
        return path, pattern
    content, pattern = BAD_FILES[name]
    path = d / f"{name}.csv"
    path.write_text(content)
    return path, pattern


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): runs.sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------
# command line

class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli_main():
    cli = pytest.importorskip("scziva.cli", reason="the scziva command line is not there yet")
    return cli.main


def _run_cli_inprocess(capsys, *args):
    """``scziva ARGS`` in this process (torch is imported once for all cases)."""
    main = _cli_main()
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:  # argparse, or a main() that exits itself
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # an uncaught error is what the user would see as a traceback
        cap = capsys.readouterr()
        return _Result(1, cap.out, cap.err + f"\nTraceback (uncaught {type(exc).__name__}: {exc})")
    cap = capsys.readouterr()
    return _Result(rc, cap.out, cap.err)


def _assert_clean_failure(res, must_name: str, pattern: str):
    out = res.stdout + res.stderr
    assert res.returncode not in (0, None), f"exit status 0 for bad input:\n{out}"
    assert "Traceback" not in out, out
    msg_lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(msg_lines) == 1, f"expected one message line, got:\n{res.stderr}"
    msg = msg_lines[0]
    assert must_name in msg, f"{must_name!r} not named in: {msg}"
    assert re.search(pattern, msg, re.I), f"message does not say what is wrong: {msg}"


@pytest.mark.parametrize("bad_file", sorted(BAD_FILES) + sorted(BAD_H5AD), indirect=True)
def test_cli_rejects_bad_counts(bad_file, tmp_path, capsys):
    path, pattern = bad_file
    before = _snapshot(path.parent)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = _run_cli_inprocess(capsys, "impute", path, out_dir / "imputed.h5ad",
                             "--epochs", "2")
    _assert_clean_failure(res, path.name, pattern)
    if "huge" in path.name:
        assert "infinite" not in res.stderr
    assert _snapshot(path.parent) == before, "the input file was modified"
    assert list(out_dir.iterdir()) == [], "something was written for bad input"


# ---------------------------------------------------------------------------------------
# issue 9: failures of the output side are one line too

def _good_csv(tmp_path, frac=False):
    rows = _counts(seed=1, shape=(24, 6))
    if frac:
        rows[0][0] = 2.5
    cells = [f"c{i}" for i in range(24)]
    p = tmp_path / "good.csv"
    p.write_text(_table(rows, cells=cells))
    return p


def _assert_one_line(res, *words):
    out = res.stdout + res.stderr
    assert res.returncode not in (0, None), out
    assert "Traceback" not in out, out
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("scziva: error:"), lines
    for w in words:
        assert re.search(w, lines[0], re.I), (w, lines[0])


@pytest.mark.parametrize("overwrite", [False, True])
def test_cli_output_is_a_folder(tmp_path, capsys, overwrite):
    inp = _good_csv(tmp_path)
    out = tmp_path / "out.csv"
    out.mkdir()
    args = ["impute", inp, out, "--epochs", "1", "--quiet"] + (["--overwrite"] if overwrite else [])
    res = _run_cli_inprocess(capsys, *args)
    _assert_one_line(res, "out.csv", "folder")
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".h5ad"])
def test_cli_disk_full_while_writing(tmp_path, capsys, monkeypatch, suffix):
    import errno

    import anndata as ad
    import pandas as pd

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    monkeypatch.setattr(ad.AnnData, "write_h5ad", full)
    inp = _good_csv(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = _run_cli_inprocess(capsys, "impute", inp, out_dir / f"imputed{suffix}", "--epochs", "1", "--quiet")
    _assert_one_line(res, f"imputed{re.escape(suffix)}", "no space left")
    assert list(out_dir.iterdir()) == []


def test_cli_checks_free_space_before_writing_h5ad(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    import anndata as ad

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 6, 10 ** 6 - 1000, 1000))
    called = []
    monkeypatch.setattr(ad.AnnData, "write_h5ad", lambda *a, **k: called.append(1))
    inp = _good_csv(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = _run_cli_inprocess(capsys, "impute", inp, out_dir / "imputed.h5ad", "--epochs", "1", "--quiet")
    _assert_one_line(res, "imputed.h5ad", "space", "MB|bytes|kB")
    assert called == [] and list(out_dir.iterdir()) == []


def test_cli_rounding_warning_format(tmp_path, capsys):
    inp = _good_csv(tmp_path, frac=True)
    res = _run_cli_inprocess(capsys, "impute", inp, tmp_path / "imputed.csv", "--epochs", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("scziva: warning: ") for ln in lines), lines
    assert any("rounded" in ln and "good.csv" in ln for ln in lines), lines
    assert (tmp_path / "imputed.csv").is_file()


def test_installed_command_fails_cleanly_on_a_missing_file(tmp_path):
    """The real console script, in a subprocess: exit status, stderr, no traceback."""
    exe = Path(sys.executable).parent / "scziva"
    if not exe.exists():
        pytest.skip("the `scziva` command is not installed in this environment yet")
    res = subprocess.run([str(exe), "impute", str(tmp_path / "nope.csv"),
                          str(tmp_path / "out.h5ad")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=runs.base_env())
    _assert_clean_failure(res, "nope.csv", r"not found|no such|does not exist|missing")
    assert not (tmp_path / "out.h5ad").exists()


# ---------------------------------------------------------------------------------------
# through the workflow: a config pointing at the user's files (source: local)

def _workflow():
    reason = runs.workflow_missing()
    if reason:
        pytest.skip(reason)


def _base_config(datasets: dict) -> dict:
    cfg = runs.mini_config(methods=("no_imputation",))
    cfg["datasets"] = datasets
    return cfg


def _log_message(log: Path) -> list[str]:
    """The lines of a rule's log other than the INFO lines every script writes."""
    return [ln for ln in log.read_text().splitlines()
            if ln.strip() and " INFO " not in ln]


@pytest.mark.slow
def test_workflow_rejects_bad_local_files(tmp_path):
    """Three bad datasets in one run (--keep-going): NaN values, a genes x cells table
    declared as cells x genes, a dataset that QC empties. Each dataset job fails with
    its own message naming the file or dataset; nothing is written for them; the user's
    files are not touched."""
    _workflow()
    data = tmp_path / "data"
    data.mkdir()
    (data / "nan.csv").write_text(BAD_FILES["nan"][0])
    (data / "transposed.csv").write_text(BAD_FILES["transposed"][0])
    (data / "sparse.csv").write_text(_table(_counts()))  # fine, but QC asks too much
    before = _snapshot(data)
    cfg = _base_config({
        "nan": {"source": "local", "path": str(data / "nan.csv")},
        "transposed": {"source": "local", "path": str(data / "transposed.csv"),
                       "orientation": "cells_x_genes"},
        "emptied": {"source": "local", "path": str(data / "sparse.csv"),
                    "qc": {"min_genes_per_cell": 1000}},
    })
    wd = tmp_path / "run"
    targets = [f"results/datasets/{d}.h5ad" for d in cfg["datasets"]]
    res = runs.local_run(wd, cfg, *targets, "--keep-going")
    assert res.returncode != 0
    assert _snapshot(data) == before, "the input files were modified"
    expect = {"nan": ("nan.csv", r"missing|nan|finite"),
              "transposed": ("transposed.csv", r"orientation|genes_x_cells|look like"),
              "emptied": ("emptied", r"QC removed all|no cell")}
    for ds, (name, pattern) in expect.items():
        assert not (wd / "results" / "datasets" / f"{ds}.h5ad").exists(), ds
        assert f"Error in rule load_local" in res.stdout
        log = wd / "results" / "logs" / "load_local" / f"{ds}.log"
        lines = _log_message(log)
        assert any(name in ln and re.search(pattern, ln, re.I) for ln in lines), (ds, lines)
    assert not list((wd / "results").rglob("*.h5ad"))
    assert not list((wd / "results").rglob("*.tmp"))
    # one clear message, not a Python traceback
    with_tb = [ds for ds in expect
               if "Traceback" in (wd / "results" / "logs" / "load_local" / f"{ds}.log").read_text()]
    if with_tb:
        # known gap, reported to the workflow's owner: the scripts let InputError escape,
        # so the one-line message comes at the end of a traceback in the rule's log
        pytest.xfail(f"the load_local logs of {with_tb} show a traceback before the message")


@pytest.mark.parametrize("change, must_say", [
    ({"methods": {"no_imputation": {}, "fancy_method": {}}}, ["fancy_method"]),
    ({"scenarios": {"dropout": {"rates": [1.5], "seeds": [1]}}}, ["1.5", "rates"]),
    ({"scenarios": {"dropout": {"rates": [0.0], "seeds": [1]}}}, ["0.0", "rates"]),
])
def test_workflow_rejects_bad_config_before_running_anything(tmp_path, change, must_say):
    _workflow()
    cfg = runs.mini_config(methods=("no_imputation",))
    cfg.update(change)
    wd = tmp_path / "run"
    res = runs.local_run(wd, cfg, "--dry-run")
    assert res.returncode != 0
    assert "Traceback" not in res.stdout, res.stdout
    for word in must_say:
        assert word in res.stdout, (word, res.stdout[-2000:])
    assert not (wd / "results").exists()
