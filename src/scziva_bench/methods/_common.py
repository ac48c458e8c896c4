"""Small helpers shared by the adapters (normalisation, seeding, torch training)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def pkg_version(dist: str) -> str:
    """``"<dist> <version>"`` of an installed distribution, or just ``dist``."""
    try:
        from importlib.metadata import version
        return f"{dist} {version(dist)}"
    except Exception:  # pragma: no cover - not installed
        return dist


def dense(counts) -> np.ndarray:
    """A dense float64 copy of a (sparse) count matrix."""
    return counts.toarray().astype(np.float64) if sp.issparse(counts) else np.array(counts, dtype=np.float64)


def library_sizes(X) -> np.ndarray:
    """Total counts per cell (float64); empty cells get 1 so that divisions stay finite."""
    lib = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    lib[lib <= 0] = 1.0
    return lib


def seed_torch(seed: int):
    """Seed torch's global generators (CPU and CUDA) for a bit-reproducible CPU run."""
    import torch

    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def split_cells(n_cells: int, fraction: float, rng: np.random.Generator, min_val: int = 1):
    """A random (train, validation) split of cell indices; validation may be empty."""
    perm = rng.permutation(n_cells)
    n_val = int(round(fraction * n_cells))
    if fraction > 0 and n_cells >= 10:
        n_val = max(min_val, n_val)
    else:
        n_val = 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class EarlyStopping:
    """Stop when the monitored loss has not improved by ``min_delta`` for ``patience`` epochs.

    With ``keep_state`` keeps a copy of the best state dict so that the best model can be
    restored.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, keep_state: bool = True):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.keep_state = bool(keep_state)
        self.best = np.inf
        self.bad = 0
        self.best_state = None

    def step(self, loss: float, model) -> bool:
        """Record ``loss``; return True when training should stop."""
        if loss < self.best - self.min_delta:
            self.best = loss
            self.bad = 0
            if self.keep_state:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, model):
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def train_with_early_stopping(model, train_epoch, validation_loss, *, epochs: int,
                              patience: int, on_validation=None, restore_best: bool = True) -> int:
    """The epoch loop shared by the torch re-implementations (DCA, DeepImpute).

    Each epoch: ``model.train()``, ``train_epoch()`` (one pass over the training cells);
    then, when ``validation_loss`` is given, ``model.eval()`` and ``validation_loss()``
    under ``torch.no_grad()``, passed to ``on_validation`` (e.g. a learning-rate
    scheduler) and to :class:`EarlyStopping`, which ends training after ``patience``
    epochs without improvement. With ``restore_best`` the best model (lowest validation
    loss) is restored at the end; without it the last one is kept (Keras' ``EarlyStopping``
    default, which the DCA and DeepImpute packages use). ``validation_loss=None`` (no
    validation cells) trains for ``epochs`` epochs.
    Returns the number of epochs trained.
    """
    import torch

    stopper = EarlyStopping(patience, keep_state=restore_best)
    done = 0
    for _ in range(int(epochs)):
        model.train()
        train_epoch()
        done += 1
        if validation_loss is None:
            continue
        model.eval()
        with torch.no_grad():
            vloss = float(validation_loss())
        if on_validation is not None:
            on_validation(vloss)
        if stopper.step(vloss, model):
            break
    if restore_best:
        stopper.restore(model)
    return done
