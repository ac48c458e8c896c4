"""The user's own methods, named in the config: a Python callable or a command.

Config (``methods.<name>``, checked by the workflow's schema and by :func:`check_spec`)::

    methods:
      mine:                                   # a Python function
        callable: "mypkg.impute:run"          # module:function, or "path/to/file.py:function"
        params: {k: 10}                       # keyword arguments of the function
      saver:                                  # any program
        command: "Rscript my_saver.R {input} {output} --threads {threads}"
        input_format: csv                     # h5ad (default) or csv; output in the same format
        resources: {threads: 4, runtime: 30}  # runtime: minutes per scenario
        label: "SAVER (R)"                    # name in figures (default "<name> (user)")

**Callable.** ``"pkg.mod:func"`` is imported as a module; ``"dir/file.py:func"`` is
loaded from that file (a relative path is taken from the working directory, where
Snakemake runs). It is called as ``func(adata, seed=..., device=..., **params)``
(``seed``/``device`` only if the function accepts them) where ``adata`` is
:func:`scziva_bench.methods.method_input`: ``X`` = ``layers["counts"]`` = the observed
counts (CSR float32, cells x genes), ``obs_names``, ``var_names``, ``obs["n_counts"]``;
nothing else. ``device`` is ``"cpu"``, or ``"cuda"`` when the method asks for a GPU
(``resources.gpu: 1``) and one is there. It returns a cells x genes matrix (numpy,
scipy.sparse, pandas.DataFrame) on the count scale, or an AnnData with
``layers["imputed"]`` and the input's cell and gene names in the input's order.

**Command.** The command line is split like a shell would (:func:`shlex.split`) and run
without a shell, in the working directory; each ``{placeholder}`` inside a word is
replaced by its value, so a path with spaces stays one argument and no value from the
config or the data is ever interpreted by a shell. Placeholders: ``{input}``,
``{output}`` (absolute paths of the files below), ``{threads}``, ``{seed}``,
``{device}``, and every key of ``params`` (``{{``/``}}`` give literal braces). Files:

- ``input_format: h5ad`` (default): ``{input}`` is the AnnData above, written as .h5ad;
  the command writes ``{output}`` as .h5ad holding ``layers["imputed"]`` (or ``X``), same
  cells and genes in the same order.
- ``input_format: csv``: ``{input}`` is a comma-separated table, one row per cell: a
  header ``cell,<gene 1>,<gene 2>,...`` then ``<cell name>,<count>,<count>,...``; the
  command writes ``{output}`` in the same layout (first column the cell names, header
  the gene names, same order), the values being the imputed counts.

The command's output (stdout and stderr) goes to the job's log. It must exit 0 within
the runtime limit; otherwise it is killed and the method is marked failed.

Everything a user's method can get wrong ends as :class:`MethodFailure`, whose message is
one line naming the cause; the runner (:mod:`scziva_bench.methods.runner`) records it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from scziva.errors import InputError

__all__ = ["MethodFailure", "ExternalMethod", "check_spec", "check_config", "from_config",
           "provenance", "INPUT_FORMATS", "PLACEHOLDERS"]

INPUT_FORMATS = ("h5ad", "csv")
PLACEHOLDERS = ("input", "output", "threads", "seed", "device")
SPEC_KEYS = {"callable", "command", "input_format", "params", "resources", "conda_env", "label"}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_CALLABLE = re.compile(r"^(?P<target>.+):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")


class MethodFailure(RuntimeError):
    """A user's method failed; ``str()`` is one line saying why (without the name)."""


def _one_line(text, limit=300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _command_words(command) -> list[str]:
    if isinstance(command, (list, tuple)):
        return [str(w) for w in command]
    return shlex.split(str(command))


def _placeholders(word: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(word) if m.group(1) is not None]


def check_spec(name: str, spec: dict) -> None:
    """Raise InputError (one sentence naming ``methods.<name>``) when the config entry of
    an external method cannot work: neither or both of callable/command, a callable not
    of the form ``target:function``, an unknown input_format, a command that does not
    split or names an unknown ``{placeholder}``. Imports nothing heavy (parse time)."""
    where = f"config methods.{name}"
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a mapping with `callable` or `command`")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}")
    has_c, has_cmd = "callable" in spec, "command" in spec
    if has_c == has_cmd:
        raise InputError(f"{where}: give exactly one of `callable` (a Python function) "
                         f"or `command` (a program)")
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"{where}.params: expected a mapping of keyword arguments")
    if has_c:
        if not isinstance(spec["callable"], str) or not _CALLABLE.match(spec["callable"]):
            raise InputError(f"{where}.callable: {spec['callable']!r} is not of the form "
                             f"'package.module:function' or 'path/to/file.py:function'")
        if "input_format" in spec:
            raise InputError(f"{where}.input_format: only a command reads files; a callable "
                             f"receives an AnnData")
        return
    fmt = spec.get("input_format", "h5ad")
    if fmt not in INPUT_FORMATS:
        raise InputError(f"{where}.input_format: {fmt!r} is not one of {', '.join(INPUT_FORMATS)}")
    try:
        words = _command_words(spec["command"])
    except ValueError as exc:
        raise InputError(f"{where}.command: cannot be split into words ({exc})") from None
    if not words:
        raise InputError(f"{where}.command: is empty")
    known = set(PLACEHOLDERS) | set(params)
    bad = sorted({p for w in words for p in _placeholders(w)} - known)
    if bad:
        raise InputError(f"{where}.command: unknown placeholder(s) "
                         f"{', '.join('{' + b + '}' for b in bad)}; known: "
                         f"{', '.join('{' + k + '}' for k in sorted(known))}")
    used = {p for w in words for p in _placeholders(w)}
    if not {"input", "output"} <= used:
        raise InputError(f"{where}.command: must contain {{input}} and {{output}} "
                         f"(the files it reads and writes)")


def _fill(word: str, values: dict) -> str:
    def sub(m):
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(sub, word)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def time_limit(seconds):
    """Raise :class:`MethodFailure` in the main thread after ``seconds`` (SIGALRM). Python
    code is interrupted at once; a long call into C ends first. Without a limit, in a
    thread other than the main one, or where SIGALRM does not exist: no limit here."""
    import threading

    usable = (seconds is not None and seconds > 0 and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise MethodFailure(f"did not finish within its runtime limit of {_fmt_s(seconds)} "
                            f"(resources.runtime)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fmt_s(seconds) -> str:
    seconds = float(seconds)
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


class ExternalMethod:
    """One external method of the config. :meth:`run` returns what the method produced
    (matrix or AnnData, unchecked: the runner checks it) or raises MethodFailure."""

    def __init__(self, name: str, spec: dict):
        check_spec(name, spec)
        self.name = name
        self.spec = dict(spec)
        self.params = dict(spec.get("params") or {})
        self.kind = "user"
        self.is_command = "command" in spec
        self.input_format = spec.get("input_format", "h5ad")
        self.uses_gpu = bool((spec.get("resources") or {}).get("gpu", 0))
        from scziva_bench.methods import describe

        facts = describe(name, {name: spec})
        self.label, self.source = facts["label"], facts["source"]

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> dict:
        """kind, label, source, and the SHA-256 of the files the source names (the .py
        file of a callable; the command's words that are existing files of <= 5 MB)."""
        files = {}
        if self.is_command:
            words = _command_words(self.spec["command"])
            cands = [w for w in words if not _placeholders(w)]
        else:
            target = _CALLABLE.match(self.spec["callable"]).group("target")
            cands = [target] if target.endswith(".py") else []
        for w in cands:
            p = Path(w)
            # scripts and sources, not interpreters or data (at most 5 MB)
            if p.is_file() and p.stat().st_size <= 5 * 2 ** 20:
                try:
                    files[w] = _sha256(p)
                except OSError:
                    pass
        return {"kind": self.kind, "label": self.label, "source": self.source,
                "source_sha256": files}

    # ------------------------------------------------------------------ callable
    def load(self):
        """The function named by ``callable:`` (MethodFailure when it cannot be loaded)."""
        spec = self.spec["callable"]
        m = _CALLABLE.match(spec)
        target, func = m.group("target"), m.group("func")
        try:
            if target.endswith(".py") or os.sep in target or "/" in target:
                module = _load_file(spec, Path(target))
            else:
                module = importlib.import_module(target)
        except MethodFailure:
            raise
        except BaseException as exc:  # noqa: BLE001 -- SyntaxError, SystemExit, ... in user code
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise MethodFailure(f"callable {spec!r} could not be imported: "
                                f"{type(exc).__name__}: {_one_line(exc)}") from exc
        fn = getattr(module, func, None)
        if fn is None:
            raise MethodFailure(f"callable {spec!r}: {target} has no attribute {func!r}")
        if not callable(fn):
            raise MethodFailure(f"callable {spec!r}: {func!r} is a {type(fn).__name__}, "
                                f"not a function")
        return fn

    def _call(self, fn, adata, seed, device):
        kw = dict(self.params)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            ps = sig.parameters
            var_kw = any(p.kind is p.VAR_KEYWORD for p in ps.values())
            for key, val in (("seed", seed), ("device", device)):
                if key in ps or var_kw:
                    kw[key] = val
            if not var_kw:
                bad = sorted(k for k in self.params if k not in ps)
                if bad:
                    raise MethodFailure(f"callable {self.spec['callable']!r} does not accept "
                                        f"parameter(s) {', '.join(bad)} (from params)")
        else:
            kw.update(seed=seed, device=device)
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        return fn(adata, **kw)

    # ------------------------------------------------------------------ command
    def _write_input(self, adata, path: Path) -> None:
        if self.input_format == "h5ad":
            adata.write_h5ad(path)
            return
        import numpy as np

        X = adata.layers["counts"]
        with open(path, "w", newline="") as fh:
            fh.write(",".join(["cell", *map(_csv_field, adata.var_names)]) + "\n")
            for i, cell in enumerate(adata.obs_names):
                row = np.asarray(X[i].toarray()).ravel() if hasattr(X, "toarray") else X[i]
                fh.write(_csv_field(cell) + "," + ",".join(f"{v:.10g}" for v in row) + "\n")

    def _read_output(self, path: Path, adata):
        if not path.is_file():
            raise MethodFailure(f"command exited 0 but wrote no output file {path.name} "
                                f"(expected at {{output}})")
        if self.input_format == "h5ad":
            import anndata as ad

            try:
                out = ad.read_h5ad(path)
            except Exception as exc:  # noqa: BLE001
                raise MethodFailure(f"output {path.name} is not a readable .h5ad: "
                                    f"{type(exc).__name__}: {_one_line(exc)}") from None
            if "imputed" not in out.layers and out.X is not None:
                out.layers["imputed"] = out.X
            return out
        import pandas as pd

        try:
            df = pd.read_csv(path, index_col=0)
        except Exception as exc:  # noqa: BLE001
            raise MethodFailure(f"output {path.name} is not a readable CSV table: "
                                f"{type(exc).__name__}: {_one_line(exc)}") from None
        try:
            df = df.astype("float64")
        except (TypeError, ValueError):
            raise MethodFailure(f"output {path.name} holds non-numeric values") from None
        df.index = df.index.astype(str)
        df.columns = df.columns.astype(str)
        return df

    def _run_command(self, adata, seed, device, threads, timeout_s, workdir, log):
        import tempfile

        workdir = Path(workdir) if workdir is not None else None
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".work", dir=workdir))
        try:
            ext = self.input_format
            inp, outp = (tmp / f"input.{ext}").resolve(), (tmp / f"output.{ext}").resolve()
            self._write_input(adata, inp)
            values = {**self.params, "input": inp, "output": outp,
                      "threads": int(threads), "seed": int(seed), "device": device}
            argv = [_fill(w, values) for w in _command_words(self.spec["command"])]
            if log is not None:
                log.info("method %s: running %s", self.name, shlex.join(argv))
            try:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                raise MethodFailure(f"command {argv[0]!r} could not be started: "
                                    f"{exc.strerror or exc}") from None
            try:
                output, _ = proc.communicate(timeout=timeout_s if timeout_s else None)
                timed_out = False
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                output, _ = proc.communicate()
                timed_out = True
            text = output.decode("utf-8", "replace") if output else ""
            if log is not None and text.strip():
                log.info("method %s: command output:\n%s", self.name, _tail(text, 200))
            if timed_out:
                raise MethodFailure(f"did not finish within its runtime limit of "
                                    f"{_fmt_s(timeout_s)} (resources.runtime); killed")
            if proc.returncode != 0:
                last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
                how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
                       else f"exited with status {proc.returncode}")
                last = f"; last output line: {_one_line(last, 200)}" if last else ""
                raise MethodFailure(f"command {how}{last}")
            return self._read_output(outp, adata)
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ both
    def run(self, adata, *, seed=0, device="cpu", threads=1, timeout_s=None, workdir=None,
            log=None):
        """Run the method on ``adata`` (:func:`scziva_bench.methods.method_input`).
        ``timeout_s``: the runtime limit (None: none); ``workdir``: where a command's
        temporary files go (a fresh folder inside it, removed afterwards)."""
        if self.is_command:
            return self._run_command(adata, seed, device, threads, timeout_s, workdir, log)
        fn = self.load()
        with time_limit(timeout_s):
            try:
                return self._call(fn, adata, seed, device)
            except MethodFailure:
                raise
            except (Exception, SystemExit) as exc:  # noqa: BLE001 -- the user's code raised
                raise MethodFailure(f"raised {type(exc).__name__}: {_one_line(exc)}") from exc


# files already loaded: (resolved path, mtime) -> module; every scenario of a job reuses
# the module instead of running the file again
_FILE_MODULES: dict = {}


def _load_file(spec: str, path: Path):
    if not path.is_file():
        raise MethodFailure(f"callable {spec!r}: file {path} not found (relative to {Path.cwd()})")
    real = path.resolve()
    key = (str(real), real.stat().st_mtime_ns)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    mod_name = f"scziva_user_{hashlib.md5(str(real).encode()).hexdigest()[:12]}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, real)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module  # so that pickle, dataclasses etc. find it
    # the file's folder is importable while it loads, as `python file.py` would make it
    sys.path.insert(0, str(real.parent))
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        try:
            sys.path.remove(str(real.parent))
        except ValueError:
            pass
    _FILE_MODULES[key] = module
    return module


def _csv_field(text) -> str:
    text = str(text)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _tail(text: str, n: int) -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} earlier lines)"] + lines[-n:]
    return "\n".join("    " + ln for ln in lines)


def _kill_group(proc) -> None:
    """Kill the command and everything it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    # give the OS a moment to reap it
    for _ in range(50):
        if proc.poll() is not None:
            return
        time.sleep(0.02)


def from_config(name: str, spec: dict) -> ExternalMethod:
    """The external method ``name`` of a config (InputError when its entry is invalid)."""
    return ExternalMethod(name, spec)


def check_config(config_methods: dict) -> None:
    """:func:`check_spec` for every external method of a config's ``methods:`` (for the
    workflow's start: InputError naming the first bad entry)."""
    from scziva_bench.methods import is_external

    for name, spec in (config_methods or {}).items():
        if is_external(spec):
            check_spec(name, spec)


def provenance(config_methods: dict) -> dict:
    """``{name: {kind, label, source, source_sha256}}`` for every method of a config
    (built-in ones from :func:`scziva_bench.methods.describe`; no method is imported)."""
    from scziva_bench.methods import describe, is_external

    out = {}
    for name, spec in (config_methods or {}).items():
        if is_external(spec):
            out[name] = ExternalMethod(name, spec).provenance()
        else:
            out[name] = {**describe(name, {name: spec or {}}), "source_sha256": {}}
    return out
