"""Issue 25: one fit instead of the two of the held-out ``pi_ridge`` selection. Per simulated
scenario (as ``scziva_tuning.py sim``): one fit with ``pi_ridge`` 0 and one with 1; from
them, without refitting,

* ``scziva+pi_ridge=heldout``: the two-fit selection by held-out negative ELBO (the default
  until 2026-12-03; its output is bit for bit the kept fit's, its time both fits');
* ``scziva``: the default ``pi_ridge="auto"`` (one fit; the penalty when most zeros are
  Poisson sampling zeros, ``scziva.core.rule_pi_ridge``; its output is bit for bit the
  fit with the chosen penalty, its time that fit's plus the statistic's);
* ``scziva+pi_ridge=warm`` (and ``+wf=F``): the ``pi_ridge`` 0 fit continued from its kept
  weights (and Adam state) with the penalty 1 for 20 % (F) of its epochs, the lower
  held-out negative ELBO of the two kept (a rejected one-fit candidate).

Writes ``scziva_tuning.py``'s cache entries (``benchmarks/out/sim__...``), so that

    PYTHONPATH=src .venv/bin/python benchmarks/scziva_tuning.py sim --cached-only --regime umi \\
        --seeds 100,101 --cells 400 --genes 1000 --tag i25 \\
        --variants "scziva+pi_ridge=0,scziva+pi_ridge=1,scziva+pi_ridge=heldout,scziva+pi_ridge=warm,scziva"

prints the table; ``scziva_tuning.py sim`` without ``--cached-only`` refits the fixed and
held-out variants itself (same seed, same output). One JSON line per scenario on stdout:
held-out losses, the statistic, choices and times.

    PYTHONPATH=src .venv/bin/python benchmarks/scziva_pi_ridge.py --regime umi --seeds 100,101 --tag i25

``--mcv goolam,islam,...`` does the same on real data sets (``scziva_tuning.py mcv``'s protocol
and cache keys, ``--data`` or ``$SCZIVA_DATA``; no warm continuation): the fixed fits, the
held-out selection and the rule, scored by MCV Poisson loss.

``--cluster-shares`` fits nothing: it prints, per scenario (or ``--mcv`` data set), the share
of sampling zeros pooled over all cells and with each cell's gene shares taken from the
other cells of its k-means cluster (k = 5 and 10 on 20 principal components of the
log-normalised counts; the idea measured in docs/scziva.md, not adopted).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scziva_tuning as T  # noqa: E402


def continue_penalised(model, plan0, s, data, fraction, ridge=1.0):
    """From ``plan0``'s kept weights, auxiliary weight and Adam state, train with the penalty
    for ``fraction`` of ``plan0``'s epochs (no KL warm-up; the same held-out cells); keep in
    ``model`` the weights with the lower held-out negative ELBO. Returns (kept ridge,
    {ridge: loss})."""
    from scziva.training import MiniBatchPlan, Reporter
    state0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_more = max(1, math.ceil(fraction * plan0.stopped_epoch))
    s1 = replace(s, pi_ridge=ridge, kl_warmup_epochs=0, num_epochs=n_more)
    plan1 = MiniBatchPlan(model, s1, Reporter(n_more, False, False), np.random.default_rng(s.seed))
    plan1.aux_w.load_state_dict(plan0.aux_w.state_dict())
    plan1.opt.load_state_dict(plan0.opt.state_dict())
    plan1.fit(data)
    losses = {0.0: plan0.best_val, ridge: plan1.best_val}
    if plan1.best_val < plan0.best_val:
        return ridge, losses
    model.load_state_dict(state0)
    return 0.0, losses


def cluster_shares(X, ks=(5, 10)):
    """Share of sampling zeros with leave-one-out gene shares within k-means clusters."""
    import scipy.sparse as sp
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    X = sp.csr_matrix(X).astype(np.float64)
    X = X[np.asarray(X.sum(1)).ravel() > 0][:, np.asarray(X.sum(0)).ravel() > 0]
    n, g = X.shape
    lib = np.asarray(X.sum(1)).ravel()
    D = X.toarray()
    P = PCA(20, random_state=0).fit_transform(np.log1p(D / lib[:, None] * np.median(lib)))
    out = []
    for k in ks:
        lab = KMeans(k, n_init=4, random_state=0).fit_predict(P)
        expected = 0.0
        for c in np.unique(lab):
            Dc, lc = D[lab == c], lib[lab == c]
            if Dc.shape[0] < 2:
                expected += np.exp(-np.outer(lc, D.sum(0) / D.sum())).sum()
                continue
            share_loo = (Dc.sum(0)[None, :] - Dc) / (Dc.sum() - lc)[:, None]
            expected += np.exp(-lc[:, None] * share_loo).sum()
        out.append(expected / (n * g - X.nnz))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regime", default="splat", choices=["splat", "umi", "fulllength"])
    p.add_argument("--seeds", default="100,101")
    p.add_argument("--rates", default="20,50,80")
    p.add_argument("--cells", type=int, default=400)
    p.add_argument("--genes", type=int, default=1000)
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--fractions", default="0.2", help="warm continuation lengths (fractions of the first fit's epochs)")
    p.add_argument("--tag", default="i25")
    p.add_argument("--mcv", default="", help="comma-separated real data sets: MCV instead of simulations")
    p.add_argument("--data", default=None, help="folder of the .h5ad files (--mcv)")
    p.add_argument("--cluster-shares", action="store_true", help="print the shares only (no fits)")
    a = p.parse_args()
    if a.data:
        T.DATA = Path(a.data)
    torch.set_num_threads(1)
    from scziva import core
    from scziva.data import prepare_data
    from scziva.settings import ZivaSettings
    from scziva.training import Reporter
    from scziva.validate import check_counts

    fractions = [float(f) for f in a.fractions.split(",") if f]
    cpu = torch.device("cpu")
    if a.mcv:
        jobs = [(ds, None, None) for ds in a.mcv.split(",") if ds]
    else:
        jobs = [(a.regime, int(r), int(x)) for r in a.rates.split(",") for x in a.seeds.split(",")]
    for name, rate, seed in jobs:
        if a.mcv:
            scen = T.mcv_scenario(name, a.cells)
            kind, tag, score = "mcv", f"{name}_{a.cells}", lambda Y: {"mcv_poisson": T.mcv_score(scen, Y)}
            fractions = []
        else:
            tag = f"{a.cells}x{a.genes}_d{rate}_s{seed}"
            if a.regime != "splat":
                tag = f"{a.regime}_{tag}"
            scen = T.sim_scenario(seed, rate / 100, n_cells=a.cells, n_genes=a.genes, regime=a.regime)
            kind, score = "sim", lambda Y: T.sim_scores(scen, Y)
        M, _ = check_counts(scen.layers["counts"], "counts")
        s = ZivaSettings(seed=a.model_seed)
        prepared = prepare_data(M, s)
        t0 = time.perf_counter()
        s_rule, rule = core.rule_pi_ridge(s, prepared.matrix, prepared.library)
        rule_sec = time.perf_counter() - t0
        if a.cluster_shares:
            k5, k10 = cluster_shares(M)
            print(json.dumps(dict(data=name, rate=rate, seed=seed, pooled=rule["sampling_zero_share"],
                                  cluster_k5=k5, cluster_k10=k10)), flush=True)
            continue
        rec = dict(regime=name, rate=rate, seed=seed, share=rule["sampling_zero_share"],
                   rule=s_rule.pi_ridge, rule_sec=rule_sec)
        res = {}
        for ridge in (0.0, 1.0):
            sr = replace(s, pi_ridge=ridge)
            t0 = time.perf_counter()
            model, plan, data = core._fit_one(prepared, sr, cpu, Reporter(sr.num_epochs, False, False))
            sec = time.perf_counter() - t0
            Y, _ = core.impute_batches(model, data, prepared, sr)
            variant = f"scziva+pi_ridge={ridge:g}"
            res[variant] = {**score(Y), "seconds": sec}
            rec[f"val{ridge:g}"], rec[f"sec{ridge:g}"], rec[f"epochs{ridge:g}"] = plan.best_val, sec, plan.stopped_epoch
            if ridge:
                continue
            for f in fractions:
                m2 = copy.deepcopy(model)
                t0 = time.perf_counter()
                kept, losses = continue_penalised(m2, plan, s, data, f)
                sec_w = sec + time.perf_counter() - t0
                Yw, _ = core.impute_batches(m2, data, prepared, replace(s, pi_ridge=kept))
                res["scziva+pi_ridge=warm" + ("" if f == 0.2 else f"+wf={f:g}")] = {**score(Yw), "seconds": sec_w}
                rec[f"warm{f:g}"] = dict(kept=kept, losses={str(k): v for k, v in losses.items()}, seconds=sec_w)
        held = 0.0 if rec["val0"] <= rec["val1"] else 1.0
        rec["heldout"] = held
        res["scziva+pi_ridge=heldout"] = {**res[f"scziva+pi_ridge={held:g}"], "seconds": rec["sec0"] + rec["sec1"]}
        r = s_rule.pi_ridge
        res["scziva"] = {**res[f"scziva+pi_ridge={r:g}"], "seconds": rec[f"sec{r:g}"] + rule_sec}
        for v, r in res.items():
            T._cache_path(kind, f"{tag}_scziva{a.tag}_{v}_s{a.model_seed}").write_text(json.dumps(r))
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
