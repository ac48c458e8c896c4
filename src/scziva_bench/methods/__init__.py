"""Imputation methods behind one interface.

>>> from scziva_bench import methods
>>> methods.available()                   # the catalog's built-in methods, sorted
>>> X_imp = methods.run(name, scenario_adata, seed=0)   # cells x genes, float32, count scale

Every method sees only the observed counts: :func:`run` hands its adapter a new
AnnData made by :func:`method_input` (counts, cell and gene names, ``obs["n_counts"]``;
no truth, mask, labels or scenario facts). Only the ``perfect`` control gets the whole
scenario (it returns ``layers["truth"]``). A method returns a dense float32
``np.ndarray`` on the count scale, same cells and genes in the same order, finite and
non-negative.

Method facts (kind, label, source, conda environment, GPU use, colour) are rows of
:mod:`scziva_bench.catalog.methods`: :func:`describe` reads them and imports no method
module (no torch, no scvi-tools). Methods named in a config with ``callable:`` or
``command:`` are the user's own (``kind = "user"``, see
:mod:`scziva_bench.methods.external`).

Adding a method (docs/contributing.md): a module in this package that defines
``DEFAULTS`` (dict of keyword parameters) and ``impute(counts, *, seed, device, adata,
**params) -> np.ndarray`` (``counts`` a CSR float32 matrix of integer counts), and one
row in :mod:`scziva_bench.catalog.methods`. Optional: ``SOURCE`` (a more precise source
for provenance, e.g. the installed package's version), ``ACCEPTS_EXTRA`` (parameters
beyond ``DEFAULTS`` are passed through), ``EXTRA_VALUES`` (values a parameter takes
beside its default's type). A module may host several methods: ``METHODS = {name:
(defaults, impute)}``. Modules are imported only when their method is used, so heavy
dependencies (torch, scvi-tools, MAGIC) load lazily. (A method outside the package needs
no edit at all: name it in the config with ``callable:`` or ``command:``, see
docs/own_method.md.)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench.catalog import methods as catalog

__all__ = ["available", "get", "defaults", "run", "resolve_device", "Adapter", "describe",
           "is_external", "method_input", "KINDS", "CONTROLS", "REFERENCES"]

KINDS = catalog.KINDS
CONTROLS = catalog.CONTROLS
REFERENCES = catalog.REFERENCES


is_external = catalog.is_user


def describe(name: str, config_methods: dict | None = None) -> dict:
    """``{"kind", "label", "source"}`` of method ``name``, from its catalog row (no
    method module is imported).

    ``config_methods`` (the config's ``methods:`` mapping) makes the user's methods known:
    kind ``"user"``, label ``label:`` or ``"<name> (user)"``, source the ``callable:`` or
    ``command:`` string. A name that is neither built in nor in ``config_methods`` is
    taken to be a user method too (a metrics table read without its config).
    """
    spec = (config_methods or {}).get(name)
    label = catalog.label(name, config_methods)
    if is_external(spec):
        src = spec.get("callable") or spec.get("command")
        if isinstance(src, (list, tuple)):
            src = " ".join(map(str, src))
        what = "callable" if "callable" in spec else "command"
        return {"kind": "user", "label": label, "source": f"{what}: {src}"}
    row = catalog.row(name)
    if row is not None:
        return {"kind": row.kind, "label": label, "source": row.source}
    return {"kind": "user", "label": label, "source": ""}


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
    """Names of the built-in methods (rows of :mod:`scziva_bench.catalog.methods`), sorted."""
    return catalog.names()


def _load(name):
    row = catalog.row(name) if isinstance(name, str) else None
    if row is None:
        raise InputError(f"unknown imputation method {name!r}; known methods: {', '.join(available())}")
    module = _module(row)
    # a module may host several methods: METHODS = {name: (defaults, impute)}
    if hasattr(module, "METHODS"):
        dflt, fn = module.METHODS[name]
    else:
        dflt, fn = module.DEFAULTS, module.impute
    return Adapter(name=name, uses_gpu=row.uses_gpu, defaults=dict(dflt),
                   source=getattr(module, "SOURCE", "") or row.source, impute=fn,
                   accepts_extra=bool(getattr(module, "ACCEPTS_EXTRA", False)),
                   kind=row.kind, label=row.label)


def _module(row):
    return importlib.import_module(f"{__name__}.{row.module}")


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
    return dict(getattr(_module(catalog.row(name)), "EXTRA_VALUES", {}))


def param_check(name: str):
    """A module's own check of a method's config parameters (``check_params(name, params,
    where) -> [lines]``, e.g. scZiva's ranges), or None: the config check then compares
    each value's type with its default's."""
    _load(name)  # the name is known
    return getattr(_module(catalog.row(name)), "check_params", None)


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
