"""The README's verdict table, generated from a run's results/ranks.tsv.

    .venv/bin/python benchmarks/readme_verdicts.py                # results/ -> README.md
    .venv/bin/python benchmarks/readme_verdicts.py --print        # print only
    .venv/bin/python benchmarks/readme_verdicts.py --results other/results

One row per (dataset, family) of ranks.tsv: the three best mean family ranks (mean over
seeds [95 % t-interval]), no_imputation's and scziva's, and the reference ranks of
oracle / perfect. Whether the first can be told apart from the others (paired test over
seeds, Holm-corrected) comes from ranking.summary of the same run's metrics.tsv (the same
protocol; the script checks that its mean ranks equal ranks.tsv's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from scziva_bench.evaluation import ranking  # noqa: E402
from _markers import replace_between  # noqa: E402  (benchmarks/, beside this script)

START = "<!-- verdicts:start (benchmarks/readme_verdicts.py writes this from results/ranks.tsv) -->"
END = "<!-- verdicts:end -->"


def _cell(r) -> str:
    if r is None:
        return "n/a"
    txt = f"{r.method} {r.mean_rank:.2f}"
    if np.isfinite(r.ci_low):
        txt += f" [{max(1.0, r.ci_low):.2f}, {r.ci_high:.2f}]"
    return txt


def table(ranks: pd.DataFrame, summary: pd.DataFrame) -> str:
    seeds = sorted(set(ranks["n_seeds"].astype(int)))
    lines = ["| dataset | family | 1st | 2nd | 3rd | no_imputation | scziva | oracle / perfect (reference) | 1st apart from 2nd? |",
             "|---|---|---|---|---|---|---|---|---|"]
    refs = set(ranking.REFERENCES)
    for (ds, fam), g in ranks.groupby(["dataset", "family"], sort=False):
        comp = g[~g["method"].isin(refs)].sort_values("mean_rank", kind="stable")
        top = list(comp.itertuples(index=False))
        get = {r.method: r for r in top}
        ref = "; ".join(f"{r.method} {r.mean_rank:.2f}" for r in g[g["method"].isin(refs)]
                        .itertuples(index=False)) or "n/a"
        s = summary[(summary["dataset"] == ds) & (summary["family"] == fam)
                    & ~summary["reference"]].set_index("method")
        first = top[0].method
        if not bool(s.loc[first, "separable"]):
            apart = "one seed: cannot tell"
        else:
            tied = [m for m in str(s.loc[first, "tied_with"]).split(", ") if m]
            apart = ("yes, from every other method" if not tied else
                     f"no: tied within noise with {len(tied)} method(s)")
        cells = [_cell(top[i]) if i < len(top) else "n/a" for i in range(3)]
        lines.append("| " + " | ".join([ds, ranking.FAMILY_LABELS.get(fam, fam)] + cells
                                       + [_cell(get.get("no_imputation")),
                                          _cell(get.get("scziva")), ref, apart]) + " |")
    head = (f"Mean family rank over {', '.join(map(str, seeds))} seed(s) [95 % t-interval] "
            "(1 = best; per seed the mean over the family's ranked metrics and the "
            "dataset's scenarios). Ties within 0.001 share a rank; \"apart\" means a paired "
            "test over seeds, Holm-corrected over all pairs, at 0.05. With 3 seeds a "
            "t-interval can reach beyond the possible ranks; its lower end is shown clipped "
            "at 1 (results/ranks.tsv keeps it as computed). Failed or NaN entries count as "
            "last.")
    return head + "\n\n" + "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--print", action="store_true")
    a = ap.parse_args(argv)
    res = Path(a.results)
    ranks = pd.read_csv(res / "ranks.tsv", sep="\t")
    summary = ranking.summary(pd.read_csv(res / "metrics.tsv", sep="\t"))
    chk = summary.set_index(["dataset", "family", "method"])["mean"]
    got = ranks.set_index(["dataset", "family", "method"])["mean_rank"]
    if not np.allclose(chk.reindex(got.index).to_numpy(), got.to_numpy()):
        raise SystemExit("ranks.tsv does not match metrics.tsv: rerun the workflow")
    text = table(ranks, summary)
    if a.print:
        print(text)
        return
    readme = REPO / "README.md"
    replace_between(readme, START, END, text)
    print(f"wrote {len(text.splitlines())} lines into {readme}")


if __name__ == "__main__":
    main()
