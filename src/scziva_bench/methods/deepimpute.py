"""DeepImpute (Arisdakessian, Poirion, Yunits, Zhu & Garmire 2019, Genome Biology 20:211).

Re-implemented in torch from the paper (the ``deepimpute`` package does not run with
Keras 3). Choices, following the paper and its package's defaults:

- data: each cell scaled to the median library size, then ``log1p``;
- target genes: genes whose 99th percentile of raw counts exceeds ``min_expression`` (5),
  the ``max_targets`` most variable of them (all by default);
- the targets are split at random (seeded) into subsets of ``n_targets`` (512) genes;
  one sub-network per subset. On small data (fewer than 2 x 512 targets) the subset size
  is halved until there are at least two subsets, so that every sub-network has genes
  outside its own targets to learn from;
- inputs of a sub-network: for each of its targets, the ``n_pred`` (5) genes with the
  largest absolute Pearson correlation to it (log scale), chosen among the target genes
  outside the subset; the union of these is the input layer;
- sub-network: dense 256 (ReLU), dropout 0.2, dense output (softplus, one unit per target);
- loss: the paper's weighted mean squared error ``mean(y * (y - y_hat)^2)`` (each entry
  weighted by its observed value, so observed zeros carry no weight);
- Adam (learning rate 1e-4), mini-batches of 64 cells, at most 500 epochs, early
  stopping (patience 5) on a 10% validation split of the cells;
- output: predictions back on the count scale (``expm1``, each cell's library size),
  capped at the largest normalised value observed; as in the package's default
  (``restore_pos_values=True``), only the observed zeros are replaced: observed non-zero
  counts, and all genes that are not targets, keep their observed values.
"""

from __future__ import annotations

import numpy as np

from ._common import dense, library_sizes, seed_torch, split_cells, train_with_early_stopping

USES_GPU = True
DEFAULTS = {"n_targets": 512, "n_pred": 5, "min_expression": 5.0, "max_targets": None,
            "hidden": 256, "dropout": 0.2, "epochs": 500, "batch_size": 64, "lr": 1e-4,
            "patience": 5, "validation": 0.1, "restore_positive": True}
SOURCE = "re-implemented in torch from Arisdakessian et al. 2019 (Genome Biol 20:211)"


def _subsets(targets, size, rng):
    perm = rng.permutation(targets)
    return [perm[i:i + size] for i in range(0, len(perm), size)]


def _abs_corr(Z):
    Zc = Z - Z.mean(axis=0)
    sd = np.sqrt((Zc ** 2).sum(axis=0))
    sd[sd == 0] = np.inf
    Zc = Zc / sd
    return np.abs(Zc.T @ Zc)


def impute(counts, *, seed, device, adata, n_targets, n_pred, min_expression, max_targets,
           hidden, dropout, epochs, batch_size, lr, patience, validation, restore_positive):
    import torch
    from torch import nn

    X = dense(counts)
    n, g = X.shape
    lib = library_sizes(X)
    scale = np.median(lib) / lib
    L = np.log1p(X * scale[:, None])

    q99 = np.quantile(X, 0.99, axis=0)
    var = L.var(axis=0)
    cand = np.nonzero((q99 > min_expression) & (var > 0))[0]
    cand = cand[np.argsort(-var[cand], kind="stable")]
    if max_targets is not None:
        cand = cand[: int(max_targets)]
    out = X.copy()
    if len(cand) < 2:
        return out.astype(np.float32)

    size = int(n_targets)
    while size > 1 and len(cand) < 2 * size:
        size = int(np.ceil(size / 2))
    rng = np.random.default_rng(seed)
    subsets = _subsets(cand, size, rng)
    corr = _abs_corr(L[:, cand])  # between candidate genes, indexed like `cand`
    pos = {gene: i for i, gene in enumerate(cand)}
    np.fill_diagonal(corr, -1.0)

    seed_torch(seed)
    dev = torch.device(device)
    tL = torch.as_tensor(L, dtype=torch.float32, device=dev)
    train, val = split_cells(n, float(validation), rng)
    cap = float(L.max())
    pred = np.zeros((n, g), dtype=np.float64)

    for targets in subsets:
        t_pos = np.array([pos[t] for t in targets])
        outside = np.setdiff1d(np.arange(len(cand)), t_pos)
        sub = corr[np.ix_(t_pos, outside)]
        k = min(int(n_pred), len(outside))
        best = np.argsort(-sub, axis=1, kind="stable")[:, :k]
        inputs = cand[np.unique(outside[best.ravel()])]

        net = nn.Sequential(nn.Linear(len(inputs), int(hidden)), nn.ReLU(), nn.Dropout(float(dropout)),
                            nn.Linear(int(hidden), len(targets)), nn.Softplus()).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=float(lr))
        t_in = torch.as_tensor(inputs, device=dev)
        t_out = torch.as_tensor(targets, device=dev)

        def loss_of(idx):
            y = tL[idx][:, t_out]
            return (y * (y - net(tL[idx][:, t_in])) ** 2).mean()

        def train_epoch():
            perm = train[rng.permutation(len(train))]
            for start in range(0, len(perm), int(batch_size)):
                idx = torch.as_tensor(perm[start:start + int(batch_size)], device=dev)
                opt.zero_grad()
                loss = loss_of(idx)
                loss.backward()
                opt.step()

        t_val = torch.as_tensor(val, device=dev)
        train_with_early_stopping(net, train_epoch, (lambda: loss_of(t_val)) if len(val) else None,
                                  epochs=epochs, patience=patience)
        net.eval()
        with torch.no_grad():
            yhat = net(tL[:, t_in]).clamp(max=cap).cpu().numpy().astype(np.float64)
        pred[:, targets] = np.expm1(yhat) / scale[:, None]

    tgt = np.zeros(g, dtype=bool)
    tgt[cand] = True
    if restore_positive:
        fill = (X == 0) & tgt[None, :]
    else:
        fill = np.broadcast_to(tgt[None, :], X.shape)
    out[fill] = pred[fill]
    return out.astype(np.float32)
