"""The Snakemake benchmark workflow: config schema, lint, dry runs, one tiny end-to-end run.

Everything runs through the ``snakemake`` command line (``--directory tmp_path`` keeps
outputs and Snakemake's metadata out of the checkout). The end-to-end test (marked
``slow``, ~1-3 minutes on 2 cores) runs config/test.yaml with one method made to fail,
and checks metrics.tsv, the figures, the HTML report, provenance and ``--report``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from scziva_bench.report import plots
from scziva_bench.pipeline import job
from scziva_bench.pipeline import provenance
from scziva_bench.pipeline import targets

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

from _configs import workflow_configs  # noqa: E402

CONFIGS = workflow_configs()


def _snakemake_exe() -> str:
    exe = Path(sys.executable).parent / "snakemake"
    if exe.is_file():
        return str(exe)
    found = shutil.which("snakemake")
    if found is None:  # pragma: no cover
        pytest.skip("snakemake is not installed")
    return found


def run_snakemake(*args, cwd: Path, env_extra=None, timeout=1800, snakefile=None):
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(env_extra or {})
    cmd = [_snakemake_exe(), "-s", str(snakefile or SNAKEFILE), "--directory", str(cwd),
           *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def load(path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ------------------------------------------------------------------ config schema (fast)

@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    from snakemake.utils import validate

    cfg = load(path)
    validate(cfg, str(SCHEMA))  # raises on any violation
    assert cfg["datasets"] and cfg["methods"] and cfg.get("metrics", ["all"])  # absent: all
    for ds in cfg["datasets"]:
        assert targets.dataset_scenarios(cfg, ds), f"{path.name}: dataset {ds} has no scenario"


def test_schema_enums_match_the_library():
    from scziva_bench import methods
    from scziva_bench.evaluation import metrics

    from scziva_bench.pipeline.config_check import problems

    # the names live in the catalog only; the config check knows them all
    assert "alra" not in SCHEMA.read_text() and "rmse_dropped" not in SCHEMA.read_text()
    cfg = {"datasets": {"d": {"source": "local", "path": "x.h5ad"}},
           "methods": {m: {} for m in methods.available()}, "metrics": metrics.METRICS}
    assert problems(cfg, SCHEMA) == []
    cfg["metrics"] = ["rmse_dropped", "nonsense"]
    cfg["methods"]["nope"] = {}
    lines = problems(cfg, SCHEMA)
    assert any("unknown metric(s) 'nonsense'" in ln for ln in lines)
    assert any("methods.nope" in ln for ln in lines)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_method_params_are_known(path):
    """Every parameter a shipped config sets is a parameter of that method."""
    from scziva_bench import methods

    for name, spec in load(path)["methods"].items():
        params = (spec or {}).get("params") or {}
        unknown = set(params) - set(methods.defaults(name))
        assert not unknown, f"{path.name}: {name} has unknown params {unknown}"


def test_default_config_covers_every_method_and_metric():
    from scziva_bench import methods
    from scziva_bench.evaluation import metrics

    cfg = load(REPO / "config.yaml")
    # every method, except scziva_authors (left out of the default run for time; the
    # paper config and config/test.yaml run it)
    assert sorted(cfg["methods"]) == [m for m in methods.available() if m != "scziva_authors"]
    assert "scziva_authors" in load(REPO / "config" / "paper.yaml")["methods"]
    assert cfg["metrics"] == metrics.METRICS
    # issue 10/11: >= 3 seeds per scenario, >= 2 simulation regimes, >= 2 real datasets
    # (shipped in the repository), clustering against their labels; issue 22: MCV only
    # on UMI data, never a top-N-by-mean gene cut; a no-dropout scenario; a generator that
    # is not ZINB-shaped (a downsampled real dataset)
    from scziva_bench.catalog import scenarios as scenario_ids

    for ds in cfg["datasets"]:
        groups = {}
        for sid in targets.dataset_scenarios(cfg, ds):
            groups.setdefault(scenario_ids.group_of(sid), []).append(scenario_ids.seed_of(sid))
        assert groups and all(len(set(seeds)) >= 3 for seeds in groups.values()), (ds, groups)
    sims = [d for d in cfg["datasets"].values() if d["source"] == "simulate"]
    assert len({d["regime"] for d in sims}) >= 2
    real = {n: d for n, d in cfg["datasets"].items() if d["source"] == "local"}
    assert len(real) >= 2
    for name, d in real.items():
        assert d["path"].startswith("resources/datasets/") and (REPO / d["path"]).is_file()
        kinds = {scenario_ids.parse_id(s).kind for s in targets.dataset_scenarios(cfg, name)}
        assert kinds & {"mcv", "sampling"}, name
        if "mcv" in kinds:
            assert "UMI" in d["regime"] and "top_genes" not in d, name
        assert (REPO / d["path"]).stat().st_size < 5_000_000
    assert any("downsample" in d for d in real.values())
    sim_names = [n for n, d in cfg["datasets"].items() if d["source"] == "simulate"]
    assert any(scenario_ids.parse_id(s).kind == "sampling"
               for n in sim_names for s in targets.dataset_scenarios(cfg, n))
    test_cfg = load(REPO / "config" / "test.yaml")
    assert sorted(test_cfg["methods"]) == methods.available()


# ------------------------------------------------------------------ helpers (fast)

def test_scenario_ids_follow_the_contract():
    from scziva_bench.data import scenarios, simulate

    spec = {"none": True, "dropout": {"rates": [0.2, 0.05], "seeds": [1, 2]},
            "mask": {"rates": [0.1], "seeds": [3]}, "mcv": {"seeds": [4]}}
    cfg = {"datasets": {"d": {"source": "simulate"}}, "scenarios": spec}
    ids = targets.dataset_scenarios(cfg, "d")
    assert ids == ["none", "dropout20_s1", "dropout20_s2", "dropout05_s1", "dropout05_s2",
                   "mask10_s3", "mcv_s4"]
    # each id is what the library records for the scenario it makes
    ds = simulate.splat(n_cells=30, n_genes=40, n_groups=2, seed=1)
    for sid in ids:
        assert scenarios.make(ds, sid).uns["scenario"]["id"] == sid
    # the options beyond the id come from the kind's block
    cfg["scenarios"]["mcv"]["train_fraction"] = 0.8
    assert targets.scenario_options(cfg, "d", "mcv_s4") == {"train_fraction": 0.8}
    assert targets.scenario_options(cfg, "d", "dropout05_s2") == {}
    assert targets.scenario_options(cfg, "d", "none") == {}


def test_read_benchmark(tmp_path):
    p = tmp_path / "b.tsv"
    p.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                 "12.5000\t0:00:12\t345.67\t900.1\t300.0\t310.0\t0.1\t0.2\t95.0\t11.9\n")
    assert job.read_benchmark(p) == {"runtime_s": 12.5, "max_rss_mb": 345.67}
    p.write_text("s\th:m:s\tmax_rss\n3.0\t0:00:03\tNA\n")
    b = job.read_benchmark(p)
    assert b["runtime_s"] == 3.0 and math.isnan(b["max_rss_mb"])
    assert all(math.isnan(v) for v in job.read_benchmark(tmp_path / "missing.tsv").values())


def test_dataset_regex_and_resources():
    rx = targets.name_regex(["a", "a_b"])
    assert re.fullmatch(rx, "a_b") and re.fullmatch(rx, "a") and not re.fullmatch(rx, "b")
    assert not re.fullmatch(targets.name_regex([]), "")
    from snakemake.utils import validate

    cfg = {"datasets": {"d": {"source": "local", "path": "x.h5ad"}},
           "default_resources": {"threads": 2},
           "methods": {"scvi": {"resources": {"gpu": 0}}, "dca": {}, "alra": {}}}
    validate(cfg, str(SCHEMA))  # fills the defaults, as the Snakefile does
    assert targets.method_resources(cfg, "scvi") == {"threads": 2, "mem_mb": 4000, "runtime": 60, "gpu": 0}
    assert targets.method_resources(cfg, "dca")["gpu"] == 1  # the catalog: it can use a GPU
    assert targets.method_resources(cfg, "alra")["gpu"] == 0
    assert targets.method_env("scziva") == "../../envs/torch.yaml"
    assert targets.method_env("alra") == "../../envs/bench.yaml"


# ------------------------------------------------------------------ plots (fast)

def _table():
    """Hand-made metrics: m1 best on zeros_gene_pearson, m2 best on denoise_pearson after
    no_imputation, m3 failed on one scenario (both ranked metrics: higher is better)."""
    rows = []
    vals = {"zeros_gene_pearson": {"m1": [0.9, 0.8], "m2": [0.5, 0.4], "m3": [0.7, np.nan]},
            "denoise_pearson": {"m1": [0.3, 0.3], "m2": [0.9, 0.8], "m3": [0.8, np.nan]}}
    for met, by in vals.items():
        for m, (a, b) in by.items():
            rows.append(("d", "dropout20_s1", m, met, a, "ok"))
            rows.append(("d", "dropout50_s1", m, met, b, "failed" if m == "m3" else "ok"))
        for sc in ("dropout20_s1", "dropout50_s1"):
            rows.append(("d", sc, "perfect", met, 1.0, "ok"))
            rows.append(("d", sc, "no_imputation", met, 0.1 if met.startswith("zeros") else 0.95,
                         "ok"))
    return pd.DataFrame(rows, columns=["dataset", "scenario", "method", "metric", "value", "status"])


def test_rank_table_by_hand():
    from scziva_bench.evaluation import ranking

    ranks, failed = ranking.rank_table(_table())
    # no_imputation is ranked with the methods; a failed run takes the last place
    # zeros: s20 m1=1, m3=2, m2=3, no_imputation=4; s50 m1=1, m2=2, no_imputation=3, m3=4
    z, dn = "zeros_gene_pearson", "denoise_pearson"
    assert ranks.loc["m1", z] == 1.0
    assert ranks.loc["m2", z] == 2.5
    assert ranks.loc["m3", z] == 3.0
    assert ranks.loc["no_imputation", z] == 3.5
    assert ranks.loc["perfect", z] == 1.0  # the place the truth takes
    # denoise_pearson: no_imputation (0.95) is best in both scenarios
    assert ranks.loc["no_imputation", dn] == 1.0
    assert ranks.loc["m2", dn] == 2.0
    assert ranks.loc["m1", dn] == 3.5 and ranks.loc["m3", dn] == 3.5
    assert failed.loc["m3", z] == 1 and failed.loc["m1", z] == 0


def _texts(fig):
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
    return out


def test_figures_mark_failed_methods():
    import matplotlib.pyplot as plt

    df = _table()
    fig = plots.plot_metric(df, "zeros_gene_pearson")
    assert "failed" in _texts(fig)
    ax = fig.axes[0]
    # controls are lines (axhline), not bars: 2 reference lines, 3 bars in the first panel
    assert len([p for p in ax.patches]) == 3
    assert sorted(round(line.get_ydata()[0], 3) for line in ax.lines
                  if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2) == [0.1, 1.0]
    plt.close(fig)
    fig = plots.plot_ranks(df)
    assert any(t.endswith(" F") for t in _texts(fig))
    plt.close(fig)
    res = df.copy()
    res["metric"] = res["metric"].map({"zeros_gene_pearson": "runtime_s",
                                       "denoise_pearson": "max_rss_mb"})
    fig = plots.plot_resources(res)
    assert "failed" in _texts(fig)
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)


# ------------------------------------------------------------------ snakemake CLI

def test_lint_is_clean(tmp_path):
    res = run_snakemake("--lint", "--configfile", REPO / "config.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr


def test_paper_config_plans_offline(tmp_path):
    """config/paper.yaml: the paper's real datasets from resources/, its simulations from
    our simulator; nothing to download, even run from another folder."""
    res = run_snakemake("-n", "--configfile", REPO / "config" / "paper.yaml", cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    assert "download_zenodo" not in counts
    assert int(counts["load_local"]) == 4 and int(counts["simulate"]) >= 1
    assert str(REPO / "resources" / "datasets" / "yan.h5ad") in out


def test_paper_zenodo_dry_run_plans_the_downloads(tmp_path):
    res = run_snakemake("-n", "--configfile", REPO / "config" / "paper_zenodo.yaml",
                        cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    assert int(counts["download_zenodo"]) == 10  # 4 real + 3 x (counts, truth)
    assert int(counts["load_local"]) == 7
    for name in ("Yan.csv", "deng.csv", "darmanis.csv", "Lung.csv", "SplatDrop_counts_50.csv",
                 "SplatDrop_TrueCounts_80.csv"):
        assert f"resources/zenodo/18263992/{name}" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["methods"].update({"not_a_method": {}}), "not_a_method"),
    (lambda c: c["scenarios"]["dropout"].update({"rates": [1.5]}), "1.5"),
    (lambda c: c.update({"dataset": {}}), "'dataset' was unexpected"),
])
def test_bad_config_stops_with_a_message(tmp_path, edit, needle):
    cfg = load(REPO / "config" / "test.yaml")
    edit(cfg)
    path = write_config(cfg, tmp_path / "bad.yaml")
    res = run_snakemake("-n", "--configfile", path, cwd=tmp_path)
    assert res.returncode != 0
    assert needle in res.stdout + res.stderr


def test_local_config_on_shared_data(shared_data, tmp_path):
    """config/local.yaml pointed at ../shared/data: plans every rule, and its first
    dataset loads (QC, top genes, labels)."""
    cfg = load(REPO / "config" / "local.yaml")
    for ds in cfg["datasets"].values():
        ds["path"] = str(shared_data / Path(ds["path"]).name)
    path = write_config(cfg, tmp_path / "local.yaml")
    res = run_snakemake("-n", "--configfile", path, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "load_local" in res.stdout and "impute_scziva" in res.stdout
    target = "results/datasets/cellbench_celseq2.h5ad"
    res = run_snakemake(target, "--cores", "1", "--configfile", path, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    import anndata as ad

    a = ad.read_h5ad(tmp_path / target)
    assert a.n_vars == 2000 and a.n_obs <= 274
    assert set(a.obs["cell_type"]) == {"H1975", "H2228", "HCC827"}
    assert a.uns["dataset_id"] == "cellbench_celseq2"


@pytest.mark.slow
def test_end_to_end_tiny_run(tmp_path):
    """config/test.yaml end to end on 2 cores, with DCA made to fail."""
    from scziva_bench import methods
    from scziva_bench.evaluation import metrics

    cfg_path = write_config(load(REPO / "config" / "test.yaml"), tmp_path / "test.yaml")
    res = run_snakemake("--cores", "2", "--configfile", cfg_path, cwd=tmp_path,
                        env_extra={"SCZIVA_BENCH_INJECT_FAILURE": "dca"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    check_tiny_run(tmp_path, cfg_path)


def check_tiny_run(tmp_path: Path, cfg_path: Path):
    """What a finished config/test.yaml run (DCA failed) must contain."""
    from scziva_bench import methods
    from scziva_bench.evaluation import metrics

    R = tmp_path / "results"
    df = pd.read_csv(R / "metrics.tsv", sep="\t")
    assert list(df.columns) == ["dataset", "scenario", "method", "metric", "value", "status"]

    # every method x scenario x metric, plus runtime and memory, exactly once
    scen = ["dropout50_s1", "mcv_s1"]
    want = set(metrics.METRICS) | {"runtime_s", "max_rss_mb"}
    assert not df.duplicated(["dataset", "scenario", "method", "metric"]).any()
    for sc in scen:
        for m in methods.available():
            got = set(df[(df.scenario == sc) & (df.method == m)].metric)
            assert got == want, (sc, m, want - got)

    # the injected failure is marked, never dropped; everything else is ok
    dca = df[df.method == "dca"]
    assert (dca.status == "failed").all()
    assert dca[~dca.metric.isin(["runtime_s", "max_rss_mb"])].value.isna().all()
    assert df[df.method != "dca"].status.isin(["ok", "not_applicable"]).all()
    # a metric the scenario cannot support is not applicable, never scored on the input
    na = df[df.status == "not_applicable"]
    assert na.value.isna().all()
    assert set(na[na.scenario == "mcv_s1"].metric) >= {"pearson_dropped", "log_mse_all"}
    assert set(na[na.scenario == "dropout50_s1"].metric) >= {"mcv_poisson"}
    assert "failure injected" in (R / "logs/impute/tiny/dca.log").read_text()

    # controls bracket the methods where the truth is known
    d = df[(df.scenario == "dropout50_s1")].pivot_table(index="method", columns="metric",
                                                          values="value")
    ok_methods = [m for m in methods.available() if m not in ("perfect", "dca")]
    assert d.loc["perfect", "pearson_dropped"] == pytest.approx(1.0)
    assert (d.loc["perfect", "pearson_dropped"] >= d.loc[ok_methods, "pearson_dropped"].dropna()).all()
    for err in ("rmse_dropped", "mae_dropped", "log_mse_dropped", "rmse_all"):
        assert d.loc["perfect", err] == pytest.approx(0.0, abs=1e-6)
        assert (d.loc["perfect", err] <= d.loc[ok_methods, err]).all()
    # no_imputation leaves the dropped entries at 0; some method must do better there
    assert (d.loc[ok_methods, "log_mse_dropped"] < d.loc["no_imputation", "log_mse_dropped"]).any()
    m = df[(df.scenario == "mcv_s1")].pivot_table(index="method", columns="metric",
                                                    values="value", dropna=False)
    assert np.isfinite(m.loc[ok_methods, "mcv_poisson"]).all()
    assert m.loc[ok_methods, "pearson_dropped"].isna().all()  # no mask in MCV
    rt = df[(df.metric == "runtime_s")]
    assert (rt.value > 0).all() and (df[df.metric == "max_rss_mb"].value > 0).all()

    # figures, report, provenance
    names = targets.figure_names(load(cfg_path))
    assert {"ranks", "families", "resources", "umap", "hexbin"} <= set(names)
    for n in names:
        for ext in ("png", "pdf"):
            f = R / "figures" / f"{n}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    html = (R / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(names)
    # results are readable as any new file of the user's (umask), not private 0600
    from scziva.fileio import current_umask

    want = 0o666 & ~current_umask()
    for f in (R / "metrics.tsv", R / "report.html", R / "figures" / f"{names[0]}.png"):
        assert f.stat().st_mode & 0o777 == want, (f, oct(f.stat().st_mode))
    for mth in methods.available():
        assert mth in html
    assert "failed" in html and "dca" in html
    prov = load(R / "provenance.yaml")
    assert prov["config"]["datasets"]["tiny"]["simulate"]["n_cells"] == 120
    for pkg in ("torch", "scanpy", "anndata", "snakemake", "scvi-tools", "magic-impute", "numpy"):
        assert prov["packages"][pkg], pkg
    assert prov["python"].startswith("3.")
    for m in methods.available():
        assert (R / "benchmarks/tiny" / f"{m}.tsv").is_file()

    # snakemake's own report, with the captions
    res = run_snakemake("--configfile", cfg_path, "--report", tmp_path / "sm_report.html",
                        cwd=tmp_path, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert (tmp_path / "sm_report.html").stat().st_size > 10000


def test_h5_safe_and_gpu_detection(monkeypatch):
    from scziva_bench.data.io import h5_safe

    assert h5_safe({"a": None, "b": (64, 32), "c": [1, "x"], "d": 1.5}) == {
        "a": "None", "b": [64, 32], "c": "[1, 'x']", "d": 1.5}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert provenance.nvidia_gpu_present() is False


def test_open_problems_split_through_the_workflow(tmp_path):
    """An Open Problems train/test pair as a local dataset with scenario `split`: loaded,
    scored as MCV, their scaled scores at 0 for no_imputation, 1 for their perfect on the
    MSE, and a method in between (up to metrics.tsv; no figures)."""
    from test_openproblems import _op_pair

    data = tmp_path / "op"
    data.mkdir()
    train_p, test_p, *_ = _op_pair(data)
    cfg = load(REPO / "config" / "test.yaml")
    cfg["datasets"] = {"op_toy": {"source": "local", "path": str(train_p), "test_path": str(test_p),
                                  "scenarios": {"split": True}}}
    cfg["methods"] = {"no_imputation": {}, "perfect": {}, "knn_smoothing": {}}
    cfg.pop("scenarios", None)
    cfg["figures"]["umap"] = {"dataset": "op_toy", "scenario": "split"}
    path = write_config(cfg, tmp_path / "op.yaml")
    res = run_snakemake("results/metrics.tsv", "--cores", "2", "--configfile", path, cwd=tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    df = pd.read_csv(tmp_path / "results" / "metrics.tsv", sep="\t")
    assert set(df.scenario) == {"split"}
    v = df[df.status == "ok"].set_index(["method", "metric"])["value"]
    assert v[("no_imputation", "op_mse_scaled")] == pytest.approx(0.0, abs=1e-9)
    assert v[("perfect", "op_mse_scaled")] == pytest.approx(1.0)
    assert v[("perfect", "mcv_gene_pearson")] > v[("knn_smoothing", "mcv_gene_pearson")]
    assert np.isfinite(v[("knn_smoothing", "op_poisson_scaled")])
    na = df[(df.method == "knn_smoothing") & (df.status == "not_applicable")].metric
    assert {"pearson_dropped", "log_mse_all", "ari_kmeans"} <= set(na)  # no entry truth, no labels
