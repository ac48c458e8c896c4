"""scanpy-style interface: AnnData in, results written into the same object."""

from __future__ import annotations

import numpy as np

from .core import ZIVAimpute
from .errors import InputError


def impute(adata, layer: str | None = None, key_added: str = "scziva", *, copy: bool = False,
           return_dropout: bool = False, return_latent: bool = False, **kwargs):
    """Impute dropouts in ``adata`` with scZiva.

    Reads counts from ``adata.layers[layer]`` (``adata.X`` when ``layer`` is None) and writes

    * ``adata.layers[key_added]``: the imputed counts (dense float32, same genes and order);
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
    want = return_dropout or return_latent
    X_imp, model = ZIVAimpute(X, return_params=want, **kwargs)
    adata.layers[key_added] = np.asarray(X_imp, dtype=np.float32)
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
