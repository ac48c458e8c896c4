"""DeepImpute (Arisdakessian, Poirion, Yunits, Zhu & Garmire 2019, Genome Biology 20:211).

Re-implemented in torch (the ``deepimpute`` package does not run with Keras 3). Checked
against the package's code (lanagarmire/deepimpute, ``multinet.py``: ``MultiNet``'s
defaults, which its README uses); as there:

- data: ``log1p`` of the raw counts (``normalization="log"``, the package's default
  ``"log_or_exp"``); ``normalization="libsize_log"`` is the package's ``"libSizeLog"``
  option: each cell scaled to 10,000 counts first, and the predictions scaled back;
- target genes: genes ranked by ``var / (1 + mean)`` of the raw counts (those above 0);
  as many of the top ones as there are genes above ``min_vmr`` (0.5), rounded up to a
  multiple of ``n_targets`` (512) with the next-ranked genes, and, where the ranked genes
  run out, filled up to that multiple with genes drawn at random from them (a gene drawn
  twice is predicted twice and the predictions averaged);
- the targets are split at random (seeded) into sub-networks of ``n_targets`` genes;
- inputs of a sub-network: for each of its targets, the ``n_pred`` (5) genes with the
  largest absolute Pearson correlation to it (raw counts), among the expressed genes
  outside the sub-network's targets; the union of these is the input layer;
- sub-network: dense ``n_targets // 2`` (256, ReLU), dropout 0.2, dense output (softplus,
  one unit per target); weights Glorot-uniform, biases 0 (Keras' defaults);
- loss: the sum over sub-networks of the weighted mean squared error
  ``mean(y * (y - y_hat)^2)`` (each entry weighted by its observed value, so observed
  zeros carry no weight); all sub-networks are trained together, as the package's one
  Keras model: Adam (learning rate 1e-4, epsilon 1e-7), mini-batches of 64 cells, at most
  500 epochs, early stopping (patience 5) on a random 5% of the cells; as with Keras'
  ``EarlyStopping`` default, the last model is kept (``restore_best=True`` keeps the best);
- output: predictions above twice the largest observed ``log1p`` value are set to 0 (the
  package's overflow guard), then ``expm1``; as in the package's default
  (``policy="restore"``), only the observed zeros are replaced: observed non-zero counts,
  and all genes that are not targets, keep their observed values.

Deviations from the package, each small: on small data (fewer ranked genes than
``n_targets``) the sub-network size is halved until it is below the number of ranked
genes, so that every sub-network has genes outside its targets to learn from (the package
then lets a gene predict itself); when the number of targets is already a multiple of
``n_targets`` no extra random sub-network is added (the package adds one); rankings use
stable sorts (ties broken by gene order).
"""

from __future__ import annotations

import numpy as np

from scziva_bench.methods._common import dense, library_sizes, seed_torch, split_cells, train_with_early_stopping

DEFAULTS = {"n_targets": 512, "n_pred": 5, "min_vmr": 0.5, "max_targets": None,
            "hidden": None, "dropout": 0.2, "epochs": 500, "batch_size": 64, "lr": 1e-4,
            "patience": 5, "validation": 0.05, "restore_positive": True, "restore_best": False,
            "normalization": "log"}
NORMALIZATIONS = ("log", "libsize_log")


def _abs_corr(X):
    """|Pearson r| between the columns of X (0 where a column is constant)."""
    Xc = X - X.mean(axis=0)
    sd = np.sqrt((Xc ** 2).sum(axis=0))
    sd[sd == 0] = np.inf
    Xc = Xc / sd
    return np.abs(Xc.T @ Xc)


def choose_targets(X, size, min_vmr, max_targets, rng):
    """Target genes (may repeat), the sub-network size and the ranked genes.

    Genes are ranked by ``var / (1 + mean)`` of the raw counts (those above 0); the top
    ``ceil(n / size) * size`` are taken, ``n`` = ``max_targets`` or the number above
    ``min_vmr``; the list is filled up to a multiple of ``size`` with ranked genes drawn
    at random. ``size`` is halved first while it is not below the number of ranked genes.
    """
    metric = X.var(axis=0, ddof=1) / (1.0 + X.mean(axis=0)) if X.shape[0] > 1 else np.zeros(X.shape[1])
    ranked = np.nonzero(metric > 0)[0]
    ranked = ranked[np.argsort(-metric[ranked], kind="stable")]
    if len(ranked) < 2:
        return np.array([], dtype=int), size, ranked
    while size > 1 and size >= len(ranked):
        size = int(np.ceil(size / 2))
    n_lim = int(max_targets) if max_targets is not None else int((metric > min_vmr).sum())
    n_sub = max(1, int(np.ceil(n_lim / size)))
    targets = ranked[: n_sub * size]
    rest = (-len(targets)) % size
    if rest:
        targets = np.concatenate([targets, rng.choice(ranked, rest, replace=True)])
    return targets, size, ranked


def _predictors(X, ranked, subsets, n_pred):
    """Input genes of each sub-network: the ranked genes (the expressed ones, std / mean
    > 0) best correlated (|r| on the raw counts) with its targets; positions in the
    ranking, so that the inputs do not depend on gene order."""
    corr = _abs_corr(X[:, ranked])
    pos = np.full(X.shape[1], -1)
    pos[ranked] = np.arange(len(ranked))
    inputs = []
    for tg in subsets:
        outside = np.setdiff1d(np.arange(len(ranked)), pos[tg])
        sub = corr[np.ix_(pos[tg], outside)]
        k = min(n_pred, len(outside))
        best = np.argsort(-sub, axis=1, kind="stable")[:, :k]
        inputs.append(ranked[np.unique(outside[best.ravel()])])
    return inputs


def _networks(inputs, size, hidden, dropout):
    """One dense sub-network per target subset, initialised as Keras' Dense layers."""
    from torch import nn

    h = int(hidden) if hidden is not None else max(1, size // 2)
    nets = nn.ModuleList(
        nn.Sequential(nn.Linear(len(inp), h), nn.ReLU(), nn.Dropout(float(dropout)),
                      nn.Linear(h, size), nn.Softplus())
        for inp in inputs)
    for m in nets.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return nets


def _predict(nets, tL, t_in, subsets, n_genes):
    """Predictions (log scale) of every sub-network, a gene drawn twice averaged; and the
    mask of the genes that were targets."""
    import torch

    nets.eval()
    pred = np.zeros((tL.shape[0], n_genes), dtype=np.float64)
    times = np.zeros(n_genes, dtype=np.float64)
    with torch.no_grad():
        for net, i, tg in zip(nets, t_in, subsets):
            yhat = net(tL[:, i]).cpu().numpy().astype(np.float64)
            np.add.at(pred.T, tg, yhat.T)
            np.add.at(times, tg, 1.0)
    tgt = times > 0
    pred[:, tgt] /= times[tgt]
    return pred, tgt


def impute(counts, *, seed, device, adata, n_targets, n_pred, min_vmr, max_targets, hidden,
           dropout, epochs, batch_size, lr, patience, validation, restore_positive, restore_best,
           normalization):
    import torch

    from scziva.errors import InputError

    if normalization not in NORMALIZATIONS:
        raise InputError(f"method 'deepimpute': normalization must be one of "
                         f"{', '.join(NORMALIZATIONS)}, got {normalization!r}")

    X = dense(counts)
    n, g = X.shape
    out = X.copy()
    rng = np.random.default_rng(seed)
    targets, size, ranked = choose_targets(X, int(n_targets), float(min_vmr), max_targets, rng)
    if len(targets) == 0:
        return out.astype(np.float32)
    subsets = rng.permutation(targets).reshape(-1, size)
    if normalization == "libsize_log":
        factor = 1e4 / library_sizes(X)  # the package's libNorm(scale=10000)
    else:
        factor = np.ones(n)
    L = np.log1p(X * factor[:, None])

    inputs = _predictors(X, ranked, subsets, int(n_pred))
    seed_torch(seed)
    dev = torch.device(device)
    nets = _networks(inputs, size, hidden, dropout).to(dev)
    opt = torch.optim.Adam(nets.parameters(), lr=float(lr), eps=1e-7)
    tL = torch.as_tensor(L, dtype=torch.float32, device=dev)
    t_in = [torch.as_tensor(i, device=dev) for i in inputs]
    t_out = [torch.as_tensor(t, device=dev) for t in subsets]
    train, val = split_cells(n, float(validation), rng)
    bs = int(batch_size)

    def loss_of(idx):
        rows = tL[idx]
        total = 0.0
        for net, i, o in zip(nets, t_in, t_out):
            y = rows[:, o]
            total = total + (y * (y - net(rows[:, i])) ** 2).mean()
        return total

    def train_epoch():
        perm = train[rng.permutation(len(train))]
        for start in range(0, len(perm), bs):
            opt.zero_grad()
            loss = loss_of(torch.as_tensor(perm[start:start + bs], device=dev))
            loss.backward()
            opt.step()

    t_val = torch.as_tensor(val, device=dev)
    train_with_early_stopping(nets, train_epoch, (lambda: loss_of(t_val)) if len(val) else None,
                              epochs=epochs, patience=patience, restore_best=bool(restore_best))

    pred, tgt = _predict(nets, tL, t_in, subsets, g)
    pred[(pred > 2.0 * L.max()) | ~np.isfinite(pred)] = 0.0  # the package's overflow guard
    pred = np.expm1(pred) / factor[:, None]
    if restore_positive:
        fill = (X == 0) & tgt[None, :]
    else:
        fill = np.broadcast_to(tgt[None, :], X.shape)
    out[fill] = pred[fill]
    return out.astype(np.float32)
