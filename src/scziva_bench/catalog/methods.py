"""One row per built-in method: everything the benchmark knows about a method without
importing it (standard library only).

A row says where the method's code is (``module``, in :mod:`scziva_bench.methods`), what
it is (``kind``), how figures and reports name it (``label``, overridden by a config's
``label:``), where it comes from (``source``), which conda environment of ``envs/`` its
jobs use (``env``), whether it can use a GPU (``uses_gpu``: its jobs then ask for one
by default and it is given ``device="cuda"`` where one is present) and its colour in
every figure. The module holds only the code: ``DEFAULTS`` and ``impute`` (or
``METHODS = {name: (defaults, impute)}`` when it hosts several methods), see
docs/contributing.md.

Adding a method: its module in ``src/scziva_bench/methods/``, one row in :data:`ROWS`,
its entry in docs/methods.md. Methods named in a config with ``callable:`` or
``command:`` are the user's own and need no row (kind ``"user"``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Method", "ROWS", "KINDS", "CONTROLS", "BASELINE", "REFERENCES", "ENVS",
           "DEFAULT_ENV", "names", "row", "is_user", "label", "labels"]

#: control: a reference, not a method; builtin: a package's own code or this project's
#: method; reimplementation: re-implemented here from its paper (labelled so in
#: figures); user: from the config (callable or command)
KINDS = ("control", "builtin", "reimplementation", "user")
#: the conda environment files of envs/ (without .yaml); a method without one uses
#: DEFAULT_ENV
ENVS = ("bench", "torch", "scvi", "magic")
DEFAULT_ENV = "bench"


@dataclass(frozen=True)
class Method:
    name: str
    module: str  # module of scziva_bench.methods that holds the code
    kind: str
    label: str
    source: str
    env: str = DEFAULT_ENV
    uses_gpu: bool = False
    color: str = ""  # hex; "" = one from a hash of the name (report.plots.method_color)


_ROWS = (
    Method("no_imputation", "controls", "control", "no imputation",
           "control: the observed counts", color="#555555"),
    Method("perfect", "controls", "control", "perfect",
           "control: the scenario's truth", color="#2ca02c"),
    Method("oracle", "controls", "control", "oracle",
           "control: the simulation's pre-Poisson means at each cell's observed depth",
           color="#808000"),
    Method("magic", "magic", "builtin", "MAGIC",
           "magic-impute package (van Dijk et al. 2018)", env="magic", color="#ff7f0e"),
    Method("scvi", "scvi", "builtin", "scVI",
           "scvi-tools package, scvi.model.SCVI (Lopez et al. 2018)", env="scvi",
           uses_gpu=True, color="#d62728"),
    Method("alra", "alra", "reimplementation", "ALRA (re-impl.)",
           "re-implemented in numpy from Linderman et al. 2022 (Nat Commun 13:192), "
           "checked against the authors' R package KlugerLab/ALRA", color="#9467bd"),
    Method("knn_smoothing", "knn_smoothing", "reimplementation", "kNN-smoothing (re-impl.)",
           "re-implemented in numpy/scikit-learn from Wagner, Yan & Yanai 2017 (bioRxiv "
           "217737), checked against the authors' knn_smooth.py (yanailab/knn-smoothing)",
           color="#8c564b"),
    Method("dca", "dca", "reimplementation", "DCA (re-impl.)",
           "re-implemented in torch from Eraslan et al. 2019 (Nat Commun 10:390), defaults "
           "of the dca package 0.3 (theislab/dca)", env="torch", uses_gpu=True,
           color="#e377c2"),
    Method("deepimpute", "deepimpute", "reimplementation", "DeepImpute (re-impl.)",
           "re-implemented in torch from Arisdakessian et al. 2019 (Genome Biol 20:211), "
           "defaults of the deepimpute package's MultiNet (lanagarmire/deepimpute)",
           env="torch", uses_gpu=True, color="#bcbd22"),
    Method("scziva", "scziva", "builtin", "scZiva", "scziva (this repository)",
           env="torch", uses_gpu=True, color="#1f77b4"),
    Method("scziva_authors", "scziva", "builtin", "scZiva (authors' mode)",
           "scziva (this repository), mode='authors'", env="torch", uses_gpu=True,
           color="#aec7e8"),
    Method("scziva_denoise", "scziva", "builtin", "scZiva (denoise)",
           "scziva (this repository), denoising output", env="torch", uses_gpu=True,
           color="#17becf"),
    # new methods above this line (docs/contributing.md, "Adding a method")
)

#: name -> row, in the order above
ROWS: dict = {m.name: m for m in _ROWS}

#: the controls: the baseline every method should beat, then the references (shown
#: apart, never ranked among the methods)
CONTROLS = tuple(m.name for m in _ROWS if m.kind == "control")
BASELINE = "no_imputation"
REFERENCES = tuple(c for c in CONTROLS if c != BASELINE)


def _check():
    for m in _ROWS:
        assert m.kind in KINDS and m.kind != "user", m.name
        assert m.env in ENVS, m.name
    assert BASELINE in CONTROLS


_check()


def names() -> list:
    """The built-in methods' names, sorted."""
    return sorted(ROWS)


def row(name: str):
    """The row of ``name``, or None for a name that is not built in."""
    return ROWS.get(str(name))


def is_user(spec) -> bool:
    """Whether a config entry ``methods.<name>`` declares the user's own method
    (``callable:`` or ``command:``)."""
    return isinstance(spec, dict) and ("callable" in spec or "command" in spec)


def label(name: str, config_methods: dict | None = None) -> str:
    """How figures and reports name a method: the config's ``label:``, else the row's,
    else ``"<name> (user)"`` for a user method of ``config_methods``, else the name."""
    spec = (config_methods or {}).get(name)
    if isinstance(spec, dict) and spec.get("label"):
        return str(spec["label"])
    r = row(name)
    if r is not None and not is_user(spec):
        return r.label
    return f"{name} (user)" if is_user(spec) else str(name)


def labels(config_methods: dict) -> dict:
    """``{name: label}`` of every method of a config's ``methods:`` mapping."""
    return {m: label(m, config_methods) for m in (config_methods or {})}
