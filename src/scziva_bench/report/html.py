"""The HTML report (``results/report.html``): one self-contained page, figures embedded.

:func:`build_report` turns the tidy metrics table, the figure files and the provenance
record into the page. Sections: how to read it (seeds, datasets with their description
and tuning/reporting split, what a rank means), flags (methods worse than
``no_imputation`` on clustering), verdicts per dataset and metric family (with ties
within noise), the family ranks, failed runs, the metric values (mean and 95 % interval
over seeds), the figures, the provenance (package versions, git commit, the config).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from scziva_bench.catalog import figures as figure_list
from scziva_bench.report import verdicts
from scziva_bench.catalog import metrics as metric_specs
from scziva_bench.evaluation import ranking
from scziva_bench.catalog import scenarios as scenario_ids

__all__ = ["build_report", "clustering_flags", "RANK_TEXT", "CAPTIONS"]

esc = html.escape

CSS = """
body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.82em;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.failed{color:#c00;font-weight:bold} img{max-width:100%;border:1px solid #ddd}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.8em}
figure{margin:1em 0 2.5em} figcaption{font-size:0.9em;color:#444;max-width:60em}
.flag{background:#fff3f0;border-left:4px solid #c00;padding:0.4em 0.8em;margin:0.3em 0}
.note{background:#f4f7fb;border-left:4px solid #5577aa;padding:0.5em 1em}
.tied{font-weight:bold} table.answer td{text-align:left}
"""

#: what each rank means (report, README, docs)
RANK_TEXT = (
    "Within one dataset, scenario and seed, every method and the control no_imputation "
    "is ranked on each ranked metric in that metric's direction (1 = best; values within "
    "0.001 of each other are tied and share the mean rank). A failed method, or a NaN "
    "value, takes the last place. Only metrics that pass the reference-output panel are "
    "ranked (docs/metrics.md, Validation). perfect (the truth itself) and oracle (a "
    "simulation's true means at each cell's depth) are not competitors: each one's "
    "reference rank is the place it would take among the others, a check of the metric "
    "(1 where the metric does its job). Ranks are kept apart by metric family "
    "(imputation of the observed zeros, denoising against the true means, MCV, "
    "clustering, DE, gene-gene correlation). A method's family rank in one seed is the "
    "mean over the family's metrics and the dataset's scenarios of that seed; the report "
    "gives its mean over seeds and a 95 % t-interval. The unit of replication is the "
    "seed: a new dropout mask or split and, for simulations and downsampled data, a new "
    "dataset "
    "(other sources of variation, such as the choice of real dataset, are not "
    "replicated). Two methods are apart beyond noise only when a paired test over seeds "
    "of their family ranks (paired t-test whose standard deviation of the differences is "
    "at least half a rank, so zero variance alone never separates) is significant at 0.05 after "
    "Holm's correction over all pairs of the dataset and family; otherwise they are tied "
    "within noise. With three seeds only large, consistent differences separate; with "
    "one seed nothing can be told apart."
)

CAPTIONS = figure_list.CAPTIONS

CLUSTERING_FLAG_METRICS = ("ari_kmeans", "ari_leiden")


def _table_html(frame, float_fmt="{:.3f}"):
    return frame.to_html(float_format=lambda v: float_fmt.format(v), na_rep="n/a",
                         border=0, escape=True)


def _plain_table(frame) -> str:
    """A table without the row index, its cells escaped."""
    return frame.to_html(index=False, border=0, escape=True)


def _datasets(prov) -> dict:
    return ((prov.get("config") or {}).get("datasets") or {})


def _where(ds, prov) -> str:
    """``name (regime, else description; split)`` of a dataset, from the config in the
    provenance."""
    spec = _datasets(prov).get(ds) or {}
    label = spec.get("regime") or spec.get("description")
    bits = [f"{label} regime" if spec.get("regime") and "regime" not in str(label)
            else str(label)] if label else []
    if spec.get("split"):
        bits.append(f"{spec['split']} split")
    return f"{ds} ({'; '.join(bits)})" if bits else str(ds)


# ------------------------------------------------------------------ sections

def _reading_section(d: pd.DataFrame, prov) -> list[str]:
    seeds = d[d["status"] != "not_applicable"].groupby(["dataset", "group"])["seed"].nunique()
    rows = []
    for ds, g in d.groupby("dataset", sort=False):
        spec = _datasets(prov).get(ds) or {}
        groups = list(dict.fromkeys(g["group"]))
        rows.append({
            "dataset": ds,
            "regime": spec.get("regime", "not given"),
            "description": spec.get("description", "not given"),
            "source": spec.get("source", "?"),
            "split": spec.get("split", "not stated"),
            "scenarios (seeds)": ", ".join(
                f"{scenario_ids.label_of(x)} ({int(seeds.get((ds, x), 0))})" for x in groups),
        })
    lo, hi = (int(seeds.min()), int(seeds.max())) if len(seeds) else (0, 0)
    n_seeds = f"{lo}" if lo == hi else f"{lo} to {hi}"
    parts = ["<h2>How to read this report</h2><div class='note'>",
             f"<p><b>Seeds.</b> Each scenario was run with {n_seeds} seed(s) (the "
             "<code>_sN</code> suffix of a scenario id). Values are means over seeds with a "
             "95 % t-interval" + (" (none with one seed: differences between methods "
                                   "cannot be told from noise)" if lo <= 1 else "")
             + ".</p>",
             f"<p><b>Ranks.</b> {esc(RANK_TEXT)}</p>",
             "<p><b>Families.</b> " + "; ".join(
                 f"{esc(ranking.FAMILY_LABELS[f])}: "
                 + esc(", ".join(m for m in dict.fromkeys(d['metric'])
                                 if m in metric_specs.SPECS
                                 and metric_specs.spec(m).family == f and metric_specs.spec(m).ranked))
                 for f in ranking.FAMILY_ORDER if f != "resources"
                 and any(m in metric_specs.SPECS and metric_specs.spec(m).family == f
                         for m in d["metric"].unique())) + ".</p>",
             "<p><b>Datasets.</b> Every verdict below holds for the dataset (simulation "
             "regime) it names only. <i>split</i>: whether a dataset was used to tune "
             "methods (<i>tuning</i>) or only to report (<i>reporting</i>), as the config "
             "says.</p></div>",
             _plain_table(pd.DataFrame(rows))]
    parts += _methods_table(d, prov)
    return parts


def _methods_table(d: pd.DataFrame, prov) -> list[str]:
    """Name, figure label, kind (re-implementations say so) and source of each method."""
    try:
        from scziva_bench.methods import describe
    except ImportError:  # a registry without descriptions: names only
        describe = None
    config_methods = (prov.get("config") or {}).get("methods") or {}
    rows = []
    for m in ranking.method_order(d, controls=True):
        info = {}
        if describe is not None:
            try:
                info = describe(m, config_methods)
            except TypeError:
                info = describe(m)
        rows.append({"method": m, "label in figures": info.get("label", m),
                     "kind": info.get("kind", ""), "source": info.get("source", "")})
    table = pd.DataFrame(rows)
    table = table[[c for c in table.columns if c == "method" or (table[c] != "").any()]]
    return ["<p><b>Methods.</b> <i>reimplementation</i>: re-implemented in this repository "
            "from the paper, not the authors' package; its results may differ from the "
            "package's.</p>", _plain_table(table)]


def clustering_flags(df: pd.DataFrame, metrics=CLUSTERING_FLAG_METRICS) -> pd.DataFrame:
    """Methods whose mean ARI (over seeds) is below ``no_imputation``'s, per dataset and
    scenario group. Columns ``dataset, group, metric, method, value`` (mean over the seeds
    it did not fail), ``baseline``, ``worse_seeds`` (seeds lower or failed), ``seeds``,
    ``failed`` (seeds failed); a method that failed in some seed is flagged too."""
    d = ranking.tidy(df)
    d = d[d["metric"].isin(metrics) & (d["status"] != "not_applicable")]
    cols = ["dataset", "group", "metric", "method", "value", "baseline", "worse_seeds",
            "seeds", "failed"]  # failed: seeds in which the method failed
    out = []
    for (ds, grp, met), g in d.groupby(["dataset", "group", "metric"], sort=False):
        base = g[(g["method"] == ranking.BASELINE) & (g["status"] == "ok")]
        base = base.set_index("seed")["value"].dropna()
        if base.empty:
            continue
        for m, gm in g[~g["method"].isin(ranking.CONTROLS)].groupby("method", sort=False):
            vals = gm.set_index("seed")["value"]
            failed = int(gm.loc[gm["status"] == "failed", "seed"].nunique())
            common = vals.index.intersection(base.index)
            worse = int(sum(not np.isfinite(vals[s]) or vals[s] < base[s] for s in common))
            mean = float(vals.mean()) if vals.notna().any() else np.nan
            if failed or not np.isfinite(mean) or mean < float(base.mean()):
                out.append((ds, grp, met, m, mean, float(base.mean()), worse, len(common),
                            failed))
    return pd.DataFrame(out, columns=cols)


def _flags_section(df, prov) -> list[str]:
    flags = clustering_flags(df)
    parts = ["<h2>Flags: worse than no imputation on clustering</h2>"]
    if flags.empty:
        parts.append("<p>No method has a lower mean ARI than no_imputation on any dataset "
                     "and scenario.</p>")
        return parts
    n_cases = len(flags)
    parts.append(f"<p>{n_cases} case(s) (dataset, scenario, ARI metric) where a method's "
                 "clustering of its imputed data agrees less with the true groups (mean "
                 "over seeds) than clustering the observed counts does, or the method "
                 "failed (a failure counts as worse). One line per method and dataset:</p>")
    for (ds, m), g in flags.groupby(["dataset", "method"], sort=False):
        items = []
        for grp, h in g.groupby("group", sort=False):
            bits = []
            for r in h.itertuples(index=False):
                name = r.metric.replace("ari_", "ARI ")
                if np.isfinite(r.value) and r.value < r.baseline:
                    bit = (f"{name} {r.value:.3f} vs {r.baseline:.3f}, lower in "
                           f"{r.worse_seeds}/{r.seeds} seeds")
                else:
                    bit = f"{name} failed in {r.failed}/{r.seeds} seeds"
                if r.failed and np.isfinite(r.value) and r.value < r.baseline:
                    bit += f", failed in {r.failed}"
                bits.append(bit)
            items.append(f"{esc(scenario_ids.label_of(grp))} ({esc('; '.join(bits))})")
        parts.append(f"<div class='flag'>&#9888; <b>{esc(m)}</b> on "
                     f"{esc(_where(ds, prov))}: {', '.join(items)}.</div>")
    return parts


def _verdicts_section(summary: pd.DataFrame, prov) -> list[str]:
    """The verdict rows (:func:`scziva_bench.report.verdicts.verdict_rows`) in words."""
    parts = ["<h2>Verdicts by dataset and metric family</h2>"]
    rows = verdicts.verdict_rows(summary)
    if rows.empty:
        return parts + ["<p>No ranked metric has values.</p>"]
    for ds, g in rows.groupby("dataset", sort=False):
        parts.append(f"<h3>{esc(_where(ds, prov))}</h3><ul>")
        for r in g.itertuples(index=False):
            label = ranking.FAMILY_LABELS.get(r.family, r.family)
            if not r.separable:
                txt = (f"{esc(r.winner)} has the best mean rank ({r.mean:.2f}) but one seed "
                       "cannot separate it from the others")
            else:
                txt = (f"best: <b>{esc(r.winner)}</b> (mean rank {r.mean:.2f} "
                       f"[{r.lo:.2f}, {r.hi:.2f}], {r.n_seeds} seeds)")
                txt += ("; tied with it within noise: " + esc(", ".join(r.tied))
                        if r.tied else "; ahead of every other method beyond noise")
            if r.below_baseline:
                txt += ("; ranked below no_imputation: "
                        f"<span class='failed'>{esc(', '.join(r.below_baseline))}</span>")
            for m, v in r.reference_means.items():
                if v > 1.5:
                    what = "the truth" if m == ranking.REFERENCE else "the true means"
                    txt += (f"; note: {esc(m)}'s reference rank is {v:.1f}, so this family "
                            f"rewards something other than closeness to {what}")
            if r.failed:
                txt += f"; failed or NaN entries counted as last: {esc(', '.join(r.failed))}"
            parts.append(f"<li><b>{esc(label)}</b>: {txt}.</li>")
        parts.append("</ul>")
    return parts


def _ranks_section(summary: pd.DataFrame) -> list[str]:
    parts = ["<h2>Family ranks</h2><p>Mean rank over seeds [95 % interval]; 1 = best. "
             "<span class='tied'>Bold</span>: cannot be told apart from the best of its row "
             "within noise. (F): failed or NaN entries counted as last. perfect, oracle: "
             "reference ranks (not competing).</p>"]
    if summary.empty:
        return parts + ["<p>No ranked metric has values.</p>"]
    comp = summary[~summary["reference"]]
    order = comp.groupby("method", sort=False)["mean"].mean().sort_values().index.tolist()
    cells = {}
    for r in summary.itertuples(index=False):
        txt = verdicts.rank_text(r.mean, *verdicts.clipped_interval(r.lo, r.hi, r.n))
        if r.failed or r.missing:
            txt += " (F)"
        txt = esc(txt)
        if r.tied_best and r.separable:
            txt = f"<span class='tied'>{txt}</span>"
        cells.setdefault((r.dataset, ranking.FAMILY_LABELS.get(r.family, r.family)), {})[
            r.method] = txt
    cols = order + [r for r in ranking.REFERENCES if (summary["method"] == r).any()]
    head = "".join(f"<th>{esc(c)}</th>" for c in ["dataset", "family"] + cols)
    body = "".join(
        "<tr><td>" + esc(ds) + "</td><td>" + esc(fam) + "</td>"
        + "".join(f"<td>{row.get(c, 'n/a')}</td>" for c in cols) + "</tr>"
        for (ds, fam), row in cells.items())
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return parts


def _failures_section(df, messages=None) -> list[str]:
    bad = df[df["status"] == "failed"][["dataset", "scenario", "method"]].drop_duplicates()
    parts = ["<h2>Failed runs</h2>"]
    if bad.empty:
        parts.append("<p>None: every method finished on every scenario.</p>")
    else:
        parts.append(f"<p class='failed'>{len(bad)} failed (dataset, scenario, method) runs; "
                     "their full tracebacks are in results/logs/impute/. They count as last "
                     "in the ranks.</p>")
        bad = bad.reset_index(drop=True)
        if messages is not None and len(messages):
            err = messages[messages["level"] == "error"].drop_duplicates(
                ["dataset", "scenario", "method"])
            bad = bad.merge(err[["dataset", "scenario", "method", "message"]],
                            on=["dataset", "scenario", "method"], how="left")
            bad = bad.rename(columns={"message": "cause"}).fillna({"cause": ""})
        parts.append(_plain_table(bad))
    parts += _messages_section(messages)
    return parts


def _messages_section(messages) -> list[str]:
    """Warnings and notes the impute jobs recorded (e.g. an output that equals the input,
    or one that looks log-transformed), one row per (dataset, method, message)."""
    if messages is None or not len(messages):
        return []
    m = messages[messages["level"] != "error"]
    if m.empty:
        return []
    grouped = (m.groupby(["dataset", "method", "level", "message"], sort=False)["scenario"]
               .apply(lambda s: ", ".join(map(str, s))).reset_index())
    grouped = grouped[["dataset", "method", "level", "scenario", "message"]]
    return ["<h2>Warnings and notes from the methods</h2>",
            "<p>Recorded by the impute jobs (results/imputed/&lt;dataset&gt;/&lt;method&gt;/"
            "messages.tsv). A note that an output equals its input means the method was "
            "scored as <code>no_imputation</code> would be.</p>",
            _plain_table(grouped)]


def _cell(values, status) -> str:
    v = values[np.isfinite(values)]
    if (status == "failed").all():
        return "failed"
    if (status == "not_applicable").all() or not len(v):
        return "n/a"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    mean = float(v.mean())
    half = ranking._t975(len(v)) * float(v.std(ddof=1)) / np.sqrt(len(v))
    return f"{mean:.3f} ± {half:.3f}" + (" (F)" if (status == "failed").any() else "")


def _values_section(d: pd.DataFrame) -> list[str]:
    parts = ["<h2>Metric values</h2><p>Mean over the seeds of each scenario ± half-width "
             "of the 95 % interval (rows: scenario and metric, columns: methods); "
             "<span class='failed'>failed</span> where every run failed, (F) where some "
             "did; n/a where the metric does not apply.</p>"]
    order_all = ranking.method_order(d, controls=True)
    for ds, g in d.groupby("dataset", sort=False):
        table = {}
        for (grp, met, m), x in g.groupby(["group", "metric", "method"], sort=False):
            table.setdefault((scenario_ids.label_of(grp), met), {})[m] = _cell(
                x["value"].to_numpy(dtype=float), x["status"].to_numpy())
        frame = pd.DataFrame.from_dict(table, orient="index")
        frame = frame.reindex(columns=[m for m in order_all if m in frame.columns])
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=["scenario", "metric"])
        html_t = frame.to_html(border=0, escape=True, na_rep="n/a").replace(
            "<td>failed</td>", "<td class='failed'>failed</td>")
        parts.append(f"<h3>{esc(str(ds))}</h3>{html_t}")
    return parts


def _caption(stem: str) -> str:
    kind = stem.split("_")[0]
    text = CAPTIONS.get(kind, "")
    rest = stem.split("_", 1)[1] if "_" in stem else ""
    if kind in ("rates", "paper"):
        text = f"{rest}: {text}"
    if kind == "metric" and rest in metric_specs.SPECS:
        spec = metric_specs.spec(rest)
        text = (f"{rest}: {spec.description} ({metric_specs.spec(rest).direction_label}; family "
                f"{ranking.FAMILY_LABELS.get(spec.family, spec.family)}; "
                f"{'ranked' if spec.ranked else 'not ranked'}). {text}")
    return text


#: widest figure embedded in the page, in pixels (the page is 1250 px wide; the files in
#: results/figures/ keep their full resolution, and a PDF beside each)
SCREEN_WIDTH = 1250


def _screen_png(path: Path) -> bytes:
    """The PNG at screen resolution: at most :data:`SCREEN_WIDTH` pixels wide (Pillow,
    which matplotlib brings), so that the self-contained page stays a few MB."""
    import io

    from PIL import Image

    with Image.open(path) as im:
        if im.width <= SCREEN_WIDTH:
            return path.read_bytes()
        small = im.convert("RGB").resize(
            (SCREEN_WIDTH, round(im.height * SCREEN_WIDTH / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        # a palette of 256 colours: plots have few, and the file shrinks about 3x
        small = small.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        small.save(buf, format="PNG")
        return buf.getvalue()


def _figures_section(figures) -> list[str]:
    parts = ["<h2>Figures</h2>"]
    for path in figures:
        p = Path(path)
        data = base64.b64encode(_screen_png(p)).decode("ascii")
        parts.append(f"<figure id='fig-{esc(p.stem)}'><img alt='{esc(p.stem)}' "
                     f"src='data:image/png;base64,{data}'><figcaption><b>{esc(p.name)}"
                     f"</b> (full resolution and PDF in results/figures/): "
                     f"{esc(_caption(p.stem))}</figcaption></figure>")
    return parts


def _provenance_section(prov) -> list[str]:
    import yaml

    vers = pd.DataFrame({"version": prov.get("packages", {})}, dtype=object)
    vers.loc["python", "version"] = prov.get("python")
    return ["<h2>Provenance</h2>", _table_html(vers.fillna("not installed")),
            f"<p>Platform: {esc(str(prov.get('platform')))}</p>",
            "<h3>Configuration</h3><pre>"
            + esc(yaml.safe_dump(prov.get("config"), sort_keys=False)) + "</pre>"]


def _answer_section(summary: pd.DataFrame, tier: str) -> list[str]:
    """The first screen: who wins where, by how much, how sure (report.verdicts rows)."""
    rows = verdicts.verdict_rows(summary)
    parts = ["<h2 id='answer'>The answer</h2>"]
    if tier:
        parts.append(f"<p class='note'>{esc(tier)}</p>")
    if rows.empty:
        return parts + ["<p>No ranked metric has values.</p>"]
    parts.append("<p>Per dataset and metric family: the method with the best mean family "
                 "rank (1 = best) [95 % interval over seeds], the methods that cannot be "
                 "told apart from it, and the methods ahead of no_imputation beyond noise "
                 "(paired test over seeds, Holm-corrected). Details below.</p>")
    head = ("<table class='answer'><tr><th>dataset</th><th>family</th>"
            "<th>winner, mean rank [95 %]</th>"
            "<th>tied with the winner</th><th>beats no_imputation beyond noise</th>"
            "<th>references</th></tr>")
    body = []
    for r in rows.itertuples(index=False):
        win = f"<b>{esc(r.winner)}</b> {esc(verdicts.rank_text(r.mean, r.lo, r.hi))}"
        if not r.separable:
            tied = "one seed: cannot tell"
        else:
            tied = esc(", ".join(r.tied)) if r.tied else "none: apart from all"
        fam = ranking.FAMILY_LABELS.get(r.family, r.family)
        body.append(f"<tr><td>{esc(str(r.dataset))}</td><td>{esc(fam)}</td><td>{win}</td>"
                    f"<td>{tied}</td><td>{esc(verdicts.baseline_text(r))}</td>"
                    f"<td>{esc(verdicts.references_text(r.reference_means))}</td></tr>")
    return parts + [head + "".join(body) + "</table>"]


def _cost_section(df: pd.DataFrame) -> list[str]:
    """Runtime and peak memory of each method's impute jobs per dataset: the median over
    the dataset's scenarios of ``runtime_s`` (wall-clock seconds per scenario, reading and
    writing included) and the largest ``max_rss_mb``."""
    parts = ["<h2 id='cost'>Runtime and memory</h2>"]
    res = df[df["metric"].isin(["runtime_s", "max_rss_mb"])].copy()
    res["value"] = pd.to_numeric(res["value"], errors="coerce")
    if res.empty or not res["value"].notna().any():
        return parts + ["<p>No runtime or memory was recorded.</p>"]
    parts.append("<p>Per method (rows) and dataset (columns): median seconds per scenario "
                 "(the impute job's wall clock, reading and writing included) / peak "
                 "resident memory of the job. Measured on the machine of the provenance "
                 "section, at this run's sizes.</p>")
    cells = {}
    for (m, ds), g in res.groupby(["method", "dataset"], sort=False):
        sec = g.loc[g["metric"] == "runtime_s", "value"].median()
        mb = g.loc[g["metric"] == "max_rss_mb", "value"].max()
        txt = ("n/a" if not np.isfinite(sec) else f"{sec:.2f} s" if sec < 10 else
               f"{sec:,.0f} s") + " / " + \
            ("n/a" if not np.isfinite(mb) else f"{mb:,.0f} MB")
        cells.setdefault(m, {})[str(ds)] = txt
    order = sorted(cells, key=lambda m: res[(res["method"] == m) & (res["metric"] == "runtime_s")]
                   ["value"].median())
    frame = pd.DataFrame.from_dict({m: cells[m] for m in order}, orient="index")
    return parts + [frame.to_html(border=0, escape=True, na_rep="n/a")]


_TOC = (("answer", "The answer"), ("cost", "Runtime and memory"), ("what", "What was run"), ("reading", "How to read it"),
        ("verdicts", "Verdicts in words"), ("ranks", "Family ranks"),
        ("failures", "Failed runs and messages"), ("flags", "Flags"),
        ("values", "All values"), ("figures", "Figures"), ("provenance", "Provenance"))


def build_report(metrics_df: pd.DataFrame, figures, provenance: dict, title: str,
                 describe: str, messages: pd.DataFrame | None = None, tier: str = "") -> str:
    """The report page as one HTML string.

    ``metrics_df``: the tidy metrics table; ``figures``: PNG paths, embedded in order;
    ``provenance``: the record of rule provenance (``created_utc``, ``git_commit``,
    ``packages``, ``python``, ``platform``, ``config``; dataset ``description`` and
    ``split`` are read from ``config.datasets``); ``describe``: one line per item of
    "what was run" (``pipeline.targets.describe_config``); ``messages``: the impute jobs'
    messages (columns ``dataset, scenario, method, level, message``; the cause of each
    failed run, warnings and notes), or None.
    """
    df = metrics_df.copy()
    if "status" not in df:
        df["status"] = "ok"
    d = ranking.tidy(df)
    prov = provenance or {}
    summary = ranking.summary(df)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>Made {esc(str(prov.get('created_utc')))} from git commit "
             f"<code>{esc(str(prov.get('git_commit')))}</code>. Contents: "
             + " &middot; ".join(f"<a href='#{a}'>{esc(n)}</a>" for a, n in _TOC) + "</p>"]
    parts += _answer_section(summary, tier)
    parts += _cost_section(df)
    parts.append("<h2 id='what'>What was run</h2><ul>")
    parts += [f"<li>{esc(line)}</li>" for line in str(describe).splitlines()]
    parts.append("</ul>")
    parts += _anchored(_reading_section(d, prov), "reading")
    parts += _anchored(_verdicts_section(summary, prov), "verdicts")
    parts += _anchored(_ranks_section(summary), "ranks")
    parts += _anchored(_failures_section(df, messages), "failures")
    flags = _flags_section(df, prov)
    parts += _anchored(flags[:1], "flags")
    if len(flags) > 2:  # the flag lines folded: one click shows them
        parts += [flags[1], f"<details><summary>show the {len(flags) - 2} flag line(s)"
                  "</summary>"] + flags[2:] + ["</details>"]
    else:
        parts += flags[1:]
    parts += _anchored(_values_section(d), "values")
    parts += _anchored(_figures_section(figures), "figures")
    parts += _anchored(_provenance_section(prov), "provenance")
    parts.append("</body></html>")
    return "\n".join(parts)


def _anchored(parts: list, anchor: str) -> list:
    """The section with an id on its heading (the table of contents links to it)."""
    if parts and parts[0].startswith("<h2>"):
        parts = [f"<h2 id='{anchor}'>" + parts[0][len("<h2>"):]] + list(parts[1:])
    return parts
