"""Rule evaluate: tidy metric rows for every method of one (dataset, scenario).

Writes results/metrics/{dataset}/{scenario}/{method}.tsv for each method
(:func:`scziva_bench.evaluation.scoring.score_output`: the configured metrics, then runtime and
peak memory; failed methods kept with status failed).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.pipeline.targets import imputed_file  # noqa: E402
from scziva_bench.pipeline.job import read_benchmark, start_script  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import anndata as ad  # noqa: E402

from scziva_bench.evaluation import scoring as evaluation  # noqa: E402
from scziva_bench.evaluation import tables  # noqa: E402

sm = snakemake  # noqa: F821
ds, sc = sm.wildcards.dataset, sm.wildcards.scenario
scen = ad.read_h5ad(sm.input.scenario)
for meth, imp_dir, bench_path, out in zip(sm.params.methods, sm.input.imputed,
                                          sm.input.benchmarks, sm.output):
    imp = ad.read_h5ad(imputed_file(imp_dir, sc))
    # peak memory of the impute job, which covers every scenario of the dataset
    table = evaluation.score_output(scen, imp, ds, sc, meth, list(sm.params.metrics),
                                    max_rss_mb=read_benchmark(bench_path)["max_rss_mb"])
    log.info("%s:\n%s", meth, table.to_string())
    tables.write_tsv_atomic(table, out)
