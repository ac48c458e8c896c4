"""Rule umap: UMAPs of truth, observed counts and every method's imputation of one
scenario, coloured by the true groups (obs["group"], else obs["cell_type"])."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import imputed_file, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402

from scziva_bench import plots  # noqa: E402

sm = snakemake  # noqa: F821
scen = ad.read_h5ad(sm.input.scenario)
labels = None
for key in ("group", "cell_type"):
    if key in scen.obs:
        labels = scen.obs[key].astype(str).to_numpy()
        break
if labels is None:
    labels = np.full(scen.n_obs, "unlabelled")
panels = {}
if "truth" in scen.layers:
    panels["truth"] = scen.layers["truth"]
panels["observed"] = scen.layers["counts"]
for method, path in zip(sm.params.methods, sm.input.imputed):
    if method in plots.CONTROLS:
        continue  # perfect = truth and no_imputation = observed, drawn above
    imp = ad.read_h5ad(imputed_file(path, sm.params.scenario))
    ok = imp.uns.get("status", "ok") == "ok" and "imputed" in imp.layers
    panels[method] = imp.layers["imputed"] if ok else None
    log.info("panel %s (%s)", method, "ok" if ok else "failed")
title = f"{sm.params.dataset}, scenario {sm.params.scenario}: UMAP (log1p CPM, PCA), seed 0"
fig = plots.plot_umaps(panels, labels, seed=0, title=title)
plots.save_figure(fig, Path(sm.output[0]).with_suffix(""), list(sm.params.formats),
                  int(sm.params.dpi))
