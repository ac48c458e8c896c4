"""Rule report: results/report.html, one self-contained page (figures embedded).

Sections: what was run (data, scenarios, seeds, methods), mean ranks, failed runs, the
metric values per dataset (mean over seeds), the figures, and the provenance (package
versions, git commit, the full config).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve()))  # noqa: F821  (finds _bootstrap)
import _bootstrap  # noqa: E402,F401  (this checkout's src/ first on sys.path)
from scziva_bench.workflow_utils import start_script, write_text_atomic  # noqa: E402

log = start_script(snakemake)  # noqa: F821

import base64  # noqa: E402
import html  # noqa: E402

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from scziva_bench import plots  # noqa: E402

sm = snakemake  # noqa: F821
df = pd.read_csv(sm.input.metrics, sep="\t")
if "status" not in df:
    df["status"] = "ok"
prov = yaml.safe_load(Path(sm.input.provenance).read_text())
esc = html.escape

CSS = """
body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.failed{color:#c00;font-weight:bold} img{max-width:100%;border:1px solid #ddd}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.8em}
figure{margin:1em 0 2em} figcaption{font-size:0.9em;color:#555}
"""


def table_html(frame, float_fmt="{:.3f}"):
    return frame.to_html(float_format=lambda v: float_fmt.format(v), na_rep="n/a",
                         border=0, escape=True)


parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(sm.params.title)}"
         f"</title><style>{CSS}</style></head><body>",
         f"<h1>{esc(sm.params.title)}</h1>",
         f"<p>Made {esc(str(prov.get('created_utc')))} from git commit "
         f"<code>{esc(str(prov.get('git_commit')))}</code>.</p>",
         "<h2>What was run</h2><ul>"]
parts += [f"<li>{esc(line)}</li>" for line in sm.params.describe.splitlines()]
parts.append("</ul>")

# ranks
ranks, failed = plots.rank_table(df, [m for m in dict.fromkeys(df["metric"])
                                      if m not in plots.RESOURCE_METRICS])
order = ranks["mean"].sort_values(na_position="last").index
shown = ranks.loc[order].T.astype(object)  # rows: metrics, columns: methods
for c in shown.columns:
    for r in shown.index:
        v = ranks.loc[c, r]
        shown.loc[r, c] = "n/a" if pd.isna(v) else (
            f"{v:.2f} (F)" if failed.loc[c, r] else f"{v:.2f}")
shown.index.name = "metric"
parts.append("<h2>Mean ranks</h2><p>1 = best; per dataset, scenario and metric the "
             "methods (controls excluded) are ranked in the metric's direction (lower is "
             "better for errors, losses, runtime and memory), then ranks are averaged. (F): "
             "failed runs, counted as last.</p>")
parts.append(table_html(shown))

# failures
bad = df[df["status"] == "failed"][["dataset", "scenario", "method"]].drop_duplicates()
parts.append("<h2>Failed runs</h2>")
if bad.empty:
    parts.append("<p>None: every method finished on every scenario.</p>")
else:
    parts.append(f"<p class='failed'>{len(bad)} failed (dataset, scenario, method) runs; "
                 "their errors are in results/logs/impute/.</p>")
    parts.append(table_html(bad.reset_index(drop=True)))

# values
parts.append("<h2>Metric values</h2><p>Mean over the seeds of each scenario (rows: "
             "scenario and metric, columns: methods); <span class='failed'>failed</span> "
             "where every run failed; n/a where the metric does not apply.</p>")
d = df.copy()
d["scenario"] = d["scenario"].map(plots.scenario_group)
d["value"] = pd.to_numeric(d["value"], errors="coerce")
order_all = plots.method_order(df, controls=True)
for ds, g in d.groupby("dataset", sort=False):
    g = g.assign(failed=g["status"] == "failed")
    mean = g.pivot_table(index=["scenario", "metric"], columns="method", values="value",
                         aggfunc="mean", sort=False, dropna=False)
    allfail = g.pivot_table(index=["scenario", "metric"], columns="method", values="failed",
                            aggfunc="all", sort=False, dropna=False)
    mean = mean.reindex(columns=[m for m in order_all if m in mean.columns]).astype(object)
    for idx in mean.index:
        for c in mean.columns:
            if bool(allfail.loc[idx, c]) and idx[1] not in plots.RESOURCE_METRICS:
                mean.loc[idx, c] = "failed"
    html_t = table_html(mean).replace("<td>failed</td>", "<td class='failed'>failed</td>")
    parts.append(f"<h3>{esc(str(ds))}</h3>{html_t}")

# figures
parts.append("<h2>Figures</h2>")
for path in sm.input.figures:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    parts.append(f"<figure><img alt='{esc(Path(path).stem)}' src='data:image/png;base64,{data}'>"
                 f"<figcaption>{esc(Path(path).name)}</figcaption></figure>")

# provenance
parts.append("<h2>Provenance</h2>")
vers = pd.DataFrame({"version": prov.get("packages", {})})
vers.loc["python", "version"] = prov.get("python")
parts.append(table_html(vers.fillna("not installed")))
parts.append(f"<p>Platform: {esc(str(prov.get('platform')))}</p>")
parts.append("<h3>Configuration</h3><pre>"
             + esc(yaml.safe_dump(prov.get("config"), sort_keys=False)) + "</pre>")
parts.append("</body></html>")
write_text_atomic("\n".join(parts), sm.output[0])
log.info("wrote %s (%d figures)", sm.output[0], len(sm.input.figures))
