"""Tidy metric tables on disk: atomic TSV writing and concatenation.

A table has the columns :data:`COLUMNS` (docs/contract.md "Metrics"); ``status`` is one
of ``ok``, ``failed``, ``not_applicable`` (:data:`scziva_bench.catalog.metrics.STATUSES`).
"""

from __future__ import annotations


import pandas as pd

from scziva.errors import InputError

__all__ = ["COLUMNS", "write_tsv_atomic", "aggregate"]

COLUMNS = ["dataset", "scenario", "method", "metric", "value", "status"]


def write_tsv_atomic(df: pd.DataFrame, path) -> None:
    """Write ``df`` as a tab-separated file (no index) atomically
    (:func:`scziva.fileio.atomic_write`)."""
    from scziva.fileio import atomic_write

    with atomic_write(path, make_parents=True) as tmp:
        with open(tmp, "w", newline="") as fh:
            df.to_csv(fh, sep="\t", index=False, na_rep="NaN")


def aggregate(paths) -> pd.DataFrame:
    """Concatenate tidy metric TSVs (as written by :func:`write_tsv_atomic`)."""
    frames = []
    for p in paths:
        try:
            frames.append(pd.read_csv(p, sep="\t"))
        except FileNotFoundError:
            raise InputError(f"metrics file {p} does not exist") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"metrics file {p} is not a readable TSV ({exc})") from None
        missing = [c for c in COLUMNS[:5] if c not in frames[-1].columns]
        if missing:
            raise InputError(f"metrics file {p} lacks column(s) {', '.join(missing)}")
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    if "status" not in out:
        out["status"] = "ok"
    out["status"] = out["status"].fillna("ok")
    return out[COLUMNS + [c for c in out.columns if c not in COLUMNS]]
