"""Imputation methods behind one interface.

>>> from scziva_bench import methods
>>> methods.available()
['alra', 'dca', 'deepimpute', 'knn_smoothing', 'magic', 'no_imputation', 'perfect', 'scvi', 'scziva', 'scziva_authors']
>>> X_imp = methods.run("magic", scenario_adata, seed=0)   # cells x genes, float32, count scale

Every method sees only the observed counts: :func:`run` hands its adapter a new
AnnData made by :func:`method_input` (counts, cell and gene names, ``obs["n_counts"]``;
no truth, mask, labels or scenario facts). Only the ``perfect`` control gets the whole
scenario (it returns ``layers["truth"]``). A method returns a dense float32
``np.ndarray`` on the count scale, same cells and genes in the same order, finite and
non-negative.

Method facts for figures and reports: :func:`describe` (kind, display label, source)
reads the static table ``_FACTS`` below and imports no method module (no torch, no
scvi-tools). Methods named in a config with ``callable:`` or ``command:`` are the
user's own (``kind = "user"``, see :mod:`scziva_bench.methods.external`).

Adding a method: write a module in this package that defines ``USES_GPU`` (bool),
``DEFAULTS`` (dict of keyword parameters), ``SOURCE`` (one line: package + version or
the paper it was re-implemented from) and ``impute(counts, *, seed, device, adata,
**params) -> np.ndarray`` (``counts`` a CSR float32 matrix of integer counts), then add
one line to ``_REGISTRY`` and one to ``_FACTS`` below. (A method outside the package needs
no edit at all: name it in the config with ``callable:`` or ``command:``, see
docs/own_method.md.) Modules are imported only when their method is used,
so heavy dependencies (torch, scvi-tools, MAGIC) load lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError

__all__ = ["available", "get", "defaults", "run", "resolve_device", "Adapter", "describe",
           "is_external", "method_input", "KINDS", "CONTROLS", "REFERENCES"]

# name -> module (relative to this package). One line per method.
_REGISTRY: dict[str, str] = {
    "no_imputation": ".controls",
    "perfect": ".controls",
    "oracle": ".controls",
    "magic": ".magic",
    "alra": ".alra",
    "knn_smoothing": ".knn_smoothing",
    "dca": ".dca",
    "deepimpute": ".deepimpute",
    "scvi": ".scvi",
    "scziva": ".scziva",
    "scziva_authors": ".scziva",
    "scziva_denoise": ".scziva",
}

# What each method is, for labels and provenance, without importing its module.
# kind: "control" (a reference, not a method), "builtin" (a package's own code, or this
# project's method), "reimplementation" (re-implemented here from the paper; labelled as
# such in figures), "user" (from the config: callable or command).
# name -> (kind, display label, source)
KINDS = ("control", "builtin", "reimplementation", "user")
#: the controls: the baseline every method should beat, then the references (shown apart,
#: never ranked among the methods)
CONTROLS = ("no_imputation", "perfect", "oracle")
REFERENCES = ("perfect", "oracle")
_FACTS: dict[str, tuple[str, str, str]] = {
    "no_imputation": ("control", "no imputation", "control: the observed counts"),
    "perfect": ("control", "perfect", "control: the scenario's truth"),
    "oracle": ("control", "oracle", "control: the simulation's pre-Poisson means at each "
               "cell's observed depth"),
    "magic": ("builtin", "MAGIC", "magic-impute package (van Dijk et al. 2018)"),
    "scvi": ("builtin", "scVI", "scvi-tools package, scvi.model.SCVI (Lopez et al. 2018)"),
    "alra": ("reimplementation", "ALRA (re-impl.)",
             "re-implemented in numpy from Linderman et al. 2022"),
    "knn_smoothing": ("reimplementation", "kNN-smoothing (re-impl.)",
                      "re-implemented in numpy/scikit-learn from Wagner, Yan & Yanai 2017"),
    "dca": ("reimplementation", "DCA (re-impl.)",
            "re-implemented in torch from Eraslan et al. 2019"),
    "deepimpute": ("reimplementation", "DeepImpute (re-impl.)",
                   "re-implemented in torch from Arisdakessian et al. 2019"),
    "scziva": ("builtin", "scZiva", "scziva (this repository)"),
    "scziva_authors": ("builtin", "scZiva (authors' mode)",
                       "scziva (this repository), mode='authors'"),
    "scziva_denoise": ("builtin", "scZiva (denoise)", "scziva (this repository), denoising output"),
}


def is_external(spec) -> bool:
    """Whether a config entry ``methods.<name>`` declares the user's own method
    (``callable:`` or ``command:``)."""
    return isinstance(spec, dict) and ("callable" in spec or "command" in spec)


def describe(name: str, config_methods: dict | None = None) -> dict:
    """``{"kind", "label", "source"}`` of method ``name``, from the static table (no
    method module is imported).

    ``config_methods`` (the config's ``methods:`` mapping) makes the user's methods known:
    kind ``"user"``, label ``label:`` or ``"<name> (user)"``, source the ``callable:`` or
    ``command:`` string. A name that is neither registered nor in ``config_methods`` is
    taken to be a user method too (a metrics table read without its config).
    """
    spec = (config_methods or {}).get(name)
    if is_external(spec):
        src = spec.get("callable") or spec.get("command")
        if isinstance(src, (list, tuple)):
            src = " ".join(map(str, src))
        what = "callable" if "callable" in spec else "command"
        return {"kind": "user", "label": str(spec.get("label") or f"{name} (user)"),
                "source": f"{what}: {src}"}
    if name in _FACTS:
        kind, label, source = _FACTS[name]
        if isinstance(spec, dict) and spec.get("label"):
            label = str(spec["label"])
        return {"kind": kind, "label": label, "source": source}
    return {"kind": "user", "label": str(name), "source": ""}


@dataclass(frozen=True)
class Adapter:
    """One registered method: ``impute(counts, seed=, device=, adata=, **params)``."""

    name: str
    uses_gpu: bool
    defaults: dict = field(default_factory=dict)
    source: str = ""
    impute: Callable = None
    accepts_extra: bool = False  # parameters beyond `defaults` are passed through
    kind: str = "builtin"  # see KINDS / describe()
    label: str = ""

    def __call__(self, adata, seed=0, device=None, **params):
        return run(self.name, adata, seed=seed, device=device, **params)


def available() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(_REGISTRY)


def _load(name):
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InputError(f"unknown imputation method {name!r}; known methods: {', '.join(available())}")
    module = importlib.import_module(_REGISTRY[name], __name__)
    # a module may host several methods: METHODS = {name: (uses_gpu, defaults, impute)}
    if hasattr(module, "METHODS"):
        uses_gpu, dflt, fn = module.METHODS[name][:3]
    else:
        uses_gpu, dflt, fn = module.USES_GPU, module.DEFAULTS, module.impute
    facts = describe(name)
    return Adapter(name=name, uses_gpu=bool(uses_gpu), defaults=dict(dflt),
                   source=getattr(module, "SOURCE", "") or facts["source"], impute=fn,
                   accepts_extra=bool(getattr(module, "ACCEPTS_EXTRA", False)),
                   kind=facts["kind"], label=facts["label"])


def get(name: str) -> Adapter:
    """The adapter of method ``name`` (raises InputError listing the known names)."""
    return _load(name)


def defaults(name: str) -> dict:
    """Default parameters of method ``name`` (a fresh dict)."""
    return dict(_load(name).defaults)


def extra_values(name: str) -> dict:
    """``{parameter: values}`` a method takes beside values of its default's type (a
    module's optional ``EXTRA_VALUES``, e.g. MAGIC's ``t: "auto"``); for the config check."""
    _load(name)  # the name is known
    module = importlib.import_module(_REGISTRY[name], __name__)
    return dict(getattr(module, "EXTRA_VALUES", {}))


def resolve_device(device=None) -> str:
    """``None`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; other values as given."""
    if device is None:
        try:
            import torch
            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover
            return "cpu"
    dev = str(device)
    if dev.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise InputError(f"device {dev!r} was requested but torch sees no CUDA GPU")
    elif dev != "cpu":
        raise InputError(f"device {dev!r} is not understood; use 'cpu', 'cuda', 'cuda:N' or None")
    return dev


def _scenario_counts(adata):
    from scziva.validate import check_counts

    if adata is None or not hasattr(adata, "layers"):
        raise InputError("scenario: expected an AnnData with layers['counts']")
    if "counts" not in adata.layers:
        raise InputError("scenario: layers['counts'] is missing (the observed counts methods read)")
    counts, _ = check_counts(adata.layers["counts"], "scenario layers['counts']")
    if not sp.issparse(counts):
        counts = sp.csr_matrix(counts)
    return counts


def method_input(scenario_adata, counts=None):
    """The AnnData a method sees: a new object holding the observed counts only.

    ``X`` and ``layers["counts"]`` are one CSR float32 matrix of integer counts (a copy
    of the scenario's ``layers["counts"]``, or ``counts`` when given), cells x genes;
    ``obs_names`` and ``var_names`` are the scenario's; ``obs["n_counts"]`` is each
    cell's total count. Nothing else: no truth, mask, true groups or labels, DE facts,
    true means, nor the scenario's id or rate (``uns`` is empty).
    """
    import anndata as ad
    import pandas as pd

    if counts is None:
        counts = _scenario_counts(scenario_adata)
    obs = pd.DataFrame(index=pd.Index(scenario_adata.obs_names.astype(str), name=None))
    obs["n_counts"] = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
    var = pd.DataFrame(index=pd.Index(scenario_adata.var_names.astype(str), name=None))
    out = ad.AnnData(X=counts, obs=obs, var=var)
    out.layers["counts"] = counts
    return out


def run(name: str, scenario_adata, seed: int = 0, device=None, **params) -> np.ndarray:
    """Impute ``scenario_adata.layers["counts"]`` with method ``name``.

    The adapter receives :func:`method_input` (the counts only), except the ``perfect``
    and ``oracle`` controls, which are given ``scenario_adata`` itself (they return the
    truth / the true means).

    Returns a dense ``float32`` array, cells x genes in the input's order, on the count
    scale, finite and non-negative. ``params`` override :func:`defaults`; an unknown
    parameter raises InputError (except for adapters with ``accepts_extra``, such as
    scziva's, which pass them through). ``device=None`` means CUDA when available, for
    the methods that can use a GPU (``get(name).uses_gpu``); CPU-only methods ignore it.
    """
    adapter = _load(name)
    unknown = sorted(set(params) - set(adapter.defaults))
    if unknown and not adapter.accepts_extra:
        raise InputError(f"method {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(sorted(adapter.defaults)) or 'none'}")
    kw = {**adapter.defaults, **params}
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise InputError(f"method {name!r}: seed must be an integer, got {seed!r}") from None
    dev = resolve_device(device) if adapter.uses_gpu else "cpu"
    counts = _scenario_counts(scenario_adata)
    seen = scenario_adata if name in REFERENCES else method_input(scenario_adata, counts)
    out = adapter.impute(counts, seed=seed, device=dev, adata=seen, **kw)
    if sp.issparse(out):
        out = out.toarray()
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float32))
    if out.shape != counts.shape:
        raise RuntimeError(f"method {name!r} returned shape {out.shape}, expected {counts.shape}")
    if not np.all(np.isfinite(out)):
        raise RuntimeError(f"method {name!r} returned {int((~np.isfinite(out)).sum())} non-finite value(s)")
    np.maximum(out, 0.0, out=out)  # tiny negative rounding errors only; methods return >= 0
    return out
