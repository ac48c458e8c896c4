"""Helpers for the Snakemake benchmark workflow (no heavy imports).

The Snakefile turns its config into lists of targets with these functions, and the
workflow's scripts use them to read Snakemake's benchmark files and to write and read
failure markers. Nothing here imports numpy, anndata or torch, so that parsing the
workflow (``snakemake -n``, ``--lint``) stays fast.

Failure handling (see docs/workflow.md): an impute job whose method raises catches the
exception, writes it to the job's log and writes ``results/imputed/.../{method}.h5ad``
anyway, as an AnnData without ``layers["imputed"]`` and with ``uns["status"] = "failed"``
and ``uns["error"]``; the evaluate job then writes the method's metric rows with
``status = failed`` and ``value = NaN``. The method is therefore still in
``results/metrics.tsv`` and drawn as failed on every figure. ``on_error: stop`` in the
config makes the job fail instead (Snakemake's ``--keep-going`` then runs the rest, but
the aggregate, figures and report need every metric file).
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

from . import scenario_ids as scenario_ids_mod

__all__ = [
    "METHOD_ENVS", "CONTROLS", "scenario_id", "scenario_ids", "dataset_scenarios",
    "datasets_by_source", "dataset_regex", "method_env", "method_resources",
    "metric_targets", "read_benchmark", "figure_names", "umap_target",
]

# conda environment (file name in envs/, without .yaml) of each method family
METHOD_ENVS = {
    "scziva": "torch",
    "scziva_authors": "torch",
    "dca": "torch",
    "deepimpute": "torch",
    "scvi": "scvi",
    "magic": "magic",
}
DEFAULT_ENV = "bench"
# reference "methods": drawn as lines, not bars
CONTROLS = ("no_imputation", "perfect")

_NEVER = "(?!x)x"  # a regular expression that matches nothing


def scenario_id(kind: str, rate: float | None = None, seed: int | None = None) -> str:
    """The ``{scenario}`` wildcard (:func:`scziva_bench.scenario_ids.format_id`)."""
    return scenario_ids_mod.format_id(kind, rate, seed)


def scenario_ids(spec: dict) -> list[str]:
    """Every scenario id of one ``scenarios:`` block of the config, in a stable order."""
    return scenario_ids_mod.ids_from_spec(spec)


def scenario_spec(config: dict, dataset: str) -> dict:
    """The ``scenarios:`` block that applies to ``dataset`` (its own, else the default)."""
    ds = config["datasets"][dataset]
    return ds.get("scenarios") or config.get("scenarios") or {}


def dataset_scenarios(config: dict, dataset: str) -> list[str]:
    """Scenario ids for one dataset."""
    return scenario_ids(scenario_spec(config, dataset))


def scenario_params(config: dict, dataset: str, scenario: str) -> dict:
    """``kind``, ``rate``, ``seed`` (and the block's extra keys, e.g. ``train_fraction``)
    for ``scenarios.make``, from an id; the rate is the configured value it came from."""
    sid = scenario_ids_mod.parse_id(scenario)
    if sid.kind == "none":
        return {"kind": "none", "rate": None, "seed": 0}
    block = scenario_spec(config, dataset).get(sid.kind) or {}
    extra = {k: v for k, v in block.items() if k not in ("rates", "seeds")}
    rate = sid.rate
    if sid.kind in scenario_ids_mod.RATED:
        pct = scenario_ids_mod.rate_pct(rate)
        rate = next((float(r) for r in block.get("rates") or []
                     if scenario_ids_mod.rate_pct(r) == pct), rate)
    return {"kind": sid.kind, "rate": rate, "seed": sid.seed, **extra}


def datasets_by_source(config: dict, source: str) -> list[str]:
    """Names of the datasets whose ``source`` is ``simulate``, ``local`` or ``zenodo``."""
    return [name for name, ds in config.get("datasets", {}).items() if ds.get("source") == source]


def dataset_regex(names) -> str:
    """A wildcard constraint that matches exactly these names (nothing if empty)."""
    names = list(names)
    if not names:
        return _NEVER
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def method_env(name: str, config: dict | None = None) -> str:
    """Relative path (from workflow/rules) of the conda env file for a method."""
    env = None
    if config is not None:
        env = (config.get("methods", {}).get(name) or {}).get("conda_env")
    env = env or METHOD_ENVS.get(name, DEFAULT_ENV)
    return f"../../envs/{env}.yaml"


def method_resources(config: dict, name: str) -> dict:
    """threads, mem_mb, runtime (minutes), gpu of a method: its own over ``default_resources``."""
    res = {"threads": 1, "mem_mb": 4000, "runtime": 60, "gpu": 0}
    res.update(config.get("default_resources") or {})
    res.update((config.get("methods", {}).get(name) or {}).get("resources") or {})
    return res


def metric_targets(config: dict, prefix: str = "results/metrics") -> list[str]:
    """Every per-(dataset, scenario, method) metric file the config asks for."""
    out = []
    for ds in config.get("datasets", {}):
        for sc in dataset_scenarios(config, ds):
            for m in config.get("methods", {}):
                out.append(f"{prefix}/{ds}/{sc}/{m}.tsv")
    return out


def umap_target(config: dict):
    """(dataset, scenario) drawn in the UMAP figure, or None when the config draws none."""
    fig = config.get("figures") or {}
    umap = fig.get("umap", {}) or {}
    if umap.get("enabled", True) is False or not config.get("datasets"):
        return None
    ds = umap.get("dataset") or next(iter(config["datasets"]))
    scs = dataset_scenarios(config, ds) if ds in config["datasets"] else []
    sc = umap.get("scenario")
    if sc is None:
        # the middle scenario of the list: for dropout 20/50/80 the 50 % one
        if not scs:
            return None
        sc = scs[len(scs) // 2]
    return ds, sc


def figure_names(config: dict) -> list[str]:
    """Base names (no extension) of the figures in ``results/figures/``."""
    names = [f"metric_{m}" for m in config.get("metrics", [])]
    names += ["ranks", "resources"]
    if umap_target(config) is not None:
        names.append("umap")
    return names


def _fmt_params(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (d or {}).items()) or "defaults"


def describe_config(config: dict) -> str:
    """Plain-text summary of the data, protocol and seeds a config asks for (figure
    captions, report). One sentence per line, reStructuredText-safe."""
    lines = []
    for name, ds in config.get("datasets", {}).items():
        src = ds.get("source")
        if src == "simulate":
            s = ds.get("simulate", {})
            what = (f"Splat simulation without dropout, {s.get('n_cells')} cells x "
                    f"{s.get('n_genes')} genes, {s.get('n_groups')} groups, seed {s.get('seed')}")
        elif src == "zenodo":
            what = f"Zenodo record {ds.get('record')}, file {ds.get('file')}"
        else:
            what = f"local file {ds.get('path')}"
        lines.append(f"Dataset {name}: {what}; scenarios "
                     f"{', '.join(dataset_scenarios(config, name))}.")
    lines.append("Scenario ids: dropoutNN_sS drops NN % of the non-zero counts (seed S), "
                 "maskNN_sS masks NN % of them uniformly, mcv_sS is a molecular "
                 "cross-validation split, none is the data as given.")
    meths = [f"{m} ({_fmt_params((spec or {}).get('params'))})"
             for m, spec in config.get("methods", {}).items()]
    lines.append(f"Methods: {'; '.join(meths)}; method seed {config.get('seed', 0)}.")
    lines.append(f"Metrics: {', '.join(config.get('metrics', []))}.")
    return "\n".join(lines)


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


def h5_safe(value):
    """A copy of ``value`` that h5ad can store in ``uns`` (None -> "None", tuples -> lists,
    anything unusual -> its repr)."""
    if isinstance(value, dict):
        return {str(k): h5_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [h5_safe(v) for v in value]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items) or \
                all(isinstance(v, str) for v in items):
            return items
        return repr(list(value))
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


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
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


PROVENANCE_PACKAGES = ("scziva", "numpy", "scipy", "pandas", "anndata", "scanpy", "torch",
                       "scvi-tools", "magic-impute", "scikit-learn", "matplotlib", "snakemake")


def package_versions(names=PROVENANCE_PACKAGES) -> dict:
    """Installed version of each distribution (None when not installed); nothing is
    imported."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(config: dict, repo=".") -> dict:
    """What made a run: time (UTC), Python, platform, package versions, git commit, config."""
    import datetime
    import json
    import platform
    import sys

    return {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_commit": git_commit(repo),
        "packages": package_versions(),
        # a JSON round trip turns Snakemake's config objects into plain dicts and lists
        "config": json.loads(json.dumps(config, default=str)),
    }


def nvidia_gpu_present() -> bool:
    """Whether this machine shows an NVIDIA GPU (a /dev/nvidiaN device or nvidia-smi),
    without importing torch. ``CUDA_VISIBLE_DEVICES`` set to "" or "-1" hides them."""
    import shutil

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def git_commit(path=".") -> str | None:
    """The git commit of the checkout at ``path``, or None (no git, not a checkout)."""
    import subprocess
    try:
        res = subprocess.run(["git", "-C", os.fspath(path), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None
