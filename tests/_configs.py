"""The shipped configs the workflow tests walk over."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def workflow_configs() -> list[Path]:
    """config.yaml and every config/*.yaml that is a workflow config (has `datasets:`);
    the others (config/scaling.yaml, read by benchmarks/scaling.py and checked by
    tests/test_scaling.py) are not given to Snakemake."""
    paths = [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]
    return [p for p in paths if "datasets" in (yaml.safe_load(p.read_text()) or {})]
