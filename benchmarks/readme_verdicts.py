"""README's verdict section: a run's results/verdicts.md, kept in docs/ and quoted in README.

    .venv/bin/python benchmarks/readme_verdicts.py --name standard \\
        --command "make standard"                     # results/ -> docs/verdicts_standard.md + README
    .venv/bin/python benchmarks/readme_verdicts.py --name default --command "make run" \\
        --no-readme                                   # results/ -> docs/verdicts_default.md only
    .venv/bin/python benchmarks/readme_verdicts.py --print

The workflow writes results/verdicts.md from the run's ranks (rule aggregate,
scziva_bench.report.verdicts); nothing here computes a verdict. The script checks that
the file is the one the run's metrics.tsv gives (so a stale file is refused), stamps it
with the commit and the command that made the run, writes it to
docs/verdicts_<name>.md and puts the same text between README's markers
(tests/test_report.py checks that the two agree).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from scziva_bench.evaluation import ranking  # noqa: E402
from scziva_bench.report import verdicts  # noqa: E402
from _markers import replace_between  # noqa: E402  (benchmarks/, beside this script)

START = ("<!-- verdicts:start (benchmarks/readme_verdicts.py copies docs/verdicts_*.md here, "
         "a run's results/verdicts.md) -->")
END = "<!-- verdicts:end -->"


def stamped(results: Path, command: str) -> str:
    text = (results / "verdicts.md").read_text()
    table = verdicts.markdown(verdicts.verdict_rows(
        ranking.summary(pd.read_csv(results / "metrics.tsv", sep="\t"))))
    if table.strip() not in text:
        raise SystemExit(f"{results / 'verdicts.md'} is not what {results / 'metrics.tsv'} "
                         "gives: rerun the workflow")
    prov = yaml.safe_load((results / "provenance.yaml").read_text()) or {}
    return (text.rstrip() + f"\n\nMade by `{command}` at commit "
            f"`{str(prov.get('git_commit', '?'))[:7]}` on {prov.get('created_utc', '?')}.\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(REPO / "results"))
    ap.add_argument("--name", default="default", help="docs/verdicts_<name>.md")
    ap.add_argument("--command", default="make run", help="the command that made the run")
    ap.add_argument("--print", action="store_true")
    ap.add_argument("--no-readme", action="store_true",
                    help="write docs/verdicts_<name>.md only (README quotes the standard tier)")
    a = ap.parse_args(argv)
    text = stamped(Path(a.results), a.command)
    if a.print:
        print(text)
        return
    doc = REPO / "docs" / f"verdicts_{a.name}.md"
    doc.write_text(text)
    if a.no_readme:
        print(f"wrote {doc} ({len(text.splitlines())} lines)")
        return
    replace_between(REPO / "README.md", START, END, text)
    print(f"wrote {doc} and README's verdict section ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
