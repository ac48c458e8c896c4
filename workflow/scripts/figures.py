"""Rule figures: every figure drawn from results/metrics.tsv, one per output file stem
(names: scziva_bench.catalog.figures.figure_names; drawing: scziva_bench.report.plots.draw)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from scziva_bench.report import plots  # noqa: E402

sm = snakemake  # noqa: F821
df = pd.read_csv(sm.input[0], sep="\t")
outdir = Path(sm.output[0]).parent
described = dict(getattr(sm.params, "datasets", None) or {})  # name -> description
with plots.labelled(dict(sm.params.labels)):  # the config's label: values
    for name in dict.fromkeys(Path(f).stem for f in sm.output):
        log.info("figure %s", name)
        plots.save_figure(plots.draw(name, df, described), outdir / name,
                          list(sm.params.formats), int(sm.params.dpi))
missing = [f for f in sm.output if not Path(f).is_file()]
if missing:
    raise FileNotFoundError(f"figures not written: {missing}")
