"""The HTML report (``results/report.html``): one self-contained page, figures embedded.

:func:`build_report` turns the tidy metrics table, the figure files and the provenance
record into the page. Sections: what was run, mean ranks, failed runs, the metric values
per dataset (mean over seeds), the figures, the provenance (package versions, git commit,
the full config).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from scziva_bench import ranking, scenario_ids

__all__ = ["build_report"]

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


def _table_html(frame, float_fmt="{:.3f}"):
    return frame.to_html(float_format=lambda v: float_fmt.format(v), na_rep="n/a",
                         border=0, escape=True)


def _ranks_section(df) -> list[str]:
    ranks, failed = ranking.rank_table(df, [m for m in dict.fromkeys(df["metric"])
                                            if m not in ranking.RESOURCE_METRICS])
    order = ranks["mean"].sort_values(na_position="last").index
    shown = ranks.loc[order].T.astype(object)  # rows: metrics, columns: methods
    for c in shown.columns:
        for r in shown.index:
            v = ranks.loc[c, r]
            shown.loc[r, c] = "n/a" if pd.isna(v) else (
                f"{v:.2f} (F)" if failed.loc[c, r] else f"{v:.2f}")
    shown.index.name = "metric"
    return ["<h2>Mean ranks</h2><p>1 = best; per dataset, scenario and metric the "
            "methods (controls excluded) are ranked in the metric's direction (lower is "
            "better for errors, losses, runtime and memory), then ranks are averaged. (F): "
            "failed runs, counted as last.</p>", _table_html(shown)]


def _failures_section(df) -> list[str]:
    bad = df[df["status"] == "failed"][["dataset", "scenario", "method"]].drop_duplicates()
    parts = ["<h2>Failed runs</h2>"]
    if bad.empty:
        parts.append("<p>None: every method finished on every scenario.</p>")
    else:
        parts.append(f"<p class='failed'>{len(bad)} failed (dataset, scenario, method) runs; "
                     "their errors are in results/logs/impute/.</p>")
        parts.append(_table_html(bad.reset_index(drop=True)))
    return parts


def _values_section(df) -> list[str]:
    parts = ["<h2>Metric values</h2><p>Mean over the seeds of each scenario (rows: "
             "scenario and metric, columns: methods); <span class='failed'>failed</span> "
             "where every run failed; n/a where the metric does not apply.</p>"]
    d = df.copy()
    d["scenario"] = d["scenario"].map(scenario_ids.group_of)
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    order_all = ranking.method_order(df, controls=True)
    for ds, g in d.groupby("dataset", sort=False):
        g = g.assign(failed=g["status"] == "failed")
        mean = g.pivot_table(index=["scenario", "metric"], columns="method", values="value",
                             aggfunc="mean", sort=False, dropna=False)
        allfail = g.pivot_table(index=["scenario", "metric"], columns="method",
                                values="failed", aggfunc="all", sort=False, dropna=False)
        mean = mean.reindex(columns=[m for m in order_all if m in mean.columns]).astype(object)
        for idx in mean.index:
            for c in mean.columns:
                if bool(allfail.loc[idx, c]) and idx[1] not in ranking.RESOURCE_METRICS:
                    mean.loc[idx, c] = "failed"
        html_t = _table_html(mean).replace("<td>failed</td>", "<td class='failed'>failed</td>")
        parts.append(f"<h3>{esc(str(ds))}</h3>{html_t}")
    return parts


def _figures_section(figures) -> list[str]:
    parts = ["<h2>Figures</h2>"]
    for path in figures:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{esc(Path(path).stem)}' "
                     f"src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(Path(path).name)}</figcaption></figure>")
    return parts


def _provenance_section(prov) -> list[str]:
    import yaml

    vers = pd.DataFrame({"version": prov.get("packages", {})})
    vers.loc["python", "version"] = prov.get("python")
    return ["<h2>Provenance</h2>", _table_html(vers.fillna("not installed")),
            f"<p>Platform: {esc(str(prov.get('platform')))}</p>",
            "<h3>Configuration</h3><pre>"
            + esc(yaml.safe_dump(prov.get("config"), sort_keys=False)) + "</pre>"]


def build_report(metrics_df: pd.DataFrame, figures, provenance: dict, title: str,
                 describe: str) -> str:
    """The report page as one HTML string.

    ``metrics_df``: the tidy metrics table; ``figures``: PNG paths, embedded in order;
    ``provenance``: the record of rule provenance (``created_utc``, ``git_commit``,
    ``packages``, ``python``, ``platform``, ``config``); ``describe``: one line per item
    of "what was run" (``workflow_utils.describe_config``).
    """
    df = metrics_df.copy()
    if "status" not in df:
        df["status"] = "ok"
    prov = provenance or {}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>Made {esc(str(prov.get('created_utc')))} from git commit "
             f"<code>{esc(str(prov.get('git_commit')))}</code>.</p>",
             "<h2>What was run</h2><ul>"]
    parts += [f"<li>{esc(line)}</li>" for line in str(describe).splitlines()]
    parts.append("</ul>")
    parts += _ranks_section(df)
    parts += _failures_section(df)
    parts += _values_section(df)
    parts += _figures_section(figures)
    parts += _provenance_section(prov)
    parts.append("</body></html>")
    return "\n".join(parts)
