"""DCA, the deep count autoencoder (Eraslan et al. 2019, Nat Commun 10:390).

Re-implemented in torch from the paper (the ``dca`` package needs TensorFlow < 2.5, which
does not install on Python 3.11). As in the paper and its package defaults:

- size factors ``s_i`` = library size / median library size;
- input: ``log1p(x / s_i)``, then each gene scaled to zero mean and unit variance;
- network: dense 64 - 32 - 64, each dense layer followed by batch normalisation (centred,
  not scaled) and ReLU;
- three heads on the last hidden layer: mean ``M = clip(exp(.), 1e-5, 1e6)``, dispersion
  ``theta = clip(softplus(.), 1e-4, 1e4)`` and dropout probability ``pi = sigmoid(.)``;
- loss: zero-inflated negative binomial negative log-likelihood of the raw counts with
  mean ``M * s_i``, plus the ridge penalty ``ridge * pi^2`` (the package's default
  ``ridge=0`` switches it off);
- Adam (learning rate 1e-3), mini-batches of 32 cells, gradient values clipped at 5, at
  most 300 epochs, early stopping (patience 15) and learning-rate reduction (x0.1,
  patience 10) on the loss of a 10% validation split of the cells; the best model is kept.

Output: the mean ``M * s_i`` (count scale), as DCA's default ``denoise`` mode returns.

One addition to the paper: the bias of the mean head starts at ``log`` of each gene's mean
normalised count (instead of 0), so that data with large counts (e.g. simulations with
tens of thousands of counts per cell) do not need hundreds of epochs just to reach the
right scale; with typical droplet data (means near 1) this changes little.
"""

from __future__ import annotations

import numpy as np

from ._common import dense, library_sizes, seed_torch, split_cells, train_with_early_stopping

USES_GPU = True
DEFAULTS = {"hidden": [64, 32, 64], "epochs": 300, "batch_size": 32, "lr": 1e-3,
            "patience": 15, "reduce_lr": 10, "validation": 0.1, "ridge": 0.0,
            "clip_value": 5.0}
SOURCE = "re-implemented in torch from Eraslan et al. 2019 (Nat Commun 10:390)"


def zinb_nll(y, mu, theta, pi, eps=1e-10):
    """Element-wise ZINB negative log-likelihood (mean ``mu``, dispersion ``theta``)."""
    import torch

    t1 = torch.lgamma(theta + eps) + torch.lgamma(y + 1.0) - torch.lgamma(y + theta + eps)
    t2 = (theta + y) * torch.log1p(mu / (theta + eps)) + y * (torch.log(theta + eps) - torch.log(mu + eps))
    nb_case = t1 + t2 - torch.log(1.0 - pi + eps)
    zero_nb = torch.pow(theta / (theta + mu + eps), theta)
    zero_case = -torch.log(pi + (1.0 - pi) * zero_nb + eps)
    return torch.where(y < 1e-8, zero_case, nb_case)


def _build(n_genes, hidden):
    import torch
    from torch import nn

    class CenteredBN(nn.Module):
        """Batch normalisation with a learned shift and no learned scale."""

        def __init__(self, h):
            super().__init__()
            self.bn = nn.BatchNorm1d(h, affine=False)
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
            self.pi = nn.Linear(d, n_genes)

        def forward(self, x):
            h = self.body(x)
            mean = torch.clamp(torch.exp(torch.clamp(self.mean(h), max=15.0)), 1e-5, 1e6)
            theta = torch.clamp(nn.functional.softplus(self.disp(h)), 1e-4, 1e4)
            pi = torch.sigmoid(self.pi(h))
            return mean, theta, pi

    return DCA()


def impute(counts, *, seed, device, adata, hidden, epochs, batch_size, lr, patience,
           reduce_lr, validation, ridge, clip_value):
    import torch

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
    model = _build(g, tuple(int(h) for h in hidden))
    with torch.no_grad():  # start the mean head at each gene's mean normalised count
        gene_mean = np.maximum((X / sf[:, None]).mean(axis=0), 1e-5)
        model.mean.bias.copy_(torch.as_tensor(np.log(gene_mean), dtype=torch.float32))
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=int(reduce_lr))

    tZ = torch.as_tensor(Z, dtype=torch.float32, device=dev)
    tX = torch.as_tensor(X, dtype=torch.float32, device=dev)
    tS = torch.as_tensor(sf, dtype=torch.float32, device=dev)[:, None]
    train, val = split_cells(n, float(validation), rng, min_val=2)
    bs = int(batch_size)

    def loss_of(idx):
        mean, theta, pi = model(tZ[idx])
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
                              epochs=epochs, patience=patience, on_validation=sched.step)

    model.eval()
    out = np.empty((n, g), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, 4096):
            sl = slice(start, min(n, start + 4096))
            mean, _, _ = model(tZ[sl])
            out[sl] = (mean * tS[sl]).cpu().numpy()
    return out
