"""scZiva: zero-inflated negative binomial VAE imputation for single-cell RNA-seq counts.

>>> from scziva import ZIVAimpute          # or: from ZIVA import ZIVAimpute
>>> X_imp, model = ZIVAimpute(X)           # X: cells x genes counts

scanpy-style: ``scziva.impute(adata)`` writes ``adata.layers["scziva"]``.

torch is imported on first use of the method, so that ``scziva.errors`` and
``scziva.validate`` stay light for the benchmark's scripts.
"""

from .errors import InputError

__version__ = "0.1.0"
__all__ = ["ZIVAimpute", "FittedZIVA", "InputError", "impute", "__version__"]


def __getattr__(name):
    if name in ("ZIVAimpute", "FittedZIVA"):
        from . import core
        return getattr(core, name)
    if name == "impute":
        from .anndata_api import impute
        return impute
    raise AttributeError(f"module 'scziva' has no attribute {name!r}")
