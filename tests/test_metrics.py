"""Tests for scziva_bench.evaluation.metrics: known answers on hand-made matrices, controls, files."""

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench import methods
from scziva_bench.evaluation import metrics
from scziva_bench.data import scenarios
from scziva_bench.data import simulate

# ----------------------------------------------------------------------------- hand-made 3 x 3

T3 = np.array([[1, 0, 3], [2, 5, 0], [0, 4, 6]], dtype=np.float32)
I3 = np.array([[2, 1, 3], [2, 3, 0], [1, 4, 4]], dtype=np.float32)
M3 = np.eye(3, dtype=bool)  # the diagonal (truth 1, 5, 6) was dropped


def _scenario3():
    counts = T3 * ~M3
    a = ad.AnnData(sp.csr_matrix(counts), layers={"counts": sp.csr_matrix(counts),
                                                  "truth": sp.csr_matrix(T3),
                                                  "mask": sp.csr_matrix(M3)})
    a.uns["scenario"] = {"id": "mask33_s0", "kind": "mask", "rate": 1 / 3, "seed": 0}
    return a


def _values(df):
    return df.set_index("metric")["value"].to_dict()


def test_entry_metrics_by_hand():
    v = _values(metrics.evaluate(_scenario3(), I3, "d", "mask33_s0", "m", which="entries"))
    # dropped entries: imputed (2, 3, 4) vs truth (1, 5, 6); errors 1, -2, -2
    assert v["pearson_dropped"] == pytest.approx(5 / math.sqrt(2 * 14))
    assert v["rmse_dropped"] == pytest.approx(math.sqrt(9 / 3))
    assert v["mae_dropped"] == pytest.approx(5 / 3)
    assert v["median_l1_dropped"] == pytest.approx(2.0)
    assert v["log_mse_dropped"] == pytest.approx(((math.log(3) - math.log(2)) ** 2 + (math.log(4) - math.log(6)) ** 2
                                                  + (math.log(5) - math.log(7)) ** 2) / 3)
    # all 9 entries: errors 1,1,0, 0,-2,0, 1,0,-2
    assert v["rmse_all"] == pytest.approx(math.sqrt(11 / 9))
    assert v["mae_all"] == pytest.approx(7 / 9)
    assert v["median_l1_all"] == pytest.approx(1.0)
    x, y = I3.ravel().astype(float), T3.ravel().astype(float)
    sxy = ((x - x.mean()) * (y - y.mean())).sum()
    assert v["pearson_all"] == pytest.approx(sxy / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()))
    # 'all' log_mse: only the 5 differing entries contribute
    lm = ((math.log(3) - math.log(2)) ** 2 + math.log(2) ** 2 + (math.log(4) - math.log(6)) ** 2
          + math.log(2) ** 2 + (math.log(5) - math.log(7)) ** 2) / 9
    assert v["log_mse_all"] == pytest.approx(lm)


def test_entry_controls_by_hand():
    s = _scenario3()
    perfect = _values(metrics.evaluate(s, methods.run("perfect", s), "d", "x", "perfect", which="entries"))
    for suffix in ("dropped", "all"):
        assert perfect[f"pearson_{suffix}"] == pytest.approx(1.0)
        for m in ("rmse", "mae", "log_mse", "median_l1"):
            assert perfect[f"{m}_{suffix}"] == 0.0
    noimp = _values(metrics.evaluate(s, methods.run("no_imputation", s), "d", "x", "none", which="entries"))
    # zeros where the truth was 1, 5, 6: a constant prediction correlates 0 (not NaN)
    assert noimp["pearson_dropped"] == 0.0
    assert noimp["rmse_dropped"] == pytest.approx(math.sqrt((1 + 25 + 36) / 3))
    assert noimp["mae_dropped"] == pytest.approx(4.0)
    assert noimp["median_l1_dropped"] == pytest.approx(5.0)
    assert noimp["log_mse_dropped"] == pytest.approx((math.log(2) ** 2 + math.log(6) ** 2 + math.log(7) ** 2) / 3)
    assert noimp["mae_all"] == pytest.approx(12 / 9)


def test_mcv_by_hand():
    test = np.array([[1, 0], [2, 3]], dtype=np.float32)
    train = np.array([[9, 0], [9, 18]], dtype=np.float32)
    a = ad.AnnData(sp.csr_matrix(train), layers={"counts": sp.csr_matrix(train), "truth": sp.csr_matrix(test)})
    a.uns["scenario"] = {"id": "mcv_s0", "kind": "mcv", "rate": float("nan"), "seed": 0, "train_fraction": 0.9}
    v = _values(metrics.evaluate(a, train, "d", "mcv_s0", "noimp", which="mcv"))
    # prediction = train * 0.1 / 0.9 = [[1, 0], [1, 2]]; Poisson NLL of the TEST counts
    nll = [1 - 0 + 0, 1e-6, 1 + math.lgamma(3), 2 - 3 * math.log(2) + math.lgamma(4)]
    assert v["mcv_poisson"] == pytest.approx(sum(nll) / 4, rel=1e-9)
    # log-normalised rows: row 0 identical; row 1 (1/3, 2/3) vs (0.4, 0.6) of 1e4
    e = [(math.log1p(1e4 / 3) - math.log1p(4000)) ** 2, (math.log1p(2e4 / 3) - math.log1p(6000)) ** 2]
    assert v["mcv_mse"] == pytest.approx(sum(e) / 4, rel=1e-6)
    # swapping prediction and target would give a different number
    swapped = np.mean([0 - 1 * math.log(1), 0.0, 2 - 1 * math.log(2), 3 - 2 * math.log(3)])
    assert v["mcv_poisson"] != pytest.approx(swapped)
    # no entry metrics on MCV
    allv = _values(metrics.evaluate(a, train, "d", "mcv_s0", "noimp", which=["entries", "mcv"]))
    assert math.isnan(allv["rmse_all"]) and not math.isnan(allv["mcv_mse"])


def test_mcv_perfect_is_best():
    ds = simulate.splat(n_cells=120, n_genes=200, n_groups=2, seed=1)
    s = scenarios.make(ds, "mcv", seed=1)
    p = _values(metrics.evaluate(s, methods.run("perfect", s), "d", "mcv_s1", "perfect", which="mcv"))
    n = _values(metrics.evaluate(s, methods.run("no_imputation", s), "d", "mcv_s1", "noimp", which="mcv"))
    assert p["mcv_mse"] == pytest.approx(0.0, abs=1e-10)
    assert p["mcv_poisson"] < n["mcv_poisson"]
    # the perfect Poisson loss is the saturated one: sum(y - y log y + log y!) / n
    Y = s.layers["truth"].toarray().astype(float)
    from scipy.special import gammaln, xlogy
    sat = np.mean(np.where(Y > 0, Y, 1e-6) - xlogy(Y, np.where(Y > 0, Y, 1e-6)) + gammaln(Y + 1))
    assert p["mcv_poisson"] == pytest.approx(sat, rel=1e-5)


# ----------------------------------------------------------------------------- simulation-based

@pytest.fixture(scope="module")
def sim_scenario():
    ds = simulate.splat(n_cells=240, n_genes=400, n_groups=3, de_prob=0.2, de_loc=0.6, seed=3)
    return scenarios.make(ds, "dropout", rate=0.5, seed=1)


@pytest.fixture(scope="module")
def sim_results(sim_scenario):
    s = sim_scenario
    rng = np.random.default_rng(0)
    noise = rng.poisson(5.0, size=s.shape).astype(np.float32)
    out = {}
    for name, imp in [("perfect", methods.run("perfect", s)), ("no_imputation", methods.run("no_imputation", s)),
                      ("noise", noise)]:
        out[name] = _values(metrics.evaluate(s, imp, "sim", "dropout50_s1", name, seed=0))
    return out


def test_all_metrics_present(sim_results):
    for v in sim_results.values():
        assert list(v) == metrics.METRICS


def test_perfect_scores_best(sim_results):
    p, n, z = sim_results["perfect"], sim_results["no_imputation"], sim_results["noise"]
    for s in ("dropped", "all"):
        assert p[f"pearson_{s}"] == pytest.approx(1.0)
        for m in ("rmse", "mae", "log_mse", "median_l1"):
            assert p[f"{m}_{s}"] == 0.0
    # gene-gene structure and DE overlap are scored against the true means in
    # simulations: the pre-dropout counts (still carrying Poisson noise) come close
    assert 0.9 < p["genecorr_agreement"] < 1.0 and p["de_jaccard_top100"] > 0.5
    assert p["silhouette_gap"] == 0.0 and p["de_null_fpr"] < 0.02
    for m in ("ari_kmeans", "nmi_kmeans", "ari_leiden", "nmi_leiden", "silhouette", "de_auroc", "de_auprc",
              "genecorr_agreement", "de_jaccard_top100"):
        assert p[m] >= n[m] - 1e-9 and p[m] > z[m], m
    assert p["ari_kmeans"] > 0.9 and p["de_auroc"] > 0.75
    # random noise carries no structure
    assert abs(z["ari_kmeans"]) < 0.1 and abs(z["de_auroc"] - 0.5) < 0.1
    assert math.isnan(p["mcv_mse"])  # not an MCV scenario


def test_no_imputation_matches_hand_formula(sim_scenario, sim_results):
    T = sim_scenario.layers["truth"].toarray().astype(float)
    M = sim_scenario.layers["mask"].toarray().astype(bool)
    C = sim_scenario.layers["counts"].toarray().astype(float)
    n = sim_results["no_imputation"]
    t = T[M]
    assert n["rmse_dropped"] == pytest.approx(np.sqrt(np.mean(t ** 2)))
    assert n["mae_dropped"] == pytest.approx(t.mean())
    assert n["median_l1_dropped"] == pytest.approx(np.median(t))
    assert n["log_mse_dropped"] == pytest.approx(np.mean(np.log1p(t) ** 2))
    assert n["pearson_dropped"] == 0.0
    assert n["pearson_all"] == pytest.approx(np.corrcoef(C.ravel(), T.ravel())[0, 1])
    assert n["rmse_all"] == pytest.approx(np.sqrt(np.mean((C - T) ** 2)))


def test_null_de_detects_invented_de(sim_scenario, sim_results):
    """The truth calls almost no null gene DE; replacing each cell by its group mean (zero
    within-group variance) makes nearly every null gene 'DE'."""
    assert 0 <= sim_results["perfect"]["de_null_fpr"] < 0.02
    s = sim_scenario
    T = methods.run("perfect", s)
    g = s.obs["cell_type"].cat.codes.to_numpy()
    smooth = np.vstack([T[g == k].mean(axis=0) for k in g])
    v = _values(metrics.evaluate(s, smooth, "d", "x", "smooth", which=["de_null_fpr"]))
    assert v["de_null_fpr"] > 0.5


def test_null_de_by_hand():
    """2 groups x 20 cells, 5 genes; gene 0 is truly DE, genes 1-4 are not. The 'imputed'
    matrix separates the groups perfectly on genes 1 and 2 as well (in opposite
    directions, so the null genes' totals stay equal): 2 of 4 null genes called."""
    rng = np.random.default_rng(0)
    n = 40
    grp = np.repeat([0, 1], n // 2)
    X = np.empty((n, 5), dtype=np.float32)
    X[:, 0] = np.where(grp == 0, 50, 5) + rng.integers(0, 3, n)
    X[:, 1] = np.where(grp == 0, 40, 10)  # invented DE, up in A
    X[:, 2] = np.where(grp == 0, 10, 40)  # invented DE, down in A
    X[:, 3] = 20 + rng.permutation(n) % 7
    X[:, 4] = 20 + rng.permutation(n) % 5
    a = ad.AnnData(sp.csr_matrix(X), layers={"counts": sp.csr_matrix(X), "truth": sp.csr_matrix(X + 1)})
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obs["cell_type"] = pd.Categorical(np.where(grp == 0, "A", "B"))
    a.uns["group_names"] = ["A", "B"]
    a.varm["de_factor"] = np.array([[2.0, 1.0]] + [[1.0, 1.0]] * 4)
    a.uns["scenario"] = {"id": "none", "kind": "none", "rate": float("nan"), "seed": 0}
    v = _values(metrics.evaluate(a, X, "d", "none", "m", which=["de_null_fpr"]))
    assert v["de_null_fpr"] == pytest.approx(2 / 4)


def test_genecorr_inflation_detects_oversmoothing(sim_scenario):
    """Replacing each cell by its group mean inflates gene-gene correlations."""
    s = sim_scenario
    T = methods.run("perfect", s)
    g = s.obs["cell_type"].cat.codes.to_numpy()
    smooth = np.vstack([T[g == k].mean(axis=0) for k in g]) * 0.8 + 0.2 * T
    v = _values(metrics.evaluate(s, smooth, "d", "x", "smooth", which="genecorr"))
    assert v["genecorr_inflation"] > 0.05
    assert v["genecorr_agreement"] < 1.0


def test_no_labels_gives_nan(sim_scenario):
    s = sim_scenario.copy()
    del s.obs["cell_type"]
    v = _values(metrics.evaluate(s, methods.run("perfect", s), "d", "x", "p", which=["clustering", "de"]))
    df = metrics.evaluate(s, methods.run("perfect", s), "d", "x", "p", which=["clustering", "de"])
    assert (df["status"] == "not_applicable").all()
    for m in metrics.GROUPS["clustering"] + metrics.GROUPS["de"]:
        assert math.isnan(v[m])


def test_deterministic(sim_scenario):
    imp = methods.run("no_imputation", sim_scenario)
    a = metrics.evaluate(sim_scenario, imp, "d", "x", "m", which=["clustering", "de"], seed=4)
    b = metrics.evaluate(sim_scenario, imp, "d", "x", "m", which=["clustering", "de"], seed=4)
    pd.testing.assert_frame_equal(a, b)


# ----------------------------------------------------------------------------- input checks and files

def test_bad_imputed():
    s = _scenario3()
    with pytest.raises(InputError, match="shape"):
        metrics.evaluate(s, np.zeros((3, 4)), "d", "x", "m")
    bad = I3.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        metrics.evaluate(s, bad, "d", "x", "m")
    with pytest.raises(InputError, match="unknown metric"):
        metrics.evaluate(s, I3, "d", "x", "m", which="accuracy")


def test_which_single_metric_and_columns():
    df = metrics.evaluate(_scenario3(), I3, "d", "s", "m", which=["rmse_dropped"])
    assert list(df.columns) == ["dataset", "scenario", "method", "metric", "value", "status"]
    assert df["metric"].tolist() == ["rmse_dropped"] and df["status"].tolist() == ["ok"]
    assert df["value"].iloc[0] == pytest.approx(math.sqrt(3))


def test_tsv_roundtrip_and_aggregate(tmp_path):
    s = _scenario3()
    a = metrics.evaluate(s, I3, "d", "s", "m1", which="entries")
    b = metrics.failed_rows("d", "s", "m2", which="entries")
    assert (b["status"] == "failed").all() and b["value"].isna().all()
    metrics.write_tsv_atomic(a, tmp_path / "m" / "m1.tsv")
    metrics.write_tsv_atomic(b, tmp_path / "m" / "m2.tsv")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["m1.tsv", "m2.tsv"]  # no temp files left
    agg = metrics.aggregate([tmp_path / "m" / "m1.tsv", tmp_path / "m" / "m2.tsv"])
    assert len(agg) == len(a) + len(b)
    np.testing.assert_allclose(agg["value"].to_numpy()[: len(a)], a["value"].to_numpy())
    assert agg["status"].tolist() == a["status"].tolist() + ["failed"] * len(b)
    assert (a["status"] == "ok").sum() >= 10  # zeros_gene_pearson: too few zeros per gene here
    with pytest.raises(InputError):
        metrics.aggregate([tmp_path / "missing.tsv"])
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match="lacks"):
        metrics.aggregate([tmp_path / "bad.tsv"])


def test_speed_600x2000():
    import time
    ds = simulate.splat(n_cells=600, n_genes=2000, seed=0)
    s = scenarios.make(ds, "dropout", rate=0.5, seed=0)
    metrics.evaluate(s[:60, :50].copy(), methods.run("no_imputation", s)[:60, :50], "d", "x", "warm")  # imports, JIT
    t = time.process_time()  # CPU time: robust to a busy shared machine
    metrics.evaluate(s, methods.run("no_imputation", s), "d", "x", "m")
    assert time.process_time() - t < 10  # ~2.5 s measured


def test_real_dataset_controls(shared_data):
    path = shared_data / "zeisel_subset.h5ad"
    if not path.exists():
        pytest.skip("zeisel_subset.h5ad missing")
    real = ad.read_h5ad(path)
    real = real[::3, :1000].copy()  # 167 cells of the 3 classes
    assert real.obs["cell_type"].nunique() >= 2
    s = scenarios.make(real, "mask", rate=0.1, seed=0)
    p = _values(metrics.evaluate(s, methods.run("perfect", s), "zeisel", "mask10_s0", "perfect", which=["entries", "de"]))
    assert p["pearson_dropped"] == pytest.approx(1.0) and p["rmse_dropped"] == 0
    assert p["de_jaccard_top100"] == 1.0
    assert math.isnan(p["de_auroc"])  # no simulated truth on real data


def test_entry_metrics_blockwise_equals_direct():
    """Large inputs are accumulated block by block; the result equals the direct formulas."""
    rng = np.random.default_rng(1)
    y = rng.poisson(3.0, size=(1500, 1600)).astype(np.float32)  # 2.4 M entries: several blocks
    x = (y + rng.normal(0, 1, size=y.shape)).astype(np.float32)
    v = metrics.entry_metrics(x, y)
    xd, yd = x.astype(float).ravel(), y.astype(float).ravel()
    assert v["pearson"] == pytest.approx(np.corrcoef(xd, yd)[0, 1], rel=1e-9)
    assert v["rmse"] == pytest.approx(np.sqrt(np.mean((xd - yd) ** 2)), rel=1e-9)
    assert v["mae"] == pytest.approx(np.mean(np.abs(xd - yd)), rel=1e-9)
    assert v["log_mse"] == pytest.approx(np.mean((np.log1p(np.clip(xd, 0, None)) - np.log1p(yd)) ** 2), rel=1e-9)
    assert v["median_l1"] == pytest.approx(np.median(np.abs(xd - yd)), rel=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scanpy divides 0/0 on the all-zero gene
def test_wilcoxon_matches_scanpy():
    """The vectorised one-vs-rest Wilcoxon equals scanpy's (tie-corrected) test."""
    import scanpy as sc

    rng = np.random.default_rng(2)
    n, g = 90, 40
    X = rng.poisson(rng.gamma(0.5, 2, size=(1, g)), size=(n, g)).astype(np.float32)
    X[:, 0] = 0  # an all-zero gene (zero variance)
    codes = rng.integers(0, 3, size=n)
    X[codes == 1, 5:10] += 3  # DE genes of group 1
    L = metrics.lognorm(X)
    z, padj = metrics._wilcoxon(L, codes, 3)
    A = ad.AnnData(L, obs=pd.DataFrame({"g": pd.Categorical(codes.astype(str))}, index=[f"c{i}" for i in range(n)]))
    A.var_names = [f"g{j}" for j in range(g)]
    sc.tl.rank_genes_groups(A, "g", method="wilcoxon", tie_correct=True, n_genes=g, use_raw=False)
    for k in range(3):
        df = sc.get.rank_genes_groups_df(A, group=str(k)).set_index("names").loc[A.var_names]
        np.testing.assert_allclose(z[k], df["scores"].to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(padj[k], df["pvals_adj"].to_numpy(), rtol=1e-5, atol=1e-8)
    assert np.median(z[1, 5:10]) > 3 and np.abs(np.median(z[1, 10:])) < 1.5
    # a two-group split (reference mode in scanpy) is the same call with two codes
    half = (np.arange(n) % 2).astype(int)
    z2, _ = metrics._wilcoxon(L, half, 2)
    B = ad.AnnData(L, obs=pd.DataFrame({"h": pd.Categorical(half.astype(str))}, index=[f"c{i}" for i in range(n)]))
    B.var_names = [f"g{j}" for j in range(g)]
    sc.tl.rank_genes_groups(B, "h", groups=["0"], reference="1", method="wilcoxon", tie_correct=True,
                            n_genes=g, use_raw=False)
    df = sc.get.rank_genes_groups_df(B, group="0")
    ref = pd.Series(df["scores"].to_numpy(), index=df["names"].astype(str)).reindex(B.var_names)
    np.testing.assert_allclose(z2[0], ref.to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_constant_output_scores_worst(sim_scenario, fill):
    """A collapsed (constant) output: no clusters, no DE ranking, no gene-gene structure."""
    imp = np.full(sim_scenario.shape, fill, dtype=np.float32)
    v = _values(metrics.evaluate(sim_scenario, imp, "d", "x", "const", which=["clustering", "de", "genecorr"]))
    for m in ("ari_kmeans", "nmi_kmeans", "ari_leiden", "nmi_leiden", "de_jaccard_top100", "genecorr_agreement"):
        assert v[m] == pytest.approx(0.0, abs=1e-12), m
    # all cells at one point: silhouette 0 (scikit-learn's value for zero distances)
    assert v["de_auroc"] == pytest.approx(0.5) and v["silhouette"] == 0.0
    assert v["silhouette_gap"] > 0.3
    # a constant output calls nothing DE: null-DE is a specificity score, read with de_auroc
    assert v["de_null_fpr"] == 0.0


# ----------------------------------------------------------------------------- metric facts

def test_metric_specs_are_the_one_source():
    from scziva_bench.catalog import metrics as ms
    assert metrics.METRICS == ms.names()
    assert set(metrics.METRICS) | set(ms.RESOURCE_METRICS) == set(ms.SPECS)
    for g, names in metrics.GROUPS.items():
        assert all(ms.SPECS[m].group == g for m in names)
    assert ms.better("rmse_dropped", 1.0, 2.0) and not ms.better("rmse_dropped", 2.0, 1.0)
    assert ms.better("pearson_dropped", 0.9, 0.1)
    assert ms.better("genecorr_inflation", -0.01, 0.05) and ms.better("genecorr_inflation", 0.01, -0.05)
    assert not ms.better("pearson_dropped", float("nan"), -1.0)  # NaN is never better
    assert sorted([0.2, float("nan"), 0.9], key=ms.sort_key("ari_kmeans"))[:2] == [0.9, 0.2]
    with pytest.raises(KeyError):
        ms.better("no_such_metric", 1, 2)


def test_metric_specs_import_needs_only_the_standard_library():
    import subprocess
    import sys
    code = ("import sys; import scziva_bench.catalog.metrics; "
            "bad = [m for m in ('numpy', 'pandas', 'scipy', 'torch', 'anndata') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- trust: known-bad outputs

def _group_mean(s, X):
    g = s.obs["cell_type"].cat.codes.to_numpy()
    means = np.vstack([X[g == k].mean(axis=0) for k in range(g.max() + 1)])
    return means[g].astype(np.float32)


@pytest.fixture(scope="module")
def known_outputs(sim_scenario):
    """Known-good and known-bad outputs on a dropout scenario and an MCV scenario of the
    same simulation, scored with every metric."""
    s = sim_scenario
    ds = simulate.splat(n_cells=240, n_genes=400, n_groups=3, de_prob=0.2, de_loc=0.6, seed=3)
    m = scenarios.make(ds, "mcv", seed=1)
    rng = np.random.default_rng(0)
    out = {}
    for sname, scen in (("dropout", s), ("mcv", m)):
        outs = {"perfect": methods.run("perfect", scen), "true_mean": np.asarray(scen.layers["true_mean"]),
                "no_imputation": methods.run("no_imputation", scen),
                "constant": np.ones(scen.shape, dtype=np.float32),
                "noise": rng.poisson(5.0, size=scen.shape).astype(np.float32),
                "group_mean": _group_mean(scen, methods.run("perfect", scen))}
        for name, X in outs.items():
            out[sname, name] = metrics.evaluate(scen, X, "d", sname, name, seed=0)
    return out


def test_ok_rows_are_never_nan(known_outputs):
    for df in known_outputs.values():
        ok = df["status"] == "ok"
        assert np.isfinite(df.loc[ok, "value"]).all(), df[ok & df["value"].isna()]
        assert df.loc[~ok, "value"].isna().all()
        assert set(df["status"]) <= {"ok", "not_applicable"}


def test_statuses_follow_the_needs(known_outputs):
    from scziva_bench.catalog import metrics as ms

    d = known_outputs["dropout", "no_imputation"].set_index("metric")["status"]
    m = known_outputs["mcv", "no_imputation"].set_index("metric")["status"]
    for name, spec in ms.SPECS.items():
        if spec.group == "resources":
            continue
        # no path simulation here: no true order of the cells
        assert d[name] == ("not_applicable" if {"mcv", "pseudotime"} & set(spec.needs) else "ok"), name
        # MCV: the truth is the test molecules, not a count-scale truth
        assert m[name] == ("not_applicable" if {"truth", "mask", "pseudotime"} & set(spec.needs)
                           else "ok"), name


# which known-good output each ranked metric must score best, and which known-bad ones it
# must score strictly worse
_GOOD = {"accuracy_denoising": "true_mean"}
_BAD = ("no_imputation", "constant", "noise", "group_mean")


@pytest.mark.parametrize("metric", __import__("scziva_bench.catalog.metrics", fromlist=["x"]).ranked())
def test_every_ranked_metric_can_fail(known_outputs, metric):
    from scziva_bench.catalog import metrics as ms
    spec = ms.SPECS[metric]
    if spec.group == "resources":
        pytest.skip("resource rows come from the workflow")
    if "pseudotime" in spec.needs:
        pytest.skip("needs a path simulation: tests/test_validation.py checks it")
    sname = "mcv" if "mcv" in spec.needs else "dropout"
    val = {name: known_outputs[sname, name].set_index("metric").loc[metric, "value"]
           for name in ("perfect", "true_mean") + _BAD}
    good = _GOOD.get(spec.family, "perfect")
    # it varies, and the known-good output is not beaten by any known-bad one (label
    # metrics: a group-mean output recovers the labels perfectly too, which is allowed)
    assert max(ms.oriented(metric, v) for v in val.values()) > min(ms.oriented(metric, v) for v in val.values())
    for bad in _BAD:
        assert not ms.better(metric, val[bad], val[good]), (bad, val)
    # and at least one known-bad output scores strictly worse
    assert any(ms.better(metric, val[good], val[bad]) for bad in _BAD), val
    if spec.family in ("accuracy_imputation", "mcv") or metric == "silhouette_gap":
        assert ms.better(metric, val[good], val["no_imputation"]), val


def test_denoising_truth_is_the_true_mean(known_outputs):
    v = {k: known_outputs["dropout", k].set_index("metric")["value"] for k in ("true_mean", "perfect", "constant")}
    assert v["true_mean"]["denoise_log_mse"] == pytest.approx(0.0, abs=1e-12)
    assert v["true_mean"]["denoise_pearson"] == pytest.approx(1.0)
    # the pre-dropout counts still carry the Poisson noise: a worse denoiser than the means
    assert v["perfect"]["denoise_log_mse"] > 0.005 and v["perfect"]["denoise_pearson"] < 0.99
    assert v["constant"]["denoise_pearson"] == 0.0
    assert v["constant"]["denoise_log_mse"] > v["perfect"]["denoise_log_mse"]


def test_denoise_by_hand():
    L = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    M = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    v = metrics.denoise_metrics(L, M)
    assert v["denoise_log_mse"] == pytest.approx(2 / 6)
    # gene 0 identical (r = 1); gene 1: (1, 3, 2) vs (1, 2, 3): r = 0.5
    assert v["denoise_pearson"] == pytest.approx((1 + 0.5) / 2)


def test_none_without_truth_scores_no_truth_metric():
    """'none' on data without its own truth: truth = a copy of the counts, so returning the
    input (or the truth) must not score: every truth-based metric is not applicable;
    clustering against the labels (which do not come from the counts) still applies."""
    from scziva_bench.catalog import metrics as ms
    ds = simulate.splat(n_cells=120, n_genes=200, n_groups=2, de_prob=0.3, de_loc=0.8, seed=2,
                        true_mean=False)
    del ds.layers["truth"]
    for k in ("de_factor",):
        del ds.varm[k]
    s = scenarios.make(ds, "none")
    for out in (methods.run("no_imputation", s), methods.run("perfect", s)):
        df = metrics.evaluate(s, out, "real", "none", "m").set_index("metric")
        for name in metrics.METRICS:
            needs = ms.SPECS[name].needs
            expect = "ok" if set(needs) <= {"labels"} else "not_applicable"
            assert df.loc[name, "status"] == expect, name
        assert df.loc["ari_kmeans", "value"] > 0.5


def test_silhouette_gap_is_the_distance_to_the_truths(sim_scenario):
    s = sim_scenario
    T, C = methods.run("perfect", s), methods.run("no_imputation", s)
    v = _values(metrics.evaluate(s, C, "d", "x", "m", which="clustering"))
    vt = _values(metrics.evaluate(s, T, "d", "x", "p", which="clustering"))
    assert vt["silhouette_gap"] == 0.0
    assert v["silhouette_gap"] == pytest.approx(abs(v["silhouette"] - vt["silhouette"]))
    # over-smoothing (group means) has a higher raw silhouette than the truth, and a gap
    sm = _values(metrics.evaluate(s, _group_mean(s, T), "d", "x", "sm", which="clustering"))
    assert sm["silhouette"] > vt["silhouette"] + 0.2
    assert sm["silhouette_gap"] == pytest.approx(sm["silhouette"] - vt["silhouette"])


# ------------------------------------------------------------------ Open Problems' metrics

def _op_inputs(scen, Y):
    return metrics.Inputs(scen, np.asarray(Y, dtype=np.float32), None, None, None, None, 0)


def test_open_problems_metrics_by_hand():
    """A 2 x 2 MCV split worked by hand: train [[1, 0], [3, 1]], test [[1, 0], [0, 1]]."""
    from scziva_bench.evaluation import openproblems as op

    train = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 1.0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    scen = ad.AnnData(X=train, layers={"counts": train, "truth": test})
    Y = np.array([[2.0, 2.0], [2.0, 2.0]])
    # rescaled by sum(test) / sum(train) = 2 / 5: every prediction 0.8
    pred = 0.8
    want = np.mean([pred - 1 * math.log(pred + 1e-6), pred, pred,
                    pred - 1 * math.log(pred + 1e-6)])
    assert op.poisson(_op_inputs(scen, Y)) == pytest.approx(want)
    swapped = np.mean([1 - pred * math.log(1 + 1e-6), -pred * math.log(1e-6),
                       -pred * math.log(1e-6), 1 - pred * math.log(1 + 1e-6)])
    assert op.poisson_swapped(_op_inputs(scen, Y)) == pytest.approx(swapped)
    # log-CP10k: each cell of Y is half / half -> log1p(5000); the test's cells one-hot
    a, b = math.log1p(5000.0), math.log1p(10000.0)
    assert op.mse(_op_inputs(scen, Y)) == pytest.approx(np.mean([(b - a) ** 2, a ** 2,
                                                                 a ** 2, (b - a) ** 2]))


def test_open_problems_poisson_order_matters():
    """The numbers docs/metrics.md quotes: on an MCV split of a UMI-like simulation,
    Batson's order puts the oracle (the true means) ahead of an all-zero output; Open
    Problems' swapped call ranks the all-zero output ahead of the oracle."""
    from scziva_bench.evaluation import openproblems as op

    ds = simulate.splat(**simulate.regime("umi", n_cells=100, n_genes=200, n_groups=3, seed=1))
    s = scenarios.make(ds, "mcv_s1")
    oracle = _op_inputs(s, methods.run("oracle", s))
    zeros = _op_inputs(s, np.zeros(s.shape))
    right = (op.poisson(oracle), op.poisson(zeros))
    swapped = (op.poisson_swapped(oracle), op.poisson_swapped(zeros))
    assert right[0] < right[1] and swapped[1] < swapped[0]
    assert right == pytest.approx((0.261, 2.439), abs=5e-4)  # docs/metrics.md
    assert swapped == pytest.approx((1.351, 0.177), abs=5e-4)


def test_open_problems_scaled_scores_put_their_controls_at_0_and_1():
    """Their no_denoising (the train counts) scores 0 and their perfect_denoising (the test
    counts, unscaled) 1; our perfect (the test at the train depth) is 1 on the MSE of
    log-CP10k (the scale cancels) and above 1 on the Poisson loss, which prefers it."""
    from scziva_bench.evaluation import openproblems as op

    ds = simulate.splat(**simulate.regime("umi", n_cells=80, n_genes=120, n_groups=3, seed=2))
    s = scenarios.make(ds, "mcv_s1")
    train, test = s.layers["counts"].toarray(), s.layers["truth"].toarray()
    for f in (op.mse_scaled, op.poisson_scaled):
        assert f(_op_inputs(s, train)) == pytest.approx(0.0, abs=1e-12)
        assert f(_op_inputs(s, test)) == pytest.approx(1.0)
    ours = _op_inputs(s, methods.run("perfect", s))
    assert op.mse_scaled(ours) == pytest.approx(1.0)
    assert op.poisson_scaled(ours) > 1.0
    # a known-bad output: a constant scores below no denoising on both
    const = _op_inputs(s, np.full(s.shape, train.mean()))
    assert op.mse_scaled(const) < 0 and op.poisson_scaled(const) < 0
