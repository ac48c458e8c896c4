"""scZiva's public call, :func:`ZIVAimpute`: prepare the data, fit, impute in batches.

The pieces, in the spirit of scvi-tools' module / training plan / model split:

* :mod:`scziva.settings` -- every option in one checked dataclass (:class:`ZivaSettings`);
* :mod:`scziva.data` -- which cells and genes are modelled, the gene order, library sizes;
* :mod:`scziva.module` -- the network and the ZINB likelihood;
* :mod:`scziva.training` -- the losses and the two training plans;
* this module -- the call documented by the authors and the imputation rule.

Two training modes share one network:

``mode="scziva"`` (default)
    Mini-batches over cells, the usual evidence lower bound (ZINB log-likelihood summed
    over genes per cell, KL per cell), the decoder's mean scaled by each cell's library
    size, log1p input to the encoder, the auxiliary reconstruction term, and early
    stopping on a held-out 10 % of cells. ``num_epochs`` is the maximum number of epochs.
``mode="authors"``
    The authors' code, step for step: full-batch Adam for exactly ``num_epochs`` steps,
    the ZINB term averaged over all entries but the KL term over cells, their NB
    parametrisation (``logits = log(theta) - log(mu)``, whose mean is ``theta^2 / mu``;
    :func:`scziva.module.authors_zinb_log_prob`), raw counts into the encoder, no library
    size, and imputation from a sampled latent.

Why they differ (measured; see README "How this implementation relates to the
authors' code"): with full-batch training 200 epochs are only 200 optimiser steps; the
KL term weighs about G times more than in the ELBO, so the latent collapses and every
cell gets nearly the same profile; and without the library size in the mean the decoder
cannot fit cells of different depth.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import torch

import torch.nn.functional as F

from .allocator import reuse_freed_memory
from .data import Batches, PreparedData, prepare_data, sampling_zero_share

from .module import THETA_MAX, THETA_MIN, ZIVAE, Log1pNBTable, expected_log1p_nb
from .settings import (IMPUTE_VALUES, MODES, PI_RIDGE_CANDIDATES, PI_RIDGE_RULE_VALUE,  # noqa: F401  (re-exported)
                       SAMPLING_ZERO_MAJORITY, ZivaSettings)
from .training import AuthorsPlan, MiniBatchPlan, Reporter
from .validate import check_counts

IMPUTE_BATCH = 4096
# At most this many entries (cells x genes) per batch of the output: at 20,000 genes 4,096
# cells would be 82 million entries, and each of the imputation's intermediates 330 MB.
IMPUTE_ENTRIES = 1 << 22


def impute_batch_cells(n_genes: int) -> int:
    """Cells per batch of the output: IMPUTE_BATCH, fewer when genes are many."""
    return int(max(1, min(IMPUTE_BATCH, IMPUTE_ENTRIES // max(int(n_genes), 1))))


def resolve_device(device=None) -> torch.device:
    """``None`` (or ``"auto"``) picks CUDA when present, else the CPU. Accepted: ``"cpu"``,
    ``"cuda"``, ``"cuda:N"``, ``"mps"`` (Apple GPUs) or a ``torch.device``; anything else,
    or a device this machine does not have, raises ValueError naming it."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    usage = "use 'cpu', 'cuda', 'cuda:N', 'mps' or None (CUDA when available)"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a string or torch.device, got {device!r}; {usage}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"device {str(device)!r} is not understood; {usage}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} was requested but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {str(device)!r} was requested but Apple's MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; {usage}")
    return dev


@dataclass
class FittedZIVA:
    """What :func:`ZIVAimpute` returns beside the imputed matrix.

    ``module`` is the trained network (genes in ``gene_order``); ``pi``, ``mu``, ``theta``
    (NB inverse dispersion) and ``latent`` are filled when asked for (``return_params=True``), in the caller's gene
    order, for the cells and genes that were modelled (others are NaN).
    """

    module: ZIVAE
    gene_order: np.ndarray
    mode: str
    config: dict
    history: list = field(default_factory=list)
    device: str = "cpu"
    train_seconds: float = 0.0
    stopped_epoch: int = 0
    pi: np.ndarray | None = None
    mu: np.ndarray | None = None
    latent: np.ndarray | None = None
    theta: np.ndarray | None = None
    # How config["pi_ridge"] was chosen: pi_ridge="auto", {"sampling_zero_share": s} (the
    # statistic of scziva.data.sampling_zero_share; the penalty is used when s > 0.5);
    # pi_ridge="heldout", the held-out negative ELBO of each candidate's fit ({ridge: loss}).
    # None when no choice was made.
    pi_ridge_selection: dict | None = None

    # Allow `model.eval()` / `model(x)` habits from the authors' code (their second return
    # value is the nn.Module itself).
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        module = self.__dict__.get("module")
        if module is None:
            raise AttributeError(name)
        return getattr(module, name)


def ZIVAimpute(X, seed=1, device=None, num_epochs=200, lr=1e-3, hidden_dim=128, latent_dim=64,
               verbose=False, tau=0.001, *, mode="scziva", batch_size=128, kernel=64,
               gene_order="auto", validation_fraction=0.1, patience=15, min_delta=5e-3,
               kl_warmup_epochs=10, w_min=0.5, w_max=1.5, lam_reg=1e-3, return_params=False,
               progress=None, impute_value="auto", aux_scale=0.1, dispersion="auto", pi_ridge="auto",
               zero_inflation="free"):
    """Impute dropouts in a cells x genes count matrix with scZiva.

    Parameters (the first nine as the scZiva authors document them)
    ----------
    X : array-like, scipy sparse matrix or pandas DataFrame, cells x genes, raw counts.
        Non-integer values are rounded with a warning; NaN, Inf, negative values raise.
    seed : random seed; the same seed gives the same output bit for bit on the CPU.
    device : ``"cpu"``, ``"cuda"``, a ``torch.device``, or ``None`` (CUDA when present).
    num_epochs : maximum number of passes over the cells (``mode="authors"``: exactly this
        many full-batch steps).
    lr : Adam learning rate.  hidden_dim, latent_dim : network sizes.
    verbose : print the loss every 20 epochs and show a progress bar.
    tau : an observed zero is imputed only where the dropout probability ``pi > tau``.

    Keyword-only extras
    -------------------
    mode : ``"scziva"`` (mini-batch ELBO with library size; default) or ``"authors"``.
    batch_size : cells per mini-batch (``mode="scziva"``).
    kernel : convolution kernel length (``min(kernel, G)`` is used).
    gene_order : ``"auto"``, ``"exact"``, ``"approx"``, ``"none"``, or an explicit permutation.
    validation_fraction, patience, min_delta : early stopping on held-out cells: training
        stops when ``patience`` epochs (at least ``MIN_PATIENCE_STEPS`` optimiser steps)
        brought no relative improvement of ``min_delta`` (0.5 %); the weights of the best
        epoch, however small its gain, are kept.
    kl_warmup_epochs : the KL weight rises linearly from 0 to 1 over these epochs (at most
        ``MAX_WARMUP_STEPS`` optimiser steps on large data).
    w_min, w_max, lam_reg : range of the learnable auxiliary weight and its pull towards 1.
    aux_scale : weight of the auxiliary term relative to the per-cell ELBO (0.1, measured).
    dispersion : ``"auto"`` (default: ``"gene"``, one learned inverse dispersion per gene,
        except ``"gene-cell"`` with ``impute_value="denoise"`` or ``"zinb_mean"`` and with
        ``mode="authors"``), ``"gene"``, or ``"gene-cell"`` (the decoder's third head, the
        authors' design). Chosen on tuning data: gene-wise for imputed zeros, cell-gene
        for the denoisers (docs/scziva.md).
    pi_ridge : weight of a ridge penalty ``pi_ridge * sum(pi^2)`` per cell on the dropout
        probabilities (a number >= 0), ``"auto"`` (default) or ``"heldout"``. On shallow
        counts a zero is explained almost as well by a low mean as by a high mean with a high
        ``pi``; the penalty prefers the first, which helps shallow (UMI) data and breaks deep
        data with many dropouts (docs/scziva.md). ``"auto"``, for the imputed output: one
        fit, with the penalty 1 when more than half of the observed zeros are what Poisson
        sampling at the observed depth gives (the expected number of zeros of a Poisson
        with mean library size x the gene's share of all counts, over the observed number;
        :func:`scziva.data.sampling_zero_share`), else 0; that share is in
        ``model.pi_ridge_selection["sampling_zero_share"]``. ``"heldout"`` (the default
        until 2026-12-03): one fit with each of ``PI_RIDGE_CANDIDATES`` (0 and 1), keeping
        the fit whose held-out cells have the lower negative ELBO (the penalty not counted),
        so training takes twice as long; the losses are in ``model.pi_ridge_selection``,
        and without held-out cells it is 0. Both are 0 for ``"denoise"`` /
        ``"zinb_mean"`` and for ``mode="authors"``. The value used is in
        ``model.config["pi_ridge"]``.
    zero_inflation : ``"free"`` (default: the decoder outputs a dropout probability for every
        cell and gene, the authors' design) or ``"curve"``: a dropout curve,
        ``logit(pi) = a + b log(mu)`` with two learned numbers shared by all cells and genes
        (dropout falls with expression, as in SCDE's and Splatter's logistic models). On
        shallow genes the free head cannot tell a dropout from a low mean; the curve
        borrows that from the deeper genes. Measured, not the default: it lowers log1p MSE
        on deep simulations at 20-50 % dropout and on shallow ones at 80 %, and helps
        full-length data, but lowers the dropped-entry correlation at 20 % and triples
        the log1p MSE of deep data at 80 % (docs/scziva.md, "Dropout curve"). Not in
        ``mode="authors"``.
    return_params : also fill ``model.pi``, ``model.mu`` and ``model.latent``.
    progress : show one tqdm progress bar for the whole fit (default: when ``verbose`` or
        when standard error is a terminal).
    impute_value : what an observed zero with ``pi > tau`` becomes: ``"auto"`` (default:
        ``"log_mean"``, or ``"pi_mu"`` with ``mode="authors"``);
        ``"log_mean"``: ``expm1(E[log1p X])`` with ``X ~ NB(mu, theta)`` the count had there
        been no dropout, i.e. ``mu`` taken on the log1p scale where expression is analysed
        (:func:`fill_value`); ``"log_posterior"``: ``expm1(P(dropout | 0) E[log1p X])``;
        ``"mu"`` (the NB mean); ``"pi_mu"`` (``(1 - pi) * mu``, the authors' rule; it shrinks
        hard where ``pi`` is large); ``"posterior"`` (``P(dropout | 0) * mu`` with
        ``P(dropout | 0) = pi / (pi + (1 - pi) NB(0))``); ``"denoise"``: EVERY entry,
        observed non-zeros included, becomes the model's expected count given the
        observation (:func:`posterior_rate`; ``tau`` is not used); or ``"zinb_mean"``: every
        entry becomes ``(1 - pi) * mu`` (the observation ignored).

    Returns
    -------
    X_imp : the imputed counts, same shape and gene order as ``X`` (a DataFrame with the same
        labels if ``X`` was one, a float32 ndarray otherwise). Observed non-zero values are
        unchanged (except with ``impute_value="denoise"``); all-zero cells and genes stay zero.
    model : :class:`FittedZIVA` (the trained network, gene order, loss history).
    """
    s = ZivaSettings(seed=seed, num_epochs=num_epochs, lr=lr, hidden_dim=hidden_dim,
                     latent_dim=latent_dim, tau=tau, mode=mode, batch_size=batch_size, kernel=kernel,
                     gene_order=gene_order, validation_fraction=validation_fraction,
                     patience=patience, min_delta=min_delta, kl_warmup_epochs=kl_warmup_epochs,
                     w_min=w_min, w_max=w_max, lam_reg=lam_reg, impute_value=impute_value,
                     aux_scale=aux_scale, dispersion=dispersion, pi_ridge=pi_ridge,
                     zero_inflation=zero_inflation)
    frame_labels = (X.index, X.columns) if hasattr(X, "columns") and hasattr(X, "index") else None
    M, _notes = check_counts(X, "ZIVAimpute input")
    dev = resolve_device(device)
    prepared = prepare_data(M, s)
    if prepared is None:
        warnings.warn("fewer than two cells with counts: nothing to learn, input returned unchanged")
        out = M.toarray() if sp.issparse(M) else M.copy()
        return _wrap(out.astype(np.float32), frame_labels), None
    del M  # our own validated copy; from here on only the prepared matrix (and the output) are held
    model, plan, data = fit(prepared, s, dev, verbose=verbose, progress=progress)
    out, params = impute_batches(model, data, prepared, s, return_params=return_params)
    fitted = FittedZIVA(module=model, gene_order=prepared.full_gene_order(), mode=s.mode,
                        history=plan.history, device=str(dev), train_seconds=plan.train_seconds,
                        stopped_epoch=plan.stopped_epoch, **params,
                        config=plan.s.recorded(), pi_ridge_selection=plan.pi_ridge_selection)
    return _wrap(out, frame_labels), fitted


def rule_pi_ridge(s: ZivaSettings, X, library, gene_totals=None, verbose=False):
    """Resolve ``pi_ridge="auto"`` (``s.pi_ridge == "rule"``) to a number from the data.

    The penalty ``PI_RIDGE_RULE_VALUE`` is used when more than half of the observed zeros
    are what Poisson sampling at the observed depth would produce
    (:func:`scziva.data.sampling_zero_share` > ``SAMPLING_ZERO_MAJORITY``): then a zero is
    explained about as well by a low mean as by a dropout, and the penalty prefers the low
    mean. Otherwise most zeros sit where sampling would have given counts, and ``pi`` is
    left free to explain them. Returns the settings with the number and
    ``{"sampling_zero_share": share}``, or ``(s, None)`` for any other ``pi_ridge``.
    ``X``: the modelled cells x genes (or a sample of its rows with their ``library``;
    ``gene_totals`` over all cells then, default: ``X``'s column sums).
    """
    if s.pi_ridge != "rule":
        return s, None
    if gene_totals is None:
        gene_totals = np.asarray(X.sum(axis=0)).ravel()
    share = sampling_zero_share(X, library, gene_totals, seed=s.seed)
    ridge = PI_RIDGE_RULE_VALUE if share > SAMPLING_ZERO_MAJORITY else 0.0
    if verbose:
        print(f"pi_ridge: {share:.1%} of the zeros are Poisson sampling zeros; pi_ridge={ridge:g}")
    return replace(s, pi_ridge=ridge), {"sampling_zero_share": share}


def fit(prepared: PreparedData, s: ZivaSettings, dev: torch.device, *, verbose=False, progress=None,
        data=None):
    """Build the network and train it with the plan of ``s.mode``; returns (model, plan, batches).

    With ``s.pi_ridge == "rule"`` (``"auto"``): one fit, the penalty from
    :func:`rule_pi_ridge` on ``prepared.matrix`` (``plan.s`` holds it, ``plan.pi_ridge_selection``
    the statistic); streamed data (no matrix) must resolve it first.
    With ``s.pi_ridge == "select"`` (``"heldout"``): one fit per ``PI_RIDGE_CANDIDATES`` value (same seed,
    hence the same held-out cells), and the one with the lowest held-out negative ELBO is
    returned; ``plan.s`` holds its settings, ``plan.pi_ridge_selection`` every candidate's
    loss, ``plan.train_seconds`` the time of all fits. Without held-out cells (too few
    cells) the first candidate (0) is used and nothing is compared. One progress bar spans
    every fit (``progress=None``: on a terminal, or when ``verbose``). ``data``: the
    mini-batch source (default: the prepared matrix in memory; see :func:`_fit_one`).
    """
    if progress is None:
        progress = bool(verbose) or _stderr_is_terminal()
    rule = None
    if s.pi_ridge == "rule":
        if prepared.matrix is None:  # streamed data: the caller resolves it on its sample
            raise ValueError("pi_ridge='auto' needs the matrix in memory; resolve it with rule_pi_ridge first")
        s, rule = rule_pi_ridge(s, prepared.matrix, prepared.library, verbose=verbose)
    candidates = PI_RIDGE_CANDIDATES if s.pi_ridge == "select" else (None,)
    report = Reporter(s.num_epochs, verbose, progress, n_fits=len(candidates))
    try:
        if candidates == (None,):
            fitted = _fit_one(prepared, s, dev, report, data=data)
            fitted[1].pi_ridge_selection = rule
            return fitted
        best, losses, seconds = None, {}, 0.0
        for k, ridge in enumerate(candidates):
            report.start_fit(k, f"pi_ridge={ridge:g}")
            fitted = _fit_one(prepared, replace(s, pi_ridge=ridge), dev, report, data=data)
            plan = fitted[1]
            seconds += plan.train_seconds
            if plan.best_val is None:
                return fitted
            losses[ridge] = plan.best_val
            if best is None or plan.best_val < best[1].best_val:
                best = fitted
            del fitted, plan
    finally:
        report.close()
    model, plan, data = best
    plan.train_seconds = seconds
    plan.pi_ridge_selection = losses
    if verbose:
        tried = ", ".join(f"{k:g}: {v:.4f}" for k, v in losses.items())
        print(f"pi_ridge: held-out negative ELBO {tried}; kept {plan.s.pi_ridge:g}")
    return model, plan, data


def _fit_one(prepared: PreparedData, s: ZivaSettings, dev: torch.device, report: Reporter, data=None):
    """One fit; ``data``: the mini-batch source (default: the prepared matrix in memory;
    :mod:`scziva.stream` passes its on-disk one)."""
    G = prepared.columns.size
    torch.manual_seed(s.seed)  # the network's initial weights
    model = ZIVAE(G, s.hidden_dim, s.latent_dim, kernel=s.kernel,
                  library_size=not s.authors, log_input=not s.authors,
                  dispersion="gene-cell" if s.authors else s.dispersion,
                  zero_inflation=s.zero_inflation).to(dev)
    if not s.authors and prepared.gene_totals is not None:
        model.start_at_average_profile(prepared.gene_totals)
    if s.authors:
        plan = AuthorsPlan(model, s, report)
    else:
        # One generator for the validation split and every epoch's shuffle (seeded here,
        # after the network is initialised from torch's generator).
        plan = MiniBatchPlan(model, s, report, np.random.default_rng(s.seed))
    if data is None:
        data = Batches(prepared.matrix, prepared.library, dev)
    t0 = time.perf_counter()
    with reuse_freed_memory(dev.type):
        plan.fit(data)
    plan.train_seconds = time.perf_counter() - t0
    return model, plan, data


def impute_batches(model: ZIVAE, data: Batches, prepared: PreparedData, s: ZivaSettings,
                   return_params: bool = False):
    """The imputed matrix in the caller's shape and gene order, computed batch by batch, and
    a dict: with ``return_params`` pi, mu, theta (cells x genes) and the latent means."""
    n_cells, n_genes = prepared.shape
    model.eval()
    # Cells and genes left out of training are all zero; every other entry is written below.
    out = np.zeros((n_cells, n_genes), dtype=np.float32)
    cols, keep_cells = prepared.columns, prepared.keep_cells
    params = {}
    if return_params:
        params = {k: np.full((n_cells, n_genes), np.nan, np.float32) for k in ("pi", "mu", "theta")}
        params["latent"] = np.full((n_cells, s.latent_dim), np.nan, np.float32)
    step = data.n if s.authors else impute_batch_cells(n_genes)
    with torch.no_grad(), reuse_freed_memory(next(model.parameters()).device.type):
        table = log1p_table(model, s, float(prepared.library.max()), data.n)
        for start in range(0, data.n, step):
            idx = np.arange(start, min(start + step, data.n))
            x, lib = data.get(idx)
            if s.authors:  # the authors impute from a sampled latent
                pi, mu, theta, m, _ = model(x, sample=True)
            else:
                pi, mu, theta, m, _ = model(x, lib, sample=False)
            x_imp = impute_rule(x, pi, mu, theta, s, table)
            rows = keep_cells[idx]
            out[np.ix_(rows, cols)] = x_imp.cpu().numpy()
            if return_params:
                for k, v in (("pi", pi), ("mu", mu), ("theta", theta)):
                    params[k][np.ix_(rows, cols)] = v.cpu().numpy()
                params["latent"][rows] = m.cpu().numpy()
    return out, params


#: Below this many cells the per-entry quadrature is cheaper than building the per-gene
#: table (Log1pNBTable's ``TABLE_POINTS`` quadratures per gene against one per filled entry,
#: and most entries are zeros). Was 2,048 with a 512-point table, when the build at
#: 1,000 x 20,000 took longer than the entries it replaced; 256 points keep the relative
#: error below 1e-5 (test) at half the cost.
TABLE_MIN_CELLS = 512
TABLE_POINTS = 256


def log1p_table(model: ZIVAE, s: ZivaSettings, mu_max: float, n_cells: int):
    """A :class:`scziva.module.Log1pNBTable` when the output needs ``E[log1p X]``, the
    model has one dispersion per gene (the default) and there are enough cells for the
    table to pay off; else None (exact quadrature per entry)."""
    if s.impute_value not in ("log_mean", "log_posterior") or model.dispersion != "gene":
        return None
    if n_cells < TABLE_MIN_CELLS:
        return None
    with torch.no_grad():
        theta_g = F.softplus(model.theta_raw).clamp(THETA_MIN, THETA_MAX)
    return Log1pNBTable(theta_g, mu_max, points=TABLE_POINTS)


def impute_rule(x, pi, mu, theta, s: ZivaSettings, table=None) -> torch.Tensor:
    """The output for one batch: observed zeros with ``pi > tau`` get the imputed value.
    ``table``: :func:`log1p_table` of the model, for the log rules (else exact)."""
    if s.impute_value == "denoise":  # every entry, observed counts included
        return posterior_rate(x, pi, mu, theta)
    if s.impute_value == "zinb_mean":  # every entry: the model's mean, ignoring the observation
        return (1 - pi) * mu
    fill = (x == 0) & (pi > s.tau)
    if table is not None and 2 * int(fill.sum()) > fill.numel():
        # Most entries filled (sparse counts): one pass over the whole batch is cheaper than
        # gathering the filled entries' pi, mu, theta and their genes and scattering back.
        return torch.where(fill, fill_value(s.impute_value, pi, mu, theta, table=table), x)
    out = x.clone()  # the fill value is computed only where it is used (log_mean: a quadrature)
    genes = fill.nonzero()[:, 1] if table is not None else None
    out[fill] = fill_value(s.impute_value, pi[fill], mu[fill], theta[fill], table=table, genes=genes)
    return out


def posterior_rate(x, pi, mu, theta):
    """The model's expected count given the observed one (``impute_value="denoise"``).

    Under the NB (a Gamma(theta, theta / mu) rate, Poisson counts) the posterior mean rate
    after observing ``x`` is ``mu (theta + x) / (theta + mu)``: close to ``x`` where the
    gene is deep relative to its dispersion, close to ``mu`` where it is shallow. A zero may
    also be a dropout (probability ``P(dropout | 0) = pi / (pi + (1 - pi) NB(0))``), which
    is expected to stay a zero: its expected count is ``(1 - P(dropout | 0))`` times the
    NB posterior. This is the ZINB's expected count of a new draw of the same cell, the
    quantity molecular cross-validation scores.
    """
    post = mu * (theta + x) / (theta + mu)
    return torch.where(x > 0, post, (1 - dropout_given_zero(pi, mu, theta)) * post)


def dropout_given_zero(pi, mu, theta):
    """``P(dropout | observed 0) = pi / (pi + (1 - pi) NB(0))``, NB(0) in log space."""
    log_nb0 = theta * (torch.log(theta) - torch.log(theta + mu))
    return pi / (pi + (1 - pi) * torch.exp(log_nb0))


def fill_value(rule, pi, mu, theta, table=None, genes=None):
    """The value an observed zero gets under ``impute_value=rule``, element-wise. With
    ``X ~ NB(mu, theta)`` the count had there been no dropout (:func:`expected_log1p_nb`):

    * ``"log_mean"`` (the default): ``expm1(E[log1p X])``, the log1p-scale counterpart of
      ``mu``: the value whose log1p is the expected log1p of the lost count. It lies below
      ``mu`` (Jensen), most for shallow, over-dispersed genes.
    * ``"log_posterior"``: ``expm1(P(dropout | 0) E[log1p X])``, the posterior mean of the
      log1p true count given the zero (a lost draw with probability ``P(dropout | 0)``, else
      a true zero). It minimises the expected log1p squared error over all zeros, but on
      shallow UMI data ``P(dropout | 0)`` is small and noisy, and the filled values then
      correlate poorly with the lost counts (docs/scziva.md).
    * ``"mu"``: the NB mean; ``"pi_mu"``: the authors' ``(1 - pi) mu``; ``"posterior"``:
      ``P(dropout | 0) mu``.
    """
    if rule == "pi_mu":
        return (1 - pi) * mu
    if rule == "mu":
        return mu
    if rule == "posterior":
        return dropout_given_zero(pi, mu, theta) * mu
    value = expected_log1p_nb(mu, theta) if table is None else table(mu, genes)
    if rule == "log_posterior":
        value = dropout_given_zero(pi, mu, theta) * value
    return torch.expm1(value)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _wrap(out, frame_labels):
    if frame_labels is None:
        return out
    import pandas as pd
    return pd.DataFrame(out, index=frame_labels[0], columns=frame_labels[1])
