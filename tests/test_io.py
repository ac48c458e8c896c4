"""Tests of scziva_bench.data.io on tiny hand-made files (and the shared datasets when present)."""

import gzip
import hashlib
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench.data import io

# 3 cells x 4 genes, hand-written.
COUNTS = np.array(
    [[1, 0, 3, 0],
     [0, 0, 5, 2],
     [4, 0, 0, 1]], dtype=np.float32)
CELLS = ["AAACCTGA-1", "AAACGGGT-1", "AAAGATGC-1"]
GENES = ["Actb", "Gapdh", "Cd3e", "Ms4a1"]


def _write_table(path, M, rows, cols, sep=",", corner=""):
    lines = [sep.join([corner] + list(cols)) if corner is not None else sep.join(cols)]
    for name, row in zip(rows, M):
        lines.append(sep.join([name] + [f"{v:g}" for v in row]))
    data = ("\n".join(lines) + "\n").encode()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _dense(adata, layer="counts"):
    M = adata.layers[layer]
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def _check_contract(adata, expect=COUNTS, cells=CELLS, genes=GENES):
    assert isinstance(adata.layers["counts"], sp.csr_matrix)
    assert adata.layers["counts"].dtype == np.float32
    np.testing.assert_array_equal(_dense(adata), expect)
    np.testing.assert_array_equal(adata.X.toarray(), expect)
    assert list(adata.obs_names) == list(cells)
    assert list(adata.var_names) == list(genes)
    assert isinstance(adata.uns["dataset_id"], str)
    assert isinstance(adata.uns["notes"], list)


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz", "m.tsv", "m.tsv.gz", "m.txt"])
def test_table_both_orientations_give_same_anndata(tmp_path, name):
    sep = "," if ".csv" in name else "\t"
    a_path = _write_table(tmp_path / ("cg_" + name), COUNTS, CELLS, GENES, sep=sep)
    b_path = _write_table(tmp_path / ("gc_" + name), COUNTS.T, GENES, CELLS, sep=sep)
    before = (_md5(a_path), _md5(b_path))
    a = io.read_counts(a_path, orientation="cells_x_genes", dataset_id="toy")
    b = io.read_counts(b_path, orientation="genes_x_cells", dataset_id="toy")
    _check_contract(a)
    _check_contract(b)
    assert a.uns["dataset_id"] == b.uns["dataset_id"] == "toy"
    assert a.uns["notes"] == [] and b.uns["notes"] == []
    # input files are untouched
    assert (_md5(a_path), _md5(b_path)) == before


def test_header_without_corner_field_r_write_table_style(tmp_path):
    p = _write_table(tmp_path / "r.tsv", COUNTS, CELLS, GENES, sep="\t", corner=None)
    a = io.read_counts(p)
    _check_contract(a)
    assert a.uns["dataset_id"] == "r"


def test_h5ad_roundtrip_and_labels_kept(tmp_path):
    src = ad.AnnData(X=np.zeros_like(COUNTS))
    src.obs_names, src.var_names = CELLS, GENES
    src.layers["counts"] = COUNTS.copy()  # dense, X is something else: counts layer wins
    src.obs["cell_type"] = ["T", "B", "T"]
    p = tmp_path / "in.h5ad"
    src.write_h5ad(p)
    before = _md5(p)
    a = io.read_counts(p)
    _check_contract(a)
    assert list(a.obs["cell_type"]) == ["T", "B", "T"]
    assert isinstance(a.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert a.uns["dataset_id"] == "in"
    out = io.write_h5ad_atomic(a, tmp_path / "sub" / "out.h5ad")
    assert _md5(p) == before
    b = io.read_h5ad(out)
    _check_contract(b)
    assert b.uns["notes"] == []
    assert list(b.obs["cell_type"]) == ["T", "B", "T"]
    assert [f.name for f in out.parent.iterdir()] == ["out.h5ad"]  # no temp file left


def test_h5ad_from_X_when_no_counts_layer(tmp_path):
    src = ad.AnnData(X=sp.csr_matrix(COUNTS))
    src.obs_names, src.var_names = CELLS, GENES
    src.obs["cell_line"] = ["x", "y", "x"]
    p = tmp_path / "x.h5ad"
    src.write_h5ad(p)
    a = io.read_counts(p, dataset_id="mine", label_column="cell_line")
    _check_contract(a)
    assert a.uns["dataset_id"] == "mine"
    assert list(a.obs["cell_type"]) == ["x", "y", "x"]


@pytest.mark.parametrize("gz,legacy", [(False, False), (True, False), (False, True)])
def test_10x_folder(tmp_path, gz, legacy):
    d = tmp_path / "tenx"
    d.mkdir()
    ext = ".gz" if gz else ""
    mtx = d / "matrix.mtx"
    scipy.io.mmwrite(str(mtx), sp.coo_matrix(COUNTS.T.astype(np.int64)))
    if gz:
        (d / "matrix.mtx.gz").write_bytes(gzip.compress(mtx.read_bytes()))
        mtx.unlink()
    ids = [f"ENSG0000000000{i}" for i in range(4)]
    feat_lines = "".join(
        f"{i}\t{s}\tGene Expression\n" if not legacy else f"{i}\t{s}\n" for i, s in zip(ids, GENES)
    ).encode()
    bc_lines = "".join(c + "\n" for c in CELLS).encode()
    fname = "genes.tsv" if legacy else "features.tsv"
    for name, data in ((fname, feat_lines), ("barcodes.tsv", bc_lines)):
        (d / (name + ext)).write_bytes(gzip.compress(data) if gz else data)
    a = io.read_counts(d)
    _check_contract(a, genes=ids)
    assert list(a.var["gene_symbols"]) == GENES
    assert a.uns["dataset_id"] == "tenx"
    # pointing at the matrix file works too
    b = io.read_counts(d / ("matrix.mtx" + ext))
    _check_contract(b, genes=ids)


def test_paired_truth_layout(tmp_path):
    # scZiva authors' simulation layout: genes x cells, first column gene names.
    truth = np.array([[2, 1, 3], [0, 4, 1], [5, 0, 2], [1, 1, 0]], dtype=float)  # genes x cells
    obs = truth.copy()
    obs[0, 1] = 0  # dropouts
    obs[2, 0] = 0
    obs[3, 1] = 0
    genes = [f"Gene{i}" for i in range(1, 5)]
    cells = [f"Cell{i}" for i in range(1, 4)]
    cpath = _write_table(tmp_path / "SplatDrop_counts.csv", obs, genes, cells)
    # truth file with genes and cells in another order: aligned by name
    tpath = _write_table(tmp_path / "SplatDrop_TrueCounts.csv", truth[::-1, ::-1], genes[::-1], cells[::-1])
    a = io.read_counts(cpath, orientation="genes_x_cells", truth_path=tpath, dataset_id="splat")
    _check_contract(a, expect=obs.T, cells=cells, genes=genes)
    np.testing.assert_array_equal(_dense(a, "truth"), truth.T)
    mask = _dense(a, "mask")
    expected_mask = np.zeros((3, 4), dtype=np.uint8)
    expected_mask[1, 0] = expected_mask[0, 2] = expected_mask[1, 3] = 1
    np.testing.assert_array_equal(mask, expected_mask)
    assert isinstance(a.layers["mask"], sp.csr_matrix)
    # the same files read with the wrong orientation: names say so
    with pytest.raises(InputError, match="SplatDrop_counts.csv.*genes_x_cells"):
        io.read_counts(cpath, orientation="cells_x_genes")


def test_truth_names_must_match(tmp_path):
    cpath = _write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES)
    tpath = _write_table(tmp_path / "t.csv", COUNTS, CELLS, GENES[:3] + ["Other"])
    with pytest.raises(InputError, match=r"t\.csv.*gene names"):
        io.read_counts(cpath, truth_path=tpath)


def test_labels_from_csv(tmp_path):
    cpath = _write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES)
    lab = tmp_path / "labels.csv"
    lab.write_text("cell,batch,type\n" + "".join(f"{c},b1,{t}\n" for c, t in zip(CELLS[::-1], "ZYX")))
    a = io.read_counts(cpath, labels_path=lab, label_column="type")
    assert list(a.obs["cell_type"]) == ["X", "Y", "Z"]
    with pytest.raises(InputError, match="labels.csv.*label_column"):
        io.read_counts(cpath, labels_path=lab)
    short = tmp_path / "short.csv"
    short.write_text("cell,cell_type\n" + f"{CELLS[0]},T\n")
    with pytest.raises(InputError, match="short.csv.*no label for 2 of 3"):
        io.read_counts(cpath, labels_path=short)


def test_rounding_recorded(tmp_path):
    M = COUNTS.copy()
    M[0, 0] = 1.4
    M[2, 3] = 2.6
    p = _write_table(tmp_path / "frac.csv", M, CELLS, GENES)
    a = io.read_counts(p)
    expect = COUNTS.copy()
    expect[2, 3] = 3
    np.testing.assert_array_equal(_dense(a), expect)
    assert len(a.uns["notes"]) == 1 and "frac.csv: 2 non-integer" in a.uns["notes"][0]


# ------------------------------------------------------------------ bad inputs
def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "name,text,pattern",
    [
        ("empty.csv", "", "empty.csv.*empty"),
        ("neg.csv", ",g1,g2\nc1,1,-2\nc2,0,1\n", "neg.csv.*negative"),
        ("nan.csv", ",g1,g2\nc1,1,\nc2,0,1\n", r"nan.csv.*missing value.*'c1'.*'g2'"),
        ("inf.csv", ",g1,g2\nc1,1,inf\nc2,0,1\n", "inf.csv.*infinite"),
        ("text.csv", ",g1,g2\nc1,1,2\nc2,zero,1\n", r"text.csv.*non-numeric value 'zero'.*row 'c2' \(line 3\).*column 'g1'"),
        ("dupcell.csv", ",g1,g2\nc1,1,2\nc1,0,1\n", r"dupcell.csv.*duplicate cell.*'c1'"),
        ("dupgene.csv", ",g1,g1\nc1,1,2\nc2,0,1\n", r"dupgene.csv.*duplicate gene.*'g1'"),
        ("header.csv", ",g1,g2\n", "header.csv.*no data rows"),
        ("ragged.csv", ",g1,g2\nc1,1,2\nc2,0,1,5,6\n", "ragged.csv"),
        ("wronghdr.csv", ",g1,g2,g3,g4\nc1,1,2\nc2,0,1\n", "wronghdr.csv.*header"),
        ("data.xlsx", "x", "data.xlsx.*unknown file extension"),
    ],
)
def test_bad_inputs_raise_naming_the_file(tmp_path, name, text, pattern):
    p = _bad(tmp_path, name, text)
    with pytest.raises(InputError, match=pattern):
        io.read_counts(p)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nothere.csv.*not found"):
        io.read_counts(tmp_path / "nothere.csv")


def test_duplicate_genes_genes_x_cells(tmp_path):
    p = _bad(tmp_path, "gx.csv", ",c1,c2\ng1,1,2\ng1,0,1\n")
    with pytest.raises(InputError, match="gx.csv.*duplicate gene.*'g1'"):
        io.read_counts(p, orientation="genes_x_cells")


def test_bad_orientation_and_format_values(tmp_path):
    p = _write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES)
    with pytest.raises(InputError, match="orientation"):
        io.read_counts(p, orientation="rows")
    with pytest.raises(InputError, match="unknown format"):
        io.read_counts(p, fmt="parquet")


def test_transposed_ensembl_table_is_refused(tmp_path):
    genes = [f"ENSG{i:011d}" for i in range(4)]
    p = _write_table(tmp_path / "ens.csv", COUNTS.T, genes, CELLS)
    with pytest.raises(InputError, match="ens.csv.*orientation='cells_x_genes'.*genes_x_cells"):
        io.read_counts(p)
    a = io.read_counts(p, orientation="genes_x_cells")
    _check_contract(a, genes=genes)


def test_broken_h5ad_and_10x(tmp_path):
    p = _bad(tmp_path, "broken.h5ad", "not hdf5")
    with pytest.raises(InputError, match="broken.h5ad.*not a readable"):
        io.read_counts(p)
    d = tmp_path / "tenx"
    d.mkdir()
    scipy.io.mmwrite(str(d / "matrix.mtx"), sp.coo_matrix(COUNTS.T))
    (d / "barcodes.tsv").write_text("".join(c + "\n" for c in CELLS[:2]))
    (d / "features.tsv").write_text("".join(g + "\n" for g in GENES))
    with pytest.raises(InputError, match="barcodes.tsv.*2 barcodes.*3 cells"):
        io.read_counts(d)
    (d / "barcodes.tsv").write_text("".join(c + "\n" for c in [CELLS[0]] * 3))
    with pytest.raises(InputError, match="barcodes.tsv.*duplicate cell"):
        io.read_counts(d)
    (d / "features.tsv").unlink()
    with pytest.raises(InputError, match="tenx.*features.tsv"):
        io.read_counts(d)


# ------------------------------------------------------------------ QC
def test_qc_counts_by_hand(tmp_path):
    M = np.array(
        [[1, 0, 0, 0, 0],   # 1 gene, 1 count
         [0, 0, 0, 0, 0],   # empty cell
         [2, 3, 0, 0, 1],   # 3 genes, 6 counts
         [5, 0, 0, 1, 0],   # 2 genes, 6 counts
         [1, 1, 0, 0, 0]],  # 2 genes, 2 counts
        dtype=np.float32)
    a = ad.AnnData(X=sp.csr_matrix(M))
    a.layers["counts"] = sp.csr_matrix(M)
    a.uns["dataset_id"] = "toy"
    a.uns["notes"] = ["earlier note"]
    q = io.qc(a)  # defaults: drop the empty cell, then gene 2 (never seen)
    assert q.shape == (4, 4)
    assert list(q.obs_names) == ["0", "2", "3", "4"]
    assert list(q.var_names) == ["0", "1", "3", "4"]
    assert q.uns["notes"][0] == "earlier note"
    assert "removed 1 of 5 cells" in q.uns["notes"][1] and "1 of 5 genes" in q.uns["notes"][1]
    # cells: >= 2 genes and >= 3 counts -> cells 2, 3 kept; genes in >= 2 of those -> gene 0 only
    q2 = io.qc(a, min_cells_per_gene=2, min_genes_per_cell=2, min_counts_per_cell=3)
    assert list(q2.obs_names) == ["2", "3"] and list(q2.var_names) == ["0"]
    np.testing.assert_array_equal(q2.layers["counts"].toarray(), [[2], [5]])
    assert q2.uns["qc"]["cells_removed"] == 3 and q2.uns["qc"]["genes_removed"] == 4
    # the input is not changed
    assert a.shape == (5, 5) and a.uns["notes"] == ["earlier note"]
    with pytest.raises(InputError, match="'toy'.*all 5 cells"):
        io.qc(a, min_genes_per_cell=10)
    with pytest.raises(InputError, match="'toy'.*all 5 genes"):
        io.qc(a, min_cells_per_gene=10)


def test_qc_keeps_truth_and_mask_aligned(tmp_path):
    cpath = _write_table(tmp_path / "c.csv", np.array([[1, 0, 0], [0, 0, 2]]), ["a", "b"], ["x", "y", "z"])
    tpath = _write_table(tmp_path / "t.csv", np.array([[1, 0, 4], [3, 0, 2]]), ["a", "b"], ["x", "y", "z"])
    a = io.read_counts(cpath, truth_path=tpath)
    q = io.qc(a)
    assert list(q.var_names) == ["x", "z"]
    np.testing.assert_array_equal(q.layers["truth"].toarray(), [[1, 4], [3, 2]])
    np.testing.assert_array_equal(q.layers["mask"].toarray(), [[0, 1], [1, 0]])


def test_write_atomic_converts_dense_counts_without_touching_input(tmp_path):
    a = ad.AnnData(X=COUNTS.copy())
    a.layers["counts"] = COUNTS.astype(np.int64)
    out = io.write_h5ad_atomic(a, tmp_path / "d.h5ad")
    assert isinstance(a.layers["counts"], np.ndarray)  # caller's object unchanged
    b = io.read_h5ad(out)
    assert isinstance(b.layers["counts"], sp.csr_matrix) and b.layers["counts"].dtype == np.float32
    np.testing.assert_array_equal(b.layers["counts"].toarray(), COUNTS)
    with pytest.raises(InputError, match="missing.h5ad.*not found"):
        io.read_h5ad(tmp_path / "missing.h5ad")


# ------------------------------------------------------------------ shared datasets
def test_shared_cellbench_sample(shared_data):
    p = shared_data / "cellbench_10x_sample.h5ad"
    if not p.exists():
        pytest.skip("cellbench_10x_sample.h5ad not in shared data")
    before = _md5(p)
    a = io.read_counts(p)
    assert a.shape == (60, 3000)
    assert a.uns["dataset_id"] == "cellbench_10x_sample"
    assert a.uns["notes"] == []
    assert a.obs["cell_type"].value_counts().to_dict() == {"H1975": 21, "HCC827": 20, "H2228": 19}
    assert isinstance(a.layers["counts"], sp.csr_matrix) and a.layers["counts"].dtype == np.float32
    raw = ad.read_h5ad(p)
    np.testing.assert_array_equal(a.layers["counts"].toarray(), raw.X.toarray())
    assert _md5(p) == before


def test_shared_yan_rpkm_is_refused_as_normalised(shared_data):
    # Yan et al. publish RPKM only: non-integer almost everywhere, so not counts (the
    # shipped resources/datasets/yan.h5ad holds them rounded, explicitly, with a note).
    p = shared_data / "yan.h5ad"
    if not p.exists():
        pytest.skip("yan.h5ad not in shared data")
    with pytest.raises(InputError, match=r"yan.h5ad: \d+% of the non-zero values are not integers.*normalised"):
        io.read_counts(p)


def test_normalised_values_round_only_when_asked(tmp_path):
    M = COUNTS * 1.37  # RPKM-like: non-integer almost everywhere
    p = _write_table(tmp_path / "rpkm.csv", M, CELLS, GENES)
    with pytest.raises(InputError, match="not integers"):
        io.read_counts(p)
    a = io.read_counts(p, round_values=True)  # published only as RPKM: rounded on purpose
    np.testing.assert_array_equal(_dense(a), np.rint(M))
    assert any("rounded" in n for n in a.uns["notes"])


def test_log_transformed_input_is_refused(tmp_path):
    M = np.log1p(COUNTS * 3.7)
    p = _write_table(tmp_path / "logged.csv", M, CELLS, GENES)
    with pytest.raises(InputError, match=r"logged.csv: \d+% of the non-zero values are not integers.*"
                       "look log-transformed, not raw counts; give the raw counts"):
        io.read_counts(p)


def test_h5ad_marked_log1p_is_refused_and_counts_layer_named(tmp_path):
    src = ad.AnnData(X=sp.csr_matrix(COUNTS))
    src.obs_names, src.var_names = CELLS, GENES
    src.uns["log1p"] = {"base": None}  # what scanpy's pp.log1p leaves, even on integer-looking X
    p = tmp_path / "logged.h5ad"
    src.write_h5ad(p)
    with pytest.raises(InputError, match=r"uns\['log1p'\] is set.*point layer= at the raw counts"):
        io.read_counts(p)


def test_h5ad_raw_layer(tmp_path):
    src = ad.AnnData(X=sp.csr_matrix(COUNTS))
    src.obs_names, src.var_names = CELLS, GENES
    src.obs["cell_type"] = ["T", "B", "T"]
    src.raw = src
    small = src[:, :2].copy()
    small.X = np.log1p(small.X.toarray())
    p = tmp_path / "proc.h5ad"
    small.write_h5ad(p)
    a = io.read_counts(p, layer="raw")
    _check_contract(a)
    assert list(a.obs["cell_type"]) == ["T", "B", "T"]
    with pytest.raises(InputError, match="proc.h5ad.*no layer 'spliced'"):
        io.read_counts(p, layer="spliced")


def test_csv_with_excel_bom_and_crlf(tmp_path):
    p = tmp_path / "excel.csv"
    body = "\r\n".join(["\ufeffcell," + ",".join(GENES)]
                       + [c + "," + ",".join(f"{v:g}" for v in row) for c, row in zip(CELLS, COUNTS)])
    p.write_bytes(body.encode("utf-8") + b"\r\n")
    _check_contract(io.read_counts(p))


# ------------------------------------------------------------------ issue 9: bounds and names
@pytest.mark.parametrize("value", ["16777217", "1e12", "1e40", "1.7e308"])
def test_counts_above_float32_exact_range_refused(tmp_path, value):
    p = _bad(tmp_path, "huge.csv", f",g1,g2\nc1,1,{value}\nc2,0,1\n")
    with pytest.raises(InputError) as err:
        io.read_counts(p)
    msg = str(err.value)
    assert "huge.csv" in msg and "16,777,216" in msg and "float32" in msg, msg
    assert "infinite" not in msg and "\n" not in msg
    shown = {"16777217": "16777217", "1e12": "1000000000000", "1e40": "1e+40", "1.7e308": "1.7e+308"}
    assert f"largest value {shown[value]} " in msg  # as given, not 'inf' or rounded


def test_largest_exact_count_still_accepted(tmp_path):
    p = _bad(tmp_path, "edge.csv", f",g1,g2\nc1,1,{2**24}\nc2,0,1\n")
    a = io.read_counts(p)
    assert _dense(a)[0, 1] == 2 ** 24


@pytest.mark.parametrize("name,text,what", [
    ("emptygene.csv", ",g1,,g3\nc1,1,2,3\nc2,0,1,0\n", "gene"),
    ("blankgene.csv", ",g1, ,g3\nc1,1,2,3\nc2,0,1,0\n", "gene"),
    ("emptycell.csv", ",g1,g2\nc1,1,2\n\"\",0,1\n", "cell"),
    ("emptycell_gx.csv", ",c1,,c3\ng1,1,2,3\ng2,0,1,0\n", "cell"),
])
def test_empty_names_in_tables_refused(tmp_path, name, text, what):
    p = _bad(tmp_path, name, text)
    orientation = "genes_x_cells" if "_gx" in name else "cells_x_genes"
    with pytest.raises(InputError, match=rf"{name}.*empty {what} name|{name}.*has no row name"):
        io.read_counts(p, orientation=orientation)


def _h5ad(path, obs_names, var_names, X=None):
    X = np.ones((len(obs_names), len(var_names)), dtype=np.float32) if X is None else X
    a = ad.AnnData(X=X)
    a.obs_names, a.var_names = obs_names, var_names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.write_h5ad(path)
    return path


@pytest.mark.parametrize("obs,var,pattern", [
    (["c1", "c1", "c2"], ["g1", "g2"], "duplicate cell"),
    (["c1", "", "c2"], ["g1", "g2"], "empty cell name"),
    (["c1", "c2", "c3"], ["g1", " "], "empty gene name"),
])
def test_h5ad_names_checked(tmp_path, obs, var, pattern):
    p = _h5ad(tmp_path / "names.h5ad", obs, var)
    with pytest.raises(InputError, match=f"names.h5ad.*{pattern}"):
        io.read_counts(p)


def _tenx(d, barcodes: bytes, features: bytes, gz=True):
    d.mkdir()
    scipy.io.mmwrite(str(d / "matrix.mtx"), sp.coo_matrix(COUNTS.T))
    ext = ".gz" if gz else ""
    (d / f"barcodes.tsv{ext}").write_bytes(gzip.compress(barcodes) if gz else barcodes)
    (d / f"features.tsv{ext}").write_bytes(gzip.compress(features) if gz else features)
    return d


GOOD_FEATURES = "".join(f"{g}\t{g}\tGene Expression\n" for g in GENES).encode()
GOOD_BARCODES = "".join(c + "\n" for c in CELLS).encode()


@pytest.mark.parametrize("barcodes,features,pattern", [
    (b"", GOOD_FEATURES, r"barcodes.tsv.gz.*empty"),
    (GOOD_BARCODES, b"", r"features.tsv.gz.*empty"),
    (GOOD_BARCODES, b"Actb\tActb\tGene Expression\nGapdh\tGapdh\nCd3e\tCd3e\tGene Expression\tx\ty\n"
     b"Ms4a1\tMs4a1\tGene Expression\n", r"features.tsv.gz.*(fields|columns|parse)"),
    (b"AAACCTGA-1\n\nAAAGATGC-1\n", GOOD_FEATURES, r"barcodes.tsv.gz.*(empty cell name|2 barcodes)"),
    (GOOD_BARCODES, b"Actb\tActb\tGene Expression\n\tGapdh\tGene Expression\n"
     b"Cd3e\tCd3e\tGene Expression\nMs4a1\tMs4a1\tGene Expression\n", r"features.tsv.gz.*empty gene name"),
])
def test_10x_bad_name_files(tmp_path, barcodes, features, pattern):
    d = _tenx(tmp_path / "tenx", barcodes, features)
    with pytest.raises(InputError, match=pattern) as err:
        io.read_counts(d)
    assert "\n" not in str(err.value)


def test_write_h5ad_atomic_checks_free_space(tmp_path, monkeypatch):
    import shutil as _shutil
    from collections import namedtuple

    a = io.read_counts(_write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 100, 100))
    out = tmp_path / "out" / "a.h5ad"
    with pytest.raises(InputError, match=r"a.h5ad.*(space|full)") as err:
        io.write_h5ad_atomic(a, out)
    assert "\n" not in str(err.value)
    assert not out.exists() and not list(out.parent.glob(".*"))


def test_write_h5ad_atomic_disk_full_is_one_line(tmp_path, monkeypatch):
    import errno

    a = io.read_counts(_write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES))

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", full)
    out = tmp_path / "a.h5ad"
    with pytest.raises(InputError, match=r"a.h5ad.*No space left") as err:
        io.write_h5ad_atomic(a, out)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "c.csv"]


def test_read_error_of_the_file_system_is_one_line(tmp_path, monkeypatch):
    import errno

    p = _write_table(tmp_path / "c.csv", COUNTS, CELLS, GENES)

    def broken(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    from scziva import readers

    monkeypatch.setattr(readers, "_open_text", broken)
    with pytest.raises(InputError, match=r"c.csv.*cannot be read.*Input/output error") as err:
        io.read_counts(p)
    assert "\n" not in str(err.value)


def test_atomic_write_helper(tmp_path):
    from scziva.errors import OutputError
    from scziva.fileio import atomic_write

    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_write(out, suffix=".png") as tmp:
        assert tmp.name.endswith(".png") and tmp.parent == tmp_path
        tmp.write_text("new")
    assert out.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with pytest.raises(OutputError, match="is a folder"):
        with atomic_write(tmp_path) as tmp:
            pass
    with atomic_write(tmp_path / "sub" / "b.txt", make_parents=True) as tmp:
        tmp.write_text("b")
    assert (tmp_path / "sub" / "b.txt").read_text() == "b"


def test_open_problems_dataset_file(tmp_path):
    """A file in Open Problems' dataset format (raw counts in layers["counts"], log-normalised
    values in layers["normalized"], X empty, their obs/var/uns fields) reads as a dataset:
    the counts from the counts layer, the cell types as labels."""
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(0.8, (30, 12)).astype(np.float32))
    norm = counts.copy()
    norm.data = np.log1p(norm.data)
    a = ad.AnnData(X=None, obs=pd.DataFrame({"cell_type": ["t"] * 15 + ["b"] * 15,
                                             "batch": ["1"] * 30},
                                            index=[f"c{i}" for i in range(30)]),
                   var=pd.DataFrame({"feature_name": [f"G{j}" for j in range(12)]},
                                    index=[f"ENSG{j:011d}" for j in range(12)]),
                   layers={"counts": counts, "normalized": norm},
                   uns={"dataset_id": "op/toy", "dataset_name": "toy", "normalization_id": "log_cp10k"})
    path = tmp_path / "dataset.h5ad"
    a.write_h5ad(path)
    d = io.read_counts(path, label_column="cell_type")
    assert (d.layers["counts"] != counts).nnz == 0
    assert list(d.obs["cell_type"][:2]) == ["t", "t"] and d.uns["dataset_id"] == "op/toy"
