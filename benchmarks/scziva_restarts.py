"""Ablation: does averaging several restarts (different seeds) help scZiva? Tuning data only.

    SCZIVA_DATA=DIR PYTHONPATH=src .venv/bin/python benchmarks/scziva_restarts.py

Fits seeds 0..K-1 once each (return_params) and scores the output of one seed against the
average of the output rule over K seeds: simulation seed 100 at 20 % and 80 % dropout
(fill with mu; log1p MSE, log1p Pearson on dropped entries) and MCV on cellbench_dropseq
(the denoise rule; Poisson loss).
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scziva_tuning as T  # noqa: E402

K = 3


def fits(X, K):
    from scziva import ZIVAimpute
    out = []
    for s in range(K):
        c0 = time.process_time()
        _, m = ZIVAimpute(X, seed=s, device="cpu", return_params=True)
        out.append((m.pi, m.mu, m.theta))
        print(f"# seed {s}: {time.process_time() - c0:.1f} s CPU", file=sys.stderr, flush=True)
    return out


def main():
    import torch
    torch.set_num_threads(1)
    for rate in (20, 80):
        scen = T.sim_scenario(100, rate / 100, n_cells=400, n_genes=1000)
        X = scen.layers["counts"]
        outs = [T._apply_rule("mu", X, *p) for p in fits(X, K)]
        one, avg = T.sim_scores(scen, outs[0]), T.sim_scores(scen, np.mean(outs, axis=0))
        print(f"sim 400x1000 seed 100, {rate} % dropout: 1 fit log_mse {one['log_mse']:.4f} "
              f"log_r_drop {one['log_r_drop']:.4f} | mean of {K} log_mse {avg['log_mse']:.4f} "
              f"log_r_drop {avg['log_r_drop']:.4f}", flush=True)
    scen = T.mcv_scenario("cellbench_dropseq", 300)
    X = scen.layers["counts"]
    outs = [T._apply_rule("nb_post", X, *p) for p in fits(X, K)]
    print(f"MCV cellbench_dropseq: 1 fit {T.mcv_score(scen, outs[0]):.4f} | mean of {K} "
          f"{T.mcv_score(scen, np.mean(outs, axis=0)):.4f}", flush=True)


if __name__ == "__main__":
    main()
