"""Rule report: results/report.html, one self-contained page (scziva_bench.report.html)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script, write_text_atomic  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from scziva_bench.report.html import build_report  # noqa: E402

sm = snakemake  # noqa: F821
df = pd.read_csv(sm.input.metrics, sep="\t")
prov = yaml.safe_load(Path(sm.input.provenance).read_text())
# each impute job's messages.tsv: the cause of every failure, warnings, notes
tables = [pd.read_csv(p, sep="\t") for d in sm.input.imputed
          if (p := Path(d) / "messages.tsv").is_file() and p.stat().st_size]
messages = pd.concat(tables, ignore_index=True) if tables else None
page = build_report(df, list(sm.input.figures), prov, sm.params.title, sm.params.describe,
                    messages=messages, tier=sm.params.tier)
write_text_atomic(page, sm.output[0])
log.info("wrote %s (%d figures)", sm.output[0], len(sm.input.figures))
