"""scanpy-style interface: AnnData in, results written into the same object."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .core import ZIVAimpute
from .errors import InputError
from .validate import check_not_log_transformed

#: A sparse input gets a sparse (CSR) output layer when at most this share of the output's
#: entries is non-zero: CSR stores a float32 value and an int32 column index per non-zero
#: (8 bytes) against 4 bytes per entry dense, so beyond half it would be larger.
SPARSE_OUTPUT_MAX_DENSITY = 0.5


def impute(adata, *, layer: str | None = None, key_added: str = "scziva", copy: bool = False,
           return_dropout: bool = False, return_latent: bool = False, **kwargs):
    """Impute dropouts in ``adata`` with scZiva (scanpy style: options after ``adata`` are
    keyword-only).

    Reads counts from ``adata.layers[layer]`` (``adata.X`` when ``layer`` is None; an ``X``
    that scanpy log-transformed, ``uns["log1p"]``, is refused: pass ``layer=`` naming the
    raw counts) and writes

    * ``adata.layers[key_added]``: the imputed counts (float32, same genes and order); a
      ``scipy.sparse`` CSR matrix when the input was sparse and at most half of the
      output is non-zero (:data:`SPARSE_OUTPUT_MAX_DENSITY`), else a dense array;
    * ``adata.layers[key_added + "_pi"]``: per-entry dropout probabilities (``return_dropout``);
    * ``adata.obsm["X_" + key_added]``: the latent means (``return_latent``);
    * ``adata.uns[key_added]``: the settings, epochs trained and training time.

    Other keyword arguments go to :func:`scziva.ZIVAimpute` (``seed``, ``device``,
    ``num_epochs``, ``tau``, ...). Returns the AnnData when ``copy=True``, else None.
    """
    if layer is not None and layer not in adata.layers:
        raise InputError(f"layer {layer!r} not found; the AnnData has layers {sorted(adata.layers.keys())}")
    if copy:
        adata = adata.copy()
    X = adata.layers[layer] if layer is not None else adata.X
    if X is None:
        raise InputError("adata.X is empty; pass layer= to name the layer that holds the counts")
    if layer is None:
        check_not_log_transformed(adata.uns, "adata.X", "pass layer= naming the raw counts (e.g. layer='counts')")
    want = return_dropout or return_latent
    X_imp, model = ZIVAimpute(X, return_params=want, **kwargs)
    adata.layers[key_added] = _as_layer(np.asarray(X_imp, dtype=np.float32), sparse_input=sp.issparse(X))
    if model is not None:
        if return_dropout:
            adata.layers[f"{key_added}_pi"] = model.pi
        if return_latent:
            adata.obsm[f"X_{key_added}"] = model.latent
        info = {k: v for k, v in model.config.items() if v is not None}
        info.update(epochs_trained=int(model.stopped_epoch), train_seconds=float(model.train_seconds),
                    device=model.device, layer=layer if layer is not None else "X")
        adata.uns[key_added] = info
    return adata if copy else None


def _as_layer(out: np.ndarray, sparse_input: bool):
    """``out`` as CSR when the input was sparse and CSR is the smaller of the two."""
    if sparse_input and np.count_nonzero(out) <= SPARSE_OUTPUT_MAX_DENSITY * out.size:
        return sp.csr_matrix(out)
    return out
