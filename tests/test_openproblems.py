"""Open Problems' denoising split files as a dataset source (issue 23, the bridge).

Their task writes a ``train.h5ad`` (the train molecules in ``layers["counts"]``, obs and
var without columns, ``uns["dataset_id"]``) and a ``test.h5ad`` (the test molecules, the
dataset's description and ``uns["train_sum"]``). Nothing is downloaded: the pair is
written here in that layout from a simulation split by hand.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench import methods
from scziva_bench.catalog import scenarios as scenario_ids
from scziva_bench.data import datasets, io, scenarios, simulate
from scziva_bench.evaluation import metrics, openproblems
from scziva_bench.pipeline import config_check


def _op_pair(tmp_path, seed=3, permute_test_genes=False, train_sum_delta=0):
    """An Open Problems train/test pair: each count split 0.9 / 0.1 binomially."""
    ds = simulate.splat(**simulate.regime("droplet", n_cells=120, n_genes=150, n_groups=3, seed=seed))
    full = sp.csr_matrix(ds.layers["counts"]).astype(np.int64)
    rng = np.random.default_rng(seed)
    train = full.copy()
    train.data = rng.binomial(full.data, 0.9)
    test = full.copy()
    test.data = full.data - train.data
    train.eliminate_zeros()
    test.eliminate_zeros()
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(full.shape[0])])
    var = pd.DataFrame(index=[f"ENSG{j:08d}" for j in range(full.shape[1])])
    tr = ad.AnnData(layers={"counts": train.astype(np.int32)}, obs=obs, var=var,
                    uns={"dataset_id": "op/toy"})
    te = ad.AnnData(layers={"counts": test.astype(np.int32)}, obs=obs.copy(), var=var.copy(),
                    uns={"dataset_id": "op/toy", "dataset_name": "Toy", "dataset_summary": "s",
                         "dataset_description": "d",
                         "train_sum": int(train.sum()) + train_sum_delta})
    if permute_test_genes:
        te = te[:, te.var_names[::-1]].copy()
    tr.write_h5ad(tmp_path / "train.h5ad")
    te.write_h5ad(tmp_path / "test.h5ad")
    return tmp_path / "train.h5ad", tmp_path / "test.h5ad", train, test, ds


def test_grammar_knows_split():
    assert scenario_ids.is_id("split") and not scenario_ids.is_id("split_s1")
    assert scenario_ids.parse_id("split") == ("split", None, 0)
    assert scenario_ids.format_id("split") == "split"
    assert scenario_ids.ids_from_spec({"split": True, "mcv": {"seeds": [1]}}) == ["mcv_s1", "split"]
    assert scenario_ids.label_of("split") == "MCV, given split"


def test_split_files_read_as_an_mcv_scenario(tmp_path):
    """The pair reads as one dataset (test half aligned by gene name, whatever its order),
    scenario `split` scores it as MCV with train_fraction = train / (train + test), and
    Open Problems' two controls land at 0 and 1 of their scaled scores."""
    train_p, test_p, train, test, _ = _op_pair(tmp_path, permute_test_genes=True)
    d = io.read_counts(train_p, test_path=test_p)
    assert (d.layers["counts"] != train).nnz == 0
    assert (d.layers["mcv_test"] != test).nnz == 0  # re-ordered to the train file's genes
    d = datasets.prepare(d, {})
    s = scenarios.make(d, "split")
    info = s.uns["scenario"]
    assert info["id"] == "split" and info["kind"] == "split"
    kept = d.layers["counts"].sum() / (d.layers["counts"].sum() + d.layers["mcv_test"].sum())
    assert info["train_fraction"] == pytest.approx(kept) and 0.85 < kept < 0.95
    avail = metrics.available(s)
    assert avail["mcv"] and not avail["truth"] and not avail["mask"]

    rows = []
    for m in ("no_imputation", "perfect"):
        out = methods.run(m, s)
        rows.append(metrics.evaluate(s, out, "op_toy", "split", m))
    # perfect returns the test molecules at the train depth (p / (1 - p) of them)
    perf = methods.run("perfect", s)
    p = info["train_fraction"]
    np.testing.assert_allclose(perf, s.layers["truth"].toarray() * (p / (1 - p)), rtol=1e-6)
    table = pd.concat(rows, ignore_index=True)
    v = table.set_index(["method", "metric"])["value"]
    for name in ("op_mse", "op_poisson", "mcv_poisson", "mcv_gene_pearson"):
        assert np.isfinite(v[("no_imputation", name)]) and np.isfinite(v[("perfect", name)]), name
    assert v[("no_imputation", "op_poisson_scaled")] == pytest.approx(0.0, abs=1e-12)
    assert v[("perfect", "op_mse_scaled")] == pytest.approx(1.0)
    assert v[("perfect", "mcv_poisson")] < v[("no_imputation", "mcv_poisson")]
    # their Poisson scaling is sum(test) / sum(train), ours the recorded fraction: the same here
    _, pred = openproblems._scaled_prediction(metrics.Inputs(s, perf, None, None, None, None, 0))
    np.testing.assert_allclose(pred.sum(), s.layers["truth"].sum(), rtol=1e-5)


def test_split_files_from_two_splits_are_refused(tmp_path):
    train_p, test_p, *_ = _op_pair(tmp_path, train_sum_delta=7)
    with pytest.raises(InputError, match="not the two halves of one split"):
        io.read_counts(train_p, test_path=test_p)


def test_split_files_with_other_cells_are_refused(tmp_path):
    train_p, test_p, *_ = _op_pair(tmp_path)
    te = ad.read_h5ad(test_p)
    te = te[:-1].copy()
    te.write_h5ad(test_p)
    with pytest.raises(InputError, match="cell names do not match"):
        io.read_counts(train_p, test_path=test_p)


def test_split_scenario_needs_the_test_half(tmp_path):
    ds = simulate.splat(**simulate.regime("droplet", n_cells=40, n_genes=50, n_groups=2, seed=1))
    with pytest.raises(InputError, match="test_path"):
        scenarios.make(ds, "split")


def test_config_check_names_split_problems():
    cfg = {"scenarios": {"split": True},
           "datasets": {"sim": {"source": "simulate"},
                        "op": {"source": "local", "path": "train.h5ad", "test_path": "test.h5ad",
                               "truth_path": "t.csv", "downsample": {"depth": 100}}}}
    lines = config_check.dataset_problems(cfg)
    assert any(line.startswith("config: datasets.sim: scenario split") for line in lines)
    assert any("datasets.op: test_path" in line and "truth_path" in line for line in lines)
    assert any("datasets.op: downsample" in line for line in lines)
    assert not any("datasets.op: scenario split" in line for line in lines)
