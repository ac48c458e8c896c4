"""Imputation methods behind one interface.

>>> from scziva_bench import methods
>>> methods.available()
['alra', 'dca', 'deepimpute', 'knn_smoothing', 'magic', 'no_imputation', 'perfect', 'scvi', 'scziva', 'scziva_authors']
>>> X_imp = methods.run("magic", scenario_adata, seed=0)   # cells x genes, float32, count scale

Every method reads only ``scenario_adata.layers["counts"]`` (the ``perfect`` control
also reads ``layers["truth"]``) and returns a dense float32 ``np.ndarray`` on the count
scale, same cells and genes in the same order, finite and non-negative.

Adding a method: write a module in this package that defines ``USES_GPU`` (bool),
``DEFAULTS`` (dict of keyword parameters), ``SOURCE`` (one line: package + version or
the paper it was re-implemented from) and ``impute(counts, *, seed, device, adata,
**params) -> np.ndarray`` (``counts`` a CSR float32 matrix of integer counts), then add
one line to ``_REGISTRY`` below. Modules are imported only when their method is used,
so heavy dependencies (torch, scvi-tools, MAGIC) load lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError

__all__ = ["available", "get", "defaults", "run", "resolve_device", "Adapter"]

# name -> module (relative to this package). One line per method.
_REGISTRY: dict[str, str] = {
    "no_imputation": ".controls",
    "perfect": ".controls",
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


@dataclass(frozen=True)
class Adapter:
    """One registered method: ``impute(counts, seed=, device=, adata=, **params)``."""

    name: str
    uses_gpu: bool
    defaults: dict = field(default_factory=dict)
    source: str = ""
    impute: Callable = None
    accepts_extra: bool = False  # parameters beyond `defaults` are passed through

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
    return Adapter(name=name, uses_gpu=bool(uses_gpu), defaults=dict(dflt),
                   source=getattr(module, "SOURCE", ""), impute=fn,
                   accepts_extra=bool(getattr(module, "ACCEPTS_EXTRA", False)))


def get(name: str) -> Adapter:
    """The adapter of method ``name`` (raises InputError listing the known names)."""
    return _load(name)


def defaults(name: str) -> dict:
    """Default parameters of method ``name`` (a fresh dict)."""
    return dict(_load(name).defaults)


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


def run(name: str, scenario_adata, seed: int = 0, device=None, **params) -> np.ndarray:
    """Impute ``scenario_adata.layers["counts"]`` with method ``name``.

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
    out = adapter.impute(counts, seed=seed, device=dev, adata=scenario_adata, **kw)
    if sp.issparse(out):
        out = out.toarray()
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float32))
    if out.shape != counts.shape:
        raise RuntimeError(f"method {name!r} returned shape {out.shape}, expected {counts.shape}")
    if not np.all(np.isfinite(out)):
        raise RuntimeError(f"method {name!r} returned {int((~np.isfinite(out)).sum())} non-finite value(s)")
    np.maximum(out, 0.0, out=out)  # tiny negative rounding errors only; methods return >= 0
    return out
