"""Open Problems' denoising metrics, on our MCV scenarios, so that our numbers can be
compared with the field's public leaderboard (task_denoising; docs/metrics.md, "Open
Problems").

Open Problems scores a denoised matrix against the test molecules of a molecular
cross-validation split (Batson et al. 2019) with two metrics:

* :func:`mse`: mean squared error between the log-CP10k of the test counts and of the
  denoised matrix (each normalised to 10,000 per cell, then ``log1p``), over all entries;
* :func:`poisson`: the denoised matrix rescaled by ``sum(test) / sum(train)``, then the
  mean Poisson negative log-likelihood (without the ``log y!`` term) of the test counts
  under it: ``mean(pred - test * log(pred + 1e-6))``. This is Batson et al.'s order.
  Open Problems' script calls ``poisson_nll_loss(test, denoised)`` with the arguments the
  other way round (:func:`poisson_swapped`), which rewards predicting zeros: on the test
  of docs/metrics.md an all-zero output scores better than the truth.

and reports each as a score scaled between its two controls, ``no_denoising`` (0: the
train counts returned) and ``perfect_denoising`` (1: the test counts returned as they
are): :func:`mse_scaled` and :func:`poisson_scaled` compute both controls from the
scenario itself, so the scaled scores are theirs whichever methods a run has.

Our MCV scenario holds the train molecules in ``layers["counts"]`` (what methods see)
and the test molecules in ``layers["truth"]``; these functions take the metric
:class:`~scziva_bench.evaluation.metrics.Inputs`.
"""

from __future__ import annotations

import numpy as np

from scziva_bench.evaluation.metrics import _dense, lognorm

__all__ = ["log_cp10k", "mse", "poisson", "poisson_swapped", "mse_scaled", "poisson_scaled"]



def log_cp10k(X) -> np.ndarray:
    """``log1p`` of each cell normalised to 10,000 counts (cells without counts stay 0), as
    scanpy's ``normalize_total(target_sum=1e4)`` then ``log1p``: the benchmark's own
    :func:`~scziva_bench.evaluation.metrics.lognorm`, in float64."""
    return lognorm(X, target_sum=1e4, dtype=np.float64)


def _split(inputs):
    test = _dense(inputs.scenario.layers["truth"], np.float64)
    train_sum = float(inputs.scenario.layers["counts"].sum(dtype=np.float64))
    return test, train_sum


def _rescaled(output, test, train_sum: float) -> np.ndarray:
    """The output at the test depth: times ``sum(test) / sum(train)`` (their scaling)."""
    return np.asarray(output, dtype=np.float64) * (test.sum() / max(train_sum, 1.0))


def _mse(test_log, output) -> float:
    """``test_log``: :func:`log_cp10k` of the test counts."""
    return float(np.mean((test_log - log_cp10k(output)) ** 2))


def _poisson(test, output, train_sum: float) -> float:
    pred = _rescaled(output, test, train_sum)
    return float(np.mean(pred - test * np.log(pred + 1e-6)))


def mse(inputs) -> float:
    """Open Problems' MSE: log-CP10k of the test counts against that of the output."""
    test, _ = _split(inputs)
    return _mse(log_cp10k(test), inputs.imputed)


def _scaled_prediction(inputs):
    test, train_sum = _split(inputs)
    return test, _rescaled(inputs.imputed, test, train_sum)


def poisson(inputs) -> float:
    """The Poisson loss of the test counts under the rescaled output (Batson's order)."""
    test, train_sum = _split(inputs)
    return _poisson(test, inputs.imputed, train_sum)


def poisson_swapped(inputs) -> float:
    """Open Problems' call, arguments swapped: the output is scored as if it were the
    data and the test counts the prediction (for comparison only; not in the tables)."""
    test, pred = _scaled_prediction(inputs)
    return float(np.mean(test - pred * np.log(test + 1e-6)))


def _scaled(metric, inputs) -> float:
    """``(v - v_no_denoising) / (v_perfect_denoising - v_no_denoising)`` with Open Problems'
    two controls computed from the scenario itself, as their task defines them:
    ``no_denoising`` returns the train counts, ``perfect_denoising`` the test counts as
    they are (not rescaled). NaN where the two controls score the same."""
    test, train_sum = _split(inputs)
    train = _dense(inputs.scenario.layers["counts"], np.float64)
    if metric == "mse":
        test_log = log_cp10k(test)  # once for the output and both controls
        v, lo, hi = _mse(test_log, inputs.imputed), _mse(test_log, train), _mse(test_log, test)
    else:
        v, lo, hi = (_poisson(test, inputs.imputed, train_sum), _poisson(test, train, train_sum),
                     _poisson(test, test, train_sum))
    return float((v - lo) / (hi - lo)) if hi != lo else float("nan")


def mse_scaled(inputs) -> float:
    """:func:`mse` on Open Problems' scale: 0 = their ``no_denoising``, 1 = their
    ``perfect_denoising`` (higher is better)."""
    return _scaled("mse", inputs)


def poisson_scaled(inputs) -> float:
    """:func:`poisson` on Open Problems' scale: 0 = their ``no_denoising``, 1 = their
    ``perfect_denoising``, the test counts unscaled (higher is better). Our ``perfect``
    control returns the test molecules at the train depth, which the Poisson loss prefers,
    so it scores above 1 here."""
    return _scaled("poisson", inputs)
