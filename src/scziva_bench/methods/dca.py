"""DCA, the deep count autoencoder (Eraslan et al. 2019, Nat Commun 10:390).

Re-implemented in torch (the ``dca`` package needs TensorFlow < 2.5, which does not
install on Python 3.11). Checked against the package's code (theislab/dca, ``api.py``,
``train.py``, ``network.py``, ``loss.py``, ``io.py``); its defaults are kept:

- size factors ``s_i`` = library size / median library size;
- input: ``log1p(x / s_i)``, then each gene scaled to zero mean and unit variance;
- network: dense 64 - 32 - 64, each dense layer followed by batch normalisation (centred,
  not scaled; Keras' momentum 0.99 and epsilon 1e-3) and ReLU; weights Glorot-uniform,
  biases 0 (Keras' defaults);
- three heads on the last hidden layer: mean ``M = clip(exp(.), 1e-5, 1e6)``, dispersion
  ``theta = clip(softplus(.), 1e-4, 1e4)`` and dropout probability ``pi = sigmoid(.)``;
- loss: zero-inflated negative binomial negative log-likelihood of the raw counts with
  mean ``M * s_i``, plus the ridge penalty ``ridge * pi^2`` (the package's default
  ``ridge=0`` switches it off): the paper's model, the package's
  ``ae_type="zinb-conddisp"``. ``likelihood="nb"`` gives the package's default since
  version 0.3, ``nb-conddisp`` (no zero inflation, no ``pi`` head);
- RMSprop as Keras implements it (learning rate 1e-3, rho 0.9, epsilon 1e-7 inside the
  square root; ``optimizer="adam"`` for torch's Adam), mini-batches of 32 cells, gradient
  values clipped at 5, at most 300 epochs, early stopping (patience 15) and learning-rate
  reduction (x0.1, patience 10, min. improvement 1e-4) on the loss of a 10% validation
  split; as with Keras' ``EarlyStopping`` default, the last model is kept
  (``restore_best=True`` keeps the one with the best validation loss).

Output: the mean ``M * s_i`` (count scale), as DCA's default ``denoise`` mode returns.

Deviations from the package, measured in docs/methods.md: ZINB rather than the package's
default NB (on the simulations with 50% dropout the NB mean follows the dropped zeros
down: k-means ARI 0.00 vs 0.75 with ZINB, log-MSE 0.54 vs 0.25); the validation cells
are a random 10% (Keras' ``validation_split`` takes the last 10% of the rows, which on a
file sorted by cell type validates on one type); and the bias of the mean head starts at
``log`` of each gene's mean normalised count instead of 0 (``init_mean_bias=False``
gives the package's 0), so that deep data (tens of thousands of counts per cell) do
not spend their epoch budget reaching the right scale. All-zero genes, which the package
refuses, are accepted.
"""

from __future__ import annotations

import numpy as np

from scziva_bench.methods._common import dense, library_sizes, seed_torch, split_cells, train_with_early_stopping

DEFAULTS = {"hidden": [64, 32, 64], "epochs": 300, "batch_size": 32, "lr": 1e-3,
            "patience": 15, "reduce_lr": 10, "validation": 0.1, "ridge": 0.0,
            "clip_value": 5.0, "likelihood": "zinb", "optimizer": "rmsprop",
            "restore_best": False, "init_mean_bias": True}
LIKELIHOODS = ("zinb", "nb")
OPTIMIZERS = ("rmsprop", "adam")


def nb_nll(y, mu, theta, eps=1e-10):
    """Element-wise negative binomial negative log-likelihood (mean ``mu``, dispersion ``theta``)."""
    import torch

    t1 = torch.lgamma(theta + eps) + torch.lgamma(y + 1.0) - torch.lgamma(y + theta + eps)
    t2 = (theta + y) * torch.log1p(mu / (theta + eps)) + y * (torch.log(theta + eps) - torch.log(mu + eps))
    return t1 + t2


def zinb_nll(y, mu, theta, pi, eps=1e-10):
    """Element-wise ZINB negative log-likelihood (mean ``mu``, dispersion ``theta``)."""
    import torch

    nb_case = nb_nll(y, mu, theta, eps) - torch.log(1.0 - pi + eps)
    zero_nb = torch.pow(theta / (theta + mu + eps), theta)
    zero_case = -torch.log(pi + (1.0 - pi) * zero_nb + eps)
    return torch.where(y < 1e-8, zero_case, nb_case)


def keras_rmsprop(params, lr=1e-3, rho=0.9, eps=1e-7):
    """RMSprop with Keras' defaults and update ``p -= lr * g / sqrt(v + eps)``.

    torch's ``RMSprop`` adds ``eps`` outside the square root (and defaults to lr 1e-2,
    alpha 0.99, eps 1e-8); TensorFlow's kernel, which DCA's Keras uses, adds it inside.
    """
    import torch

    class KerasRMSprop(torch.optim.Optimizer):
        def __init__(self):
            super().__init__(params, {"lr": float(lr), "rho": float(rho), "eps": float(eps)})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["v"] = torch.zeros_like(p)
                    v = state["v"]
                    v.mul_(group["rho"]).addcmul_(p.grad, p.grad, value=1.0 - group["rho"])
                    p.addcdiv_(p.grad, (v + group["eps"]).sqrt_(), value=-group["lr"])

    return KerasRMSprop()


def _build(n_genes, hidden, zinb):
    import torch
    from torch import nn

    class CenteredBN(nn.Module):
        """Batch normalisation with a learned shift and no learned scale (Keras' settings)."""

        def __init__(self, h):
            super().__init__()
            self.bn = nn.BatchNorm1d(h, affine=False, momentum=0.01, eps=1e-3)
            self.beta = nn.Parameter(torch.zeros(h))

        def forward(self, x):
            return self.bn(x) + self.beta

    class DCA(nn.Module):
        def __init__(self):
            super().__init__()
            layers, d = [], n_genes
            for h in hidden:
                layers += [nn.Linear(d, h), CenteredBN(h), nn.ReLU()]
                d = h
            self.body = nn.Sequential(*layers)
            self.mean = nn.Linear(d, n_genes)
            self.disp = nn.Linear(d, n_genes)
            self.pi = nn.Linear(d, n_genes) if zinb else None
            for m in self.modules():  # Keras' Dense defaults
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            h = self.body(x)
            mean = torch.clamp(torch.exp(torch.clamp(self.mean(h), max=15.0)), 1e-5, 1e6)
            theta = torch.clamp(nn.functional.softplus(self.disp(h)), 1e-4, 1e4)
            pi = torch.sigmoid(self.pi(h)) if self.pi is not None else None
            return mean, theta, pi

    return DCA()


def impute(counts, *, seed, device, adata, hidden, epochs, batch_size, lr, patience,
           reduce_lr, validation, ridge, clip_value, likelihood, optimizer, restore_best,
           init_mean_bias):
    import torch

    from scziva.errors import InputError

    if likelihood not in LIKELIHOODS:
        raise InputError(f"method 'dca': likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"method 'dca': optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")

    X = dense(counts)
    n, g = X.shape
    sf = library_sizes(X)
    sf = sf / np.median(sf)
    Z = np.log1p(X / sf[:, None])
    sd = Z.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (Z - Z.mean(axis=0)) / sd

    rng = np.random.default_rng(seed)
    seed_torch(seed)
    dev = torch.device(device)
    zinb = likelihood == "zinb"
    model = _build(g, tuple(int(h) for h in hidden), zinb)
    if init_mean_bias:
        with torch.no_grad():  # start the mean head at each gene's mean normalised count
            gene_mean = np.maximum((X / sf[:, None]).mean(axis=0), 1e-5)
            model.mean.bias.copy_(torch.as_tensor(np.log(gene_mean), dtype=torch.float32))
    model = model.to(dev)
    if optimizer == "rmsprop":
        opt = keras_rmsprop(model.parameters(), lr=float(lr))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=int(reduce_lr),
                                                       threshold=1e-4, threshold_mode="abs")

    tZ = torch.as_tensor(Z, dtype=torch.float32, device=dev)
    tX = torch.as_tensor(X, dtype=torch.float32, device=dev)
    tS = torch.as_tensor(sf, dtype=torch.float32, device=dev)[:, None]
    train, val = split_cells(n, float(validation), rng, min_val=2)
    bs = int(batch_size)

    def loss_of(idx):
        mean, theta, pi = model(tZ[idx])
        if not zinb:
            return nb_nll(tX[idx], mean * tS[idx], theta).mean()
        nll = zinb_nll(tX[idx], mean * tS[idx], theta, pi)
        return (nll + ridge * pi.pow(2)).mean()

    def train_epoch():
        perm = train[rng.permutation(len(train))]
        for start in range(0, len(perm), bs):
            idx = perm[start:start + bs]
            if len(idx) < 2:  # batch normalisation needs two cells
                continue
            opt.zero_grad()
            loss = loss_of(torch.as_tensor(idx, device=dev))
            loss.backward()
            if clip_value:
                torch.nn.utils.clip_grad_value_(model.parameters(), float(clip_value))
            opt.step()

    t_val = torch.as_tensor(val, device=dev)
    train_with_early_stopping(model, train_epoch, (lambda: loss_of(t_val)) if len(val) else None,
                              epochs=epochs, patience=patience, on_validation=sched.step,
                              restore_best=bool(restore_best))

    model.eval()
    out = np.empty((n, g), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, 4096):
            sl = slice(start, min(n, start + 4096))
            mean, _, _ = model(tZ[sl])
            out[sl] = (mean * tS[sl]).cpu().numpy()
    return out
