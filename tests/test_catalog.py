"""The catalog (src/scziva_bench/catalog): one home per fact, and one contract for every
method it lists.

The contract runs over ``methods.available()`` (no hand-kept list): a method added to the
catalog is checked here without editing this file. Small training budgets come from a
rule on parameter names (``epochs``-like parameters set to 3), not from a table.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from scziva_bench import methods
from scziva_bench.catalog import figures as figure_catalog
from scziva_bench.catalog import methods as method_catalog
from scziva_bench.catalog import metrics as metric_catalog
from scziva_bench.data import scenarios, simulate

REPO = Path(__file__).resolve().parents[1]
BUDGET_PARAMS = ("epochs", "num_epochs", "max_epochs")


@pytest.fixture(scope="module")
def scenario():
    data = simulate.splat(n_cells=120, n_genes=150, n_groups=3, seed=4)
    return scenarios.make(data, "dropout50_s0")


def _small(name) -> dict:
    return {k: 3 for k in methods.defaults(name) if k in BUDGET_PARAMS}


def _with_other_truth(scenario):
    """The scenario with every hidden layer replaced: what a method must not see."""
    other = scenario.copy()
    rng = np.random.default_rng(9)
    for key in ("truth", "true_mean"):
        if key in other.layers:
            other.layers[key] = rng.poisson(3.0, other.shape).astype(np.float32) + 0.5
    if "mask" in other.layers:
        del other.layers["mask"]
    other.obs = other.obs[[]]  # no labels, groups or pseudotime
    other.uns.clear()
    return other


@pytest.mark.parametrize("name", methods.available())
def test_every_method_keeps_the_output_contract(name, scenario):
    """Shape, dtype, finite, non-negative; the same seed gives the same output bit for bit
    on the CPU; a method never sees the truth (only the references read it)."""
    if name == "scvi":
        pytest.importorskip("scvi")
    kw = _small(name)
    Y = methods.run(name, scenario, seed=0, device="cpu", **kw)
    assert isinstance(Y, np.ndarray) and Y.dtype == np.float32 and Y.shape == scenario.shape
    assert np.all(np.isfinite(Y)) and Y.min() >= 0
    again = methods.run(name, _with_other_truth(scenario), seed=0, device="cpu", **kw) \
        if name not in method_catalog.REFERENCES else methods.run(name, scenario, seed=0,
                                                                   device="cpu", **kw)
    assert np.array_equal(Y, again), "another seed run or a hidden layer changed the output"
    if name in method_catalog.REFERENCES:  # they read the truth: a changed one shows
        other = _with_other_truth(scenario)
        assert not np.array_equal(Y, methods.run(name, other, seed=0, device="cpu"))


def test_every_row_points_at_a_module_that_hosts_it():
    envs = {p.stem for p in (REPO / "envs").glob("*.yaml")}
    colours = [r.color for r in method_catalog.ROWS.values() if r.color]
    assert len(colours) == len(set(colours)), "two methods share a colour"
    for name, row in method_catalog.ROWS.items():
        module = importlib.import_module(f"scziva_bench.methods.{row.module}")
        hosted = getattr(module, "METHODS", None)
        assert (name in hosted) if hosted is not None else callable(module.impute), name
        assert row.env in envs and row.label and row.source, name
        assert ("(re-impl.)" in row.label) == (row.kind == "reimplementation"), name
        for fact in ("USES_GPU", "KIND", "LABEL", "LABELS"):  # said once, in the row
            assert not hasattr(module, fact), f"{row.module}.{fact} repeats the catalog"
        assert methods.describe(name) == {"kind": row.kind, "label": row.label,
                                          "source": row.source}


def test_a_config_label_names_the_method_everywhere():
    from scziva_bench.report import plots

    cfg = {"scziva": {"label": "scZiva (80 epochs)"}, "mine": {"callable": "m:f"},
           "magic": {}}
    assert method_catalog.labels(cfg) == {"scziva": "scZiva (80 epochs)",
                                          "mine": "mine (user)", "magic": "MAGIC"}
    assert methods.describe("scziva", cfg)["label"] == "scZiva (80 epochs)"
    with plots.labelled(method_catalog.labels(cfg)):
        assert plots.method_label("scziva") == "scZiva (80 epochs)"
        assert plots.method_label("dca") == "DCA (re-impl.)"
    assert plots.method_label("scziva") == "scZiva"


def _files_naming(word: str) -> list[str]:
    """Files of src/ and workflow/ (tracked or new) that name ``word`` as an identifier or
    a string; a package name such as ``scvi-tools`` or ``magic-impute`` does not count."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", "src",
                          "workflow"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    pattern = re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])")
    found = []
    for f in out.stdout.split():
        path = REPO / f
        if path.suffix in (".py", ".smk", ".yaml", ".rst", "") and path.is_file():
            if pattern.search(path.read_text(errors="replace")):
                found.append(f)
    return sorted(found)


@pytest.mark.parametrize("name", [n for n in method_catalog.names()
                                  if n not in method_catalog.CONTROLS and n != "scziva"])
def test_a_method_is_named_in_its_module_and_its_row_only(name):
    """Adding a method = its module + its catalog row (+ docs): no list elsewhere in
    src/ or workflow/ names it. (``scziva`` is also the package's name; the controls are
    the benchmark's own references, named where they are handled.)"""
    row = method_catalog.row(name)
    allowed = {"src/scziva_bench/catalog/methods.py",
               f"src/scziva_bench/methods/{row.module}.py"}
    assert set(_files_naming(name)) <= allowed


def test_scziva_defaults_are_written_once():
    """ZIVAimpute's documented signature, the CLI and the benchmark's adapter all take
    scZiva's defaults from ZivaSettings."""
    import dataclasses

    from scziva import ZIVAimpute
    from scziva.settings import ZivaSettings

    written = {f.name: f.default for f in dataclasses.fields(ZivaSettings)}
    sig = inspect.signature(ZIVAimpute).parameters
    shared = [n for n in sig if n in written]
    assert {"seed", "num_epochs", "lr", "hidden_dim", "latent_dim", "tau"} <= set(shared)
    for name in shared:
        assert sig[name].default == written[name], name
    for name in ("scziva", "scziva_authors", "scziva_denoise"):
        for k, v in methods.defaults(name).items():
            if k in written and k != "impute_value":
                assert v == written[k], (name, k)


def test_metric_facts_are_on_the_spec():
    for name, spec in metric_catalog.SPECS.items():
        assert spec.direction_label in ("higher is better", "lower is better", "best at 0")
        assert spec.arrow and spec.family in metric_catalog.FAMILY_LABELS
        assert metric_catalog.higher_is_better(name) == (spec.maximize is True)


def test_every_figure_kind_has_one_caption_and_its_template_shows_it():
    kinds = {"ranks", "families", "cost", "rates", "paper", "metric", "resources", "umap",
             "hexbin"}
    assert set(figure_catalog.CAPTIONS) == kinds
    for kind in kinds:
        rst = (REPO / "workflow" / "report" / f"{kind}.rst").read_text()
        assert f'snakemake.params.captions["{kind}"]' in rst
