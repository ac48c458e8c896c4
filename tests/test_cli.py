"""The command line as a new user meets it (issue 24): names kept as written, values that
are not counts refused, every option checked before any work, 10x input, --version,
--impute-value, one labelled progress bar, readable output files, --help as README shows it.

Each failure case asserts one line ``scziva: error: ...``, exit status 2, no output file
and the input unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scziva import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "2", "--hidden-dim", "8", "--latent-dim", "4", "--quiet"]


def _counts(n_cells=30, n_genes=10, seed=0):
    return np.random.default_rng(seed).poisson(2.0, (n_cells, n_genes))


def _run(capsys, *args):
    """``scziva ARGS`` in this process; (exit status, stderr)."""
    capsys.readouterr()
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, capsys.readouterr().err


def _one_error_line(rc, err, *patterns):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("scziva: error: "), err
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _refused(capsys, tmp_path, inp: Path, *patterns, extra=()):
    before = _snapshot(inp.parent) if inp.is_file() else None
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    rc, err = _run(capsys, "impute", inp, out_dir / "imputed.csv", *FAST, *extra)
    line = _one_error_line(rc, err, *patterns)
    assert list(out_dir.iterdir()) == [], "something was written for refused input"
    if before is not None:
        assert _snapshot(inp.parent) == before, "the input was modified"
    return line


# --------------------------------------------------------------------------- names


def test_numeric_looking_cell_names_are_kept_as_written(tmp_path, capsys):
    X = _counts()
    cells = [f"{i:03d}" for i in range(len(X))]  # 000, 001, ... (pandas would make 0, 1)
    genes = ["1e5", "0010", "TRUE", "NA"] + [f"g{j}" for j in range(X.shape[1] - 4)]
    inp = tmp_path / "in.csv"
    inp.write_text("\n".join([",".join(["cell"] + genes)] +
                             [c + "," + ",".join(map(str, r)) for c, r in zip(cells, X)]) + "\n")
    rc, err = _run(capsys, "impute", inp, tmp_path / "out.csv", *FAST)
    assert rc == 0, err
    import csv

    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][1:] == genes
    assert [r[0] for r in rows[1:]] == cells
    rc, err = _run(capsys, "impute", inp, tmp_path / "out.h5ad", *FAST)
    assert rc == 0, err
    a = ad.read_h5ad(tmp_path / "out.h5ad")
    assert list(a.obs_names) == cells and list(a.var_names) == genes


def test_r_style_header_with_a_duplicate_of_the_first_gene_is_refused(tmp_path, capsys):
    X = _counts(n_genes=4)
    genes = ["G0", "G1", "G2", "G0"]  # no name above the row names (R's write.table)
    inp = tmp_path / "r.csv"
    inp.write_text("\n".join([",".join(genes)] + [f"c{i}," + ",".join(map(str, r)) for i, r in enumerate(X)]) + "\n")
    _refused(capsys, tmp_path, inp, r"r\.csv", r"duplicate gene name.*'G0'")


def test_r_style_header_without_duplicates_keeps_every_gene(tmp_path, capsys):
    X = _counts(n_genes=4)
    inp = tmp_path / "r.tsv"
    inp.write_text("\n".join(["\t".join(["G0", "G1", "G2", "G3"])] +
                             [f"c{i}\t" + "\t".join(map(str, r)) for i, r in enumerate(X)]) + "\n")
    rc, err = _run(capsys, "impute", inp, tmp_path / "o.tsv", *FAST)
    assert rc == 0, err
    got = pd.read_csv(tmp_path / "o.tsv", sep="\t", index_col=0)
    assert list(got.columns) == ["G0", "G1", "G2", "G3"] and got.shape == X.shape


def test_semicolon_separated_csv_gets_a_hint(tmp_path, capsys):
    X = _counts(n_genes=4)
    inp = tmp_path / "semi.csv"
    inp.write_text("\n".join(["cell;a;b;c;d"] + [f"c{i};" + ";".join(map(str, r)) for i, r in enumerate(X)]) + "\n")
    _refused(capsys, tmp_path, inp, r"semi\.csv", r"semicolon-separated", r"comma-separated")


def test_transposed_table_of_gene_symbols_is_caught(tmp_path, capsys):
    X = _counts(n_cells=12, n_genes=30)
    symbols = ["ACTB", "GAPDH", "CD3E", "MALAT1", "RPL13A", "LYZ", "NKG7", "B2M", "FTL", "CD74", "MS4A1", "VIM"]
    inp = tmp_path / "t.csv"
    plate_wells = [f"P{i // 12 + 1}_{'ABCDEFGH'[i % 8]}{i % 12 + 1:02d}" for i in range(30)]  # no barcode look
    pd.DataFrame(X, index=symbols, columns=plate_wells).to_csv(inp)
    _refused(capsys, tmp_path, inp, r"t\.csv", r"look like genes", r"--genes-by-cells")
    rc, err = _run(capsys, "impute", inp, tmp_path / "ok.csv", "--genes-by-cells", *FAST)
    assert rc == 0, err


# --------------------------------------------------------------------------- not counts


def _log_normalised_h5ad(path: Path, X):
    cp10k = X / X.sum(axis=1, keepdims=True) * 1e4
    a = ad.AnnData(X=sp.csr_matrix(np.log1p(cp10k).astype(np.float32)))
    a.obs_names = [f"c{i}" for i in range(len(X))]
    a.var_names = [f"g{j}" for j in range(X.shape[1])]
    a.layers["counts"] = sp.csr_matrix(X.astype(np.float32))
    a.uns["log1p"] = {"base": None}
    a.write_h5ad(path)


def test_log_normalised_h5ad_is_refused_with_the_layer_to_use(tmp_path, capsys):
    X = _counts() + 1
    inp = tmp_path / "lognorm.h5ad"
    _log_normalised_h5ad(inp, X)
    line = _refused(capsys, tmp_path, inp, r"lognorm\.h5ad", r"log1p", r"--layer", r"counts")
    assert "Traceback" not in line
    rc, err = _run(capsys, "impute", inp, tmp_path / "ok.h5ad", "--layer", "counts", *FAST)
    assert rc == 0, err
    out = ad.read_h5ad(tmp_path / "ok.h5ad")
    assert "log1p" not in out.uns  # X now holds counts, not log values
    np.testing.assert_array_equal(out.layers["counts"].toarray(), X)


def test_log_normalised_values_without_a_marker_are_refused(tmp_path, capsys):
    X = _counts() + 1
    inp = tmp_path / "logged.csv"
    pd.DataFrame(np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4),
                 index=[f"c{i}" for i in range(len(X))], columns=[f"g{j}" for j in range(X.shape[1])]).to_csv(inp)
    _refused(capsys, tmp_path, inp, r"logged\.csv", r"not integers", r"log-transformed", r"raw counts")


def test_a_few_non_integers_are_still_rounded_with_a_warning(tmp_path, capsys):
    X = _counts().astype(float)
    X[0, 0] = 2.5
    inp = tmp_path / "frac.csv"
    pd.DataFrame(X, index=[f"c{i}" for i in range(len(X))], columns=[f"g{j}" for j in range(X.shape[1])]).to_csv(inp)
    rc, err = _run(capsys, "impute", inp, tmp_path / "o.csv", *FAST)
    assert rc == 0, err
    assert re.search(r"scziva: warning: .*frac\.csv: 1 non-integer value\(s\) rounded", err)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("args,pattern", [
    (["--device", "tpu"], r"--device: device 'tpu' is not understood"),
    (["--device", "mps"], r"--device: device 'mps' was requested but .*MPS is not available"),
    (["--seed", "99999999999999999999"], r"--seed must be an integer >= 0 and <= 4,294,967,295"),
    (["--seed", "-1"], r"--seed must be an integer >= 0"),
    (["--lr", "nan"], r"--lr must be a finite number > 0, got nan"),
    (["--lr", "0"], r"--lr must be a finite number > 0"),
    (["--epochs", "2.5"], r"--epochs must be an integer >= 1, got 2.5"),
    (["--tau", "1.5"], r"--tau must be a number >= 0 and <= 1, got 1.5"),
    (["--batch-size", "0"], r"--batch-size must be an integer >= 1"),
])
def test_bad_options_name_the_option_before_the_input_is_read(tmp_path, capsys, monkeypatch, args, pattern):
    if "mps" in args:
        import torch
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            pytest.skip("this machine has MPS")
    read = []
    monkeypatch.setattr(cli, "_read_input", lambda a: read.append(a))
    inp = tmp_path / "in.csv"
    pd.DataFrame(_counts()).to_csv(inp)
    out = tmp_path / "o.csv"
    rc, err = _run(capsys, "impute", inp, out, "--quiet", *args)
    _one_error_line(rc, err, pattern)
    assert read == [] and not out.exists()


def test_unwritable_output_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    from scziva import core

    trained = []
    monkeypatch.setattr(core, "fit", lambda *a, **k: trained.append(1))
    real = tempfile.mkstemp

    def denied(*a, dir=None, **k):  # what a read-only folder does to every file created in it
        if dir is not None and Path(dir) == tmp_path / "ro":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    inp = tmp_path / "in.csv"
    pd.DataFrame(_counts()).to_csv(inp)
    (tmp_path / "ro").mkdir()
    for name in ("o.h5ad", "o.csv"):
        rc, err = _run(capsys, "impute", inp, tmp_path / "ro" / name, *FAST)
        line = _one_error_line(rc, err, re.escape(name), r"cannot be written \(Permission denied\)")
        assert "disk space" not in line
    assert trained == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the case above covers it")
def test_read_only_output_folder_for_real(tmp_path, capsys):
    inp = tmp_path / "in.csv"
    pd.DataFrame(_counts()).to_csv(inp)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = _run(capsys, "impute", inp, ro / "o.h5ad", *FAST)
        _one_error_line(rc, err, r"o\.h5ad", r"cannot be written")
    finally:
        ro.chmod(0o755)


def test_options_that_do_not_apply_to_the_input_are_refused(tmp_path, capsys):
    X = _counts()
    csv = tmp_path / "in.csv"
    pd.DataFrame(X).to_csv(csv)
    h5 = tmp_path / "in.h5ad"
    ad.AnnData(X=X.astype(np.float32)).write_h5ad(h5)
    rc, err = _run(capsys, "impute", csv, tmp_path / "o.csv", "--layer", "counts", *FAST)
    _one_error_line(rc, err, r"in\.csv", r"--layer")
    rc, err = _run(capsys, "impute", h5, tmp_path / "o.h5ad", "--genes-by-cells", *FAST)
    _one_error_line(rc, err, r"in\.h5ad", r"--genes-by-cells is for text tables")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.h5ad").exists()


# --------------------------------------------------------------------------- features


def test_version(capsys):
    from scziva import __version__

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scziva {__version__}"


def test_impute_value_denoise_gives_the_denoising_output(tmp_path, capsys):
    from scziva import ZIVAimpute

    X = _counts(n_cells=40)
    inp = tmp_path / "in.csv"
    pd.DataFrame(X, index=[f"c{i}" for i in range(40)], columns=[f"g{j}" for j in range(10)]).to_csv(inp)
    rc, err = _run(capsys, "impute", inp, tmp_path / "d.csv", "--impute-value", "denoise", "--seed", "3", *FAST)
    assert rc == 0, err
    got = pd.read_csv(tmp_path / "d.csv", index_col=0).to_numpy()
    want, _ = ZIVAimpute(X, seed=3, num_epochs=2, hidden_dim=8, latent_dim=4, impute_value="denoise")
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not np.array_equal(got[X > 0], X[X > 0])  # observed counts are denoised too
    rc, err = _run(capsys, "impute", inp, tmp_path / "x.csv", "--impute-value", "bogus", *FAST)
    assert rc == 2 and "invalid choice" in err


def _write_10x(folder: Path, X, gz=False):
    folder.mkdir()
    n_cells, n_genes = X.shape
    mtx = folder / "matrix.mtx"
    scipy.io.mmwrite(str(mtx), sp.coo_matrix(X.T))  # 10x: genes x cells
    (folder / "barcodes.tsv").write_text("".join(f"AAACCTGAG{i:07d}-1\n" for i in range(n_cells)))
    (folder / "features.tsv").write_text("".join(f"ENSG{j:011d}\tGENE{j}\tGene Expression\n" for j in range(n_genes)))
    return folder


def test_10x_folder_and_matrix_file_are_read(tmp_path, capsys):
    X = _counts(n_cells=30, n_genes=10)
    folder = _write_10x(tmp_path / "filtered_feature_bc_matrix", X)
    for src in (folder, folder / "matrix.mtx"):
        out = tmp_path / f"o_{src.name}.h5ad"
        rc, err = _run(capsys, "impute", src, out, *FAST)
        assert rc == 0, err
        a = ad.read_h5ad(out)
        assert a.shape == (30, 10)
        assert a.obs_names[0] == "AAACCTGAG0000000-1" and a.var_names[0] == "ENSG00000000000"
        assert list(a.var["gene_symbols"][:2]) == ["GENE0", "GENE1"]
        np.testing.assert_array_equal(np.asarray(a.layers["counts"].todense() if sp.issparse(a.layers["counts"])
                                                 else a.layers["counts"]), X)


def test_output_files_follow_the_umask(tmp_path, capsys):
    inp = tmp_path / "in.csv"
    pd.DataFrame(_counts()).to_csv(inp)
    old = os.umask(0o022)
    try:
        for name in ("o.csv", "o.h5ad"):
            rc, err = _run(capsys, "impute", inp, tmp_path / name, *FAST)
            assert rc == 0, err
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
        os.umask(0o027)
        rc, err = _run(capsys, "impute", inp, tmp_path / "p.csv", *FAST)
        assert rc == 0, err
        assert (tmp_path / "p.csv").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_atomic_writers_publish_with_the_umask(tmp_path):
    from scziva.fileio import atomic_dir, atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "inside").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_one_labelled_progress_bar_for_the_whole_fit(monkeypatch):
    import tqdm.auto

    from scziva import ZIVAimpute

    bars = []
    real = tqdm.auto.tqdm

    class Recording(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            bars.append(self)
            self.descs = []

        def set_description(self, desc=None, refresh=True):
            self.descs.append(desc)
            return super().set_description(desc, refresh)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    X = _counts(n_cells=60)
    ZIVAimpute(X, num_epochs=3, hidden_dim=8, latent_dim=4, progress=True, pi_ridge="heldout")  # two fits
    assert len(bars) == 1
    assert bars[0].descs == ["scZiva fit 1/2 (pi_ridge=0)", "scZiva fit 2/2 (pi_ridge=1)"]
    assert bars[0].total == 6 and bars[0].n == 6
    bars.clear()
    ZIVAimpute(X, num_epochs=3, hidden_dim=8, latent_dim=4, progress=True)  # pi_ridge="auto": one fit
    assert len(bars) == 1 and bars[0].total == 3 and bars[0].n == 3
    bars.clear()
    ZIVAimpute(X, num_epochs=3, hidden_dim=8, latent_dim=4)  # not a terminal (pytest): no bar
    assert bars == []


def test_help_is_what_readme_shows():
    """README's command-line section shows `scziva impute --help` verbatim."""
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- scziva impute --help -->\n```text\n(.*?)```", readme, re.S)
    assert m, "README has no `scziva impute --help` block"
    env = dict(os.environ, COLUMNS="100")
    r = subprocess.run([sys.executable, "-m", "scziva.cli", "impute", "--help"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0
    assert m.group(1) == r.stdout, "README's help block is stale: paste `COLUMNS=100 scziva impute --help`"
