"""Fidelity settings of the re-implemented baselines, measured (docs/methods.md).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_baselines.py
    ... bench_baselines.py --methods dca --data sim_umi

For each data set (Splat simulations, 500 cells x 1,000 genes, 5 groups, 50 % dropout: the
old default deep regime and a shallow UMI-like one) and each setting, prints one row: the
Pearson correlation of log1p(imputed) and log1p(truth) on the dropped entries, the mean
squared error of log1p on all entries, the k-means ARI of the output (PCA of
log-normalised values, as the benchmark's metrics), the epochs trained (DCA, DeepImpute)
and the wall-clock and CPU seconds taken (one thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _regimes import config_regimes

# method -> setting name -> parameters (on top of the adapter's defaults)
SETTINGS = {
    "alra": {
        "default": {},
        "old_window_q10": {"noise_start": 81, "power_iters_k": 10},  # before the R-package fix
    },
    "dca": {
        "default": {},                                               # ZINB, RMSprop, last model
        "nb": {"likelihood": "nb"},                                  # the package's ae_type default
        "nb_adam": {"likelihood": "nb", "optimizer": "adam"},
        "old": {"optimizer": "adam", "restore_best": True},          # before the fidelity pass
        "no_bias_init": {"init_mean_bias": False},
    },
    "deepimpute": {
        "default": {},                                               # package: log1p of raw counts
        "libsize_log": {"normalization": "libsize_log"},             # package option "libSizeLog"
        "ep200": {"epochs": 200},
    },
    "magic": {"default": {}, "t_auto": {"t": "auto"}},
    "knn_smoothing": {"default": {}},
}

SIMS = {
    "sim_default": {},
    "sim_umi": {"lib_loc": 7.6},
    # the regimes of simulate.REGIMES at 600 genes, 4 groups (docs/methods.md's tables)
    **config_regimes(),
}


def _data(name, n_cells, n_genes):
    from scziva_bench.data import scenarios
    from scziva_bench.data import simulate

    data = simulate.splat(n_cells=n_cells, n_genes=n_genes, seed=1,
                          **{"n_groups": 5, **SIMS[name]})
    return scenarios.make(data, "dropout", rate=0.5, seed=1)


def _scores(sc_, Y):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from scziva_bench.evaluation.metrics import _pca, lognorm

    truth = sc_.layers["truth"].toarray()
    mask = sc_.layers["mask"].toarray().astype(bool)
    ly, lt = np.log1p(Y), np.log1p(truth)
    r = float(np.corrcoef(ly[mask], lt[mask])[0, 1]) if ly[mask].std() > 0 else 0.0
    P = _pca(lognorm(Y), seed=0)
    labels = sc_.obs["group"].astype(str).to_numpy()
    k = len(set(labels))
    ari = float(adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=0).fit_predict(P)))
    return r, float(np.mean((ly - lt) ** 2)), ari


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", default=",".join(SETTINGS))
    p.add_argument("--data", default=",".join(SIMS))
    p.add_argument("--settings", default=None, help="comma list of setting names (default: all)")
    p.add_argument("--cells", type=int, default=500)
    p.add_argument("--genes", type=int, default=1000)
    args = p.parse_args(argv)

    import torch

    from scziva_bench import methods
    from scziva_bench.methods import _common, dca, deepimpute

    torch.set_num_threads(1)
    epochs = []

    def counting(*a, **kw):  # record the epochs trained by each torch fit
        n = _common.train_with_early_stopping(*a, **kw)
        epochs.append(n)
        return n

    dca.train_with_early_stopping = counting
    deepimpute.train_with_early_stopping = counting
    only = set(args.settings.split(",")) if args.settings else None
    print(f"{'data':12s} {'method':11s} {'setting':15s} {'r_dropped':>9s} {'logmse_all':>10s} "
          f"{'ARI':>6s} {'epochs':>7s} {'secs':>6s} {'cpu_s':>6s}", flush=True)
    for dname in args.data.split(","):
        sc_ = _data(dname, args.cells, args.genes)
        r, mse, ari = _scores(sc_, sc_.layers["counts"].toarray())
        print(f"{dname:12s} {'no_imp':11s} {'-':15s} {r:9.3f} {mse:10.3f} {ari:6.3f} {'-':>7s} {'-':>6s}",
              flush=True)
        for mname in args.methods.split(","):
            for sname, kw in SETTINGS[mname].items():
                if only and sname not in only:
                    continue
                epochs.clear()
                t0, c0 = time.perf_counter(), time.process_time()
                Y = methods.run(mname, sc_, seed=0, device="cpu", **kw)
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                r, mse, ari = _scores(sc_, Y)
                ep = "/".join(str(e) for e in epochs) or "-"
                print(f"{dname:12s} {mname:11s} {sname:15s} {r:9.3f} {mse:10.3f} {ari:6.3f} "
                      f"{ep:>7s} {secs:6.1f} {cpu:6.1f}", flush=True)


if __name__ == "__main__":
    main()
