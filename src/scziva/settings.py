"""All of :func:`scziva.ZIVAimpute`'s options in one checked, immutable record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DISPERSIONS = ("gene-cell", "gene")
# How the dropout probability pi is modelled: "free", one decoder output per cell and gene (the
# authors' design); "curve", a dropout curve logit(pi) = a + b log(mu), two learned numbers
# shared by every cell and gene (as SCDE's and Splatter's logistic dropout in log expression).
ZERO_INFLATIONS = ("free", "curve")

MODES = ("scziva", "authors")
IMPUTE_VALUES = ("log_mean", "log_posterior", "pi_mu", "mu", "posterior", "denoise", "zinb_mean")
# Outputs that score every entry as an expected count (molecular cross-validation): on the
# tuning data these fit better with a cell-gene dispersion; the imputed zeros with a gene-wise one.
_DENOISERS = ("denoise", "zinb_mean")
# pi_ridge="heldout" (the default until 2026-12-03): fit once per candidate, keep the fit with
# the lower held-out negative ELBO (docs/scziva.md, "Zero-inflation penalty chosen by held-out
# likelihood").
PI_RIDGE_CANDIDATES = (0.0, 1.0)
# pi_ridge="auto" on the imputed output: one fit, with the penalty PI_RIDGE_RULE_VALUE when more
# than SAMPLING_ZERO_MAJORITY of the observed zeros are what Poisson sampling at the observed
# depth gives (scziva.data.sampling_zero_share), else without (docs/scziva.md, "One fit").
PI_RIDGE_RULE_VALUE = 1.0
SAMPLING_ZERO_MAJORITY = 0.5

#: Seeds feed numpy, torch and scikit-learn; the last takes 0 .. 2**32 - 1.
MAX_SEED = 2 ** 32 - 1

# The numeric options: name -> (integer?, lowest, highest, highest excluded?). One table for
# ZivaSettings (names as in ZIVAimpute) and the command line (which names its own flags).
_NUMERIC = {
    "seed": (True, 0, MAX_SEED, False),
    "num_epochs": (True, 1, None, False),
    "lr": (False, 0.0, None, False),
    "hidden_dim": (True, 1, None, False),
    "latent_dim": (True, 1, None, False),
    "tau": (False, 0.0, 1.0, False),  # 1: no zero is filled (pi < 1 always)
    "batch_size": (True, 1, None, False),
    "kernel": (True, 1, None, False),
    "validation_fraction": (False, 0.0, 1.0, True),
    "patience": (True, 1, None, False),
    "min_delta": (False, 0.0, None, False),
    "kl_warmup_epochs": (True, 0, None, False),
    "w_min": (False, 0.0, None, False),
    "w_max": (False, 0.0, None, False),
    "lam_reg": (False, 0.0, None, False),
    "aux_scale": (False, 0.0, None, False),
}
_POSITIVE = ("lr",)  # > 0, not >= 0


def option_problem(name: str, value) -> str | None:
    """What is wrong with ``value`` for the numeric option ``name``, as "must be ...,
    got ..." (no option name), or None when it is fine or ``name`` is not numeric."""
    if name not in _NUMERIC:
        return None
    integer, low, high, high_open = _NUMERIC[name]
    if integer:
        want = f"an integer >= {low}" + (f" and <= {high:,}" if high is not None else "")
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        ok = ok and value >= low and (high is None or value <= high)
    else:
        if name in _POSITIVE:
            want = "a finite number > 0"
        elif high is not None:
            want = f"a number >= {low:g} and {'<' if high_open else '<='} {high:g}"
        else:
            want = f"a finite number >= {low:g}"
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if ok:
            v = float(value)
            ok = bool(np.isfinite(v)) and (v > low if name in _POSITIVE else v >= low)
            ok = ok and (high is None or (v < high if high_open else v <= high))
    return None if ok else f"must be {want}, got {value!r}"


# Keys recorded in FittedZIVA.config (and adata.uns by scziva.impute).
_RECORDED = ("seed", "num_epochs", "lr", "hidden_dim", "latent_dim", "tau", "mode", "batch_size",
             "kernel", "validation_fraction", "patience", "min_delta", "kl_warmup_epochs",
             "impute_value", "aux_scale", "dispersion", "pi_ridge", "zero_inflation")


@dataclass(frozen=True)
class ZivaSettings:
    """Settings of one scZiva fit; the meaning of each is in :func:`scziva.ZIVAimpute`."""

    seed: int = 1
    num_epochs: int = 200
    lr: float = 1e-3
    hidden_dim: int = 128
    latent_dim: int = 64
    tau: float = 0.001
    mode: str = "scziva"
    batch_size: int = 128
    kernel: int = 64
    gene_order: Any = "auto"
    validation_fraction: float = 0.1
    patience: int = 15
    min_delta: float = 5e-3  # 1e-3 until 2026-12-03 (docs/scziva.md, "Speed and stopping")
    kl_warmup_epochs: int = 10
    w_min: float = 0.5
    w_max: float = 1.5
    lam_reg: float = 1e-3
    impute_value: str = "auto"  # resolved: "log_mean", or "pi_mu" in the authors' mode
    aux_scale: float = 0.1
    dispersion: str = "auto"  # resolved: "gene", or "gene-cell" for the denoisers and the authors' mode
    # resolved: "rule" (scziva.core.rule_pi_ridge) for the imputed output, else 0.0; "heldout":
    # "select" (among PI_RIDGE_CANDIDATES) for the imputed output with held-out cells, else 0.0
    pi_ridge: Any = "auto"
    zero_inflation: str = "free"  # or "curve" (module.ZERO_INFLATIONS)

    def __post_init__(self):
        for name in _NUMERIC:
            problem = option_problem(name, getattr(self, name))
            if problem:
                raise ValueError(f"{name} {problem}")
        if self.w_min > self.w_max:
            raise ValueError(f"w_min must be <= w_max, got {self.w_min!r} > {self.w_max!r}")
        if isinstance(self.impute_value, str) and self.impute_value == "auto":
            object.__setattr__(self, "impute_value", "pi_mu" if self.mode == "authors" else "log_mean")
        if isinstance(self.dispersion, str) and self.dispersion == "auto":
            cell = self.mode == "authors" or self.impute_value in _DENOISERS
            object.__setattr__(self, "dispersion", "gene-cell" if cell else "gene")
        bad_ridge = f"pi_ridge must be 'auto', 'heldout' or a number >= 0, got {self.pi_ridge!r}"
        if isinstance(self.pi_ridge, str):
            # "rule" and "select": already resolved (dataclasses.replace)
            if self.pi_ridge not in ("auto", "heldout", "rule", "select"):
                raise ValueError(bad_ridge)
            imputed = not self.authors and self.impute_value not in _DENOISERS
            if self.pi_ridge in ("auto", "rule"):
                resolved = "rule" if imputed else 0.0
            else:
                resolved = "select" if imputed and self.validation_fraction > 0 else 0.0
            object.__setattr__(self, "pi_ridge", resolved)
        else:
            try:
                value = float(self.pi_ridge)
            except (TypeError, ValueError):
                raise ValueError(bad_ridge) from None
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(bad_ridge)
            if value and self.authors:
                raise ValueError("pi_ridge is not part of mode='authors' (their loss has no such term)")
            object.__setattr__(self, "pi_ridge", value)
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {MODES}")
        if self.impute_value not in IMPUTE_VALUES:
            raise ValueError(f"impute_value must be one of {IMPUTE_VALUES}, got {self.impute_value!r}")
        if self.zero_inflation not in ZERO_INFLATIONS:
            raise ValueError(f"zero_inflation must be one of {ZERO_INFLATIONS}, got {self.zero_inflation!r}")
        if self.zero_inflation != "free" and self.authors:
            raise ValueError("zero_inflation='curve' is not part of mode='authors' (their decoder outputs pi)")
        if self.dispersion not in DISPERSIONS:
            raise ValueError(f"dispersion must be one of {DISPERSIONS} or 'auto', got {self.dispersion!r}")

    @property
    def authors(self) -> bool:
        return self.mode == "authors"

    def recorded(self) -> dict:
        """The settings kept with a fitted model (``FittedZIVA.config``)."""
        d = asdict(self)
        return {k: d[k] for k in _RECORDED}
