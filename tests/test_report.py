"""The HTML report from hand-made tidy tables, and (where chromium is installed) as a
real browser renders it."""
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from _tables import COLUMNS, tidy_table  # noqa: E402

from scziva_bench.report import plots  # noqa: E402
from scziva_bench.report import html as report

PROV = {"created_utc": "2026-12-01T00:00:00", "git_commit": "abc123", "python": "3.11",
        "packages": {"numpy": "2.0"}, "platform": "linux",
        "config": {"datasets": {
            "sim": {"source": "simulate", "description": "Splat, UMI droplet-like regime",
                    "split": "tuning"},
            "sim2": {"source": "simulate", "regime": "full-length deep",
                     "description": "Splat, long text"},
            "real": {"source": "local", "description": "CellBench CEL-seq2"}}}}


def _table(ari_bad):
    """Two methods over 3 seeds; `bad`'s ARI is below no_imputation's when ari_bad."""
    rows = []
    for s in (1, 2, 3):
        for m, ari, pcc in (("good", 0.8, 0.9), ("bad", 0.1 if ari_bad else 0.5, 0.6),
                            ("no_imputation", 0.3, 0.2), ("perfect", 0.95, 1.0)):
            for ds in ("sim", "real"):
                sc = f"dropout50_s{s}" if ds == "sim" else f"mask10_s{s}"
                rows.append((ds, sc, m, "ari_kmeans", ari + 0.01 * s, "ok"))
                rows.append((ds, sc, m, "pearson_dropped", pcc + 0.01 * s, "ok"))
                rows.append((ds, sc, m, "mcv_mse", np.nan, "not_applicable"))
                rows.append((ds, sc, m, "runtime_s", 3.0, "ok"))
    rows.append(("sim", "dropout50_s1", "broken", "ari_kmeans", np.nan, "failed"))
    rows.append(("sim", "dropout50_s1", "broken", "pearson_dropped", np.nan, "failed"))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_report_flags_ari_below_no_imputation():
    page = report.build_report(_table(ari_bad=True), [], PROV, "T <&>", "line 1\nline 2")
    assert page.startswith("<!DOCTYPE html>") and "T &lt;&amp;&gt;" in page
    flags = page.split("<h2 id='flags'>")[1].split("<h2 id='values'>")[0]
    # the flag names the dataset's description (the regime) and the split
    assert ("<b>bad</b> on sim (Splat, UMI droplet-like regime; tuning split): dropout 50 % "
            "(ARI kmeans 0.120 vs 0.320, lower in 3/3 seeds)") in flags
    assert "<b>bad</b> on real (CellBench CEL-seq2): mask 10 %" in flags
    assert "<b>good</b>" not in flags
    # failed method: flagged, listed, counted last
    assert "<b>broken</b> on sim" in flags and "ARI kmeans failed in 1/1 seeds" in flags
    assert "broken" in page.split("<h2 id='failures'>")[1]
    # seeds and what a rank means
    assert "with 3 seed(s)" in page and report.RANK_TEXT[:60] in page
    assert "not stated" in page  # real has no split
    assert report._where("sim2", PROV) == "sim2 (full-length deep regime)"
    assert "ranked below no_imputation" in page


def test_report_shows_each_failure_cause_and_the_methods_notes():
    """Issue 15: the one-line cause of a failed run is in the report, and so are the
    impute jobs' warnings and notes (an output equal to the input, a log-scale output)."""
    msgs = pd.DataFrame([
        ("sim", "dropout50_s1", "broken", "error",
         "method 'broken' failed: command exited with status 1; last output line: boom <x>"),
        ("sim", "dropout50_s1", "good", "note", "output equals the input: scored as no_imputation"),
        ("sim", "dropout50_s2", "good", "note", "output equals the input: scored as no_imputation"),
    ], columns=["dataset", "scenario", "method", "level", "message"])
    page = report.build_report(_table(ari_bad=False), [], PROV, "T", "", messages=msgs)
    failed = page.split("<h2 id='failures'>")[1]
    assert "command exited with status 1; last output line: boom &lt;x&gt;" in failed
    notes = page.split("Warnings and notes from the methods")[1]
    assert "dropout50_s1, dropout50_s2" in notes and "scored as no_imputation" in notes
    # without messages the sections stay as before
    assert "Warnings and notes" not in report.build_report(_table(ari_bad=False), [], PROV, "T", "")


def test_report_without_flag_and_with_one_seed():
    df = _table(ari_bad=False)
    flags = report.clustering_flags(df)
    assert set(flags["method"]) == {"broken"}
    one = df[df["scenario"].str.endswith(("_s1",))]
    page = report.build_report(one, [], PROV, "T", "")
    assert "with 1 seed(s)" in page and "cannot be told from noise" in page
    assert "one seed cannot separate it" in page


def test_report_embeds_figures_with_captions(tmp_path):
    df = _table(ari_bad=True)
    paths = []
    for name in ("ranks", "families"):
        paths += [p for p in plots.save_figure(plots.draw(name, df), tmp_path / name, ["png"], 40)]
    page = report.build_report(df, paths, PROV, "T", "")
    assert page.count("data:image/png;base64,") == 2
    assert report.CAPTIONS["families"][:40] in page


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no chromium on this machine")
def test_report_renders_in_a_browser(tmp_path):
    df = tidy_table(seeds=(1, 2, 3), metrics=["pearson_dropped", "ari_kmeans", "mcv_mse"],
                    fail={("dca", "dropout50_s2")})
    paths = plots.save_figure(plots.draw("ranks", df), tmp_path / "ranks", ["png"], 60)
    page = tmp_path / "report.html"
    page.write_text(report.build_report(df, paths, PROV, "browser test", "one line"))
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(dir=tmp_path)
    res = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1400,3000",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (3000, 1400)
    # something was drawn: not a blank page (text rows are darker than the background)
    assert (img < 128).mean() > 0.005 and img.std() > 10


# ------------------------------------------------------------------ verdicts (the answer)

def _dominated_table(n_seeds: int) -> pd.DataFrame:
    """One dataset, one ranked metric: 'good' always first, 'bad' always last,
    no_imputation in between, over ``n_seeds`` seeds."""
    rows = []
    for s in range(1, n_seeds + 1):
        for m, v in (("good", 0.9), ("mid", 0.5 + 0.01 * s), ("no_imputation", 0.4),
                     ("bad", 0.1), ("perfect", 1.0)):
            rows.append(("d", f"dropout50_s{s}", m, "ari_kmeans", v, "ok"))
    return pd.DataFrame(rows, columns=["dataset", "scenario", "method", "metric", "value",
                                       "status"])


def test_verdicts_name_the_winner_and_who_beats_doing_nothing():
    from scziva_bench.evaluation import ranking
    from scziva_bench.report import verdicts

    rows = verdicts.verdict_rows(ranking.summary(_dominated_table(8)))
    (r,) = rows.itertuples(index=False)
    assert r.winner == "good" and r.mean == 1.0 and r.separable
    assert "bad" in r.below_baseline and "good" in r.beat_baseline
    assert r.reference_means == {"perfect": 1.0}
    md = verdicts.markdown(rows, "# Verdicts: t")
    assert "| d | clustering | good 1.00" in md and "good, mid" in md


def test_verdicts_with_one_seed_say_they_cannot_tell():
    from scziva_bench.evaluation import ranking
    from scziva_bench.report import verdicts

    rows = verdicts.verdict_rows(ranking.summary(_dominated_table(1)))
    (r,) = rows.itertuples(index=False)
    assert r.winner == "good" and not r.separable and r.beat_baseline == []
    md = verdicts.markdown(rows)
    assert "one seed: cannot tell apart" in md and "cannot tell (one seed)" in md


def test_report_opens_with_the_answer():
    html = report.build_report(_dominated_table(3), [], {}, "t", "d", tier="toy size")
    assert html.index("id='answer'") < html.index("id='what'") < html.index("id='flags'")
    assert "toy size" in html and "<b>good</b>" in html


def test_figures_are_embedded_at_screen_resolution(tmp_path):
    """A 2,400-pixel-wide figure goes into the page at most SCREEN_WIDTH wide (the file in
    results/figures/ keeps its resolution)."""
    import base64
    import io
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(16, 8))
    ax.plot([0, 1], [0, 1])
    path = tmp_path / "ranks.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    assert Image.open(path).width > report.SCREEN_WIDTH
    html = report.build_report(_dominated_table(3), [path], {}, "t", "d")
    data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1)
    shown = Image.open(io.BytesIO(base64.b64decode(data)))
    assert shown.width == report.SCREEN_WIDTH
    assert len(data) * 3 / 4 < path.stat().st_size


def test_readme_verdicts_are_the_committed_generated_file():
    """README's verdict section is the standard run's results/verdicts.md, kept as
    docs/verdicts_standard.md (benchmarks/readme_verdicts.py copies it): never typed. The
    default run's verdicts are kept beside it, made the same way."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    start = readme.index("<!-- verdicts:start")
    block = readme[readme.index("-->", start) + 3:readme.index("<!-- verdicts:end -->")]
    kept = (repo / "docs" / "verdicts_standard.md").read_text()
    assert block.strip() == kept.strip()
    for text, command in ((kept, "make standard"),
                          ((repo / "docs" / "verdicts_default.md").read_text(), "make run")):
        assert "| dataset | family | winner, mean rank [95 %], tie group |" in text
        assert f"Made by `{command}" in text  # a partial rerun says so after the command


def test_report_shows_runtime_and_memory_per_method_and_dataset():
    t = _dominated_table(3)
    rows = []
    for m, sec, mb in (("good", 12.0, 900.0), ("bad", 0.5, 150.0)):
        for s in (1, 2, 3):
            rows.append(("d", f"dropout50_s{s}", m, "runtime_s", sec * s, "ok"))
            rows.append(("d", f"dropout50_s{s}", m, "max_rss_mb", mb + s, "ok"))
    page = report.build_report(pd.concat([t, pd.DataFrame(rows, columns=t.columns)]), [], {},
                               "t", "d")
    cost = page.split("<h2 id='cost'>")[1].split("<h2 id='what'>")[0]
    # median seconds per scenario / peak memory; the faster method first
    assert "1.00 s / 153 MB" in cost and "24 s / 903 MB" in cost
    assert cost.index("bad") < cost.index("good")
