"""Rule figures: metric panels, rank heatmap and resources from results/metrics.tsv."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402

from scziva_bench import plots  # noqa: E402

sm = snakemake  # noqa: F821
df = pd.read_csv(sm.input[0], sep="\t")
outdir = Path(sm.output[0]).parent
formats = list(sm.params.formats)
dpi = int(sm.params.dpi)
for metric in sm.params.metrics:
    fig = plots.plot_metric(df, metric)
    log.info("figure metric_%s", metric)
    plots.save_figure(fig, outdir / f"metric_{metric}", formats, dpi)
plots.save_figure(plots.plot_ranks(df, list(sm.params.metrics)), outdir / "ranks", formats, dpi)
plots.save_figure(plots.plot_resources(df), outdir / "resources", formats, dpi)
missing = [f for f in sm.output if not Path(f).is_file()]
if missing:
    raise FileNotFoundError(f"figures not written: {missing}")
