"""The start and the records of one workflow job (used by workflow/scripts/*.py).

:func:`start_script` caps thread pools, sends output to the job's log and turns bad
user input into one log line; :func:`read_benchmark` reads Snakemake's ``benchmark:``
files.

Failure handling (see docs/workflow.md): an impute job whose method raises catches the
exception, writes it to the job's log and writes the method's output anyway, as an
AnnData without ``layers["imputed"]`` and with ``uns["status"] = "failed"`` and
``uns["error"]``; the evaluate job then writes the method's metric rows with
``status = failed`` and ``value = NaN``. The method is therefore still in
``results/metrics.tsv`` and drawn as failed on every figure. ``on_error: stop`` in the
config makes the job fail instead.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

def _one_line_input_errors(logger) -> None:
    """Bad user input (:class:`scziva.errors.InputError`) that escapes a script ends it
    with its one-sentence message in the log and exit status 1, not a traceback; any
    other exception keeps Python's traceback."""
    import logging
    import sys

    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if any(c.__name__ == "InputError" for c in getattr(exc_type, "__mro__", ())):
            logger.error("%s", exc)
            logging.shutdown()
            return
        previous(exc_type, exc, tb)

    sys.excepthook = hook


def start_script(snakemake):
    """Common start of the workflow's scripts; returns a :mod:`logging` logger.

    Caps the BLAS/OpenMP thread pools at the job's ``threads`` (before numpy or torch is
    imported), sends stdout, stderr, warnings and logging to the job's ``log[0]`` (so
    that a traceback lands in the log Snakemake points to), and logs the job's
    wildcards and threads.
    """
    import logging
    import sys

    threads = str(max(1, int(getattr(snakemake, "threads", 1) or 1)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ[var] = threads
    log = list(getattr(snakemake, "log", []) or [])
    if log:
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        fh = open(log[0], "w", buffering=1)
        sys.stdout = fh
        sys.stderr = fh
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    logger = logging.getLogger(f"rule.{getattr(snakemake, 'rule', 'script')}")
    _one_line_input_errors(logger)
    wc = dict(getattr(snakemake, "wildcards", {}) or {})
    logger.info("wildcards %s, threads %s", wc, threads)
    return logger


def write_text_atomic(text: str, path) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`scziva.fileio.atomic_write`)."""
    from scziva.fileio import atomic_write

    with atomic_write(path, make_parents=True) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def read_benchmark(path) -> dict:
    """``runtime_s`` and ``max_rss_mb`` from a Snakemake ``benchmark:`` file (NaN if absent).

    The file is a TSV with a header (``s``, ``h:m:s``, ``max_rss``, ...; memory in MB) and
    one line per repeat; the first repeat is used. Missing or ``NA`` values give NaN
    (Snakemake writes ``NA`` where psutil could not measure).
    """
    out = {"runtime_s": math.nan, "max_rss_mb": math.nan}
    p = Path(path)
    if not p.is_file():
        return out
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows:
        return out
    row = rows[0]
    for key, col in (("runtime_s", "s"), ("max_rss_mb", "max_rss")):
        try:
            out[key] = float(row.get(col, "nan"))
        except (TypeError, ValueError):
            out[key] = math.nan
    return out
