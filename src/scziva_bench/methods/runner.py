"""One impute job, as a library: run a method on a scenario and build its output record.

>>> from scziva_bench.methods import runner
>>> rec = runner.impute_scenario(scenario, name, seed=0, dataset_id="tiny",
...                              scenario_id="dropout50_s1")
>>> rec.uns["status"], rec.uns["runtime_s"]          # ("ok", 1.9); the output of docs/contract.md

What a method sees (:func:`scziva_bench.methods.method_input`): a new AnnData with the
observed counts in ``X`` and ``layers["counts"]`` (CSR float32), the cell and gene names,
and ``obs["n_counts"]`` (each cell's total). Not the truth, mask, labels, true groups,
DE facts, true means, nor the scenario's id or rate. The ``perfect`` control is the one
exception: it is a reference, and returns the scenario's truth.

What comes back is checked (:func:`check_output`): an AnnData must hold
``layers["imputed"]`` and the input's cell and gene names in the input's order; every
output must be cells x genes, finite and non-negative (negatives above -1e-6 are taken
as rounding and set to 0). Output that passes but looks log-transformed gets a warning
(``uns["warnings"]``, the "log-scale check"); output equal to the input counts gets
``uns["note"]`` (it is scored as ``no_imputation`` would be).

A method that fails (raises, a command that exits non-zero or overruns its runtime, an
output that fails a check) gives a *failure record*: the scenario's cells and genes, no
``layers["imputed"]``, ``uns["status"] = "failed"`` and ``uns["error"]``, one line naming
the method and the cause, which also goes to the job's log as one ERROR line. The
evaluate rule then gives the method ``status = failed`` rows; the other methods are not
affected. With ``on_error="stop"`` the exception propagates instead. Bad configuration
(:class:`scziva.errors.InputError`, e.g. an unknown parameter of a built-in method)
always propagates.
"""

from __future__ import annotations

import logging
import os
import time
import traceback

import numpy as np
import scipy.sparse as sp

from scziva.errors import InputError

from scziva_bench import methods
from scziva_bench.methods.external import ExternalMethod, MethodFailure, _one_line
from scziva_bench.data.io import h5_safe

__all__ = ["impute_scenario", "check_output", "success_record", "failure_record",
           "record_messages", "messages_tsv", "MESSAGE_COLUMNS", "injected_failure",
           "MethodFailure", "INJECT_VAR", "NEGATIVE_TOLERANCE"]

INJECT_VAR = "SCZIVA_BENCH_INJECT_FAILURE"
NEGATIVE_TOLERANCE = 1e-6  # below -this a value is an error, above it rounding
_LOG = logging.getLogger("scziva_bench.methods.runner")


def injected_failure(method: str, scenario_id: str | None) -> bool:
    """Crash injection for tests: ``SCZIVA_BENCH_INJECT_FAILURE`` holds comma-separated
    ``method`` or ``method@scenario`` entries whose runs raise a RuntimeError."""
    wanted = {e.strip() for e in os.environ.get(INJECT_VAR, "").split(",") if e.strip()}
    return bool(wanted & {method, f"{method}@{scenario_id}"})


# ------------------------------------------------------------------------ output checks

def _names_check(got_cells, got_genes, cells, genes):
    for what, got, want in (("cell", got_cells, cells), ("gene", got_genes, genes)):
        got = [str(x) for x in got]
        if got == want:
            continue
        if sorted(got) == sorted(want):
            i = next(k for k, (a, b) in enumerate(zip(got, want)) if a != b)
            raise MethodFailure(f"returned the input's {what}s in another order "
                                f"(position {i}: {got[i]!r}, expected {want[i]!r})")
        extra = [x for x in got if x not in set(want)]
        raise MethodFailure(f"returned {what} names that differ from the input's "
                            f"(e.g. {extra[0]!r} is not an input {what})" if extra else
                            f"returned {what} names that differ from the input's")


def _as_matrix(out, cells, genes):
    """The method's output as a float32 array (names checked where it carries them)."""
    import anndata as ad
    import pandas as pd

    shape = (len(cells), len(genes))
    if isinstance(out, ad.AnnData):
        if out.shape != shape:
            raise MethodFailure(f"returned an AnnData of shape {out.shape}, expected "
                                f"{shape} (cells x genes)")
        _names_check(out.obs_names, out.var_names, cells, genes)
        if "imputed" not in out.layers:
            raise MethodFailure("returned an AnnData without layers['imputed']")
        out = out.layers["imputed"]
    elif isinstance(out, pd.DataFrame):
        if out.shape != shape:
            raise MethodFailure(f"returned a table of shape {out.shape}, expected {shape} "
                                f"(cells x genes)")
        if not (isinstance(out.index, pd.RangeIndex) and isinstance(out.columns, pd.RangeIndex)):
            _names_check(out.index, out.columns, cells, genes)
        try:
            out = out.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise MethodFailure("returned a table with non-numeric values") from None
    if out is None:
        raise MethodFailure("returned None, not a cells x genes matrix")
    if sp.issparse(out):
        out = out.toarray()
    try:
        X = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise MethodFailure(f"returned a {type(out).__name__}, not a cells x genes matrix "
                            f"({_one_line(exc, 120)})") from None
    if X.shape != shape:
        hint = " (genes x cells? return cells as rows)" if X.shape == shape[::-1] else ""
        raise MethodFailure(f"returned shape {X.shape}, expected {shape} (cells x genes){hint}")
    return np.ascontiguousarray(X)


def _equals_counts(X: np.ndarray, counts, block: int = 2048) -> bool:
    """Whether ``X`` equals ``counts`` exactly, densifying ``block`` rows at a time."""
    for i in range(0, X.shape[0], block):
        part = counts[i:i + block]
        part = part.toarray() if sp.issparse(part) else np.asarray(part)
        if not np.array_equal(X[i:i + block], part.astype(np.float32, copy=False)):
            return False
    return True


def check_output(out, counts, cells, genes, method: str = "") -> tuple[np.ndarray, list, str]:
    """``(X, warnings, note)`` for a method's output, or MethodFailure saying what is wrong.

    ``out``: what the method returned (array, sparse, DataFrame or AnnData); ``counts``:
    the observed counts it was given (cells x genes); ``cells``/``genes``: the input's
    names. ``X`` is float32, finite, >= 0; ``warnings`` lists the failed soft checks
    (log-scale check); ``note`` is "" or says the output equals the input counts.
    """
    cells = [str(c) for c in cells]
    genes = [str(g) for g in genes]
    X = _as_matrix(out, cells, genes)
    n_nan, n_inf = int(np.isnan(X).sum()), int(np.isinf(X).sum())
    if n_nan or n_inf:
        parts = ([f"{n_nan} NaN"] if n_nan else []) + ([f"{n_inf} infinite"] if n_inf else [])
        raise MethodFailure(f"returned {' and '.join(parts)} value(s)")
    neg = X < -NEGATIVE_TOLERANCE
    if neg.any():
        raise MethodFailure(f"returned {int(neg.sum())} negative value(s) (smallest "
                            f"{float(X.min()):.4g}); imputed counts must be >= 0")
    np.maximum(X, 0.0, out=X)
    warnings = []
    in_max = float(counts.max()) if min(counts.shape) else 0.0
    out_max = float(X.max(initial=0.0))
    if in_max >= 50 and 0 < out_max < 2 * np.log1p(in_max):
        warnings.append(
            f"log-scale check: the largest output value is {out_max:.3g} while the largest "
            f"input count is {in_max:.0f} (log1p = {np.log1p(in_max):.2f}); the output looks "
            f"log-transformed, but methods must return the count scale")
    note = ""
    if method not in methods.CONTROLS and _equals_counts(X, counts):
        note = ("output equals the observed input counts: the method changed nothing and is "
                "scored as no_imputation would be")
    return X, warnings, note


# ------------------------------------------------------------------------ records

def _facts_uns(out, method, spec, params, runtime_s, dataset_id, scenario_id, seed):
    facts = (ExternalMethod(method, spec).provenance() if methods.is_external(spec)
             else {**methods.describe(method, {method: spec or {}}), "source_sha256": {}})
    out.uns["method_id"] = str(method)
    out.uns["method_params"] = h5_safe(dict(params or {}))
    if seed is not None:
        out.uns["method_seed"] = int(seed)
    out.uns["method_kind"] = facts["kind"]
    out.uns["method_label"] = facts["label"]
    out.uns["method_source"] = facts["source"]
    if facts["source_sha256"]:
        # "<sha256>  <file>" lines as sha256sum writes them (h5ad keys cannot hold a "/")
        out.uns["method_source_sha256"] = [f"{h}  {f}" for f, h in facts["source_sha256"].items()]
    out.uns["runtime_s"] = float(runtime_s)
    out.uns["dataset_id"] = str(dataset_id)
    if scenario_id is not None:
        out.uns["scenario_id"] = str(scenario_id)
    return out


def success_record(scenario, X, *, method, spec=None, params=None, runtime_s=0.0,
                   dataset_id="", scenario_id=None, seed=None, warnings=(), note=""):
    """The method output of docs/contract.md: ``X`` = ``layers["imputed"]``, the
    scenario's obs/var, ``uns`` status ok, method facts, runtime, warnings, note."""
    import anndata as ad

    out = ad.AnnData(X=X, obs=scenario.obs.copy(), var=scenario.var.copy())
    out.layers["imputed"] = X
    out.uns["status"] = "ok"
    if warnings:
        out.uns["warnings"] = [str(w) for w in warnings]
    if note:
        out.uns["note"] = str(note)
    return _facts_uns(out, method, spec, params, runtime_s, dataset_id, scenario_id, seed)


def failure_record(scenario, error: str, *, method, spec=None, params=None, runtime_s=0.0,
                   dataset_id="", scenario_id=None, seed=None):
    """A failed method's output: the scenario's cells and genes, no data, no
    ``layers["imputed"]``, ``uns["status"] = "failed"``, ``uns["error"]`` (one line)."""
    import anndata as ad

    out = ad.AnnData(obs=scenario.obs[[]].copy(), var=scenario.var[[]].copy())
    out.uns["status"] = "failed"
    out.uns["error"] = _one_line(error, 2000)
    return _facts_uns(out, method, spec, params, runtime_s, dataset_id, scenario_id, seed)


def not_applicable_record(scenario, why: str, **common):
    """A reference control that does not exist for this scenario (``oracle`` on real
    data): no ``layers["imputed"]``, ``uns["status"] = "not_applicable"``, ``uns["note"]``;
    its metric rows are ``not_applicable`` (:mod:`scziva_bench.evaluation.scoring`)."""
    import anndata as ad

    out = ad.AnnData(obs=scenario.obs[[]].copy(), var=scenario.var[[]].copy())
    out.uns["status"] = "not_applicable"
    out.uns["note"] = _one_line(why, 2000)
    return _facts_uns(out, runtime_s=0.0, **common)


MESSAGE_COLUMNS = ["dataset", "scenario", "method", "level", "message"]


def record_messages(record, dataset="", scenario="", method="") -> list[dict]:
    """What a method output says beyond its numbers, as rows of :data:`MESSAGE_COLUMNS`:
    ``level`` "error" (``uns["error"]`` of a failed run), "warning" (each of
    ``uns["warnings"]``, e.g. the log-scale check) or "note" (``uns["note"]``, e.g. the
    output equals the input). For a report's list of method problems."""
    uns = record.uns
    method = method or str(uns.get("method_id", ""))
    dataset = dataset or str(uns.get("dataset_id", ""))
    scenario = scenario or str(uns.get("scenario_id", ""))
    rows = []
    if str(uns.get("status", "ok")) not in ("ok", "not_applicable"):
        rows.append(("error", str(uns.get("error", "failed (no reason recorded)"))))
    rows += [("warning", str(w)) for w in np.atleast_1d(uns.get("warnings", [])) if str(w)]
    if uns.get("note"):
        rows.append(("note", str(uns["note"])))
    return [dict(zip(MESSAGE_COLUMNS, (dataset, scenario, method, lvl, msg))) for lvl, msg in rows]


def messages_tsv(rows) -> str:
    """Rows of :func:`record_messages` as a TSV text with a header (tabs and newlines in
    a message become spaces), e.g. for ``results/imputed/{dataset}/{method}/messages.tsv``."""
    lines = ["\t".join(MESSAGE_COLUMNS)]
    for r in rows:
        lines.append("\t".join(" ".join(str(r[c]).split()) for c in MESSAGE_COLUMNS))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ one job

def impute_scenario(scenario, method: str, *, spec=None, params=None, seed=0, device=None,
                    threads=1, timeout_s=None, dataset_id="", scenario_id=None,
                    on_error="mark", workdir=None, log=None):
    """Run ``method`` on ``scenario`` (an AnnData of docs/contract.md) and return its
    output record (see the module docstring).

    ``spec``: the config's ``methods.<method>`` entry; with ``callable:`` or ``command:``
    the method is the user's own (:mod:`scziva_bench.methods.external`), otherwise a
    registered one. ``params`` default to ``spec["params"]``. ``device``: None (GPU
    when there is one, for methods that can use it) or ``"cpu"``. ``threads``: the job's
    threads (``{threads}`` of a command). ``timeout_s``: runtime limit of a user method
    (None: none). ``workdir``: where a command's temporary files go. ``log``: a logger.
    """
    log = log or _LOG
    spec = spec or {}
    params = dict(spec.get("params") or {}) if params is None else dict(params)
    scenario_id = scenario_id if scenario_id is not None else \
        (scenario.uns.get("scenario", {}) or {}).get("id")
    where = f"{dataset_id}/{scenario_id}"
    external = ExternalMethod(method, spec) if methods.is_external(spec) else None  # InputError
    counts = methods._scenario_counts(scenario)
    cells, genes = list(scenario.obs_names.astype(str)), list(scenario.var_names.astype(str))
    log.info("method %s on %s (%d cells x %d genes), device %s, seed %s, params %s",
             method, where, scenario.n_obs, scenario.n_vars, device or "auto", seed, params)
    common = dict(method=method, spec=spec, params=params, dataset_id=dataset_id,
                  scenario_id=scenario_id, seed=int(seed))
    if method == "oracle" and "true_mean" not in scenario.layers:
        # a reference that exists for simulations only: not applicable, not failed
        log.info("oracle on %s: no true means (not a simulation): not applicable", where)
        return not_applicable_record(scenario, "oracle: the scenario has no true means "
                                     "(simulations only)", **common)
    t0 = time.perf_counter()
    runtime = 0.0
    try:
        if injected_failure(method, scenario_id):
            raise RuntimeError(f"failure injected by {INJECT_VAR} for {method}")
        if external is None:
            out = methods.run(method, scenario, seed=int(seed), device=device, **params)
        else:
            dev = methods.resolve_device(device) if external.uses_gpu else "cpu"
            out = external.run(methods.method_input(scenario, counts.copy()), seed=int(seed),
                               device=dev, threads=threads, timeout_s=timeout_s,
                               workdir=workdir, log=log)
        runtime = time.perf_counter() - t0
        X, warnings, note = check_output(out, counts, cells, genes, method)
    except InputError:
        raise  # bad configuration or data: the job fails with its one-line message
    except Exception as exc:  # noqa: BLE001 -- recorded as failed, see the module docstring
        runtime = runtime or time.perf_counter() - t0
        if on_error == "stop":
            raise
        cause = str(exc) if isinstance(exc, MethodFailure) else \
            f"raised {type(exc).__name__}: {exc}"
        error = f"method {method!r} failed: {_one_line(cause, 1500)}"
        log.error("%s (on %s, after %.2f s)", error, where, runtime)
        if not isinstance(exc, MethodFailure) or exc.__cause__ is not None:
            log.info("details of the failure of %s:\n%s", method, traceback.format_exc())
        return failure_record(scenario, error, runtime_s=runtime, **common)
    for w in warnings:
        log.warning("method %r on %s: %s", method, where, w)
    if note:
        log.warning("method %r on %s: %s", method, where, note)
    log.info("method %s on %s done in %.2f s", method, where, runtime)
    return success_record(scenario, X, runtime_s=runtime, warnings=warnings, note=note, **common)
