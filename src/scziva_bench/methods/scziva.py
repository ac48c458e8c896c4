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

ACCEPTS_EXTRA = True  # ZIVAimpute's keyword-only extras (batch_size, patience, ...)


def _base() -> dict:
    """The documented options at scZiva's own defaults (:class:`scziva.settings.ZivaSettings`,
    where they are written once)."""
    from scziva.settings import ZivaSettings

    d = ZivaSettings()
    return {k: getattr(d, k) for k in ("num_epochs", "lr", "hidden_dim", "latent_dim", "tau")}


_BASE = _base()


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


MODES = {"scziva": "scziva", "scziva_denoise": "scziva", "scziva_authors": "authors"}
METHODS = {
    "scziva": (dict(_BASE), _make(MODES["scziva"])),
    "scziva_denoise": ({**_BASE, "impute_value": "denoise"}, _make(MODES["scziva_denoise"])),
    "scziva_authors": (dict(_BASE), _make(MODES["scziva_authors"])),
}


def check_params(name: str, params: dict, where: str) -> list[str]:
    """The config check of scZiva's parameters (one line per problem, each starting with
    ``where``): names from ZivaSettings, names from ZivaSettings, ranges from settings.option_problem, the
    choices (impute_value, dispersion, ...) by building the settings once."""
    import dataclasses

    from scziva.settings import ZivaSettings, option_problem

    fields = {f.name for f in dataclasses.fields(ZivaSettings)}
    given = {"seed", "mode"}  # set by the benchmark (the scenario's seed, the method's mode)
    accepted = sorted(fields - given)
    out = []
    for key in params:
        if key in given:
            out.append(f"{where}.{key}: set by the benchmark ({'config `seed`' if key == 'seed' else 'the method name'}); "
                       "remove it")
        elif key not in fields:
            out.append(f"{where}.{key}: unknown parameter of {name}; accepted: {', '.join(accepted)}")
        else:
            problem = option_problem(key, params[key])
            if problem:
                out.append(f"{where}.{key}: {problem}")
    if out:
        return out
    mode = MODES[name]
    kw = {k: v for k, v in {**METHODS[name][0], **params}.items() if k in fields}
    try:
        ZivaSettings(**kw, mode=mode)
    except (ValueError, TypeError) as exc:
        out.append(f"{where}: {' '.join(str(exc).split())}")
    return out

