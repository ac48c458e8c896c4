"""Tests for scziva_bench.data.simulate (Splat-style simulator, logistic dropout)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit

from scziva.errors import InputError
from scziva_bench.data import simulate


@pytest.fixture(scope="module")
def sim():
    return simulate.splat(n_cells=300, n_genes=1000, n_groups=3, dropout_share=None, seed=7)


def test_contract_layout(sim, tmp_path):
    a = sim
    assert a.shape == (300, 1000)
    for k in ("counts", "truth", "mask"):
        assert sp.isspmatrix_csr(a.layers[k]) or isinstance(a.layers[k], sp.csr_matrix)
    assert a.layers["counts"].dtype == np.float32
    assert a.layers["mask"].dtype == bool
    c = a.layers["counts"].data
    assert np.all(c == np.rint(c)) and c.min() > 0
    assert (a.X != a.layers["counts"]).nnz == 0
    assert list(a.obs["group"].cat.categories) == a.uns["group_names"] == ["Group1", "Group2", "Group3"]
    assert (a.obs["group"] == a.obs["cell_type"]).all()
    assert a.varm["de_factor"].shape == (1000, 3)
    np.testing.assert_array_equal(a.var["is_de"].to_numpy(), (a.varm["de_factor"] != 1).any(axis=1))
    assert a.uns["dataset_id"] == "sim" and a.uns["sim_params"]["seed"] == 7
    # no dropout requested: counts are the truth and nothing is masked
    assert (a.layers["counts"] != a.layers["truth"]).nnz == 0 and a.layers["mask"].nnz == 0
    a.write_h5ad(tmp_path / "s.h5ad")  # every uns value is writable


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_dropout_share_hit(share):
    a = simulate.splat(n_cells=300, n_genes=1000, dropout_share=share, seed=3)
    truth, counts, mask = a.layers["truth"], a.layers["counts"], a.layers["mask"]
    realised = mask.nnz / truth.nnz
    assert abs(realised - share) < 0.02
    assert a.uns["sim_params"]["dropout_share_realised"] == pytest.approx(realised)
    # mask == (truth > 0) & (counts == 0), and kept entries are unchanged
    T, C, M = truth.toarray(), counts.toarray(), mask.toarray()
    np.testing.assert_array_equal(M, (T > 0) & (C == 0))
    np.testing.assert_array_equal(C[~M], T[~M])


def test_dropout_prefers_low_means():
    """shape -1: lowly expressed entries drop more often than highly expressed ones."""
    a = simulate.splat(n_cells=300, n_genes=1000, dropout_share=0.5, seed=3)
    T, M = a.layers["truth"].toarray(), a.layers["mask"].toarray()
    low = (T > 0) & (T <= 2)
    high = T >= 50
    assert M[low].mean() > 0.8 and M[high].mean() < 0.2


def test_seed_determinism():
    a = simulate.splat(n_cells=100, n_genes=200, dropout_share=0.5, seed=11)
    b = simulate.splat(n_cells=100, n_genes=200, dropout_share=0.5, seed=11)
    c = simulate.splat(n_cells=100, n_genes=200, dropout_share=0.5, seed=12)
    for k in ("counts", "truth", "mask"):
        assert (a.layers[k] != b.layers[k]).nnz == 0
    np.testing.assert_array_equal(a.varm["de_factor"], b.varm["de_factor"])
    assert (a.layers["truth"] != c.layers["truth"]).nnz > 0


def test_de_genes_are_de():
    """Group means of strongly DE genes follow the sign and size of their factor."""
    a = simulate.splat(n_cells=600, n_genes=1000, n_groups=2, de_prob=0.2, de_loc=1.0,
                       de_scale=0.2, bcv_common=0.05, seed=5)
    T = a.layers["truth"].toarray()
    T = T / T.sum(axis=1, keepdims=True) * 1e4  # remove library size
    g = a.obs["group"].cat.codes.to_numpy()
    f = a.varm["de_factor"]
    m0, m1 = T[g == 0].mean(0), T[g == 1].mean(0)
    expected = np.log(f[:, 0] / f[:, 1])
    ok = (m0 > 2) & (m1 > 2) & (np.abs(expected) > 0.7)  # clearly DE, clearly expressed
    assert ok.sum() > 20
    observed = np.log(m0[ok] / m1[ok])
    assert np.all(np.sign(observed) == np.sign(expected[ok]))
    assert np.corrcoef(observed, expected[ok])[0, 1] > 0.9
    # non-DE, well-expressed genes keep about the same mean
    same = (np.abs(expected) == 0) & (m0 > 10)
    assert np.median(np.abs(np.log(m0[same] / m1[same]))) < 0.1


def test_library_size_and_gene_mean_model():
    a = simulate.splat(n_cells=2000, n_genes=500, lib_loc=9, lib_scale=0.3, bcv_common=0.1,
                       out_prob=0.0, seed=2)
    lib = np.asarray(a.layers["truth"].sum(axis=1)).ravel()
    # gamma-Poisson noise barely changes whole-cell totals
    assert np.log(lib).mean() == pytest.approx(9, abs=0.05)
    assert np.log(lib).std() == pytest.approx(0.3, abs=0.05)
    assert not a.var["is_outlier"].any()


def test_path_mode():
    a = simulate.splat(n_cells=400, n_genes=300, n_groups=4, path=True, seed=1)
    pt = a.obs["pseudotime"].to_numpy()
    g = a.obs["group"].cat.codes.to_numpy()
    assert pt.min() >= 0 and pt.max() <= 1
    # group k occupies the pseudotime segment [k/4, (k+1)/4)
    assert np.all(np.floor(pt * 4).astype(int) == g)
    assert a.varm["de_factor"].shape == (300, 4)


def test_path_interpolates_along_pseudotime():
    """Within the first step, expression moves from the start (factor 1) to the node factor."""
    a = simulate.splat(n_cells=1200, n_genes=400, n_groups=2, path=True, de_prob=0.3, de_loc=1.0,
                       de_scale=0.2, bcv_common=0.05, seed=6)
    T = a.layers["truth"].toarray()
    T = T / T.sum(axis=1, keepdims=True) * 1e4
    pt = a.obs["pseudotime"].to_numpy()
    early, late = T[pt < 0.1].mean(0), T[(pt > 0.4) & (pt < 0.5)].mean(0)
    logf = np.log(a.varm["de_factor"][:, 0])  # node at the end of step 1 (pseudotime 0.5)
    ok = (np.abs(logf) > 0.7) & (early > 2) & (late > 2)
    assert ok.sum() > 10
    observed = np.log(late[ok] / early[ok])
    assert np.all(np.sign(observed) == np.sign(logf[ok]))
    # cells at ~0.45 are ~0.85 of the way to the node (0.05 of 0.5 from it, within 0.4..0.5)
    assert np.median(observed / logf[ok]) == pytest.approx(0.8, abs=0.15)


def test_estimate_params_recovers_simulation():
    a = simulate.splat(n_cells=500, n_genes=1500, lib_loc=10.5, lib_scale=0.25, mean_shape=0.6,
                       bcv_common=0.2, seed=4)
    p = simulate.estimate_params(a)
    assert set(p) == set(simulate.PARAM_KEYS)
    assert p["lib_loc"] == pytest.approx(10.5, abs=0.05)
    assert p["lib_scale"] == pytest.approx(0.25, abs=0.05)
    assert p["mean_shape"] == pytest.approx(0.6, rel=0.35)
    assert 0 < p["out_prob"] < 0.15
    # the estimate can be fed back to splat
    b = simulate.splat(n_cells=100, n_genes=200, seed=0, **p)
    assert b.shape == (100, 200)


def test_add_dropout_sparse_and_dense_agree():
    rng = np.random.default_rng(0)
    X = rng.poisson(rng.gamma(0.5, 4, size=(200, 300))).astype(np.float32)
    d_dense, m_dense = simulate.add_dropout(X, 0.3, seed=9)
    d_sp, m_sp = simulate.add_dropout(sp.csr_matrix(X), 0.3, seed=9)
    assert sp.issparse(d_sp) and sp.issparse(m_sp)
    np.testing.assert_array_equal(d_sp.toarray(), d_dense)
    np.testing.assert_array_equal(m_sp.toarray(), m_dense)
    nz = X > 0
    assert abs(m_dense.sum() / nz.sum() - 0.3) < 0.02
    assert not m_dense[~nz].any()
    np.testing.assert_array_equal(d_dense[~m_dense], X[~m_dense])
    assert np.all(d_dense[m_dense] == 0)
    # the input is not modified
    assert (X > 0).sum() == nz.sum()


def test_solve_midpoint_closed_form():
    # all entries share one log mean: share = expit(shape * (l - mid)) -> mid = l - logit(share)/shape
    lm = np.full(50, 2.0)
    mid = simulate.solve_midpoint(lm, 0.25, shape=-1.0)
    assert expit(-1.0 * (2.0 - mid)) == pytest.approx(0.25, abs=1e-6)
    assert mid == pytest.approx(2.0 + np.log(0.25 / 0.75), abs=1e-5)


@pytest.mark.parametrize("kw", [dict(dropout_share=1.5), dict(dropout_share=0.0), dict(n_cells=0),
                                dict(de_prob=2.0), dict(group_probs=[1, 2]), dict(mean_shape=-1),
                                dict(dropout_share=0.5, dropout_shape=0.0)])
def test_bad_input(kw):
    with pytest.raises(InputError):
        simulate.splat(n_cells=kw.pop("n_cells", 20), n_genes=30, n_groups=3, **kw)


def test_speed_600x2000():
    import time
    simulate.splat(n_cells=60, n_genes=50, dropout_share=0.5)
    t = time.perf_counter()
    simulate.splat(n_cells=600, n_genes=2000, dropout_share=0.5, seed=1)
    assert time.perf_counter() - t < 2.0  # < 1 s on a free core; margin for shared CI


def test_estimate_params_resembles_real_data(shared_data):
    import anndata as ad

    path = shared_data / "zeisel_subset.h5ad"
    if not path.exists():
        pytest.skip("zeisel_subset.h5ad missing")
    real = ad.read_h5ad(path)
    p = simulate.estimate_params(real)
    sim = simulate.splat(n_cells=real.n_obs, n_genes=real.n_vars, seed=0, **p)
    X, S = sp.csr_matrix(real.X), sim.layers["counts"]
    zeros = lambda M: 1 - M.nnz / (M.shape[0] * M.shape[1])  # noqa: E731
    assert abs(zeros(S) - zeros(X)) < 0.05  # measured: 0.238 vs 0.235
    lib_r, lib_s = np.asarray(X.sum(1)).ravel(), np.asarray(S.sum(1)).ravel()
    assert np.log(np.median(lib_s)) == pytest.approx(np.log(np.median(lib_r)), abs=0.1)


def test_add_dropout_bad_input():
    X = np.array([[1.0, 2.0], [0.0, 3.0]])
    with pytest.raises(InputError):
        simulate.add_dropout(X, 1.2)
    with pytest.raises(InputError):
        simulate.add_dropout(-X, 0.5)
    with pytest.raises(InputError):
        simulate.add_dropout(X, 0.5, shape=0.0)
    with pytest.raises(InputError):
        simulate.estimate_params(np.zeros((1, 5)))


def test_true_mean_layer():
    """layers['true_mean'] holds the Poisson rates of the truth (pre-Poisson means)."""
    a = simulate.splat(n_cells=400, n_genes=300, n_groups=2, dropout_share=0.5, seed=8)
    M = a.layers["true_mean"]
    assert isinstance(M, np.ndarray) and M.dtype == np.float32 and M.shape == a.shape
    assert (M >= 0).all() and (M > 0).mean() > 0.99  # a gamma draw can underflow to 0
    T = a.layers["truth"].toarray()
    # Poisson: per gene, the mean of the counts equals the mean of the rates (within noise)
    m_t, m_r = T.mean(axis=0), M.mean(axis=0, dtype=np.float64)
    ok = m_r > 5
    assert np.median(np.abs(m_t[ok] / m_r[ok] - 1)) < 0.05
    # and the residual variance is Poisson: var(T - M) ~ mean(M)
    r = (T - M)[:, ok]
    assert np.median(r.var(axis=0) / m_r[ok]) == pytest.approx(1.0, abs=0.15)
    # the layer changes no count: the same seed without it gives the same data
    b = simulate.splat(n_cells=400, n_genes=300, n_groups=2, dropout_share=0.5, seed=8, true_mean=False)
    assert "true_mean" not in b.layers
    for k in ("counts", "truth", "mask"):
        assert (a.layers[k] != b.layers[k]).nnz == 0


@pytest.mark.parametrize("name,lo,hi,zlo,zhi", [("umi", 1.0, 3.0, 0.55, 0.75), ("fulllength", 15.0, 45.0, 0.65, 0.85)])
def test_regimes_resemble_their_data_at_the_default_size(name, lo, hi, zlo, zhi):
    """Counts per entry and share of zeros of each preset at 300 cells x 1000 genes (the
    presets are estimated at the real sizes; regime() keeps the depth per entry)."""
    p = simulate.regime(name, n_cells=300, n_genes=1000, n_groups=5, seed=1)
    assert p["n_genes"] == 1000 and p["lib_loc"] < simulate.REGIMES[name]["lib_loc"]
    a = simulate.splat(**p)
    X = a.layers["counts"]
    per_entry = X.sum() / (300 * 1000)
    zeros = 1 - X.nnz / (300 * 1000)
    assert lo < per_entry < hi and zlo < zeros < zhi, (per_entry, zeros)
    # at the real size the library size is the estimated one
    assert simulate.regime(name, n_genes=simulate.REGIMES[name]["n_genes"])["lib_loc"] == \
        pytest.approx(simulate.REGIMES[name]["lib_loc"], abs=1e-4)
    with pytest.raises(InputError):
        simulate.regime("smartseq9")


def test_regime_presets_are_estimates_of_their_source(shared_data):
    """The presets are what estimate_params gives on the largest cell type of the data."""
    import anndata as ad
    for name, file, ctype in (("umi", "cellbench_dropseq.h5ad", "H1975"), ("fulllength", "darmanis.h5ad", "neurons")):
        path = shared_data / file
        if not path.exists():
            pytest.skip(f"{file} missing")
        real = ad.read_h5ad(path)
        est = simulate.estimate_params(real[real.obs["cell_type"] == ctype].copy())
        for k, v in est.items():
            assert simulate.REGIMES[name][k] == pytest.approx(v, rel=1e-3, abs=1e-3), (name, k)


def test_data_seed_gives_each_scenario_seed_its_own_dataset():
    assert simulate.data_seed(1, 0) == 1  # no seed (e.g. `none`): the dataset's own
    seeds = {simulate.data_seed(1, s) for s in (1, 2, 3)} | {simulate.data_seed(2, s) for s in (1, 2, 3)}
    assert len(seeds) == 6 and not seeds & {1, 2, 100, 101}
