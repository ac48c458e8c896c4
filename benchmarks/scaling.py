"""Time and peak memory of every imputation method against the number of cells.

    make scaling                 # = .venv/bin/python benchmarks/scaling.py --config config/scaling.yaml
    .venv/bin/python benchmarks/scaling.py --config config/scaling.yaml --methods alra magic --cells 1000 5000
    .venv/bin/python benchmarks/scaling.py --quick        # 200 and 500 cells x 200 genes, kNN-smoothing and ALRA
    .venv/bin/python benchmarks/scaling.py --check        # check the config, print the plan, run nothing
    .venv/bin/python benchmarks/scaling.py --force --methods dca   # run DCA's sizes again

For each size of ``cells`` (config/scaling.yaml) one simulation is made
(``simulate.regime(regime, n_cells, n_genes, n_groups, seed)`` -> ``simulate.splat``, then
``scenarios.make(data, scenario)``, e.g. 50 % of the non-zeros dropped) and cached in the
output folder as ``data/<regime>_<scenario>_g<groups>_seed<seed>_<cells>x<genes>.h5ad``
(the observed counts only, what a method sees). Each (method, size) then runs in its own
worker process (``--one``) with ``threads`` BLAS/OpenMP/torch threads:

* ``seconds``: wall time of the imputation call (``methods.run``) alone; importing the
  method's packages and reading the data come before the clock starts.
* ``peak_mb``: the worker's peak resident memory (``ru_maxrss``), which includes the
  Python interpreter, the method's packages (torch: a few hundred MB) and the counts; the
  note gives the worker's peak just before the call ("before the call: N MB"). GPU
  memory is not in it; on a GPU the note adds torch's peak allocation ("GPU peak N MB").
* the cap (``cap_s``) applies to the imputation call: over it, the worker and its
  children are killed and the row is ``over_cap`` (peak_mb is then the worker's peak so
  far, read from /proc where there is one); the method's larger sizes are ``skipped``
  without running. A worker that crashes gives a ``failed`` row with the last error
  line, as does one whose start-up takes over max(cap, 300 s); larger sizes still run.

Outputs, each written atomically, in the output folder: ``scaling.tsv`` (method,
n_cells, n_genes, status, seconds, peak_mb, note, then params, setup, cap_s),
``scaling.md`` (methods x sizes: "12.3 s / 850 MB", "over cap", "failed", "skipped"),
``scaling.png`` / ``scaling.pdf`` (seconds and peak MB against cells, log-log) and
``logs/<method>_<cells>x<genes>.log`` (each worker's output).

Resumable: a row of scaling.tsv with the same method, cells, genes, params and setup
(threads, device, simulation) is kept, not run again (``--force`` runs the selected
methods and sizes again); an ``over_cap`` row is run again only when the cap was raised.
Rows of other setups stay in scaling.tsv; the table and figure show the current config's.

Test-only: ``SCZIVA_SCALING_TEST="knn_smoothing@200=sleep:5,alra@300=fail"`` makes the
named method's workers at that many cells or more sleep 5 s inside the timed call, or
raise, so that the tests can make a run go over the cap or crash on tiny data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

COLUMNS = ["method", "n_cells", "n_genes", "status", "seconds", "peak_mb", "note",
           "params", "setup", "cap_s"]
KEY = ("method", "n_cells", "n_genes", "params", "setup")
STATUSES = ("ok", "over_cap", "failed", "skipped")
DEFAULTS = {
    "cells": [1000, 5000, 20000, 100000],
    "genes": 2000,
    "regime": "droplet",
    "n_groups": 4,
    "seed": 1,
    "scenario": "dropout50_s1",
    "methods": None,  # None: every non-control method of the catalog, at its defaults
    "cap_s": 600,
    "threads": 2,
    "device": None,   # None: CUDA where present for the methods that can use it
    "out": "results_scaling",
}
QUICK = {"cells": [200, 500], "genes": 200, "methods": ["knn_smoothing", "alra"], "cap_s": 60,
         "out": "results_scaling_quick"}
TEST_VAR = "SCZIVA_SCALING_TEST"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# packages a method's module imports lazily, by its conda environment (catalog ``env``):
# imported in the worker before the clock starts
ENV_IMPORTS = {"torch": ("torch",), "scvi": ("torch", "scvi"), "magic": ("magic",)}
POLL_S = 0.1
STARTUP_S = 300  # a worker's start-up (imports, reading the data) may take max(cap, this)


class ConfigError(Exception):
    """A bad config or command line: one line, no traceback."""


# ----------------------------------------------------------------------------- config

def _posint(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{what}: {value!r} is not a whole number >= {minimum}")
    try:
        f = float(value)
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a whole number >= {minimum}") from None
    if not math.isfinite(f) or f != int(f) or int(f) < minimum:
        raise ConfigError(f"{what}: {value!r} is not a whole number >= {minimum}")
    return int(f)


def _posnum(value, what):
    try:
        f = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        f = float("nan")
    if not (math.isfinite(f) and f > 0):
        raise ConfigError(f"{what}: {value!r} is not a number > 0")
    return f


def _methods_spec(value, where="methods") -> dict:
    """``{name: params}`` of the config's ``methods:`` (a list of names, or a mapping of
    name to ``{params: {...}}`` / nothing)."""
    from scziva_bench.catalog import methods as catalog

    known = [m for m in catalog.names() if m not in catalog.CONTROLS]
    if value is None:
        return {m: {} for m in known}
    if isinstance(value, (list, tuple)):
        value = {m: {} for m in value}
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"{where}: expected a list of method names or a mapping "
                          f"name -> {{params: {{...}}}}, got {value!r}")
    out = {}
    for name, spec in value.items():
        if name in catalog.CONTROLS:
            raise ConfigError(f"{where}: {name!r} is a control, not an imputation method; "
                              f"known methods: {', '.join(known)}")
        if name not in known:
            raise ConfigError(f"{where}: unknown method {name!r}; known methods: {', '.join(known)}")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict) or set(spec) - {"params"}:
            raise ConfigError(f"{where}.{name}: expected nothing or {{params: {{...}}}}, got {spec!r}")
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.{name}.params: expected a mapping, got {params!r}")
        if params:
            from scziva_bench.pipeline.config_check import _builtin_problems

            problems = _builtin_problems(name, {"params": params}, f"{where}.{name}.params")
            if problems:
                raise ConfigError(problems[0])
        out[name] = dict(params)
    return out


def load_config(path, args) -> dict:
    """The config file, the command line's overrides on top, checked."""
    import yaml

    cfg = dict(DEFAULTS)
    where = "config"
    if path:
        where = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"{path}: unknown setting {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
        cfg.update(raw)
    if args.quick:
        cfg.update(QUICK)
    for key, val in (("cells", args.cells), ("genes", args.genes), ("cap_s", args.cap),
                     ("threads", args.threads), ("out", args.out), ("device", args.device),
                     ("regime", args.regime), ("scenario", args.scenario),
                     ("n_groups", args.n_groups), ("seed", args.seed)):
        if val is not None:
            cfg[key] = val
    try:
        return _checked(cfg, args.methods)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _checked(cfg, method_names) -> dict:
    from scziva_bench.catalog import scenarios as scenario_ids
    from scziva_bench.data import simulate

    cells = cfg["cells"]
    if not isinstance(cells, (list, tuple)) or not cells:
        cells = [cells]
    cfg["cells"] = sorted({_posint(n, "cells", minimum=10) for n in cells})
    cfg["genes"] = _posint(cfg["genes"], "genes", minimum=10)
    cfg["n_groups"] = _posint(cfg["n_groups"], "n_groups")
    cfg["seed"] = _posint(cfg["seed"], "seed", minimum=0)
    cfg["threads"] = _posint(cfg["threads"], "threads")
    cfg["cap_s"] = _posnum(cfg["cap_s"], "cap_s")
    if cfg["regime"] not in simulate.REGIMES:
        raise ConfigError(f"regime: unknown simulation regime {cfg['regime']!r}; known: "
                          f"{', '.join(simulate.REGIMES)}")
    sc = cfg["scenario"]
    if not (isinstance(sc, str) and (sc == "none" or scenario_ids.is_id(sc))):
        raise ConfigError(f"scenario: {sc!r} is not a scenario id (e.g. dropout50_s1, "
                          f"mask10_s1, mcv_s1, none)")
    dev = cfg["device"]
    if dev in ("auto", "null", "None", ""):
        dev = None
    if dev is not None and not (dev == "cpu" or str(dev).startswith("cuda")):
        raise ConfigError(f"device: {dev!r} is not understood; use cpu, cuda, cuda:N or "
                          f"nothing (CUDA where present)")
    cfg["device"] = dev
    if not isinstance(cfg["out"], str) or not cfg["out"].strip():
        raise ConfigError(f"out: expected a folder name, got {cfg['out']!r}")
    spec = _methods_spec(cfg["methods"])
    if method_names:  # a name the config leaves out runs at its defaults
        picked = _methods_spec(list(method_names), where="--methods")
        spec = {m: spec.get(m, picked[m]) for m in picked}
    cfg["methods"] = spec
    return cfg


def setup_text(cfg) -> str:
    """What else a row's numbers depend on (part of the resume key)."""
    return (f"threads={cfg['threads']} device={cfg['device'] or 'auto'} "
            f"data={cfg['regime']}/{cfg['scenario']}/groups{cfg['n_groups']}/seed{cfg['seed']}")


def params_text(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def data_path(cfg, n_cells) -> Path:
    return (Path(cfg["out"]) / "data" /
            f"{cfg['regime']}_{cfg['scenario']}_g{cfg['n_groups']}_seed{cfg['seed']}_"
            f"{n_cells}x{cfg['genes']}.h5ad")


# ------------------------------------------------------------------------------- data

def make_data(regime, n_cells, n_genes, n_groups, seed, scenario, path):
    """Simulate, make the scenario, cache the observed counts as an .h5ad (atomically)."""
    import anndata as ad

    from scziva_bench.data import scenarios, simulate
    from scziva_bench.data.io import write_h5ad_atomic

    kw = simulate.regime(regime, n_cells=n_cells, n_genes=n_genes, n_groups=n_groups, seed=seed)
    sc = scenarios.make(simulate.splat(**kw), scenario)
    counts = sc.layers["counts"]
    out = ad.AnnData(X=counts, obs=sc.obs[[]].copy(), var=sc.var[[]].copy())
    out.uns["scaling"] = {"regime": regime, "scenario": scenario, "n_groups": n_groups,
                          "seed": seed, "zeros": float(1 - counts.nnz / (n_cells * n_genes))}
    write_h5ad_atomic(out, path)


DATA_FAILED = "simulating the data failed: "


def ensure_data(cfg, n_cells) -> Path:
    """The cached data of ``n_cells`` (simulated in a subprocess first if need be); raises
    RuntimeError with one line when the simulation fails."""
    path = data_path(cfg, n_cells)
    if path.is_file():
        return path
    print(f"  simulating {n_cells:,} x {cfg['genes']:,} ({cfg['regime']}, {cfg['scenario']}) "
          f"-> {path}", flush=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--make-data", str(path),
           "--cells", str(n_cells), "--genes", str(cfg["genes"]), "--regime", cfg["regime"],
           "--n-groups", str(cfg["n_groups"]), "--seed", str(cfg["seed"]),
           "--scenario", cfg["scenario"]]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_thread_env(cfg["threads"]))
    if res.returncode != 0 or not path.is_file():
        rc = res.returncode
        why = (f"killed by signal {signal.Signals(-rc).name} (out of memory?)" if rc < 0
               else _last_line(res.stderr))
        raise RuntimeError(why)
    return path


# ----------------------------------------------------------------------------- worker

def _test_action(method, n_cells):
    """The test-only action (sleep:S / fail) of ``SCZIVA_SCALING_TEST`` for this run, or None."""
    for entry in os.environ.get(TEST_VAR, "").split(","):
        if not entry.strip():
            continue
        target, _, action = entry.strip().partition("=")
        name, _, at = target.partition("@")
        if name == method and n_cells >= int(at or 0):
            return action
    return None


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB (Linux)


def worker(args) -> int:
    """One (method, size): import, read, note the start, impute, write the result."""
    import traceback

    result = Path(args.result)
    try:
        import anndata as ad

        from scziva_bench import methods
        from scziva_bench.catalog import methods as catalog

        for mod in ENV_IMPORTS.get(catalog.row(args.one).env, ()):
            __import__(mod)
        methods.get(args.one)  # the method's module
        adata = ad.read_h5ad(args.data)
        adata.layers["counts"] = adata.X
        params = json.loads(args.params)
        action = _test_action(args.one, adata.n_obs)
        before = _rss_mb()
        Path(args.started).write_text(repr(time.time()))
        t0 = time.perf_counter()
        if action and action.startswith("sleep:"):
            time.sleep(float(action[6:]))
        elif action == "fail":
            raise RuntimeError(f"{TEST_VAR}: injected failure of {args.one}")
        Y = methods.run(args.one, adata, seed=0, device=args.device, **params)
        seconds = time.perf_counter() - t0
        out = {"seconds": seconds, "peak_mb": _rss_mb(), "before_mb": before,
               "shape": list(Y.shape)}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            out["gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        code = 0
    except BaseException as exc:  # noqa: BLE001 -- recorded as a failed row
        traceback.print_exc()
        line = (traceback.format_exception_only(type(exc), exc)[-1].strip() or type(exc).__name__)
        out = {"error": line, "peak_mb": _rss_mb()}
        code = 1
    tmp = result.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, result)
    return code


def _thread_env(threads):
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _vmhwm_mb(pid):
    """Peak resident memory so far of a running process (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own process group
    except ProcessLookupError:
        pass
    proc.wait()


def run_one(cfg, method, n_cells, params, path) -> dict:
    """Run one worker under the cap; its row (without the key columns)."""
    out = Path(cfg["out"])
    log_path = out / "logs" / f"{method}_{n_cells}x{cfg['genes']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cap = cfg["cap_s"]
    startup = max(cap, STARTUP_S)
    with tempfile.TemporaryDirectory(prefix=".worker_", dir=out) as tmp:
        result, started = Path(tmp) / "result.json", Path(tmp) / "started"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", method, "--data", str(path),
               "--params", params_text(params), "--result", str(result), "--started", str(started)]
        if cfg["device"]:
            cmd += ["--device", cfg["device"]]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_thread_env(cfg["threads"]), start_new_session=True)
            t_spawn, t_start = time.time(), None
            try:
                while True:
                    try:
                        rc = proc.wait(timeout=POLL_S)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    now = time.time()
                    if t_start is None and started.is_file():
                        try:
                            t_start = float(started.read_text())
                        except ValueError:
                            continue  # being written
                    if t_start is None and now - t_spawn > startup:
                        _kill_group(proc)
                        return {"status": "failed", "seconds": None, "peak_mb": None,
                                "note": f"start-up (imports, reading the data) took over "
                                        f"{startup:g} s; killed"}
                    if t_start is not None and now - t_start > cap:
                        peak = _vmhwm_mb(proc.pid)
                        _kill_group(proc)
                        note = f"killed after {now - t_start:.1f} s"
                        return {"status": "over_cap", "seconds": None, "peak_mb": peak,
                                "note": note + ("; peak_mb: at the kill" if peak else "")}
            except BaseException:  # Ctrl-C: leave no worker behind
                _kill_group(proc)
                raise
        res = _read_result(result)
    return _row_from(rc, log_path, res)


def _read_result(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _row_from(rc, log_path, res) -> dict:
    log_text = Path(log_path).read_text(errors="replace") if Path(log_path).is_file() else ""
    if rc == 0 and res and "seconds" in res:
        gpu = f"; GPU peak {res['gpu_mb']:.0f} MB" if res.get("gpu_mb") is not None else ""
        return {"status": "ok", "seconds": res["seconds"], "peak_mb": res["peak_mb"],
                "note": f"before the call: {res['before_mb']:.0f} MB{gpu}"}
    if res and "error" in res:
        return {"status": "failed", "seconds": None, "peak_mb": res.get("peak_mb"),
                "note": res["error"][:300]}
    why = (f"killed by signal {signal.Signals(-rc).name} (out of memory?)" if rc < 0
           else f"exit status {rc}")
    return {"status": "failed", "seconds": None, "peak_mb": None,
            "note": f"{why}: {_last_line(log_text)}"}


# ----------------------------------------------------------------------- tables, figure

def read_rows(path) -> list[dict]:
    import csv

    if not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for r in rows:
        r["n_cells"], r["n_genes"] = int(r["n_cells"]), int(r["n_genes"])
        for k in ("seconds", "peak_mb", "cap_s"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["note"] = r.get("note") or ""
    return rows


def _fmt(v, digits):
    return "" if v is None else f"{v:.{digits}f}"


def write_tsv(rows, path):
    from scziva.fileio import atomic_write

    lines = ["\t".join(COLUMNS)]
    for r in rows:
        vals = {**r, "seconds": _fmt(r["seconds"], 3), "peak_mb": _fmt(r["peak_mb"], 1),
                "cap_s": _fmt(r["cap_s"], 0)}
        lines.append("\t".join(str(vals[c]).replace("\t", " ").replace("\n", " ") for c in COLUMNS))
    with atomic_write(path, make_parents=True, suffix=".tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def seconds_text(s: float) -> str:
    """12.3 / 386 / 0.041 (three significant digits below 100 s)."""
    return f"{s:.0f}" if s >= 100 else f"{s:.1f}" if s >= 1 else f"{s:#.2g}"


def cell_text(r) -> str:
    """A cell of scaling.md (numbers as in scaling.tsv, rounded)."""
    if r is None:
        return ""
    if r["status"] == "ok":
        # first to the tsv's precision, so that a table written from a run's rows and one
        # read back from its tsv agree (197.46 MB is 197.5 in the tsv, then "198")
        seconds, mb = float(_fmt(r["seconds"], 3)), float(_fmt(r["peak_mb"], 1))
        return f"{seconds_text(seconds)} s / {mb:,.0f} MB"
    if r["status"] == "over_cap":
        return f"over cap ({r['cap_s']:g} s)"
    if r["status"] == "failed":
        return "failed"
    return "skipped"


def write_md(rows, cfg, path):
    from scziva.fileio import atomic_write
    from scziva_bench.catalog import methods as catalog

    sizes = cfg["cells"]
    by = {(r["method"], r["n_cells"]): r for r in rows}
    head = ["method", *[f"{n:,} cells" for n in sizes]]
    lines = [f"Time of the imputation call / peak memory of its process, {cfg['genes']:,} genes, "
             f"{setup_text(cfg)}, cap {cfg['cap_s']:g} s (benchmarks/scaling.py).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in cfg["methods"]:
        lines.append("| " + " | ".join([catalog.label(m), *[cell_text(by.get((m, n))) for n in sizes]]) + " |")
    notes = [f"- {catalog.label(r['method'])}, {r['n_cells']:,} cells: {r['status']}: {r['note']}"
             for r in rows if r["status"] in ("failed", "over_cap", "skipped")]
    if notes:
        lines += ["", *notes]
    with atomic_write(path, make_parents=True, suffix=".md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _log_axis(ax, lo, hi):
    """Log y axis from ``lo`` to ``hi`` spanning at least a factor of 4 (so that ticks at
    1, 2, 5 x 10^k fall inside), ticks written as plain numbers."""
    import matplotlib.ticker as mticker

    lo, hi = max(lo, 1e-6), max(hi, 1e-6)
    mid, span = math.sqrt(lo * hi), max(hi / lo, 4.0) * 1.5
    ax.set_ylim(mid / math.sqrt(span), mid * math.sqrt(span))
    ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.10g}"))
    ax.yaxis.set_minor_locator(mticker.NullLocator())


def plot(rows, cfg, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scziva_bench.catalog import methods as catalog
    from scziva_bench.report.plots import method_color, save_figure

    cap = cfg["cap_s"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 5))
    # several methods over the cap (or failed) at one size: their markers side by side
    nudge = {}
    for st in ("over_cap", "failed"):
        for n in cfg["cells"]:
            at = [r["method"] for r in rows if r["n_cells"] == n and r["status"] == st]
            for k, m in enumerate(at):
                nudge[(m, n)] = 1.06 ** (k - (len(at) - 1) / 2)
    for m in cfg["methods"]:
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["n_cells"])
        if not mine:
            continue
        color, label = method_color(m), catalog.label(m)
        ok = [r for r in mine if r["status"] == "ok"]
        xs = [r["n_cells"] for r in ok]
        ax_t.plot(xs, [r["seconds"] for r in ok], "o-", color=color, label=label, lw=1.6, ms=5)
        ax_m.plot(xs, [r["peak_mb"] for r in ok], "o-", color=color, label=label, lw=1.6, ms=5)
        for r in mine:
            x = r["n_cells"] * nudge.get((m, r["n_cells"]), 1.0)
            if r["status"] == "over_cap":
                if ok:  # a dotted line from the last finished size to the cap
                    ax_t.plot([ok[-1]["n_cells"], x], [ok[-1]["seconds"], cap], ":", color=color, lw=1.2)
                ax_t.plot([x], [cap], "^", color=color, ms=9, mec="black", mew=0.6, zorder=5)
                if r["peak_mb"]:
                    ax_m.plot([x], [r["peak_mb"]], "^", color=color, ms=8, mfc="white", mew=1.4)
            if r["status"] == "failed":  # at the foot of both panels
                for ax in (ax_t, ax_m):
                    ax.plot([x], [0.04], "x", color=color, ms=9, mew=2,
                            transform=ax.get_xaxis_transform(), clip_on=False)
        if not ok and not any(r["status"] == "over_cap" for r in mine):
            ax_t.plot([], [], "o-", color=color, label=f"{label} (no finished run)")
    for n in sorted({r["n_cells"] for r in rows if r["status"] == "over_cap"}):
        ax_t.annotate("over cap", (n, cap), xytext=(0, 9), textcoords="offset points",
                      ha="center", fontsize=7, color="0.2")
    ax_t.axhline(cap, color="0.4", ls="--", lw=1)
    ax_t.annotate(f"cap {cap:g} s", (0.01, cap), xycoords=("axes fraction", "data"),
                  xytext=(0, 3), textcoords="offset points", ha="left", va="bottom",
                  fontsize=8, color="0.3")
    sizes = cfg["cells"]
    for ax, ylab, title in ((ax_t, "seconds (imputation call)", "time"),
                            (ax_m, "peak memory of the process (MB)", "peak memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"cells ({cfg['genes']:,} genes)")
        ax.set_ylabel(ylab)
        ax.set_title(title)
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{n:,}" for n in sizes], fontsize=8)
        ax.minorticks_off()
        if len(sizes) > 1:
            ax.set_xlim(sizes[0] / 1.3, sizes[-1] * 1.3)
        ax.grid(True, which="major", alpha=0.3)
    ok_s = [r["seconds"] for r in rows if r["status"] == "ok"] + [cap]
    _log_axis(ax_t, min(ok_s), max(ok_s) * 1.5)
    mb = [r["peak_mb"] for r in rows if r["peak_mb"] and r["status"] in ("ok", "over_cap")]
    if mb:
        _log_axis(ax_m, min(mb), max(mb))
    from matplotlib.lines import Line2D

    handles, labels = ax_t.get_legend_handles_labels()
    if any(r["status"] == "over_cap" for r in rows):
        handles.append(Line2D([], [], marker="^", ls="", color="0.5", mec="black", ms=8))
        labels.append("over the cap (killed); right: peak at the kill")
    if any(r["status"] == "failed" for r in rows):
        handles.append(Line2D([], [], marker="x", ls="", color="0.3", ms=8, mew=2))
        labels.append("failed")
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    sub = f"{cfg['regime']} simulation, {cfg['scenario']}, {cfg['threads']} thread(s)"
    counts = {st: sum(r["status"] == st for r in rows) for st in ("over_cap", "failed", "skipped")}
    if any(counts.values()):
        sub += "; " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v) + \
            " (see scaling.md)"
    fig.suptitle(f"Scaling with the number of cells\n{sub}", fontsize=9)
    rows_legend = math.ceil(len(labels) / 4)
    fig.tight_layout(rect=(0, 0.01 + 0.045 * rows_legend, 1, 1))
    return save_figure(fig, stem, formats=("png", "pdf"), dpi=130)


# ------------------------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML settings (default: built-in defaults)")
    p.add_argument("--cells", nargs="+", default=None, help="sizes in cells (overrides the config)")
    p.add_argument("--genes", default=None)
    p.add_argument("--methods", nargs="+", default=None, help="run only these (params from the config)")
    p.add_argument("--cap", default=None, help="seconds per imputation call")
    p.add_argument("--threads", default=None)
    p.add_argument("--device", default=None, help="cpu / cuda / cuda:N (default: CUDA where present)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--regime", default=None, help="simulation regime (simulate.REGIMES)")
    p.add_argument("--scenario", default=None, help="scenario id, e.g. dropout50_s1")
    p.add_argument("--n-groups", default=None)
    p.add_argument("--seed", default=None, help="simulation seed")
    p.add_argument("--quick", action="store_true", help=f"tiny check: {QUICK}")
    p.add_argument("--force", action="store_true", help="run the selected rows again")
    p.add_argument("--check", action="store_true", help="check the config, print the plan, run nothing")
    # internal: one worker, one simulation
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--started", help=argparse.SUPPRESS)
    p.add_argument("--make-data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        return worker(args)
    if args.make_data:
        make_data(args.regime, int(args.cells[0]), int(args.genes), int(args.n_groups),
                  int(args.seed), args.scenario, args.make_data)
        return 0
    from scziva.errors import InputError

    try:
        return _main(args)
    except (ConfigError, InputError) as exc:  # InputError: e.g. an output folder not writable
        print(f"scaling: {exc}", file=sys.stderr)
        return 2


def _main(args) -> int:
    cfg = load_config(args.config, args)
    out = Path(cfg["out"])
    tsv = out / "scaling.tsv"
    setup = setup_text(cfg)
    try:
        old = read_rows(tsv)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{tsv}: cannot read it to resume ({exc}); move it away or use another --out")
    table = {tuple(r[k] for k in KEY): r for r in old}
    print(f"scaling: {len(cfg['methods'])} method(s) x {len(cfg['cells'])} size(s), "
          f"{cfg['genes']:,} genes, cap {cfg['cap_s']:g} s, {setup} -> {out}/", flush=True)
    if args.check:
        for m, params in cfg["methods"].items():
            print(f"  {m}: {params_text(params)} at {', '.join(map(str, cfg['cells']))} cells")
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    n_run = n_kept = 0
    current = []
    paths, data_errors = {}, {}

    def publish():
        rows = list(table.values())
        write_tsv(rows, tsv)
        write_md(current, cfg, out / "scaling.md")

    for m, params in cfg["methods"].items():
        over_at = None
        for n in cfg["cells"]:
            key = (m, n, cfg["genes"], params_text(params), setup)
            prev = table.get(key)
            base = dict(zip(KEY, key), cap_s=cfg["cap_s"])
            if over_at is not None:
                row = {**base, "status": "skipped", "seconds": None, "peak_mb": None,
                       "note": f"over cap at {over_at}"}
                print(f"  {m} {n:,}: skipped (over cap at {over_at})", flush=True)
            elif (prev is not None and not args.force and prev["status"] != "skipped"
                  and not prev["note"].startswith(DATA_FAILED)
                  and not (prev["status"] == "over_cap" and (prev["cap_s"] or 0) < cfg["cap_s"])):
                row = prev
                n_kept += 1
                print(f"  {m} {n:,}: kept ({cell_text(prev)})", flush=True)
            else:
                if n not in data_errors:
                    try:
                        paths[n] = ensure_data(cfg, n)
                    except RuntimeError as exc:
                        data_errors[n] = str(exc)
                if n in data_errors:  # not a result of the method: run again on resume
                    row = {**base, "status": "failed", "seconds": None, "peak_mb": None,
                           "note": DATA_FAILED + data_errors[n]}
                else:
                    print(f"  {m} {n:,}: running ...", end="", flush=True)
                    row = {**base, **run_one(cfg, m, n, params, paths[n])}
                    n_run += 1
                if row["status"] == "failed":
                    print(f"  {m} {n:,}: failed ({row['note']})" if n in data_errors else
                          f" failed ({row['note']})", flush=True)
                else:
                    print(f" {cell_text(row)}", flush=True)
            if row["status"] == "over_cap" or (row["status"] == "ok" and row["seconds"] > cfg["cap_s"]):
                over_at = n
            table[key] = row
            current.append(row)
            publish()
    publish()
    plot(current, cfg, out / "scaling")
    print(f"scaling: {n_run} run, {n_kept} kept -> {tsv}, {out / 'scaling.md'}, "
          f"{out / 'scaling.png'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
