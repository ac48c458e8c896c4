"""scZiva streamed from an .h5ad on disk (scziva.stream, `scziva impute --stream`): the
same contract as the in-memory call, read one block at a time, written in chunks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scziva import InputError, ZIVAimpute, cli
from scziva.stream import H5adRows, StreamedBatches, impute_h5ad

FAST = dict(num_epochs=4, hidden_dim=16, latent_dim=4, batch_size=32)


def _counts(n=180, g=40, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 3, n)
    means = rng.gamma(0.8, 2.0, (3, g))
    X = rng.poisson(means[groups] * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)
    X[5] = 0  # a cell without counts
    X[:, 7] = 0  # a gene without counts
    return X


def _write(path, X, sparse=True, **extra):
    a = ad.AnnData(X=sp.csr_matrix(X) if sparse else X,
                   obs=pd.DataFrame({"kind": ["x"] * X.shape[0]}, index=[f"c{i:03d}" for i in range(X.shape[0])]),
                   var=pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])]))
    for k, v in extra.items():
        setattr(a, k, v) if k != "uns" else a.uns.update(v)
    a.write_h5ad(path)
    return path


@pytest.mark.parametrize("sparse", [True, False])
def test_streamed_output_keeps_the_contract(tmp_path, sparse):
    X = _counts()
    src = _write(tmp_path / "in.h5ad", X, sparse=sparse)
    model = impute_h5ad(src, tmp_path / "out.h5ad", block_cells=50, seed=3, **FAST)
    out = ad.read_h5ad(tmp_path / "out.h5ad")
    assert out.shape == X.shape and out.X.dtype == np.float32
    assert list(out.obs_names) == [f"c{i:03d}" for i in range(X.shape[0])]
    assert list(out.obs["kind"]) == ["x"] * X.shape[0]
    Y = np.asarray(out.X)
    nz = X > 0
    np.testing.assert_array_equal(Y[nz], X[nz])  # observed counts kept
    assert np.all(Y[5] == 0) and np.all(Y[:, 7] == 0)  # nothing to learn there: zeros stay
    assert np.isfinite(Y).all() and (Y >= 0).all()
    assert (Y[~nz] > 0).any()  # zeros were imputed
    assert out.uns["scziva"]["streamed"] and model.stopped_epoch >= 1


def test_streamed_run_is_reproducible_and_close_to_the_in_memory_one(tmp_path):
    X = _counts(n=240, g=30, seed=1)
    src = _write(tmp_path / "in.h5ad", X)
    impute_h5ad(src, tmp_path / "a.h5ad", block_cells=64, seed=2, num_epochs=25, pi_ridge=0.0)
    impute_h5ad(src, tmp_path / "b.h5ad", block_cells=64, seed=2, num_epochs=25, pi_ridge=0.0)
    A, B = (np.asarray(ad.read_h5ad(tmp_path / f).X) for f in ("a.h5ad", "b.h5ad"))
    np.testing.assert_array_equal(A, B)  # same seed, same bits (CPU)
    M, _ = ZIVAimpute(X, seed=2, num_epochs=25, pi_ridge=0.0)
    # the same model on the same data, only the order of the mini-batches differs
    zeros = X == 0
    r = np.corrcoef(np.log1p(A[zeros]), np.log1p(M[zeros]))[0, 1]
    assert r > 0.8, r


def test_streamed_default_chooses_the_penalty_as_the_in_memory_call(tmp_path):
    X = _counts(n=200, g=30, seed=4)  # shallow Poisson counts: most zeros are sampling zeros
    src = _write(tmp_path / "in.h5ad", X)
    model = impute_h5ad(src, tmp_path / "out.h5ad", block_cells=64, seed=2, **FAST)
    _, mem = ZIVAimpute(X, seed=2, **FAST)
    share = model.pi_ridge_selection["sampling_zero_share"]
    assert share == pytest.approx(mem.pi_ridge_selection["sampling_zero_share"], rel=1e-6)
    assert share > 0.5 and model.config["pi_ridge"] == mem.config["pi_ridge"] == 1.0
    assert ad.read_h5ad(tmp_path / "out.h5ad").uns["scziva"]["sampling_zero_share"] == pytest.approx(share)


def test_reads_one_block_at_a_time(tmp_path, monkeypatch):
    X = _counts(n=200)
    src = _write(tmp_path / "in.h5ad", X)
    spans = []
    real = H5adRows.read

    def spy(self, start, stop):
        spans.append(stop - start)
        return real(self, start, stop)

    monkeypatch.setattr(H5adRows, "read", spy)
    impute_h5ad(src, tmp_path / "out.h5ad", block_cells=40, **FAST)
    # a block is 40 kept cells; the file rows it spans include the one empty cell (row 5)
    assert spans and max(spans) <= 41


def test_block_shuffle_visits_every_training_cell_once():
    class _Rows:
        shape = (100, 3)

    sb = StreamedBatches(_Rows(), np.arange(100), np.arange(3), np.ones(100), None, block=16)
    train = np.setdiff1d(np.arange(100), [3, 50, 97])
    order = sb.epoch_order(train, np.random.default_rng(0))
    assert sorted(order.tolist()) == train.tolist()
    blocks = order // 16
    assert (np.diff(blocks) != 0).sum() == np.unique(blocks).size - 1  # each block visited in one run


def test_bad_inputs_are_refused_before_training(tmp_path):
    X = _counts()
    csc = tmp_path / "csc.h5ad"
    ad.AnnData(X=sp.csc_matrix(X)).write_h5ad(csc)
    with pytest.raises(InputError, match="column-wise \\(CSC\\)"):
        impute_h5ad(csc, tmp_path / "o1.h5ad", **FAST)
    logged = _write(tmp_path / "log.h5ad", np.log1p(X), uns={"log1p": {"base": None}})
    with pytest.raises(InputError, match=r"uns\['log1p'\]"):
        impute_h5ad(logged, tmp_path / "o2.h5ad", **FAST)
    cpm = _write(tmp_path / "cpm.h5ad", X / (X.sum(1, keepdims=True) + 1) * 1e4 + 0.0)
    with pytest.raises(InputError, match="not integers"):
        impute_h5ad(cpm, tmp_path / "o3.h5ad", **FAST)
    src = _write(tmp_path / "in.h5ad", X)
    (tmp_path / "exists.h5ad").write_text("keep")
    with pytest.raises(InputError, match="already exists"):
        impute_h5ad(src, tmp_path / "exists.h5ad", **FAST)
    assert (tmp_path / "exists.h5ad").read_text() == "keep"
    with pytest.raises(ValueError, match="authors"):
        impute_h5ad(src, tmp_path / "o4.h5ad", mode="authors", num_epochs=2)
    assert not any((tmp_path / f"o{i}.h5ad").exists() for i in range(1, 5))


def test_cli_stream(tmp_path, capsys):
    X = _counts()
    src = _write(tmp_path / "in.h5ad", X)
    capsys.readouterr()
    rc = cli.main(["impute", str(src), str(tmp_path / "o.h5ad"), "--stream", "--epochs", "3", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert ad.read_h5ad(tmp_path / "o.h5ad").shape == X.shape
    rc = cli.main(["impute", str(src), str(tmp_path / "o.csv"), "--stream", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--stream" in err and ".h5ad" in err


def test_pools_are_made_of_pieces_from_across_the_file():
    """A pool of `block` cells is `block // read` pieces of `read` consecutive cells drawn
    from anywhere in the file, so that a file sorted by sample does not give mini-batches
    from one sample at a time; every training cell is visited once an epoch."""
    class _Rows:
        shape = (1000, 3)

    sb = StreamedBatches(_Rows(), np.arange(1000), np.arange(3), np.ones(1000), None, block=200, read=20)
    assert (sb.read, sb.pool) == (20, 10)
    train = np.arange(1000)  # (all of them, so that every pool holds exactly 200 cells)
    order = sb.epoch_order(train, np.random.default_rng(0))
    assert sorted(order.tolist()) == train.tolist()
    pools = [order[k:k + 200] for k in range(0, order.size, 200)]
    pieces = [set((p // 20).tolist()) for p in pools]
    assert all(len(p) <= 10 for p in pieces)  # a pool holds at most 10 pieces
    assert set().union(*pieces) == set(range(50)) and sum(len(p) for p in pieces) == 50  # each piece in one pool
    # the first pool's pieces are spread over the file, not the first ten
    assert max(pieces[0]) - min(pieces[0]) > 10
    # and the cells of a pool are shuffled across its pieces
    assert len(set((pools[0][:20] // 20).tolist())) > 3


def test_a_sorted_file_trains_on_mixed_batches(tmp_path, monkeypatch):
    """Mini-batches drawn while training mix pieces from several parts of the file."""
    X = _counts(n=400, g=20, seed=5)
    src = _write(tmp_path / "in.h5ad", X)
    seen = []
    real = StreamedBatches.get

    def spy(self, idx, **kw):
        seen.append(np.asarray(idx).copy())
        return real(self, idx, **kw)

    monkeypatch.setattr(StreamedBatches, "get", spy)
    monkeypatch.setattr("scziva.stream.READ_CELLS", 25)
    impute_h5ad(src, tmp_path / "out.h5ad", block_cells=200, seed=1, **FAST)
    train_batches = [b for b in seen if b.size == 32]
    spans = [np.ptp(b) for b in train_batches]
    assert np.median(spans) > 200  # a batch's cells come from far apart in the file
