"""Rule aggregate: concatenate the per-job metric tables into results/metrics.tsv, write
the family ranks into results/ranks.tsv (:func:`scziva_bench.evaluation.ranking.ranks_tsv`)
and the verdicts drawn from them into results/verdicts.md
(:mod:`scziva_bench.report.verdicts`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.job import start_script, write_text_atomic  # noqa: E402

log = start_script(snakemake)  # noqa: F821

from scziva_bench.evaluation import metrics  # noqa: E402
from scziva_bench.evaluation import ranking  # noqa: E402
from scziva_bench.report import verdicts  # noqa: E402

sm = snakemake  # noqa: F821
table = metrics.aggregate(list(sm.input))
failed_runs = table.loc[table["status"] == "failed", ["dataset", "scenario", "method"]]
failed_runs = failed_runs.drop_duplicates()
log.info("%d rows from %d files; %d failed (dataset, scenario, method) runs",
         len(table), len(sm.input), len(failed_runs))
for row in failed_runs.itertuples(index=False):
    log.warning("failed: %s / %s / %s", *row)
metrics.write_tsv_atomic(table, sm.output[0])
summary = ranking.summary(table)  # once, for ranks.tsv and verdicts.md
ranks = ranking.ranks_tsv(table, summary_table=summary)
log.info("%d family-rank rows", len(ranks))
metrics.write_tsv_atomic(ranks, sm.output[1])
rows = verdicts.verdict_rows(summary)
heading = f"**Verdicts: {sm.params.title}.** {sm.params.tier}".rstrip()
write_text_atomic(verdicts.markdown(rows, heading), sm.output[2])
log.info("%d verdict rows", len(rows))
