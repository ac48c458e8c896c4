"""Training and imputation: :func:`ZIVAimpute`, the call documented by scZiva's authors.

Two training modes share one network (:mod:`scziva.module`):

``mode="scziva"`` (default)
    Mini-batches over cells, the usual evidence lower bound (ZINB log-likelihood summed
    over genes per cell, KL per cell), the decoder's mean scaled by each cell's library
    size, log1p input to the encoder, the auxiliary reconstruction term, and early
    stopping on a held-out 10 % of cells. ``num_epochs`` is the maximum number of epochs.
``mode="authors"``
    The authors' code, step for step: full-batch Adam for exactly ``num_epochs`` steps,
    the ZINB term averaged over all entries but the KL term over cells, raw counts into
    the encoder, no library size, and imputation from a sampled latent.

Why they differ (measured; see README "How this implementation relates to the
authors' code"): with full-batch training 200 epochs are only 200 optimiser steps; the
KL term weighs about G times more than in the ELBO, so the latent collapses and every
cell gets nearly the same profile; and without the library size in the mean the decoder
cannot fit cells of different depth.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn

from .module import ZIVAE, kl_standard_normal, zinb_log_prob
from .ordering import order_genes
from .validate import check_counts

MODES = ("scziva", "authors")
IMPUTE_VALUES = ("pi_mu", "mu", "posterior")
MIN_PATIENCE_STEPS = 250
MAX_PATIENCE_STEPS = 3000
MAX_WARMUP_STEPS = 1000
ORDER_MAX_CELLS = 20000


def resolve_device(device=None) -> torch.device:
    """``None`` picks CUDA when present, else the CPU; strings like ``"cuda:1"`` are accepted."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available on this machine")
    return dev


class AuxWeight(nn.Module):
    """Learnable weight of the auxiliary term, kept inside [w_min, w_max] by a sigmoid."""

    def __init__(self, w_min: float = 0.5, w_max: float = 1.5):
        super().__init__()
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.raw = nn.Parameter(torch.zeros(()))

    def forward(self) -> torch.Tensor:
        return self.w_min + (self.w_max - self.w_min) * torch.sigmoid(self.raw)


@dataclass
class FittedZIVA:
    """What :func:`ZIVAimpute` returns beside the imputed matrix.

    ``module`` is the trained network (genes in ``gene_order``); ``pi``, ``mu`` and
    ``latent`` are filled when asked for (``return_params=True``), in the caller's gene
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

    # Allow `model.eval()` / `model(x)` habits from the authors' code (their second return
    # value is the nn.Module itself).
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        module = self.__dict__.get("module")
        if module is None:
            raise AttributeError(name)
        return getattr(module, name)


class _Batches:
    """Rows of a dense array or a CSR matrix, densified one mini-batch at a time."""

    def __init__(self, X, library: np.ndarray, device: torch.device):
        self.X = X
        self.sparse = sp.issparse(X)
        self.device = device
        self.library = torch.as_tensor(library, dtype=torch.float32)
        self._dense = None
        if not self.sparse:
            self._dense = torch.as_tensor(X, dtype=torch.float32)
            if device.type != "cpu":
                self._dense = self._dense.to(device)
                self.library = self.library.to(device)

    def get(self, idx: np.ndarray):
        if self.sparse:
            x = torch.from_numpy(self.X[idx].toarray())
            lib = self.library[torch.as_tensor(idx)]
            return x.to(self.device, non_blocking=True), lib.to(self.device).unsqueeze(1)
        t = torch.as_tensor(idx, device=self._dense.device)
        return self._dense.index_select(0, t), self.library.index_select(0, t).unsqueeze(1)


def _loss_scziva(model, aux_w, x, lib, kl_weight, lam_reg, aux_scale):
    pi, mu, theta, m, logv = model(x, lib)
    nll = -zinb_log_prob(x, pi, mu, theta, constant=False).sum(-1)  # per cell, up to a constant
    kl = kl_standard_normal(m, logv)
    # Auxiliary reconstruction: squared error between (1 - pi) * mu and the counts, on the
    # log1p scale so that it neither vanishes nor explodes with sequencing depth.
    aux = (torch.log1p((1 - pi) * mu) - torch.log1p(x)).pow(2).sum(-1)
    w = aux_w()
    total = (nll + kl_weight * kl + aux_scale * w * aux).mean() + lam_reg * (w - 1.0).pow(2)
    return total, nll.mean(), kl.mean(), aux.mean(), w


def _loss_authors(model, aux_w, x, lam_reg):
    pi, mu, theta, m, logv = model(x)
    nll = -zinb_log_prob(x, pi, mu, theta).sum() / x.numel()
    kl = kl_standard_normal(m, logv).sum() / x.shape[0]
    aux = ((1 - pi) * mu - x).pow(2).mean()
    w = aux_w()
    total = nll + kl + w * aux + lam_reg * (w - 1.0).pow(2)
    return total, nll, kl, aux, w


def _progress(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="scZiva", unit="epoch", leave=False)


def ZIVAimpute(X, seed=1, device=None, num_epochs=200, lr=1e-3, hidden_dim=128, latent_dim=64,
               verbose=False, tau=0.001, *, mode="scziva", batch_size=128, kernel=64,
               gene_order="auto", validation_fraction=0.1, patience=15, min_delta=1e-3,
               kl_warmup_epochs=10, w_min=0.5, w_max=1.5, lam_reg=1e-3, return_params=False,
               progress=None, impute_value="pi_mu", aux_scale=0.1):
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
    validation_fraction, patience, min_delta : early stopping on held-out cells (relative
        improvement ``min_delta``; ``patience`` epochs without one stop training).
    kl_warmup_epochs : the KL weight rises linearly from 0 to 1 over these epochs (at most
        ``MAX_WARMUP_STEPS`` optimiser steps on large data).
    aux_scale : weight of the auxiliary term relative to the per-cell ELBO (0.1, measured).
    return_params : also fill ``model.pi``, ``model.mu`` and ``model.latent``.
    progress : show a tqdm bar (default: same as ``verbose``).
    impute_value : ``"pi_mu"`` (``(1 - pi) * mu``, the authors' rule), ``"mu"`` (the NB
        mean), or ``"posterior"`` (the expected true count given an observed zero:
        ``P(dropout | 0) * mu`` with ``P(dropout | 0) = pi / (pi + (1 - pi) NB(0))``).

    Returns
    -------
    X_imp : the imputed counts, same shape and gene order as ``X`` (a DataFrame with the same
        labels if ``X`` was one, a float32 ndarray otherwise). Observed non-zero values are
        unchanged; all-zero cells and genes stay zero.
    model : :class:`FittedZIVA` (the trained network, gene order, loss history).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    if impute_value not in IMPUTE_VALUES:
        raise ValueError(f"impute_value must be one of {IMPUTE_VALUES}, got {impute_value!r}")
    if not (isinstance(num_epochs, (int, np.integer)) and num_epochs >= 1):
        raise ValueError(f"num_epochs must be a positive integer, got {num_epochs!r}")
    frame_labels = None
    if hasattr(X, "columns") and hasattr(X, "index"):
        frame_labels = (X.index, X.columns)
    M, _notes = check_counts(X, "ZIVAimpute input")
    dev = resolve_device(device)
    show = verbose if progress is None else progress
    n_cells, n_genes = M.shape

    # Cells and genes with no counts carry no information: they are left out of training
    # and returned unchanged (all zero).
    if sp.issparse(M):
        cell_tot = np.asarray(M.sum(axis=1)).ravel()
        gene_tot = np.asarray(M.sum(axis=0)).ravel()
    else:
        cell_tot, gene_tot = M.sum(axis=1), M.sum(axis=0)
    keep_cells = np.flatnonzero(cell_tot > 0)
    keep_genes = np.flatnonzero(gene_tot > 0)
    if mode == "authors":  # the authors' code models every cell and gene
        keep_cells, keep_genes = np.arange(n_cells), np.arange(n_genes)
    if keep_cells.size < 2 or keep_genes.size < 1:
        warnings.warn("fewer than two cells with counts: nothing to learn, input returned unchanged")
        out = M.toarray() if sp.issparse(M) else M.copy()
        return _wrap(out.astype(np.float32), frame_labels), None
    if keep_cells.size == n_cells and keep_genes.size == n_genes:
        sub = M
    elif sp.issparse(M):
        sub = sp.csr_matrix(M[keep_cells][:, keep_genes])
    else:
        sub = M[np.ix_(keep_cells, keep_genes)]
    del M  # our own validated copy; from here on only `sub` (and the output) are held
    G = sub.shape[1]

    torch.manual_seed(seed)
    np_rng = np.random.default_rng(seed)

    # Gene order: the authors order on the raw input; we order on log1p of depth-normalised
    # counts, which measures co-expression rather than depth.
    if isinstance(gene_order, str):
        # The ordering looks at most ORDER_MAX_CELLS cells (a seeded sample; all of them on
        # data of that size or less), so its cost and memory do not grow with the cells.
        rows = np.arange(sub.shape[0])
        if rows.size > ORDER_MAX_CELLS:
            rows = np.sort(np.random.default_rng(seed).choice(rows.size, ORDER_MAX_CELLS, replace=False))
        order_input = sub[rows] if rows.size < sub.shape[0] else sub
        if mode != "authors":
            order_input = _log_normalise(order_input, cell_tot[keep_cells][rows])
        order = order_genes(order_input, method=gene_order, seed=seed)
        del order_input
    else:
        full = np.asarray(gene_order)
        if sorted(full.tolist()) != list(range(n_genes)):
            raise ValueError("gene_order must be a permutation of range(n_genes)")
        pos = {g: i for i, g in enumerate(keep_genes)}
        order = np.array([pos[g] for g in full if g in pos])
    sub = sub[:, order]
    if sp.issparse(sub):
        sub = sp.csr_matrix(sub)
    library = cell_tot[keep_cells].astype(np.float32)

    model = ZIVAE(G, hidden_dim, latent_dim, kernel=kernel,
                  library_size=(mode == "scziva"), log_input=(mode == "scziva")).to(dev)
    aux_w = AuxWeight(w_min, w_max).to(dev)
    opt = torch.optim.Adam(list(model.parameters()) + list(aux_w.parameters()), lr=lr)
    data = _Batches(sub, library, dev)
    history: list[dict] = []
    t0 = time.perf_counter()
    bar = _progress(num_epochs, show)

    if mode == "authors":
        idx_all = np.arange(sub.shape[0])
        x_all, _ = data.get(idx_all)
        for epoch in range(num_epochs):
            model.train()
            opt.zero_grad()
            total, nll, kl, aux, w = _loss_authors(model, aux_w, x_all, lam_reg)
            total.backward()
            opt.step()
            vals = torch.stack([total, nll, kl, aux, w]).detach().cpu().tolist()
            rec = dict(zip(("loss", "nll", "kl", "aux", "w_aux"), vals), epoch=epoch)
            history.append(rec)
            _report(bar, verbose, rec, epoch, num_epochs)
        stopped = num_epochs
    else:
        stopped = _train_minibatch(model, aux_w, opt, data, sub.shape[0], np_rng, num_epochs,
                                   batch_size, validation_fraction, patience, min_delta,
                                   kl_warmup_epochs, lam_reg, aux_scale, history, bar, verbose)
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - t0

    # Imputation, batch by batch, straight into the output in the caller's gene order.
    model.eval()
    # Cells and genes left out of training are all zero; every other entry is written below.
    out = np.zeros((n_cells, n_genes), dtype=np.float32)
    cols = keep_genes[order]
    want = return_params
    pi_full = np.full((n_cells, n_genes), np.nan, np.float32) if want else None
    mu_full = np.full((n_cells, n_genes), np.nan, np.float32) if want else None
    lat = np.full((n_cells, latent_dim), np.nan, np.float32) if want else None
    step = 4096 if mode == "scziva" else sub.shape[0]
    with torch.no_grad():
        for start in range(0, sub.shape[0], step):
            idx = np.arange(start, min(start + step, sub.shape[0]))
            x, lib = data.get(idx)
            if mode == "authors":
                pi, mu, theta, m, _ = model(x, sample=True)
            else:
                pi, mu, theta, m, _ = model(x, lib, sample=False)
            recon = _imputed_value(impute_value, pi, mu, theta)
            fill = (x == 0) & (pi > tau)
            x_imp = torch.where(fill, recon, x).cpu().numpy()
            rows = keep_cells[idx]
            out[np.ix_(rows, cols)] = x_imp
            if want:
                pi_full[np.ix_(rows, cols)] = pi.cpu().numpy()
                mu_full[np.ix_(rows, cols)] = mu.cpu().numpy()
                lat[rows] = m.cpu().numpy()

    full_order = np.concatenate([cols, np.setdiff1d(np.arange(n_genes), cols)])
    fitted = FittedZIVA(module=model, gene_order=full_order, mode=mode, history=history,
                        device=str(dev), train_seconds=train_seconds, stopped_epoch=stopped,
                        pi=pi_full, mu=mu_full, latent=lat,
                        config=dict(seed=seed, num_epochs=num_epochs, lr=lr, hidden_dim=hidden_dim,
                                    latent_dim=latent_dim, tau=tau, mode=mode, batch_size=batch_size,
                                    kernel=kernel, validation_fraction=validation_fraction,
                                    patience=patience, min_delta=min_delta,
                                    kl_warmup_epochs=kl_warmup_epochs, impute_value=impute_value))
    return _wrap(out, frame_labels), fitted


def _imputed_value(rule, pi, mu, theta):
    if rule == "pi_mu":
        return (1 - pi) * mu
    if rule == "mu":
        return mu
    # NB(0) = (theta / (theta + mu))^theta, in log space for stability
    log_nb0 = theta * (torch.log(theta) - torch.log(theta + mu))
    p_drop = pi / (pi + (1 - pi) * torch.exp(log_nb0))
    return p_drop * mu


def _wrap(out, frame_labels):
    if frame_labels is None:
        return out
    import pandas as pd
    return pd.DataFrame(out, index=frame_labels[0], columns=frame_labels[1])


def _log_normalise(X, totals):
    """log1p of counts scaled to the median library size (for gene ordering only)."""
    scale = np.median(totals[totals > 0]) / np.maximum(totals, 1)
    if sp.issparse(X):
        Y = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ X)
        Y.data = np.log1p(Y.data)
        return Y
    return np.log1p(X * scale[:, None].astype(np.float32))


def _report(bar, verbose, rec, epoch, num_epochs):
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{rec['loss']:.4g}", refresh=False)
    if verbose and (epoch % 20 == 0 or epoch == num_epochs - 1):
        extra = f" | val={rec['val']:.4f}" if "val" in rec else ""
        msg = (f"Epoch {epoch:3d} | total={rec['loss']:.4f} | nll={rec['nll']:.4f} | kl={rec['kl']:.4f} | "
               f"aux={rec['aux']:.4f} | w_aux={rec['w_aux']:.3f}{extra}")
        if bar is not None:
            bar.write(msg)
        else:
            print(msg)


def _train_minibatch(model, aux_w, opt, data, n, rng, num_epochs, batch_size, val_frac, patience,
                     min_delta, warmup, lam_reg, aux_scale, history, bar, verbose):
    perm = rng.permutation(n)
    n_val = int(round(val_frac * n)) if (val_frac and n >= 20) else 0
    val_idx, train_idx = np.sort(perm[:n_val]), perm[n_val:]
    bs = int(max(2, min(batch_size, train_idx.size)))
    best, best_state, bad = math.inf, None, 0
    steps_per_epoch = max(1, math.ceil(train_idx.size / bs))
    # Patience counts epochs, but on small data an epoch is only a few optimiser steps and
    # the validation loss has plateaus of a hundred steps or more: wait at least
    # MIN_PATIENCE_STEPS steps before giving up.
    # On large data one epoch is hundreds of steps: cap the wait at MAX_PATIENCE_STEPS.
    if patience:
        patience = max(patience, math.ceil(MIN_PATIENCE_STEPS / steps_per_epoch))
        patience = min(patience, max(1, math.ceil(MAX_PATIENCE_STEPS / steps_per_epoch)))
    warmup_steps = min(warmup * steps_per_epoch, max(steps_per_epoch, MAX_WARMUP_STEPS)) if warmup else 0
    stopped = num_epochs
    for epoch in range(num_epochs):
        model.train()
        shuffled = rng.permutation(train_idx)
        sums, done = np.zeros(5), 0
        for b in range(steps_per_epoch):
            idx = shuffled[b * bs:(b + 1) * bs]
            if idx.size < 2:  # a batch of one cell gives a degenerate gradient
                continue
            # KL weight rises with the fraction of warm-up done, step by step.
            kl_w = min(1.0, (epoch * steps_per_epoch + b) / warmup_steps) if warmup_steps else 1.0
            x, lib = data.get(idx)
            opt.zero_grad(set_to_none=True)
            total, nll, kl, aux, w = _loss_scziva(model, aux_w, x, lib, kl_w, lam_reg, aux_scale)
            total.backward()
            opt.step()
            sums += torch.stack([total, nll, kl, aux, w]).detach().cpu().numpy()
            done += 1
        sums /= max(done, 1)  # the mean over the batches actually trained on
        rec = {"epoch": epoch, "loss": sums[0], "nll": sums[1], "kl": sums[2], "aux": sums[3], "w_aux": sums[4]}
        monitor = rec["loss"]
        if n_val:
            monitor = _validation_loss(model, aux_w, data, val_idx, lam_reg)
            rec["val"] = monitor
        history.append(rec)
        _report(bar, verbose, rec, epoch, num_epochs)
        if (epoch + 1) * steps_per_epoch < warmup_steps:
            continue  # the objective changes during warm-up: do not judge it yet
        if monitor < best - min_delta * abs(best):
            best, bad = monitor, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if patience and bad >= patience:
                stopped = epoch + 1
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return stopped


def _validation_loss(model, aux_w, data, val_idx, lam_reg):
    model.eval()
    tot, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, val_idx.size, 4096):
            idx = val_idx[start:start + 4096]
            x, lib = data.get(idx)
            pi, mu, theta, m, logv = model(x, lib, sample=False)
            nll = -zinb_log_prob(x, pi, mu, theta).sum(-1)
            kl = kl_standard_normal(m, logv)
            tot += float((nll + kl).sum())
            count += idx.size
    return tot / max(count, 1)
