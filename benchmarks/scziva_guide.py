"""Issue 25's probability guide, measured: with the default fit (``pi_ridge="auto"``), which
observed zeros to fill. Rules: ``pi > tau`` (the default, tau = 0.001) and
``P(dropout | 0) > t`` for t = 0.1, 0.3, 0.5, and the NB part's detection probability
``1 - NB(0; mu, theta) > t`` for t = 0.3, 0.5, 0.7, each with the default fill value
(``expm1(E[log1p X])``). One JSON line per scenario (``scziva_tuning.py sim``'s scenarios,
400 x 1,000, model seed 0): the scores of ``scziva_tuning.sim_scores``, the share of observed
zeros filled, of dropped entries filled and of true zeros filled.

    PYTHONPATH=src .venv/bin/python benchmarks/scziva_guide.py umi 100,101
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scziva_tuning as T
from scziva import ZIVAimpute
from scziva.module import expected_log1p_nb
torch.set_num_threads(1)
regime, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
for rate in [20, 50, 80]:
    for seed in seeds:
        scen = T.sim_scenario(seed, rate / 100, n_cells=400, n_genes=1000, regime=regime)
        X = scen.layers["counts"]; Xd = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
        Y, m = ZIVAimpute(X, seed=0, device="cpu", return_params=True)
        pi, mu, th = (np.nan_to_num(a, nan=v).astype(np.float64) for a, v in ((m.pi, 0.0), (m.mu, 0.0), (m.theta, 1.0)))
        pd0 = T._p_dropout_given_zero(pi, mu, th)
        zero = Xd == 0
        fillv = np.expm1(expected_log1p_nb(torch.as_tensor(mu), torch.as_tensor(th)).numpy())
        drop = scen.layers["mask"].toarray().astype(bool)
        rec = dict(regime=regime, rate=rate, seed=seed, pi_ridge=m.config["pi_ridge"])
        outs = {"default": Y}
        for t in (0.1, 0.3, 0.5):
            outs[f"pdrop>{t}"] = np.where(zero & (pd0 > t), fillv, Xd).astype(np.float32)
        # the detection probability: P(X > 0) under the NB part alone, 1 - NB(0; mu, theta),
        # i.e. how likely the gene was to be seen in this cell had there been no dropout
        detect = -np.expm1(th * (np.log(th) - np.log(th + mu)))
        for t in (0.3, 0.5, 0.7):
            outs[f"detect>{t}"] = np.where(zero & (detect > t), fillv, Xd).astype(np.float32)
        for k, O in outs.items():
            filled = zero & (O > 0)
            rec[k] = {**T.sim_scores(scen, O), "fill_rate": float(filled.sum() / zero.sum()),
                      "dropped_filled": float((filled & drop).sum() / drop.sum()),
                      "true_zero_filled": float((filled & zero & ~drop & (scen.layers["truth"].toarray() == 0)).sum() / max(1, (zero & ~drop & (scen.layers["truth"].toarray() == 0)).sum()))}
        print(json.dumps(rec), flush=True)
