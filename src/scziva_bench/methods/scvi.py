"""scVI (Lopez et al. 2018, Nat Methods) through scvi-tools' ``scvi.model.SCVI``.

``gene_likelihood="zinb"`` on the raw counts; ``scvi.settings.seed = seed``. Training
runs for ``max_epochs`` passes (``None``: scvi-tools' own heuristic,
``min(400, round(400 * 20000 / n_cells))``), on the GPU when ``device`` is CUDA. Early
stopping is off by default, as in scvi-tools (``early_stopping=True`` turns it on: on
small data its validation split is tiny and it stopped far too early in our tests).
``kl_warmup`` is scvi-tools' ``n_epochs_kl_warmup`` (``None``: its default, 400 epochs).

Output on the count scale: the decoder's normalised expression (``library_size=1``,
proportions per cell, mean of ``n_samples`` posterior samples) times each cell's observed
library size. ``import scvi`` is slow (~15 s), so it happens only inside :func:`impute`.

On small data scvi-tools' epoch rule gives few gradient steps (400 epochs of 500 cells at
batch 128 are 1,600 steps); on deep simulations with weak DE that is far from enough
(benchmarks/bench_scvi.py, docs/methods.md "scVI on small data"). For a fixed CPU budget
smaller batches (``batch_size``) train it better than more epochs.
"""

from __future__ import annotations

import numpy as np

from scziva_bench.methods._common import library_sizes, pkg_version

DEFAULTS = {"max_epochs": None, "n_latent": 10, "n_hidden": 128, "n_layers": 1,
            "batch_size": 128, "early_stopping": False, "n_samples": 1, "lr": 1e-3,
            "gene_likelihood": "zinb", "kl_warmup": None}
SOURCE = pkg_version("scvi-tools") + " (scvi.model.SCVI)"


def _max_epochs_heuristic(n_cells: int) -> int:
    return int(min(400, round(400 * 20000 / max(n_cells, 1))))


def _quiet(scvi):
    import logging

    for name in ("scvi", "lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    scvi.settings.verbosity = logging.ERROR
    scvi.settings.dl_num_workers = 0


def fit(counts, *, seed, device, max_epochs, n_latent, n_hidden, n_layers, batch_size,
        early_stopping, lr, gene_likelihood, kl_warmup):
    """Train an ``scvi.model.SCVI`` on ``counts``; returns ``(model, adata)``."""
    import warnings

    import anndata as ad
    import torch

    import scvi

    _quiet(scvi)
    n_threads = torch.get_num_threads()
    scvi.settings.seed = int(seed)
    torch.set_num_threads(n_threads)  # scvi's seeding must not change the thread count

    a = ad.AnnData(X=counts.copy())
    a.obs_names = [str(i) for i in range(a.n_obs)]
    a.var_names = [str(j) for j in range(a.n_vars)]
    scvi.model.SCVI.setup_anndata(a)
    model = scvi.model.SCVI(a, n_latent=int(n_latent), n_hidden=int(n_hidden),
                            n_layers=int(n_layers), gene_likelihood=str(gene_likelihood))
    epochs = _max_epochs_heuristic(a.n_obs) if max_epochs is None else int(max_epochs)
    plan = {"lr": float(lr)}
    if kl_warmup is not None:
        plan["n_epochs_kl_warmup"] = int(kl_warmup)
    on_gpu = str(device).startswith("cuda")
    devices = [int(str(device).split(":")[1])] if on_gpu and ":" in str(device) else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(max_epochs=epochs, accelerator="gpu" if on_gpu else "cpu", devices=devices,
                    batch_size=int(batch_size), early_stopping=bool(early_stopping),
                    plan_kwargs=plan, enable_progress_bar=False,
                    enable_model_summary=False, logger=False, enable_checkpointing=False)
    scvi.settings.seed = int(seed)
    torch.set_num_threads(n_threads)
    return model, a


def impute(counts, *, seed, device, adata, n_samples, **params):
    import warnings

    model, a = fit(counts, seed=seed, device=device, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = model.get_normalized_expression(a, library_size=1, n_samples=int(n_samples),
                                              return_mean=True, return_numpy=True)
    rho = np.asarray(rho, dtype=np.float64)
    return (rho * library_sizes(counts)[:, None]).astype(np.float32)
