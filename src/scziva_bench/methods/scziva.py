"""scZiva, the project's own method (``scziva.ZIVAimpute``), in two modes.

- ``scziva``: ``ZIVAimpute(counts, seed=seed, device=device, verbose=False, **params)``,
  the project's default (mini-batch ELBO with library size, early stopping);
- ``scziva_denoise``: the default model with ``impute_value="denoise"``: every entry,
  observed non-zeros included, is the model's expected count given the observation (the
  ZINB posterior mean; a denoiser, like DCA's and scVI's outputs);
- ``scziva_authors``: the same call with ``mode="authors"``, the authors' full-batch
  schedule and likelihood.

The first return value (``X_imp``, count scale, same order) is the output. Parameters
other than the defaults listed here are passed through to ``ZIVAimpute`` unchanged.
"""

from __future__ import annotations

import numpy as np

SOURCE = "scziva (this repository)"
ACCEPTS_EXTRA = True  # ZIVAimpute's keyword-only extras (batch_size, patience, ...)

_BASE = {"num_epochs": 200, "lr": 1e-3, "hidden_dim": 128, "latent_dim": 64, "tau": 0.001}


def _make(mode):
    def impute(counts, *, seed, device, adata, **params):
        from scziva import ZIVAimpute

        if mode != "scziva":
            params = {**params, "mode": mode}
        X_imp = ZIVAimpute(counts, seed=seed, device=device, verbose=False, **params)[0]
        if hasattr(X_imp, "toarray"):
            X_imp = X_imp.toarray()
        return np.asarray(X_imp, dtype=np.float32)

    return impute


METHODS = {
    "scziva": (True, dict(_BASE), _make("scziva")),
    "scziva_denoise": (True, {**_BASE, "impute_value": "denoise"}, _make("scziva")),
    "scziva_authors": (True, dict(_BASE), _make("authors")),
}
