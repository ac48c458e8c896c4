"""Controls: ``no_imputation`` (the observed counts), ``perfect`` (the truth) and
``oracle`` (a simulation's pre-Poisson means at each cell's observed depth).

``oracle`` is the known-good output of every simulated metric
(:func:`oracle_means`, also the validation panel's known-good output); like ``perfect`` it is a reference, shown apart
and never ranked among the methods. It exists only where the scenario has
``layers["true_mean"]`` (simulations); elsewhere the workflow records it as not
applicable (:func:`scziva_bench.methods.runner.impute_scenario`).

As in Open Problems' denoising task, these bound every metric from below and above.
For a molecular cross-validation (MCV) scenario the truth layer holds the *test*
molecules (a share ``1 - p`` of the original molecules, ``p = train_fraction``) while
methods see the train molecules (a share ``p``). Metrics put an imputation on the test
scale by multiplying it by ``(1 - p) / p``, so ``perfect`` returns ``truth * p / (1 - p)``:
rescaled, it gives back the test counts exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError
from scziva_bench.catalog.scenarios import MCV_KINDS, MCV_TRAIN_FRACTION



def _no_imputation(counts, *, seed, device, adata):
    return counts.toarray().astype(np.float32)


def _perfect(counts, *, seed, device, adata):
    if "truth" not in adata.layers:
        raise InputError("method 'perfect': the scenario has no layers['truth'] to return")
    truth = adata.layers["truth"]
    truth = truth.toarray() if sp.issparse(truth) else np.asarray(truth)
    truth = truth.astype(np.float64)
    if truth.shape != counts.shape:
        raise InputError(f"method 'perfect': layers['truth'] has shape {truth.shape}, "
                         f"layers['counts'] has {counts.shape}")
    info = adata.uns.get("scenario", {}) if hasattr(adata, "uns") else {}
    if isinstance(info, dict) and info.get("kind") in MCV_KINDS:
        p = float(info.get("train_fraction", MCV_TRAIN_FRACTION))
        if not 0.0 < p < 1.0:
            raise InputError(f"method 'perfect': uns['scenario']['train_fraction'] = {p} is not in (0, 1)")
        truth = truth * (p / (1.0 - p))
    return truth.astype(np.float32)


def oracle_means(scenario_adata) -> np.ndarray:
    """The simulation's pre-Poisson means (``layers["true_mean"]``), each cell scaled to
    its observed total count: the expected counts given the cell's observed depth (for MCV,
    the depth of the train molecules the methods see). Dense float32."""
    if "true_mean" not in scenario_adata.layers:
        raise InputError("oracle: the scenario has no layers['true_mean'] (simulations only)")
    tm = scenario_adata.layers["true_mean"]
    mu = np.asarray(tm.toarray() if sp.issparse(tm) else tm, dtype=np.float64)
    C = scenario_adata.layers["counts"] if "counts" in scenario_adata.layers else scenario_adata.X
    depth = np.asarray(C.sum(axis=1)).ravel().astype(np.float64)
    tot = mu.sum(axis=1)
    scale = np.divide(depth, tot, out=np.zeros_like(depth), where=tot > 0)
    return (mu * scale[:, None]).astype(np.float32)


def _oracle(counts, *, seed, device, adata):
    out = oracle_means(adata)
    if out.shape != counts.shape:
        raise InputError(f"method 'oracle': layers['true_mean'] has shape {out.shape}, "
                         f"layers['counts'] has {counts.shape}")
    return out


# name -> (default params, impute function)
METHODS = {
    "no_imputation": ({}, _no_imputation),
    "perfect": ({}, _perfect),
    "oracle": ({}, _oracle),
}
