"""Tests for scziva_bench.data.scenarios (dropout / mask / mcv / none)."""

import numpy as np
import pytest
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench.data import scenarios
from scziva_bench.data import simulate


@pytest.fixture(scope="module")
def ds():
    return simulate.splat(n_cells=200, n_genes=500, n_groups=3, dropout_share=None, seed=2,
                          dataset_id="simtest")


def _dense(M):
    return M.toarray() if sp.issparse(M) else np.asarray(M)


@pytest.mark.parametrize("kind,rate,seed,sid", [("dropout", 0.5, 1, "dropout50_s1"),
                                                ("dropout", 20, 3, "dropout20_s3"),
                                                ("dropout", 0.05, 0, "dropout05_s0"),
                                                ("mask", None, 1, "mask10_s1"),
                                                ("mcv", None, 2, "mcv_s2"),
                                                ("sampling", None, 3, "sampling_s3"),
                                                ("none", None, 0, "none")])
def test_a_kind_and_its_id_make_the_same_scenario(ds, kind, rate, seed, sid):
    """make(adata, id) equals make(adata, kind, rate, seed) and records that id."""
    by_kind = scenarios.make(ds, kind, rate=rate, seed=seed)
    by_id = scenarios.make(ds, sid)
    assert by_kind.uns["scenario"]["id"] == by_id.uns["scenario"]["id"] == sid
    assert by_id.uns["scenario"]["kind"] == kind and by_id.uns["scenario"]["seed"] == seed
    assert (by_kind.layers["counts"] != by_id.layers["counts"]).nnz == 0
    assert (by_kind.layers["truth"] != by_id.layers["truth"]).nnz == 0


@pytest.mark.parametrize("bad", ["", "dropout50", "dropout50_sx", "mask100_s1", "mcv_",
                                 "None", "dropout00_s1", "foo_s1", None, 3])
def test_garbage_is_neither_an_id_nor_a_kind(ds, bad):
    with pytest.raises(InputError):
        scenarios.make(ds, bad)


def test_an_id_carries_its_own_rate_and_seed(ds):
    with pytest.raises(InputError, match="carries its rate and seed"):
        scenarios.make(ds, "dropout50_s1", rate=0.2)
    with pytest.raises(InputError, match="carries its rate and seed"):
        scenarios.make(ds, "mcv_s1", seed=3)


def test_bad_arguments(ds):
    with pytest.raises(InputError):
        scenarios.make(ds, "blur")
    with pytest.raises(InputError):
        scenarios.make(ds, "mask", rate=0)
    with pytest.raises(InputError):
        scenarios.make(ds, "mcv", train_fraction=1.0)
    with pytest.raises(InputError):
        scenarios.make(ds, "mask", seed=-1)
    with pytest.raises(InputError, match="whole percent"):
        scenarios.make(ds, "dropout", rate=0.125, seed=1)  # not a whole percent: no id


def test_mcv_split_preserves_totals(ds):
    s = scenarios.make(ds, "mcv", seed=4)
    X = _dense(ds.layers["counts"])
    tr, te = _dense(s.layers["counts"]), _dense(s.layers["truth"])
    np.testing.assert_array_equal(tr + te, X)  # exactly
    assert tr.min() >= 0 and te.min() >= 0
    assert np.all(tr == np.rint(tr))
    # train fraction ~ 0.9 of the molecules (binomial: tight at this size)
    assert tr.sum() / X.sum() == pytest.approx(0.9, abs=0.005)
    assert s.uns["scenario"] == {"id": "mcv_s4", "kind": "mcv", "rate": pytest.approx(np.nan, nan_ok=True),
                                 "seed": 4, "train_fraction": 0.9}
    assert "mask" not in s.layers
    # p = 0.5 gives halves
    h = scenarios.make(ds, "mcv", seed=4, train_fraction=0.5)
    assert _dense(h.layers["counts"]).sum() / X.sum() == pytest.approx(0.5, abs=0.01)


def test_mask_hits_fraction_exactly(ds):
    X = _dense(ds.layers["counts"])
    nnz = int((X > 0).sum())
    for rate in (0.1, 0.25):
        s = scenarios.make(ds, "mask", rate=rate, seed=1)
        M = _dense(s.layers["mask"]).astype(bool)
        C = _dense(s.layers["counts"])
        assert M.sum() == round(rate * nnz)
        np.testing.assert_array_equal(M, (X > 0) & (C == 0))
        np.testing.assert_array_equal(C[~M], X[~M])
        np.testing.assert_array_equal(_dense(s.layers["truth"]), X)


def test_mask_is_uniform(ds):
    """Uniform masking: the masked share does not depend on the count's size."""
    X = _dense(ds.layers["counts"])
    s = scenarios.make(ds, "mask", rate=0.3, seed=3)
    M = _dense(s.layers["mask"]).astype(bool)
    low, high = (X > 0) & (X <= 2), X > 20
    assert abs(M[low].mean() - 0.3) < 0.02 and abs(M[high].mean() - 0.3) < 0.02


def test_dropout_scenario(ds):
    X = _dense(ds.layers["counts"])
    for rate in (0.2, 0.5, 0.8):
        s = scenarios.make(ds, "dropout", rate=rate, seed=1)
        M = _dense(s.layers["mask"]).astype(bool)
        C = _dense(s.layers["counts"])
        assert abs(M.sum() / (X > 0).sum() - rate) < 0.02
        np.testing.assert_array_equal(M, (X > 0) & (C == 0))
        np.testing.assert_array_equal(_dense(s.layers["truth"]), X)
        assert s.uns["scenario"]["id"] == f"dropout{int(rate * 100)}_s1"
    # logistic (shape -1): low counts drop more than high counts, unlike uniform masking
    s = scenarios.make(ds, "dropout", rate=0.5, seed=1)
    M = _dense(s.layers["mask"]).astype(bool)
    low, high = (X > 0) & (X <= 2), X > 20
    assert M[low].mean() > M[high].mean() + 0.4


def test_none_and_kept_metadata(ds, tmp_path):
    s = scenarios.make(ds, "none")
    np.testing.assert_array_equal(_dense(s.layers["truth"]), _dense(ds.layers["counts"]))
    np.testing.assert_array_equal(_dense(s.X), _dense(ds.layers["counts"]))
    assert "mask" not in s.layers
    for k in ("group_names", "sim_params", "dataset_id"):
        assert k in s.uns
    assert s.uns["dataset_id"] == "simtest"
    np.testing.assert_array_equal(s.varm["de_factor"], ds.varm["de_factor"])
    assert (s.obs["cell_type"] == ds.obs["cell_type"]).all()
    assert s.var["is_de"].equals(ds.var["is_de"])
    s.write_h5ad(tmp_path / "none.h5ad")
    # the dataset itself is untouched
    assert "scenario" not in ds.uns


@pytest.mark.parametrize("kind", ["dropout", "mask", "mcv", "none"])
def test_sparse_out_and_determinism(ds, kind, tmp_path):
    a = scenarios.make(ds, kind, seed=7)
    b = scenarios.make(ds, kind, seed=7)
    for k in a.layers:
        if k == "true_mean":  # the simulation's denoising truth: dense float32
            assert a.layers[k].dtype == np.float32 and np.array_equal(a.layers[k], b.layers[k])
            continue
        assert sp.issparse(a.layers[k])
        assert (a.layers[k] != b.layers[k]).nnz == 0
    assert a.layers["counts"].dtype == np.float32
    if kind != "none":
        c = scenarios.make(ds, kind, seed=8)
        assert (a.layers["counts"] != c.layers["counts"]).nnz > 0
    a.write_h5ad(tmp_path / f"{kind}.h5ad")


def test_dense_input_gives_sparse_output():
    import anndata as ad
    X = np.array([[1, 0, 3], [4, 5, 0], [0, 2, 2]], dtype=np.float32)
    s = scenarios.make(ad.AnnData(X), "mcv", seed=0)
    assert sp.issparse(s.layers["counts"])
    np.testing.assert_array_equal(_dense(s.layers["counts"]) + _dense(s.layers["truth"]), X)


def test_none_keeps_a_datasets_own_truth_and_mask():
    from scziva_bench.data import scenarios
    from scziva_bench.data import simulate
    ds = simulate.splat(n_cells=40, n_genes=30, n_groups=2, dropout_share=0.5, seed=3)
    scen = scenarios.make(ds, "none")
    assert (scen.layers["truth"] != ds.layers["truth"]).nnz == 0
    assert (scen.layers["mask"] != sp.csr_matrix(ds.layers["mask"], dtype=bool)).nnz == 0
    assert (scen.layers["counts"] != ds.layers["counts"]).nnz == 0
    plain = simulate.splat(n_cells=40, n_genes=30, n_groups=2, seed=3)
    del plain.layers["truth"]
    scen2 = scenarios.make(plain, "none")
    assert (scen2.layers["truth"] != scen2.layers["counts"]).nnz == 0 and "mask" not in scen2.layers


def test_dropout_uses_each_cells_own_means():
    """Dropout probabilities follow each cell's own mean: the simulation's true means where
    the dataset has them, else the kNN estimate, which tracks them far better than the
    rank-1 library x gene estimate when genes are DE between groups."""
    ds = simulate.splat(n_cells=300, n_genes=400, n_groups=3, de_prob=0.3, de_loc=1.0, seed=4)
    s = scenarios.make(ds, "dropout", rate=0.5, seed=2)
    assert s.uns["scenario"]["means"] == "true_mean"
    assert np.array_equal(s.layers["true_mean"], ds.layers["true_mean"])
    X = sp.csr_matrix(ds.layers["counts"])
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    true = np.log(ds.layers["true_mean"][rows, X.indices])
    knn = np.log(scenarios.knn_means(X).data)
    lib, gsum = np.asarray(X.sum(1)).ravel(), np.asarray(X.sum(0)).ravel()
    rank1 = np.log(lib[rows] * gsum[X.indices] / X.sum())
    # only the DE genes tell the two apart
    de = ds.var["is_de"].to_numpy()[X.indices]
    r_knn = np.corrcoef(knn[de], true[de])[0, 1]
    r_rank1 = np.corrcoef(rank1[de], true[de])[0, 1]
    assert r_knn > r_rank1 + 0.02, (r_knn, r_rank1)
    # without true means: the kNN estimate, deterministic, rate still hit
    plain = ds.copy()
    del plain.layers["true_mean"]
    a = scenarios.make(plain, "dropout", rate=0.5, seed=2)
    b = scenarios.make(plain, "dropout", rate=0.5, seed=2)
    assert a.uns["scenario"]["means"] == "knn" and "true_mean" not in a.layers
    assert (a.layers["mask"] != b.layers["mask"]).nnz == 0
    assert abs(a.uns["scenario"]["realised_rate"] - 0.5) < 0.02


def test_sampling_scenario_has_no_entry_truth_but_the_true_means(ds):
    """No dropout on top: the counts as given, no mask, and no entry-wise truth (a truth
    equal to the counts scores nothing); the denoising truth comes along."""
    from scziva_bench.evaluation import metrics

    s = scenarios.make(ds, "sampling_s1")
    C = ds.layers["counts"]
    assert (sp.csr_matrix(s.layers["counts"]) != sp.csr_matrix(C, dtype=np.float32)).nnz == 0
    assert "mask" not in s.layers
    av = metrics.available(s)
    assert not av["truth"] and not av["mask"] and av["true_mean"] and av["labels"]
    np.testing.assert_allclose(s.layers["true_mean"], _dense(ds.layers["true_mean"]), rtol=1e-6)


def test_downsample_is_binomial_thinning_of_the_full_depth():
    """simulate.downsample: counts <= full counts entry by entry, the mean of the kept
    counts is p x full (checked against the closed form over many seeds), true_mean is
    exactly p x full, the median depth lands near the target, seeds reproduce and differ."""
    rng = np.random.default_rng(0)
    full = sp.csr_matrix(rng.poisson(rng.gamma(0.5, 40.0, size=(60, 80))).astype(np.float32))
    import anndata as ad
    a = ad.AnnData(X=full.copy(), layers={"counts": full.copy()})
    a.obs["cell_type"] = ["a", "b"] * 30
    med = float(np.median(np.asarray(full.sum(axis=1)).ravel()))
    d = simulate.downsample(a, depth=med / 10, seed=3)
    p = d.uns["downsample"]["p"]
    assert p == pytest.approx(0.1)
    F, D = full.toarray(), _dense(d.layers["counts"])
    assert (D <= F).all() and (D >= 0).all() and np.array_equal(D, np.rint(D))
    np.testing.assert_allclose(d.layers["true_mean"], F * p, rtol=1e-6)
    assert np.median(D.sum(axis=1)) == pytest.approx(med / 10, rel=0.15)
    assert list(d.obs["cell_type"]) == list(a.obs["cell_type"])
    assert np.array_equal(_dense(simulate.downsample(a, med / 10, seed=3).layers["counts"]), D)
    assert not np.array_equal(_dense(simulate.downsample(a, med / 10, seed=4).layers["counts"]), D)
    mean = np.mean([_dense(simulate.downsample(a, med / 10, seed=s).layers["counts"]).sum()
                    for s in range(20)])
    # Binomial: E = p x total, sd of the mean over 20 draws = sqrt(p(1-p) total / 20)
    assert abs(mean - p * F.sum()) < 4 * np.sqrt(p * (1 - p) * F.sum() / 20)
    assert np.array_equal(_dense(a.layers["counts"]), F)  # the input is untouched
    # depth above the median total: everything kept
    assert np.array_equal(_dense(simulate.downsample(a, med * 10, seed=1).layers["counts"]), F)
    for bad in (0, -1, float("nan"), "x"):
        with pytest.raises(InputError, match="depth"):
            simulate.downsample(a, bad)
