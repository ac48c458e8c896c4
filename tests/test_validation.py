"""Every ranked metric must pass the reference-output panel (scziva_bench.evaluation.validation).

A metric cannot be ranked without passing: the test is parametrised over
``metric_specs.ranked()``, so a new ranked metric is checked on every simulated regime
the moment it is added.
"""

import numpy as np
import pytest

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.evaluation import metrics
from scziva_bench.data import simulate
from scziva_bench.data import scenarios
from scziva_bench.evaluation import validation
from scziva_bench.methods import controls


@pytest.fixture(scope="module")
def panel():
    """The panel of docs/metrics.md ("Validation"): both simulated regimes at the default
    run's size, dropout at 20/50/80 % and MCV, every reference output scored."""
    return validation.score_panel(validation.panel_scenarios())


def _ranked():
    return [m for m in metric_specs.ranked() if metric_specs.SPECS[m].group != "resources"]


@pytest.mark.parametrize("metric", _ranked())
def test_ranked_metric_passes_the_panel(panel, metric):
    d = panel[(panel["metric"] == metric) & (panel["status"] == "ok")]
    checked = 0
    for (regime, sid), g in d.groupby(["regime", "scenario"]):
        vals = dict(zip(g["method"], g["value"]))
        if "oracle" not in vals:
            continue
        checked += 1
        assert validation.violations(metric, vals) == [], (regime, sid, vals)
    # checked on every regime where it applies (the trajectory: the path simulation)
    regimes = set(d.loc[d["method"] == "oracle", "regime"])
    spec = metric_specs.SPECS[metric]
    if spec.family == "trajectory":
        want = {"umi_path", "droplet_path"}
    else:
        want = {"umi", "droplet", "fulllength"}
        if not set(spec.needs) & {"truth", "mask", "mcv", "de_truth"}:
            want.add("downsampled")  # the generator that is not ZINB-shaped
    assert checked > 0 and want <= regimes, (metric, regimes)


def test_unranked_metrics_say_why():
    for name, s in metric_specs.SPECS.items():
        if s.group == "resources":
            continue
        assert bool(s.ranked) != bool(s.unranked_because), name


def test_rules_catch_a_bad_metric():
    """The rules themselves can fail: a metric where a constant wins, or where the oracle
    loses, is reported."""
    good = {"oracle": 0.9, "no_imputation": 0.5, "knn_average": 0.6, "constant": 0.0,
            "rank_one": 0.0, "poisson_noise": 0.0, "zeros_to_one": 0.3}
    assert validation.violations("denoise_pearson", good) == []
    assert validation.violations("denoise_pearson", {**good, "constant": 0.55})
    assert validation.violations("denoise_pearson", {**good, "knn_average": 0.95})
    # on dropped entries no_imputation is degenerate: only the kNN average is compared
    assert validation.violations("zeros_gene_pearson", {**good, "no_imputation": 0.0}) == []
    # a label metric where even the oracle does not find the groups: rule 1 waived
    assert validation.violations("ari_kmeans", {**good, "oracle": 0.3, "knn_average": 0.4}) == []
    assert validation.violations("ari_kmeans", {**good, "oracle": 0.9, "knn_average": 0.95})
    # the same for a DE metric where the oracle does not find the DE genes; not for others
    assert validation.violations("de_pair_f1", {**good, "oracle": 0.58, "knn_average": 0.6}) == []
    assert validation.violations("denoise_pearson", {**good, "oracle": 0.58, "knn_average": 0.6})


def test_oracle_is_the_true_means_at_the_observed_depth():
    ds = simulate.splat(n_cells=60, n_genes=80, n_groups=2, seed=4)
    s = scenarios.make(ds, "dropout", rate=0.5, seed=1)
    O = controls.oracle_means(s).astype(np.float64)
    C = s.layers["counts"].toarray().astype(np.float64)
    np.testing.assert_allclose(O.sum(axis=1), C.sum(axis=1), rtol=1e-5)
    # proportional to the true means in every cell
    mu = np.asarray(s.layers["true_mean"], dtype=np.float64)
    np.testing.assert_allclose(O / O.sum(axis=1, keepdims=True),
                               mu / mu.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-9)
    v = metrics.evaluate(s, O, "d", "x", "oracle", which="denoising").set_index("metric")["value"]
    assert v["denoise_pearson"] == pytest.approx(1.0)


def test_gene_pearson_by_hand():
    L = np.array([[0.0, 1.0, 5.0], [1.0, 3.0, 5.0], [2.0, 2.0, 5.0]])
    R = np.array([[0.0, 1.0, 1.0], [1.0, 2.0, 2.0], [2.0, 3.0, 3.0]])
    # gene 0: r = 1; gene 1: (1, 3, 2) vs (1, 2, 3): r = 0.5; gene 2 constant in L: 0
    assert metrics.gene_pearson(L, R) == pytest.approx((1 + 0.5 + 0) / 3)
    # restricted to the first two cells of gene 1 and all of gene 0; gene 2: too few cells
    W = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=bool)
    assert metrics.gene_pearson(L, R, where=W, min_cells=2) == pytest.approx((1 + 1) / 2)
    assert np.isnan(metrics.gene_pearson(L, np.ones_like(R)))
    # an output flat up to float32 rounding (depth x gene share, normalised) scores 0,
    # not the correlation of its rounding noise with the truth
    rng = np.random.default_rng(0)
    depth = rng.integers(20, 400, size=(300, 1)).astype(np.float32)
    share = rng.dirichlet(np.ones(50)).astype(np.float32)[None, :]
    truth = rng.gamma(1.0, 1.0, size=(300, 50))
    rank_one = metrics.lognorm((depth * share).astype(np.float32))
    assert metrics.gene_pearson(rank_one, metrics.lognorm(truth)) == 0.0


def test_validation_config_uses_the_default_runs_simulations():
    """examples/validation.yaml (issue 22's check with user methods that carry no
    biology) scores the default run's datasets with a known truth (simulated or
    downsampled), not others."""
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((repo / "config.yaml").read_text())
    val = yaml.safe_load((repo / "examples" / "validation.yaml").read_text())
    from snakemake.utils import validate
    import copy
    validate(copy.deepcopy(val), str(repo / "workflow" / "schemas" / "config.schema.yaml"))
    sims = {k: v for k, v in default["datasets"].items()
            if v["source"] == "simulate" or "downsample" in v}  # those with a known truth
    assert val["datasets"] == sims and val["scenarios"] == default["scenarios"]
    assert val["metrics"] == default["metrics"]
    assert {"oracle", "no_imputation", "knn_smoothing", "constant", "zeros_to_one",
            "rank_one", "poisson_noise"} <= set(val["methods"])


def test_trajectory_needs_no_umap_package(tmp_path):
    """The trajectory metric does not import the umap package (scanpy's default UMAP
    connectivities would; a folder on sys.path holding a umap.py once shadowed it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "umap"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the umap package was imported')\n")
    code = ("from scziva_bench.data import simulate, scenarios\n"
            "from scziva_bench.evaluation import metrics\n"
            "from scziva_bench import methods\n"
            "ds = simulate.splat(n_cells=80, n_genes=120, n_groups=3, de_prob=0.3, de_loc=0.8,"
            " path=True, seed=2)\n"
            "s = scenarios.make(ds, 'dropout', rate=0.3, seed=1)\n"
            "v = metrics.evaluate(s, methods.run('no_imputation', s), 'd', 'x', 'm', which='trajectory')\n"
            "assert (v['status'] == 'ok').all(), v\n")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), src])}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
