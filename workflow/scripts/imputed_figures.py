"""Rule umap: the figures drawn from one scenario's imputed matrices, one per output
stem: ``umap`` (truth, observed counts and every method, coloured by the true groups,
obs["group"] else obs["cell_type"]) and ``hexbin`` (imputed vs true on the dropped
entries, every non-control method)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.targets import imputed_file  # noqa: E402
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402

from scziva_bench.report import plots  # noqa: E402

sm = snakemake  # noqa: F821
scen = ad.read_h5ad(sm.input.scenario)
imputed = {}
for method, path in zip(sm.params.methods, sm.input.imputed):
    if method not in plots.CONTROLS:  # perfect = truth, no_imputation = observed
        imp = ad.read_h5ad(imputed_file(path, sm.params.scenario))
        ok = imp.uns.get("status", "ok") == "ok" and "imputed" in imp.layers
        imputed[method] = imp.layers["imputed"] if ok else None
        log.info("%s: %s", method, "ok" if ok else "failed")
where = f"{sm.params.dataset}, scenario {sm.params.scenario}"
with plots.labelled(dict(sm.params.labels)):  # the config's label: values
    for name in dict.fromkeys(Path(f).stem for f in sm.output):
        fig = plots.draw_imputed(name, scen, imputed, where)
        plots.save_figure(fig, Path(sm.output[0]).parent / name, list(sm.params.formats),
                          int(sm.params.dpi))
