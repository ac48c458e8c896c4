"""Training plans for scZiva: the losses of both modes and the loops that minimise them.

``mode="scziva"``: mini-batches over cells, the per-cell ELBO with a KL warm-up, early
stopping on held-out cells (:class:`MiniBatchPlan`). ``mode="authors"``: full-batch Adam
for exactly ``num_epochs`` steps on the authors' loss (:class:`AuthorsPlan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from .data import Batches
from .module import authors_zinb_log_prob, kl_standard_normal, zinb_log_prob, zinb_objective
from .settings import ZivaSettings

MIN_PATIENCE_STEPS = 100  # 250 until 2026-12-03 (docs/scziva.md, "Speed and stopping")
MAX_PATIENCE_STEPS = 3000
MAX_WARMUP_STEPS = 1000
EVAL_BATCH = 4096
FUSED_ADAM_DEVICES = ("cpu", "cuda")
# The gene-wise inverse dispersion (``ZIVAE.theta_raw``, one scalar per gene) learns at this
# multiple of ``lr``. Adam moves a parameter by about ``lr`` per step whatever its gradient,
# so at lr = 1e-3 a softplus-scale dispersion needs thousands of steps to leave its starting
# value; a few hundred cells give a few hundred steps in all, and the fitted dispersion was
# then the initial value (median 2.01 against 2.13 at the start, UMI regime, 400 cells).
# Measured on the tuning simulations (docs/scziva.md, "Dispersion learning rate").
THETA_LR_FACTOR = 10.0
# Parameters that learn at THETA_LR_FACTOR x lr: shared numbers that are not outputs of a layer
# (the gene-wise dispersion and the dropout curve's intercept and slope), for the reason above.
_SCALAR_PARAMS = ("theta_raw", "pi_curve")


class AuxWeight(nn.Module):
    """Learnable weight of the auxiliary term, kept inside [w_min, w_max] by a sigmoid."""

    def __init__(self, w_min: float = 0.5, w_max: float = 1.5):
        super().__init__()
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.raw = nn.Parameter(torch.zeros(()))

    def forward(self) -> torch.Tensor:
        return self.w_min + (self.w_max - self.w_min) * torch.sigmoid(self.raw)


class Losses(NamedTuple):
    """One evaluation of the objective (tensors): what is minimised and its parts."""

    total: torch.Tensor
    nll: torch.Tensor
    kl: torch.Tensor
    aux: torch.Tensor
    w_aux: torch.Tensor

    def stacked(self) -> torch.Tensor:
        return torch.stack(list(self)).detach().cpu()


HISTORY_KEYS = ("loss", "nll", "kl", "aux", "w_aux")  # history record names of Losses' fields


def kl_weight(step: int, warmup_steps: int) -> float:
    """The KL weight rises linearly from 0 to 1 over ``warmup_steps`` optimiser steps."""
    return min(1.0, step / warmup_steps) if warmup_steps else 1.0


def loss_scziva(model, aux_w, x, lib, kl_w: float, lam_reg: float, aux_scale: float,
                pi_ridge: float = 0.0, nonzero=None) -> Losses:
    """The mini-batch objective of ``mode="scziva"``: per cell, the ZINB negative
    log-likelihood (summed over genes, up to a constant), the KL term at weight ``kl_w``,
    the auxiliary reconstruction term, and the ridge penalty on ``pi``; averaged over cells.

    Auxiliary reconstruction: the squared error between ``(1 - pi) * mu`` and the counts on
    the log1p scale, so that it neither vanishes nor explodes with sequencing depth, at weight
    ``aux_scale * w`` (``w`` learnable, pulled towards 1 by ``lam_reg``). The ridge penalty
    ``pi_ridge * sum(pi^2)`` (as in DCA's ZINB loss): on shallow counts "low mean" and "high
    mean with high pi" explain a zero almost equally well, and it prefers the first; its
    strength is chosen in :mod:`scziva.core`. The likelihood, auxiliary and ridge terms and
    their gradients are computed together (:func:`scziva.module.zinb_objective`), which
    reuses ``log1p(x)`` from the encoder and ``nonzero`` (the batch's non-zero entries,
    :meth:`scziva.data.Batches.get`) when given.
    """
    lx = torch.log1p(x)  # the encoder's input (log_input) and the auxiliary term's target
    z, m, logv = model.sample_latent(x, log1p_x=lx)
    logit, mu, theta = model.decode_parts(z, lib)
    w = aux_w()
    objective, nll, aux = zinb_objective(x, logit, mu, theta, aux_scale * w, pi_ridge, nonzero=nonzero,
                                         log1p_x=lx)
    kl = kl_standard_normal(m, logv)
    total = (objective + kl_w * kl).mean() + lam_reg * (w - 1.0).pow(2)
    return Losses(total, nll.mean(), kl.mean(), aux.mean(), w)


def loss_authors(model, aux_w, x, lam_reg: float) -> Losses:
    pi, mu, theta, m, logv = model(x)
    # The authors' NB (mean theta^2 / mu), reproduced exactly: see authors_zinb_log_prob.
    nll = -authors_zinb_log_prob(x, pi, mu, theta).sum() / x.numel()
    kl = kl_standard_normal(m, logv).sum() / x.shape[0]
    aux = ((1 - pi) * mu - x).pow(2).mean()
    w = aux_w()
    total = nll + kl + w * aux + lam_reg * (w - 1.0).pow(2)
    return Losses(total, nll, kl, aux, w)


def validation_loss(model, data: Batches, idx_all: np.ndarray) -> float:
    """Negative ELBO per cell (full ZINB log-likelihood, KL weight 1) at the latent means."""
    model.eval()
    tot, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, idx_all.size, EVAL_BATCH):
            idx = idx_all[start:start + EVAL_BATCH]
            x, lib = data.get(idx)
            pi, mu, theta, m, logv = model(x, lib, sample=False)
            nll = -zinb_log_prob(x, pi, mu, theta).sum(-1)
            kl = kl_standard_normal(m, logv)
            tot += float((nll + kl).sum())
            count += idx.size
    return tot / max(count, 1)


class Reporter:
    """One progress bar for a whole :func:`scziva.core.fit` (every candidate fit of
    ``pi_ridge="heldout"`` in turn, labelled), and the every-20-epochs loss line of ``verbose``.

    ``total`` is the number of epochs of one fit, ``n_fits`` how many fits the bar spans;
    :meth:`start_fit` labels the next one, and a fit that stops early has the bar moved on
    to the next fit's start.
    """

    def __init__(self, total: int, verbose: bool, progress: bool, n_fits: int = 1):
        self.verbose, self.total, self.n_fits = verbose, total, n_fits
        self.bar = None
        self.fit_index = 0
        if progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total * n_fits, desc="scZiva", unit="epoch", leave=False)

    def start_fit(self, index: int, label: str = "") -> None:
        """Fit number ``index`` (0-based) begins; ``label`` says what it is."""
        self.fit_index = index
        if self.bar is not None:
            self.bar.n = index * self.total
            desc = "scZiva" + (f" fit {index + 1}/{self.n_fits}" if self.n_fits > 1 else "")
            self.bar.set_description(desc + (f" ({label})" if label else ""), refresh=True)

    def __call__(self, rec: dict, epoch: int):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{rec['loss']:.4g}", refresh=False)
        if self.verbose and (epoch % 20 == 0 or epoch == self.total - 1):
            extra = f" | val={rec['val']:.4f}" if "val" in rec else ""
            msg = (f"Epoch {epoch:3d} | total={rec['loss']:.4f} | nll={rec['nll']:.4f} | kl={rec['kl']:.4f} | "
                   f"aux={rec['aux']:.4f} | w_aux={rec['w_aux']:.3f}{extra}")
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg)

    def close(self):
        if self.bar is not None:
            self.bar.n = self.bar.total
            self.bar.refresh()
            self.bar.close()


@dataclass
class Schedule:
    """Mini-batch geometry and stopping rules in optimiser steps, derived from the settings."""

    batch_size: int
    steps_per_epoch: int
    patience: int
    warmup_steps: int

    @classmethod
    def for_cells(cls, n_train: int, s: ZivaSettings) -> "Schedule":
        bs = int(max(2, min(s.batch_size, n_train)))
        steps = max(1, math.ceil(n_train / bs))
        patience = s.patience
        # Patience counts epochs, but on small data an epoch is only a few optimiser steps and
        # the validation loss has plateaus of a hundred steps or more: wait at least
        # MIN_PATIENCE_STEPS steps before giving up. On large data one epoch is hundreds of
        # steps: cap the wait at MAX_PATIENCE_STEPS.
        if patience:
            patience = max(patience, math.ceil(MIN_PATIENCE_STEPS / steps))
            patience = min(patience, max(1, math.ceil(MAX_PATIENCE_STEPS / steps)))
        warm = s.kl_warmup_epochs
        warmup_steps = min(warm * steps, max(steps, MAX_WARMUP_STEPS)) if warm else 0
        return cls(bs, steps, patience, warmup_steps)


class EarlyStopping:
    """Keeps the weights of the best epoch seen; says when ``patience`` epochs brought no
    relative improvement of ``min_delta`` over the best loss when the wait began.

    Two things are separate: any improvement, however small, updates the kept weights; only
    an improvement of at least ``min_delta`` (relative) restarts the wait. (Until 2026-12-03
    both needed ``min_delta``, so the kept weights could be up to ``patience`` epochs older
    than a slightly better epoch.)
    """

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_state, self.bad = math.inf, None, 0
        self.reference = math.inf  # the loss an epoch must beat by min_delta to restart the wait

    def update(self, monitor: float, model: nn.Module) -> bool:
        """Record one epoch's monitored loss; True when training should stop."""
        if math.isfinite(monitor):  # a NaN or infinite loss only counts as a bad epoch
            if monitor < self.best:
                self.best = monitor
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            # The first judged epoch always restarts the wait (inf - min_delta * inf is NaN).
            if not math.isfinite(self.reference) or monitor < self.reference - self.min_delta * abs(self.reference):
                self.reference, self.bad = monitor, 0
                return False
        self.bad += 1
        return bool(self.patience and self.bad >= self.patience)

    def restore(self, model: nn.Module):
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


class FusedAdam:
    """Adam as ``torch.optim.Adam(groups, lr, fused=True)`` computes it, bit for bit (tested),
    calling the same fused kernel (``torch._fused_adam_``) without ``torch.optim``.

    Why: ``torch.optim.Optimizer`` imports ``torch._dynamo`` (the compiler's front end) the
    first time an optimiser is built, which costs about 2 s on 2 CPU cores: a fifth of a
    whole 600 x 2,000 fit, paid again by every command-line call. scZiva needs only
    Adam's update with default betas, no weight decay and no AMSGrad, and its state
    (``step`` as a float32 tensor, the two moments) is kept the way torch's fused Adam keeps
    it. Only ``zero_grad`` and ``step`` are provided.
    """

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param_groups = [{"lr": float(g.get("lr", lr)), "params": list(g["params"])} for g in groups]
        self.betas, self.eps = betas, float(eps)
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if p not in self.state:
                    self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            st = [self.state[p] for p in params]
            steps = [s["step"] for s in st]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in st],
                               [s["exp_avg_sq"] for s in st], [], steps, amsgrad=False, lr=g["lr"],
                               beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                               maximize=False, grad_scale=None, found_inf=None)


def make_adam(groups: list[dict], lr: float, device: torch.device):
    """:class:`FusedAdam` on the CPU and CUDA when this torch has the fused kernel for the
    device (CPU since torch 2.4); elsewhere (Apple GPUs, older torch) ``torch.optim.Adam``."""
    if device.type in FUSED_ADAM_DEVICES and hasattr(torch, "_fused_adam_") and torch.__version__ >= "2.4":
        return FusedAdam(groups, lr)
    return torch.optim.Adam(groups, lr=lr)


class _Plan:
    def __init__(self, model, settings: ZivaSettings, report: Reporter):
        self.model = model
        self.s = settings
        self.aux_w = AuxWeight(settings.w_min, settings.w_max).to(next(model.parameters()).device)
        fast = [p for n, p in model.named_parameters() if n in _SCALAR_PARAMS]
        rest = [p for n, p in model.named_parameters() if n not in _SCALAR_PARAMS] + list(self.aux_w.parameters())
        groups = [{"params": rest}]
        if fast:
            groups.append({"params": fast, "lr": settings.lr * THETA_LR_FACTOR})
        # torch's fused Adam kernel: one kernel per step over all the weights instead of half a
        # dozen passes per tensor (at 20,000 genes, 7.7 million weights: 30 ms -> 3.5 ms an
        # optimiser step on 2 CPU threads; a whole epoch at 1,000 x 20,000 about 5 % faster,
        # docs/scziva.md "Speed and scale"). The same update rule, its arithmetic in another
        # order: not the same bits as the unfused one, still the same bits run to run. Called
        # through FusedAdam, which skips torch.optim's 2 s import of the compiler.
        self.opt = make_adam(groups, settings.lr, next(model.parameters()).device)
        self.report = report
        self.history: list[dict] = []
        self.stopped_epoch = settings.num_epochs
        self.train_seconds = 0.0
        self.best_val = None  # held-out negative ELBO of the kept weights (MiniBatchPlan.fit)
        self.pi_ridge_selection = None  # {ridge: best_val} when core.fit compared candidates

    def _step(self, losses: Losses):
        self.opt.zero_grad(set_to_none=True)
        losses.total.backward()
        self.opt.step()


class AuthorsPlan(_Plan):
    """The authors' schedule: one full batch, Adam, exactly ``num_epochs`` steps."""

    def fit(self, data: Batches):
        x_all, _ = data.get(np.arange(data.n))
        for epoch in range(self.s.num_epochs):
            self.model.train()
            losses = loss_authors(self.model, self.aux_w, x_all, self.s.lam_reg)
            self._step(losses)
            rec = dict(zip(HISTORY_KEYS, losses.stacked().tolist()), epoch=epoch)
            self.history.append(rec)
            self.report(rec, epoch)
        self.stopped_epoch = self.s.num_epochs
        return self


class MiniBatchPlan(_Plan):
    """Mini-batch ELBO training with KL warm-up and early stopping on held-out cells."""

    def __init__(self, model, settings: ZivaSettings, report: Reporter, rng: np.random.Generator):
        super().__init__(model, settings, report)
        self.rng = rng

    def _split(self, n: int):
        perm = self.rng.permutation(n)
        frac = self.s.validation_fraction
        n_val = int(round(frac * n)) if (frac and n >= 20) else 0
        return np.sort(perm[:n_val]), perm[n_val:]

    def _epoch(self, data: Batches, train_idx: np.ndarray, sched: Schedule, epoch: int) -> np.ndarray:
        """One pass over the training cells; the mean Losses over the batches trained on."""
        self.model.train()
        shuffled = data.epoch_order(train_idx, self.rng)
        sums, done = np.zeros(len(HISTORY_KEYS)), 0
        bs = sched.batch_size
        for b in range(sched.steps_per_epoch):
            idx = shuffled[b * bs:(b + 1) * bs]
            if idx.size < 2:  # a batch of one cell gives a degenerate gradient
                continue
            kl_w = kl_weight(epoch * sched.steps_per_epoch + b, sched.warmup_steps)
            x, lib, nonzero = data.get(idx, nonzero=True)
            losses = loss_scziva(self.model, self.aux_w, x, lib, kl_w, self.s.lam_reg, self.s.aux_scale,
                                 self.s.pi_ridge, nonzero=nonzero)
            self._step(losses)
            sums += losses.stacked().numpy()
            done += 1
        return sums / max(done, 1)

    def fit(self, data: Batches):
        val_idx, train_idx = self._split(data.n)
        data.preload(val_idx)
        sched = Schedule.for_cells(train_idx.size, self.s)
        stopper = EarlyStopping(sched.patience, self.s.min_delta)
        for epoch in range(self.s.num_epochs):
            means = self._epoch(data, train_idx, sched, epoch)
            rec = {"epoch": epoch, **dict(zip(HISTORY_KEYS, means))}
            monitor = rec["loss"]
            if val_idx.size:
                monitor = rec["val"] = validation_loss(self.model, data, val_idx)
            self.history.append(rec)
            self.report(rec, epoch)
            if (epoch + 1) * sched.steps_per_epoch < sched.warmup_steps:
                continue  # the objective changes during warm-up: do not judge it yet
            if stopper.update(monitor, self.model):
                self.stopped_epoch = epoch + 1
                break
        stopper.restore(self.model)
        # The held-out negative ELBO of the kept weights (None without held-out cells): the
        # best judged epoch's, or the last epoch's when training ended inside the warm-up.
        if val_idx.size:
            self.best_val = stopper.best if math.isfinite(stopper.best) else self.history[-1]["val"]
        return self
