"""Ranks and figures from hand-made tidy tables (no workflow run; seconds)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _tables import COLUMNS, tidy_table  # noqa: E402

from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.catalog import figures as figure_list  # noqa: E402
from scziva_bench.report import plots
from scziva_bench.evaluation import ranking

FEW = ["zeros_gene_pearson", "pearson_dropped", "ari_kmeans", "mcv_gene_pearson", "genecorr_inflation"]


def _one(rows):
    return pd.DataFrame(rows, columns=COLUMNS)


def test_failed_and_nan_rank_last():
    rows = [("d", "dropout50_s1", m, "zeros_gene_pearson", v, st) for m, v, st in [
        ("a", 0.9, "ok"), ("b", 0.5, "ok"), ("c", np.nan, "failed"),
        ("no_imputation", 0.1, "ok"), ("perfect", 1.0, "ok")]]
    r = ranking.rank_runs(_one(rows)).set_index("method")
    assert r.loc["c", "rank"] == 4 == r.loc["c", "n"]  # failed: last of 4 (perfect apart)
    assert r.loc["a", "rank"] == 1 and r.loc["no_imputation", "rank"] == 3
    assert r.loc["perfect", "reference"] and r.loc["perfect", "rank"] == 1
    # NaN with status ok also counts last
    rows = [("d", "dropout50_s1", m, "denoise_pearson", v, "ok") for m, v in [
        ("a", 0.9), ("b", np.nan), ("no_imputation", 0.3)]]
    r = ranking.rank_runs(_one(rows)).set_index("method")
    assert r.loc["b", "rank"] == 3 and r.loc["a", "rank"] == 1
    # a metric that does not apply is never ranked
    rows = [("d", "dropout50_s1", m, "mcv_mse", np.nan, "not_applicable") for m in "ab"]
    assert ranking.rank_runs(_one(rows)).empty


def _seeded(values):
    """values: method -> list of zeros_gene_pearson per seed."""
    rows = []
    for m, vs in values.items():
        for s, v in enumerate(vs, 1):
            rows.append(("d", f"dropout50_s{s}", m, "zeros_gene_pearson", v, "ok"))
    return _one(rows)


def test_tied_within_noise_is_shown_as_tied():
    # a and b swap places from seed to seed: tied; c is always behind both (by 1 or 2
    # places: a paired t-test separates it after Holm over the 6 pairs); no_imputation
    # is always last, one place behind c on every seed: with the differences' sd floored
    # at half a rank, t = 1 / (0.5 / sqrt 5) = 4.5, df 4, p = 0.011, x 3 by Holm (the
    # third smallest of 6): apart
    df = _seeded({"a": [0.9, 0.7, 0.9, 0.7, 0.9], "b": [0.8, 0.8, 0.7, 0.8, 0.7],
                  "c": [0.5, 0.6, 0.5, 0.6, 0.5], "no_imputation": [0.1] * 5,
                  "perfect": [1] * 5})
    s = ranking.summary(df).set_index("method")
    assert s.loc["a", "tied_best"] and s.loc["b", "tied_best"]
    assert not s.loc["c", "tied_best"] and not s.loc["no_imputation", "tied_best"]
    assert "b" in s.loc["a", "tied_with"] and "c" not in s.loc["a", "tied_with"]
    assert "no_imputation" not in s.loc["c", "tied_with"]
    assert s.loc["no_imputation", "mean"] == 4 and s.loc["perfect", "reference"]
    assert np.isfinite(s.loc["a", "lo"]) and s.loc["a", "n_seeds"] == 5
    fig = plots.plot_ranks(df)
    boxes = [p for p in fig.axes[0].patches if not p.get_fill() and p.get_linewidth() >= 2]
    assert len(boxes) == 2  # a and b boxed, nobody else
    plt.close(fig)
    # one seed: nothing can be separated, nobody boxed
    one = _seeded({"a": [0.9], "b": [0.8], "no_imputation": [0.1]})
    s1 = ranking.summary(one)
    assert not s1["separable"].any() and s1["lo"].isna().all()
    fig = plots.plot_ranks(one)
    assert not [p for p in fig.axes[0].patches if not p.get_fill() and p.get_linewidth() >= 2]
    plt.close(fig)


def test_paired_test_holm_and_tolerance_by_hand():
    from scipy import stats
    # identical differences of one rank on 3 seeds: the sd is floored at half a rank,
    # t = 1 / (0.5 / sqrt 3), df 2 -> p = 0.074: zero variance alone is not "apart"
    p = ranking.paired_p(np.array([1.0, 2.0, 1.0]), np.array([2.0, 3.0, 2.0]))
    assert p == pytest.approx(2 * stats.t.sf(1 / (0.5 / np.sqrt(3)), 2)) and p > 0.05
    # nor is near-zero variance: 0.10, 0.11, 0.10 ranks
    assert ranking.paired_p(np.array([1.10, 1.11, 1.10]), np.array([1.0, 1.0, 1.0])) > 0.5
    # a gap of 7 ranks on each of 5 seeds is (an exact sign test could not go below 0.0625)
    assert ranking.paired_p(np.full(5, 8.0), np.full(5, 1.0)) < 1e-4
    # above the floor, scipy's paired t-test: differences 1, 2, 3 -> t = 2 / (1 / sqrt 3)
    p = ranking.paired_p(np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert p == pytest.approx(stats.ttest_rel([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]).pvalue)
    assert ranking.paired_p(np.array([1.0]), np.array([2.0])) == 1.0
    # Holm: sorted p x (m, m-1, ...), running maximum, capped at 1
    np.testing.assert_allclose(ranking.holm([0.01, 0.04, 0.03, 0.5]),
                               [0.04, 0.09, 0.09, 0.5])
    # values within the tolerance share a rank: 0.8070 vs 0.8065 tie; 0.79 does not
    rows = [("d", "dropout50_s1", m, "zeros_gene_pearson", v, "ok") for m, v in [
        ("a", 0.8070), ("b", 0.8065), ("c", 0.79), ("no_imputation", 0.1)]]
    r = ranking.rank_runs(_one(rows)).set_index("method")["rank"]
    assert r["a"] == r["b"] == 1.5 and r["c"] == 3


def test_ranks_tsv_columns_and_references():
    df = _seeded({"a": [0.9, 0.7, 0.9], "b": [0.8, 0.8, 0.7], "no_imputation": [0.1] * 3,
                  "perfect": [1] * 3, "oracle": [0.95] * 3})
    t = ranking.ranks_tsv(df)
    assert list(t.columns) == ["dataset", "family", "method", "mean_rank", "ci_low",
                               "ci_high", "n_seeds"]
    t = t.set_index("method")
    assert t.loc["perfect", "mean_rank"] == 1 and t.loc["oracle", "mean_rank"] == 1
    assert t.loc["no_imputation", "mean_rank"] == 3 and (t["n_seeds"] == 3).all()
    assert t.loc["a", "ci_low"] < t.loc["a", "mean_rank"] < t.loc["a", "ci_high"]


def test_no_imputation_in_ranks_and_worse_is_visible():
    df = _seeded({"good": [0.9, 0.8, 0.85], "bad": [0.0, 0.05, 0.02],
                  "no_imputation": [0.3, 0.3, 0.3], "perfect": [1, 1, 1]})
    s = ranking.summary(df).set_index("method")
    assert s.loc["bad", "mean"] > s.loc["no_imputation", "mean"]
    ranks, _ = ranking.rank_table(df)
    assert "no_imputation" in ranks.index
    assert ranks.loc["bad", "zeros_gene_pearson"] == 3.0


def test_only_ranked_metrics_and_families_apart():
    df = tidy_table(seeds=(1, 2), metrics=FEW)
    r = ranking.rank_runs(df)
    assert set(r["metric"]) <= {m for m in FEW if metric_specs.spec(m).ranked}
    assert "runtime_s" not in set(r["metric"])
    s = ranking.summary(df)
    fams = set(s[s["dataset"] == "splat_a"]["family"])
    assert {"accuracy_imputation", "clustering"} <= fams and "mcv" not in fams
    assert "mcv" in set(s[s["dataset"] == "real_b"]["family"])


def _colors(fig):
    out = {}
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        for p in ax.patches:
            x = p.get_x() + p.get_width() / 2
            i = int(round(x))
            if 0 <= i < len(labels) and abs(x - i) < 0.01 and labels[i]:
                out[labels[i]] = mcolors.to_hex(p.get_facecolor(), keep_alpha=False)
        for ln in ax.lines:
            if ln.get_label() and not ln.get_label().startswith("_"):
                out.setdefault(ln.get_label(), mcolors.to_hex(ln.get_color()))
    return out


def test_colours_are_stable_across_figures_and_method_sets():
    df = tidy_table(seeds=(1,), metrics=["pearson_dropped"])
    a = _colors(plots.plot_metric(df, "pearson_dropped"))
    b = _colors(plots.plot_rates(df, "splat_a"))
    plt.close("all")
    for m in ("scziva", "magic", "dca", "scvi"):
        lab = plots.method_label(m)
        assert a[lab] == b[lab] == plots.method_color(m)
    assert len({plots.method_color(m) for m in ("scziva", "magic", "dca", "scvi")}) == 4
    # adding a method changes nobody else's colour
    more = pd.concat([df, df[df["method"] == "magic"].assign(method="zz_new")])
    c = _colors(plots.plot_metric(more, "pearson_dropped"))
    plt.close("all")
    assert all(c[m] == a[m] for m in a if m in c)
    assert plots.method_color("zz_new") == plots.method_color("zz_new")


@pytest.mark.parametrize("seeds", [(1,), (1, 2, 3)])
def test_every_figure_draws_with_one_seed_and_failed_rows(seeds):
    df = tidy_table(seeds=seeds, metrics=FEW,
                    fail={("dca", "dropout50_s1"), ("scvi", "mask10_s1"), ("scvi", "mcv_s1")},
                    nan={("magic", "ari_kmeans")})
    scen = {ds: list(dict.fromkeys(df[df.dataset == ds].scenario)) for ds in ("splat_a", "real_b")}
    names = figure_list.from_tables(figure_list.figure_names(FEW, scen))
    assert names[:4] == ["ranks", "families", "cost", "rates_splat_a"]
    assert "rates_real_b" not in names and {"paper_splat_a", "paper_real_b"} <= set(names)
    for name in names:
        if name.startswith("metric_") and name != "metric_pearson_dropped":
            continue  # drawn alike; keep the test fast
        fig = plots.draw(name, df)
        assert isinstance(fig, plt.Figure), name
        texts = [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes
                                                    for t in ax.texts]
        if name in ("metric_pearson_dropped", "paper_splat_a"):
            assert "failed" in texts, name
        if name == "ranks":
            assert any(t.split()[-1:] == ["F"] for t in texts)
        plt.close(fig)
    with pytest.raises(ValueError):
        plots.draw("nonsense", df)


def test_figure_names():
    scen = {"sim": ["dropout20_s1", "dropout50_s1", "dropout20_s2"], "real": ["mask10_s1", "mcv_s1"]}
    names = figure_list.figure_names(["pearson_dropped"], scen, umap=True, hexbin=True)
    assert names == ["ranks", "families", "cost", "rates_sim", "paper_sim", "paper_real",
                     "metric_pearson_dropped", "resources", "umap", "hexbin"]
    assert figure_list.from_tables(names)[-1] == "resources"


def test_family_scores_zero_for_no_imputation_one_for_truth():
    rows = []
    for s in (1, 2):
        for m, v in (("copy_of_input", 0.2), ("truthlike", 1.0), ("no_imputation", 0.2),
                     ("perfect", 1.0), ("half", 0.6)):
            rows.append(("d", f"dropout50_s{s}", m, "zeros_gene_pearson", v, "ok"))
            rows.append(("d", f"dropout50_s{s}", m, "denoise_pearson", v, "ok"))
    fs = plots.family_scores(_one(rows)).groupby("method")["score"].mean()
    assert fs["copy_of_input"] == pytest.approx(0) and fs["truthlike"] == pytest.approx(1)
    assert fs["half"] == pytest.approx(0.5)


def test_hexbin_and_umap_panels_from_matrices():
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    truth = rng.poisson(3, size=(40, 30)).astype(np.float32)
    mask = (rng.random(truth.shape) < 0.3) & (truth > 0)
    counts = np.where(mask, 0, truth)
    scen = ad.AnnData(counts, layers={"counts": sp.csr_matrix(counts), "truth": truth,
                                      "mask": sp.csr_matrix(mask)})
    imputed = {"good": truth + rng.normal(0, 0.1, truth.shape).clip(0), "bad": None,
               "const": np.ones_like(truth)}
    fig = plots.draw_imputed("hexbin", scen, imputed, "d, dropout30_s1")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "failed" in texts and any(t.startswith("r = ") and t[4:8] in ("0.99", "1.00") for t in texts)
    assert "r = n/a (constant)" in texts
    plt.close(fig)
    nomask = ad.AnnData(truth, layers={"counts": truth, "truth": truth})
    fig = plots.draw_imputed("hexbin", nomask, imputed, "d, none")
    assert "drops no entries" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_figures_name_the_dataset_description():
    df = tidy_table(seeds=(1, 2), metrics=["zeros_gene_pearson", "ari_kmeans"])
    desc = {"splat_a": "UMI droplet-like regime"}
    fig = plots.draw("families", df, desc)
    assert any("splat_a (UMI droplet-like regime)" in ax.get_title() for ax in fig.axes)
    plt.close(fig)
    fig = plots.draw("ranks", df, desc)
    assert "splat_a: UMI droplet-like regime" in fig.axes[0].get_xlabel()
    plt.close(fig)
