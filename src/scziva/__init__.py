"""scZiva: zero-inflated negative binomial VAE imputation for single-cell RNA-seq counts.

>>> from scziva import ZIVAimpute          # or: from ZIVA import ZIVAimpute
>>> X_imp, model = ZIVAimpute(X)           # X: cells x genes counts

scanpy-style: ``scziva.impute(adata)`` writes ``adata.layers["scziva"]``.
"""

from .core import FittedZIVA, ZIVAimpute
from .errors import InputError

__version__ = "0.1.0"


def impute(*args, **kwargs):
    """AnnData in, AnnData out (see :func:`scziva.anndata_api.impute`)."""
    from .anndata_api import impute as _impute
    return _impute(*args, **kwargs)


__all__ = ["ZIVAimpute", "FittedZIVA", "InputError", "impute", "__version__"]
