"""Why scVI clusters badly on the default simulation: settings of the adapter, measured.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_scvi.py
    ... bench_scvi.py --data sim_default --variants adapter,warm0 --cells 500
    ... bench_scvi.py --real path/to/cellbench_celseq2.h5ad   # adds a real dataset (top 1000 genes)

For each data set (Splat simulations, 5 groups: the old default deep regime at 50 %
dropout and without dropout, stronger DE, a shallow UMI-like regime; optionally a real
data set) and each scVI setting, prints one row: k-means ARI of the latent means and of
the imputed output (PCA of log-normalised values, as the benchmark's metrics do;
``ARI_output`` with the setting's ``n_samples`` posterior samples, ``ARI_out25`` with the
mean of 25), the multiple correlation R of log library size with the latent (linear
regression on all latent dimensions), the median learned inverse dispersion theta
(scVI starts it at exp(N(0, 1)), about 1), the wall-clock and CPU seconds the fit took
(one thread), and, as references, the ARI of the observed counts (``no_imputation``)
and of the truth. Findings: docs/methods.md, "scVI on small data".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _regimes import config_regimes

# name -> adapter parameters (on top of the adapter's defaults)
VARIANTS = {
    "adapter": {"max_epochs": 150},                          # the old default config
    "warm0": {"max_epochs": 150, "kl_warmup": 0},            # full KL weight from the start
    "warm_ep": {"max_epochs": 150, "kl_warmup": 75},         # KL reaches 1 halfway
    "ep400": {"max_epochs": None},                           # scvi-tools' defaults (400 here)
    "nb": {"max_epochs": 150, "gene_likelihood": "nb"},
    "ep50_w0": {"max_epochs": 50, "kl_warmup": 0},
    "bs32": {"max_epochs": 150, "batch_size": 32},               # 4x the gradient steps
    "lr4e-3": {"max_epochs": 150, "lr": 4e-3},
    "ep50_lr4e-3": {"max_epochs": 50, "lr": 4e-3},
    "lr1e-2": {"max_epochs": 150, "lr": 1e-2},
    "poisson": {"max_epochs": 150, "gene_likelihood": "poisson"},  # no dispersion to learn
    "ep1000": {"max_epochs": 1000},
    # about 10 CPU seconds each on 500 cells x 1,000 genes (one thread)
    "ep90": {"max_epochs": 90},
    "ep45_bs32": {"max_epochs": 45, "batch_size": 32},
    "ep150_bs32": {"max_epochs": 150, "batch_size": 32},
    "ep100_bs64": {"max_epochs": 100, "batch_size": 64},
}

SIMS = {
    "sim_default": {},                                          # splat's defaults (deep, weak DE)
    "sim_nodrop": {},                                           # the same without dropout
    "sim_strong_de": {"de_loc": 0.5, "de_prob": 0.2},
    "sim_umi": {"lib_loc": 7.6},                                # ~2 counts per entry
    # the regimes of simulate.REGIMES at 600 genes, 4 groups (docs/methods.md's tables)
    **config_regimes(),
}


def _ari_kmeans(P, labels, k, seed=0):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=seed).fit_predict(P)))


def _ari_output(Y, labels, k):
    from scziva_bench.evaluation.metrics import _pca, lognorm

    P = _pca(lognorm(Y), seed=0)
    return float("nan") if P is None or isinstance(P, str) else _ari_kmeans(P, labels, k)


def _lib_R(Z, lib):
    """Multiple correlation of log library size with the columns of Z."""
    A = np.column_stack([np.ones(len(Z)), Z])
    y = np.log(lib)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    r2 = 1.0 - np.var(y - A @ coef) / np.var(y)
    return float(np.sqrt(max(r2, 0.0)))


def _datasets(names, n_cells, n_genes, real):
    import anndata as ad
    import scipy.sparse as sp

    from scziva_bench.data import scenarios
    from scziva_bench.data import simulate

    out = {}
    for name in names:
        if name in SIMS:
            data = simulate.splat(n_cells=n_cells, n_genes=n_genes, seed=1,
                                  **{"n_groups": 5, **SIMS[name]})
            labels = data.obs["group"].astype(str).to_numpy()
            if name == "sim_nodrop":
                X = data.layers["counts"].tocsr()
                out[name] = (X, X.toarray(), labels)
                continue
            sc_ = scenarios.make(data, "dropout", rate=0.5, seed=1)
            out[name] = (sc_.layers["counts"].tocsr(), sc_.layers["truth"].toarray(), labels)
    if real:
        a = ad.read_h5ad(real)
        X = a.X.tocsr() if sp.issparse(a.X) else sp.csr_matrix(a.X)
        top = np.argsort(-np.asarray(X.mean(axis=0)).ravel(), kind="stable")[:n_genes]
        X = X[:, np.sort(top)].astype(np.float32)
        keep = np.asarray(X.sum(axis=1)).ravel() > 0
        out["real"] = (X[keep], None, a.obs["cell_type"].astype(str).to_numpy()[keep])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=",".join(SIMS), help="comma list of " + ", ".join(SIMS))
    p.add_argument("--variants", default="adapter,warm0,ep400,nb", help="comma list of " + ", ".join(VARIANTS))
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--real", default=None, help="an h5ad with raw counts in X and obs['cell_type']")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import warnings

    import torch

    from scziva_bench.methods import defaults
    from scziva_bench.methods import scvi as adapter
    from scziva_bench.methods._common import library_sizes

    torch.set_num_threads(1)
    data = _datasets([d for d in args.data.split(",") if d], args.cells, args.genes, args.real)
    print(f"{'data':14s} {'variant':11s} {'epochs':>6s} {'ARI_latent':>10s} {'ARI_output':>10s} "
          f"{'ARI_out25':>9s} {'R_lib':>6s} {'theta':>6s} {'fit_s':>6s} {'cpu_s':>6s} {'ARI_counts':>10s} "
          f"{'ARI_truth':>9s}",
          flush=True)
    for dname, (X, truth, labels) in data.items():
        k = len(set(labels))
        ari_counts = _ari_output(X.toarray(), labels, k)
        ari_truth = float("nan") if truth is None else _ari_output(truth, labels, k)
        lib = library_sizes(X)
        for vname in [v for v in args.variants.split(",") if v]:
            kw = {**defaults("scvi"), **VARIANTS[vname]}
            n_samples = kw.pop("n_samples")
            t0, c0 = time.perf_counter(), time.process_time()
            model, a = adapter.fit(X, seed=args.seed, device="cpu", **kw)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            theta = float(np.median(model.module.px_r.detach().exp().cpu().numpy()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Z = model.get_latent_representation(a)
                rho = model.get_normalized_expression(a, library_size=1, n_samples=n_samples,
                                                      return_mean=True, return_numpy=True)
                rho25 = model.get_normalized_expression(a, library_size=1, n_samples=25,
                                                        return_mean=True, return_numpy=True)
            Y = np.asarray(rho, dtype=np.float64) * lib[:, None]
            Y25 = np.asarray(rho25, dtype=np.float64) * lib[:, None]
            epochs = kw["max_epochs"] or adapter._max_epochs_heuristic(X.shape[0])
            print(f"{dname:14s} {vname:11s} {epochs:6d} {_ari_kmeans(Z, labels, k):10.3f} "
                  f"{_ari_output(Y, labels, k):10.3f} {_ari_output(Y25, labels, k):9.3f} "
                  f"{_lib_R(Z, lib):6.2f} {theta:6.1f} {secs:6.1f} "
                  f"{cpu:6.1f} {ari_counts:10.3f} {ari_truth:9.3f}", flush=True)


if __name__ == "__main__":
    main()
