"""Tests for scziva_bench.methods: the registry and every imputation adapter.

Each adapter runs on a small Splat simulation (200 cells x 300 genes, 3 groups, half of
the non-zero entries dropped) with small training budgets. Checked: shape, dtype,
finite, non-negative, bit-for-bit determinism on the CPU for a seed, gene order (a
permutation of the input's genes permutes the output the same way), and accuracy on the
dropped entries against the simulation's truth, compared with ``no_imputation``.
Method-specific checks use hand-computed cases (closed forms, duplicated cells, ...).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from scziva.errors import InputError
from scziva_bench import methods
from scziva_bench.data import scenarios
from scziva_bench.data import simulate

# small training budgets: the tests check behaviour, not the methods' best accuracy
FAST = {
    "no_imputation": {},
    "perfect": {},
    "alra": {},
    "knn_smoothing": {},
    "magic": {},
    "dca": {"epochs": 40},
    "deepimpute": {"epochs": 100},
}
# methods whose output is exactly (up to float rounding) equivariant to gene order;
# the torch networks initialise their weights in gene order, so they are compared loosely
ORDER_EXACT = ["no_imputation", "perfect", "alra", "knn_smoothing", "magic", "deepimpute"]


@pytest.fixture(scope="module")
def scenario():
    data = simulate.splat(n_cells=200, n_genes=300, n_groups=3, seed=0)
    return scenarios.make(data, "dropout", rate=0.5, seed=0)


@pytest.fixture(scope="module")
def permuted(scenario):
    perm = np.random.default_rng(1).permutation(scenario.n_vars)
    return perm, scenario[:, perm].copy()


@pytest.fixture(scope="module")
def outputs(scenario):
    """One run of each fast method (seed 0, CPU), shared by several tests."""
    return {name: methods.run(name, scenario, seed=0, device="cpu", **kw) for name, kw in FAST.items()}


def _dropped_corr(scenario, Y):
    """Pearson r of log1p(imputed) and log1p(truth) over the dropped entries (0 if constant)."""
    mask = scenario.layers["mask"].toarray().astype(bool)
    truth = scenario.layers["truth"].toarray()
    y = np.log1p(Y[mask])
    return 0.0 if y.std() == 0 else float(np.corrcoef(y, np.log1p(truth[mask]))[0, 1])


def _all_corr(scenario, Y):
    truth = scenario.layers["truth"].toarray()
    return float(np.corrcoef(np.log1p(Y.ravel()), np.log1p(truth.ravel()))[0, 1])


# ----------------------------------------------------------------------------- registry

def test_registry_lists_every_method():
    names = methods.available()
    assert names == sorted(names)
    for name in ["no_imputation", "perfect", "magic", "alra", "knn_smoothing", "dca",
                 "deepimpute", "scvi", "scziva", "scziva_authors"]:
        assert name in names


def test_unknown_method_names_the_known_ones(scenario):
    with pytest.raises(InputError, match="unknown imputation method 'nope'.*alra.*magic"):
        methods.run("nope", scenario)
    with pytest.raises(InputError, match="known methods"):
        methods.get("nope")


def test_adapters_take_gpu_use_from_the_catalog_and_copy_defaults():
    from scziva_bench.catalog import methods as catalog

    for name in methods.available():
        assert methods.get(name).uses_gpu == catalog.row(name).uses_gpu
    d = methods.defaults("dca")
    assert d["hidden"] == [64, 32, 64] and d["batch_size"] == 32
    d["epochs"] = -1  # a copy: the registry's defaults stay unchanged
    assert methods.defaults("dca")["epochs"] == 300
    assert methods.defaults("deepimpute")["n_targets"] == 512
    assert methods.defaults("no_imputation") == {}


def test_defaults_can_be_stored_in_h5ad(tmp_path):
    # the workflow stores the parameters of a run in uns["method_params"]
    import anndata as ad

    a = ad.AnnData(np.zeros((2, 2), dtype=np.float32))
    a.uns["method_params"] = {name: methods.defaults(name) for name in methods.available()}
    a.write_h5ad(tmp_path / "p.h5ad")
    back = ad.read_h5ad(tmp_path / "p.h5ad").uns["method_params"]
    assert back["knn_smoothing"] == {"k": 15, "d": 10, "dither": 0.03}
    assert list(back["dca"]["hidden"]) == [64, 32, 64]


def test_unknown_parameter_and_missing_layer(scenario):
    with pytest.raises(InputError, match="unknown parameter.*bogus.*accepted: .*k"):
        methods.run("knn_smoothing", scenario, bogus=1)
    bare = scenario.copy()
    del bare.layers["counts"]
    with pytest.raises(InputError, match=r"layers\['counts'\] is missing"):
        methods.run("no_imputation", bare)
    with pytest.raises(InputError, match="device"):
        methods.run("dca", scenario, device="tpu")


def test_device_none_means_cuda_when_available():
    import torch

    assert methods.resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert methods.resolve_device("cpu") == "cpu"


# ----------------------------------------------------------------------------- controls

def test_controls(scenario, outputs):
    counts = scenario.layers["counts"].toarray()
    truth = scenario.layers["truth"].toarray()
    assert np.array_equal(outputs["no_imputation"], counts)
    assert np.array_equal(outputs["perfect"], truth)


def test_perfect_on_mcv_rescales_to_the_test_counts():
    data = simulate.splat(n_cells=40, n_genes=50, n_groups=2, seed=3)
    mcv = scenarios.make(data, "mcv", seed=0, train_fraction=0.8)
    Y = methods.run("perfect", mcv)
    test = mcv.layers["truth"].toarray()
    # the metric rescales an imputation by (1 - p) / p: that gives the test counts back
    np.testing.assert_allclose(Y * (0.2 / 0.8), test, rtol=1e-6)
    np.testing.assert_allclose(Y, test * 4.0, rtol=1e-6)


def test_oracle_is_the_true_means_at_each_cells_depth(scenario):
    """The oracle control sees the scenario (as perfect does) and returns its true means,
    each cell scaled to its observed total; on data without true means the workflow's
    runner records it as not applicable (not failed, never ranked last)."""
    from scziva_bench.evaluation import scoring as evaluation
    from scziva_bench.methods import runner

    O = methods.run("oracle", scenario).astype(np.float64)
    C = scenario.layers["counts"].toarray().astype(np.float64)
    mu = np.asarray(scenario.layers["true_mean"], dtype=np.float64)
    np.testing.assert_allclose(O.sum(axis=1), C.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(O * mu.sum(axis=1, keepdims=True),
                               mu * C.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-3)
    bare = scenario.copy()
    del bare.layers["true_mean"]
    with pytest.raises(InputError, match="true_mean"):
        methods.run("oracle", bare)
    rec = runner.impute_scenario(bare, "oracle", dataset_id="real")
    assert rec.uns["status"] == "not_applicable" and "imputed" not in rec.layers
    assert [m["level"] for m in runner.record_messages(rec)] == ["note"]
    rows = evaluation.score_output(bare, rec, "real", "s", "oracle", ["ari_kmeans"])
    assert (rows["status"] == "not_applicable").all()


def test_perfect_without_truth_is_an_input_error(scenario):
    bare = scenario.copy()
    del bare.layers["truth"]
    with pytest.raises(InputError, match="truth"):
        methods.run("perfect", bare)


# ----------------------------------------------------------------------------- all fast methods

# shape, dtype, finiteness, determinism and the hidden truth: tests/test_catalog.py, for
# every method of the catalog


@pytest.mark.parametrize("name", list(FAST))
def test_output_is_on_the_count_scale(name, scenario, outputs):
    # total counts within a factor 2 of the observed ones
    ratio = outputs[name].sum() / scenario.layers["counts"].sum()
    assert 0.5 < ratio < 2.0, ratio


@pytest.mark.parametrize("name", list(FAST))
def test_gene_order(name, scenario, permuted, outputs):
    perm, sc_perm = permuted
    Yp = methods.run(name, sc_perm, seed=0, device="cpu", **FAST[name])
    ref = outputs[name][:, perm]
    if name in ORDER_EXACT:
        np.testing.assert_allclose(Yp, ref, rtol=1e-4, atol=1e-3)
    else:  # a network whose initial weights follow the gene order: same genes, close values
        r = np.corrcoef(np.log1p(Yp.ravel()), np.log1p(ref.ravel()))[0, 1]
        assert r > 0.97, r


@pytest.mark.parametrize("name", ["alra", "knn_smoothing", "magic", "dca", "deepimpute"])
def test_beats_no_imputation_on_dropped_entries(name, scenario, outputs):
    base = _dropped_corr(scenario, outputs["no_imputation"])
    assert base == 0.0  # every dropped entry is observed as 0: no correlation at all
    r = _dropped_corr(scenario, outputs[name])
    # measured (seed 0): alra 0.79 (it keeps some zeros), knn 0.90, magic 0.91, dca 0.88,
    # deepimpute 0.86
    assert r > 0.7, r
    assert _all_corr(scenario, outputs[name]) > _all_corr(scenario, outputs["no_imputation"])


def test_perfect_is_the_upper_bound(scenario, outputs):
    assert _dropped_corr(scenario, outputs["perfect"]) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- method-specific

def test_alra_choose_k_on_a_hand_made_spectrum():
    from scziva_bench.methods.alra import choose_k

    # three clear signal values, then noise whose gaps are 1.0 +- 0.1
    noise = 60.0 - np.cumsum(1.0 + 0.1 * np.tile([1, -1], 48))
    s = np.concatenate([[300.0, 200.0, 120.0], noise[:97]])
    assert choose_k(s, noise_start=80, n_sd=6) == 3


def test_alra_keeps_observed_nonzeros_and_zeros(scenario, outputs):
    X = scenario.layers["counts"].toarray()
    Y = outputs["alra"]
    assert np.all(Y[X > 0] > 0)  # observed non-zeros are never zeroed
    assert 0.05 < np.mean(Y == 0) < np.mean(X == 0)  # some zeros filled, some kept


def test_alra_noise_window_matches_the_r_package():
    from scziva_bench.methods.alra import choose_k

    # gaps d_1..d_99 (1-based): three signal gaps, then 1.0; d_79 = 3.0; d_80..d_99 = 1 +- 0.1.
    # The R package's noise gaps are d_79..d_99 (between singular values 80 and 100): d_79
    # widens their s.d., so only the signal gaps stand out (k = 3). A window starting one gap
    # late (d_80..) would have s.d. 0.1 and call d_79 signal (k = 79).
    d = np.ones(99)
    d[:3] = [100.0, 80.0, 50.0]
    d[78] = 3.0
    d[79:] = 1.0 + 0.1 * np.tile([1, -1], 10)
    s = 10.0 + np.concatenate([np.cumsum(d[::-1])[::-1], [0.0]])
    assert np.allclose(s[:-1] - s[1:], d)
    assert choose_k(s, noise_start=80, n_sd=6) == 3
    assert choose_k(s, noise_start=81, n_sd=6) == 79  # the old, one-late window


def test_alra_match_moments_as_the_r_package():
    from scziva_bench.methods.alra import match_moments

    A = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 5.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]])
    Ak = np.array([[0.5, 0.1, 0.3], [1.5, 0.3, 0.4], [1.0, 0.0, 0.2], [0.0, 0.5, 0.0]])
    out = match_moments(A, Ak.copy())
    # gene 0: non-zeros (0.5, 1.5, 1.0) moved to mean 2 and s.d. 1 of (1, 3, 2)
    np.testing.assert_allclose(out[:3, 0], [1.0, 3.0, 2.0])
    assert out[3, 0] == 0.0  # zeros stay zeros
    # gene 1: observed non-zeros all 2 (s.d. 0): every non-zero becomes 2, as in R
    np.testing.assert_allclose(out[[0, 1, 3], 1], [2.0, 2.0, 2.0])
    assert out[2, 1] == 0.0
    # gene 2: one observed non-zero (no s.d.): left as it is
    np.testing.assert_array_equal(out[:, 2], Ak[:, 2])


def test_alra_rank_choice_uses_the_r_packages_power_iterations(scenario):
    from sklearn.utils.extmath import randomized_svd

    from scziva_bench.methods.alra import choose_k

    d = methods.defaults("alra")
    assert d["power_iters_k"] == 2 and d["power_iters"] == 10  # R: choose_k(q=2), alra(q=10)
    X = scenario.layers["counts"].toarray().astype(np.float64)
    A = np.log1p(X / X.sum(axis=1, keepdims=True) * 1e4)
    _, s, _ = randomized_svd(A, 100, n_iter=2, random_state=0)
    k = choose_k(s, 80, 6.0)
    np.testing.assert_array_equal(methods.run("alra", scenario, seed=0),
                                  methods.run("alra", scenario, seed=0, k=k))


def test_knn_smoothing_averages_duplicated_cells():
    # 20 distinct profiles, each cell present twice: with k=2 (the authors' k counts the
    # cell itself) each cell's neighbour is its twin, so the smoothed profile (mean of the
    # cell and its twin) is the cell itself; k=1 is no smoothing
    rng = np.random.default_rng(0)
    profiles = rng.poisson(rng.gamma(1.0, 5.0, size=(20, 40)) * rng.choice([0.2, 5.0], (20, 1)))
    import anndata as ad
    X = np.repeat(profiles, 2, axis=0).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(X), layers={"counts": sp.csr_matrix(X)})
    Y = methods.run("knn_smoothing", a, k=2, d=5)
    np.testing.assert_array_equal(Y, X)
    np.testing.assert_array_equal(methods.run("knn_smoothing", a, k=1, d=5), X)


def test_knn_smoothing_k_counts_the_cell_itself():
    import anndata as ad

    # k = n: every cell becomes the mean of all cells (authors' k includes the cell)
    rng = np.random.default_rng(1)
    X = rng.poisson(5.0, size=(12, 30)).astype(np.float32)
    a = ad.AnnData(X=sp.csr_matrix(X), layers={"counts": sp.csr_matrix(X)})
    Y = methods.run("knn_smoothing", a, k=12, d=3)
    np.testing.assert_allclose(Y, np.broadcast_to(X.mean(axis=0), X.shape), rtol=1e-5)


def test_dca_zinb_matches_scipy():
    import torch
    from scziva_bench.methods.dca import zinb_nll

    y = torch.tensor([0.0, 0.0, 3.0, 10.0])
    mu = torch.tensor([2.0, 0.5, 4.0, 7.0], dtype=torch.float64)
    theta = torch.tensor([1.5, 3.0, 0.7, 20.0], dtype=torch.float64)
    pi = torch.tensor([0.3, 0.0, 0.2, 0.5], dtype=torch.float64)
    got = zinb_nll(y.double(), mu, theta, pi, eps=0.0).numpy()
    p = (theta / (theta + mu)).numpy()
    nb = stats.nbinom.pmf(y.numpy(), theta.numpy(), p)
    pin = pi.numpy()
    want = -np.log(np.where(y.numpy() == 0, pin + (1 - pin) * nb, (1 - pin) * nb))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_dca_nb_matches_scipy():
    import torch
    from scziva_bench.methods.dca import nb_nll

    y = torch.tensor([0.0, 1.0, 3.0, 10.0], dtype=torch.float64)
    mu = torch.tensor([2.0, 0.5, 4.0, 7.0], dtype=torch.float64)
    theta = torch.tensor([1.5, 3.0, 0.7, 20.0], dtype=torch.float64)
    got = nb_nll(y, mu, theta, eps=0.0).numpy()
    want = -stats.nbinom.logpmf(y.numpy(), theta.numpy(), (theta / (theta + mu)).numpy())
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_dca_defaults_are_the_packages():
    d = methods.defaults("dca")
    # dca 0.3: optimizer="RMSprop" (Keras' lr 1e-3), early_stop=15, reduce_lr=10,
    # batch_size=32, epochs=300, validation_split=0.1, clip 5; ZINB (the paper's, the
    # package's "zinb-conddisp") rather than its default "nb-conddisp" (docs/methods.md)
    assert d["likelihood"] == "zinb" and d["optimizer"] == "rmsprop" and d["lr"] == 1e-3
    assert (d["patience"], d["reduce_lr"], d["batch_size"], d["epochs"]) == (15, 10, 32, 300)
    assert d["validation"] == 0.1 and d["clip_value"] == 5.0 and d["restore_best"] is False


def test_dca_rmsprop_step_is_keras():
    import torch
    from scziva_bench.methods.dca import keras_rmsprop

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = keras_rmsprop([p])
    v = np.zeros(2)
    want = np.array([1.0, -2.0])
    for g in ([2.0, 1e-4], [-1.0, 3e-4]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        g = np.array(g)
        v = 0.9 * v + 0.1 * g ** 2
        want = want - 1e-3 * g / np.sqrt(v + 1e-7)  # TensorFlow: epsilon inside the root
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-12)


def test_dca_optimizer_and_likelihood_choices(scenario):
    kw = {"epochs": 3}
    runs = {(o, lk): methods.run("dca", scenario, seed=0, device="cpu", optimizer=o, likelihood=lk, **kw)
            for o in ("rmsprop", "adam") for lk in ("nb", "zinb")}
    for Y in runs.values():
        assert np.all(np.isfinite(Y)) and Y.min() >= 0
    assert not np.array_equal(runs["rmsprop", "nb"], runs["adam", "nb"])
    assert not np.array_equal(runs["rmsprop", "nb"], runs["rmsprop", "zinb"])
    with pytest.raises(InputError, match="optimizer must be one of rmsprop, adam"):
        methods.run("dca", scenario, optimizer="sgd", **kw)
    with pytest.raises(InputError, match="likelihood must be one of zinb, nb"):
        methods.run("dca", scenario, likelihood="poisson", **kw)


def test_early_stopping_loop_keeps_last_or_best():
    import torch
    from scziva_bench.methods._common import train_with_early_stopping

    # validation losses 5, 3, 4, 4, 4, ...: best at epoch 2, stops after patience 2 more
    model = torch.nn.Linear(1, 1, bias=False)
    for restore, want_w in ((True, 2.0), (False, 4.0)):
        with torch.no_grad():
            model.weight.fill_(0.0)
        losses = iter([5.0, 3.0, 4.0, 4.0, 4.0, 4.0])

        def epoch():
            with torch.no_grad():
                model.weight.add_(1.0)  # weight = number of epochs trained

        n = train_with_early_stopping(model, epoch, lambda: next(losses), epochs=10, patience=2,
                                      restore_best=restore)
        assert n == 4
        assert float(model.weight.detach()) == want_w


def test_deepimpute_replaces_only_zeros_of_target_genes(scenario, outputs):
    X = scenario.layers["counts"].toarray()
    Y = outputs["deepimpute"]
    assert np.array_equal(Y[X > 0], X[X > 0])  # observed counts are kept
    # genes without variance are never targets
    flat = X.var(axis=0) == 0
    assert flat.any()
    assert np.array_equal(Y[:, flat], X[:, flat])
    assert np.mean(Y[X == 0] > 0) > 0.5


def test_deepimpute_target_genes_as_the_package():
    from scziva_bench.methods.deepimpute import choose_targets

    # 12 genes with var / (1 + mean) set by hand: 0 (constant), then increasing
    rng = np.random.default_rng(0)
    X = np.zeros((40, 12))
    for j in range(1, 12):
        X[::2, j] = j  # half the cells j, half 0: var / (1 + mean) grows with j
    vmr = X.var(axis=0, ddof=1) / (1 + X.mean(axis=0))
    assert vmr[0] == 0 and np.all(np.diff(vmr[1:]) > 0)
    # min_vmr picks 5 genes -> rounded up to 2 sub-networks of 4 = the top 8 genes
    min_vmr = (vmr[6] + vmr[7]) / 2
    t, size, ranked = choose_targets(X, 4, min_vmr, None, rng)
    assert size == 4 and list(ranked) == list(range(11, 0, -1))
    assert list(t) == list(range(11, 3, -1))
    # fewer ranked genes than needed: filled with ranked genes drawn at random
    t, size, _ = choose_targets(X, 8, 0.0, None, rng)
    assert size == 8 and len(t) == 16 and set(t[:11]) == set(range(1, 12)) and set(t) <= set(range(1, 12))
    # a sub-network as large as the ranked genes is halved (every target needs predictors)
    t, size, _ = choose_targets(X, 16, 0.0, None, rng)
    assert size == 8


def test_deepimpute_normalization_options(scenario):
    import anndata as ad

    # the package's "libSizeLog" option: runs, keeps observed counts, differs from "log"
    X = scenario.layers["counts"].toarray()
    kw = {"epochs": 2, "normalization": "libsize_log"}
    a = ad.AnnData(X=sp.csr_matrix(X), layers={"counts": sp.csr_matrix(X)})
    Y = methods.run("deepimpute", a, seed=0, device="cpu", **kw)
    assert np.all(np.isfinite(Y)) and np.array_equal(Y[X > 0], X[X > 0])
    assert not np.array_equal(Y, methods.run("deepimpute", a, seed=0, device="cpu", epochs=2))
    with pytest.raises(InputError, match="normalization must be one of log, libsize_log"):
        methods.run("deepimpute", a, normalization="cpm")


# ----------------------------------------------------------------------------- scVI, scZiva

def test_scvi(scenario):
    pytest.importorskip("scvi")
    Y = methods.run("scvi", scenario, seed=0, device="cpu", max_epochs=15)
    assert Y.shape == scenario.shape and Y.dtype == np.float32
    assert np.all(np.isfinite(Y)) and Y.min() >= 0
    # normalised expression (sums to 1) times the observed library size
    lib = np.asarray(scenario.layers["counts"].sum(axis=1)).ravel()
    np.testing.assert_allclose(Y.sum(axis=1), lib, rtol=1e-3)
    assert np.array_equal(Y, methods.run("scvi", scenario, seed=0, device="cpu", max_epochs=15))
    # only a few epochs here: the check is that imputed values carry signal at all
    assert _dropped_corr(scenario, Y) > 0.0


def _scziva_or_skip():
    try:
        from scziva import ZIVAimpute  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        pytest.skip(f"scziva.ZIVAimpute is not importable yet ({exc})")


@pytest.mark.parametrize("name,kw", [("scziva", {"num_epochs": 30}),
                                     ("scziva_authors", {"num_epochs": 30})])
def test_scziva(name, kw, scenario):
    _scziva_or_skip()
    Y = methods.run(name, scenario, seed=0, device="cpu", **kw)
    X = scenario.layers["counts"].toarray()
    assert Y.shape == X.shape and Y.dtype == np.float32
    assert np.all(np.isfinite(Y)) and Y.min() >= 0
    np.testing.assert_allclose(Y[X > 0], X[X > 0], rtol=1e-5)  # observed non-zeros kept
    assert np.array_equal(Y, methods.run(name, scenario, seed=0, device="cpu", **kw))


# ----------------------------------------------------------------------------- edge cases, real data

@pytest.mark.parametrize("name,kw", [("alra", {}), ("knn_smoothing", {}), ("magic", {}),
                                     ("dca", {"epochs": 3}), ("deepimpute", {"epochs": 3})])
def test_empty_cell_and_gene_do_not_break(name, kw):
    import anndata as ad

    data = simulate.splat(n_cells=60, n_genes=40, n_groups=2, seed=5)
    X = data.layers["counts"].toarray()
    X[7] = 0.0      # a cell without counts
    X[:, 3] = 0.0   # a gene without counts
    a = ad.AnnData(X=sp.csr_matrix(X), layers={"counts": sp.csr_matrix(X)})
    Y = methods.run(name, a, seed=0, device="cpu", **kw)
    assert Y.shape == X.shape and np.all(np.isfinite(Y)) and Y.min() >= 0


@pytest.mark.parametrize("name", ["alra", "knn_smoothing"])
def test_real_dataset(name, shared_data):
    # 60 cells of the CellBench 10x mixture: fewer cells than ALRA's 100 singular values
    import anndata as ad

    data = ad.read_h5ad(shared_data / "cellbench_10x_sample.h5ad")
    data.layers["counts"] = data.X.copy()
    sc_ = scenarios.make(data, "dropout", rate=0.3, seed=0)
    Y = methods.run(name, sc_, seed=0)
    assert Y.shape == sc_.shape and np.all(np.isfinite(Y)) and Y.min() >= 0
    assert _dropped_corr(sc_, Y) > 0.5  # measured: alra 0.69, knn_smoothing 0.72
