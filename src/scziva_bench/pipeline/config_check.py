"""Config checks at the workflow's start, one line per problem, each naming its key.

Run by the Snakefile before anything else (a dry run included), so a typo costs seconds,
not a failed job hours later:

* method names: a name that is neither built in nor the user's own (``callable:`` /
  ``command:``) is reported as an unknown method, with the built-in names;
* method parameters: checked against what each method accepts (a built-in adapter's
  ``DEFAULTS``; scZiva's options and their ranges from :class:`scziva.settings.ZivaSettings`;
  a user function's signature when it can be imported here), and by type against the
  default value (``num_epochs: "three"``);
* the JSON schema (``workflow/schemas/config.schema.yaml``): every violation as one line
  ``config: <key path>: <what is wrong>`` instead of jsonschema's multi-line dump.

:func:`problems` returns the lines; the Snakefile raises them as one WorkflowError.
Imports no method's heavy dependencies (no torch, scvi-tools or MAGIC).
"""

from __future__ import annotations

import inspect
from pathlib import Path

__all__ = ["problems", "schema_problems", "method_problems", "dataset_problems"]

_MAX_VALUE_CHARS = 60


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _schema_message(err) -> str:
    """jsonschema's message without the whole offending instance."""
    v = err.validator
    if v in ("oneOf", "anyOf"):
        return f"{_short(err.instance)} matches none of the allowed forms"
    if v == "enum":
        return f"{_short(err.instance)} is not one of {', '.join(map(str, err.validator_value))}"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{_short(err.instance)} is not of type {want}"
    if v == "required":  # "'x' is a required property": name the missing key
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        return f"missing key {', '.join(missing)}" if missing else " ".join(err.message.split())
    # the rest (minimum, pattern, additionalProperties, ...) say it in one short sentence;
    # a long instance is cut
    return " ".join(str(err.message).split())[:200]


def schema_problems(config: dict, schema_path, skip_methods=()) -> list[str]:
    """Every schema violation as ``config: <path>: <message>`` (sorted by path).
    Violations under ``methods.<name>`` for a name in ``skip_methods`` (already reported
    as unknown) are left out."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    cls = jsonschema.validators.validator_for(schema)
    out = []
    for err in cls(schema).iter_errors(config):
        parts = list(err.absolute_path)
        if len(parts) >= 2 and parts[0] == "methods" and parts[1] in skip_methods:
            continue
        if err.validator == "if" or err.validator == "then":  # reported by their own sub-errors
            continue
        out.append(f"config: {_key_path(parts)}: {_schema_message(err)}")
    return sorted(dict.fromkeys(out))


def _type_problem(value, default, also=()) -> str | None:
    """A value whose type cannot stand in for the default's: a number where the default is
    a number (int or float: MAGIC's ``decay: 1`` takes 0.5), true/false for a flag, text
    for text, a list for a list. ``also``: other values the method takes (MAGIC's
    ``t: auto``). None, or a default of None, passes."""
    if default is None or value is None or value in also:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be true or false, got {_short(value)}"
    if isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {_short(value)}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"must be a string, got {_short(value)}"
    if isinstance(default, (list, tuple)):
        return None if isinstance(value, (list, tuple)) else f"must be a list, got {_short(value)}"
    return None


def _builtin_problems(name: str, spec, where: str) -> list[str]:
    from scziva_bench import methods

    from scziva_bench.catalog import methods as method_catalog

    env = spec.get("conda_env") if isinstance(spec, dict) else None
    if isinstance(env, str) and env not in method_catalog.ENVS:
        return [f"{where}.conda_env: {env!r} is not one of the environments of envs/: "
                f"{', '.join(method_catalog.ENVS)}"]
    params = (spec or {}).get("params") if isinstance(spec, dict) else None
    if not params:
        return []
    if not isinstance(params, dict):
        return []  # the schema says so
    adapter = methods.get(name)
    own = methods.param_check(name)  # a module's own check of its parameters
    if own is not None:
        return own(name, params, where)
    also = methods.extra_values(name)
    out = []
    for key, value in params.items():
        if key not in adapter.defaults and not adapter.accepts_extra:
            accepted = ", ".join(sorted(adapter.defaults)) or "none"
            out.append(f"{where}.{key}: unknown parameter of {name}; accepted: {accepted}")
            continue
        problem = _type_problem(value, adapter.defaults.get(key), also.get(key, ()))
        if problem:
            out.append(f"{where}.{key}: {problem} (default {_short(adapter.defaults[key])})")
    return out


def _callable_problems(name: str, spec: dict, where: str) -> list[str]:
    """A user function's parameters against its signature, when it can be imported here
    (with ``conda_env`` its dependencies may live elsewhere: not imported)."""
    from scziva_bench.methods import external

    params = spec.get("params") or {}
    if not params or spec.get("conda_env") or not isinstance(params, dict):
        return []
    try:
        fn = external.ExternalMethod(name, spec).load()
        sig = inspect.signature(fn)
    except Exception:  # noqa: BLE001 -- not importable here: its job reports it
        return []
    ps = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in ps.values()):
        return []
    accepted = [p for p in ps if p not in ("seed", "device")][1:]  # the first takes the AnnData
    return [f"{where}.{key}: {spec['callable']} has no parameter {key!r}; accepted: {', '.join(accepted) or 'none'}"
            for key in params if key not in ps]


def method_problems(config: dict) -> tuple[list[str], list[str], set]:
    """For the config's ``methods:``: (lines about whole entries: unknown names and broken
    user entries; lines about parameters; the names of the first kind)."""
    from scziva.errors import InputError

    from scziva_bench import methods
    from scziva_bench.methods import external

    known = set(methods.available())
    whole, out, unknown = [], [], set()
    entries = config.get("methods")
    if not isinstance(entries, dict):
        return whole, out, unknown
    for name, spec in entries.items():
        where = f"config: methods.{name}"
        if methods.is_external(spec):
            if name in known:
                continue  # the schema reports a built-in name given a callable or command
            try:  # the user's own method: its checks say it in the user's words
                external.check_spec(name, spec)
            except InputError as exc:
                unknown.add(name)  # one line for this entry, not the schema's as well
                whole.append("config: " + " ".join(str(exc).split()).removeprefix("config "))
                continue
            if "callable" in spec:
                out += _callable_problems(name, spec, f"{where}.params")
            continue
        if name not in known:
            unknown.add(name)
            whole.append(f"{where}: unknown method {name!r}; built-in methods: {', '.join(sorted(known))}; "
                       "a method of your own needs `callable:` or `command:` (docs/own_method.md)")
            continue
        if spec is not None and not isinstance(spec, dict):
            continue  # the schema says so
        try:
            out += _builtin_problems(name, spec, f"{where}.params")
        except Exception as exc:  # noqa: BLE001 -- a check must not crash the start
            out.append(f"{where}: its parameters could not be checked ({type(exc).__name__}: {exc})")
    return whole, out, unknown


def metric_problems(config: dict) -> list[str]:
    """A line naming the metrics of ``metrics:`` that the catalog does not know."""
    from scziva_bench.catalog import metrics as metric_specs

    given = config.get("metrics")
    if not isinstance(given, list):
        return []  # absent (every metric) or not a list (the schema says so)
    known = metric_specs.names()
    unknown = [m for m in given if m not in known]
    if not unknown:
        return []
    return [f"config: metrics: unknown metric(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(known)}"]


def dataset_problems(config: dict) -> list[str]:
    """Combinations the schema cannot express: scenario ``split`` (the MCV split a dataset
    came with) needs the test half (``test_path`` / ``test_file``); that half cannot be
    combined with true counts or with downsampling (which would thin the train half only)."""
    out = []
    datasets = config.get("datasets")
    if not isinstance(datasets, dict):
        return out
    default = config.get("scenarios") if isinstance(config.get("scenarios"), dict) else {}
    for name, ds in datasets.items():
        if not isinstance(ds, dict):
            continue
        where = f"config: datasets.{name}"
        scen = ds.get("scenarios") if isinstance(ds.get("scenarios"), dict) else default
        test = ds.get("test_path") or ds.get("test_file")
        if scen.get("split") and not test:
            out.append(f"{where}: scenario split scores the MCV split the data came with; give its "
                       "test half with test_path (local) or test_file (zenodo)")
        if test and (ds.get("truth_path") or ds.get("truth_file")):
            out.append(f"{where}: test_path (the test half of an MCV split) and truth_path (true "
                       "counts) cannot both be given")
        if test and ds.get("downsample"):
            out.append(f"{where}: downsample would thin the train half of its MCV split only; "
                       "leave one of downsample and test_path out")
    return out


def problems(config: dict, schema_path) -> list[str]:
    """Every problem of ``config``, one line each: whole method entries (unknown names,
    broken user entries), unknown metrics, the schema, then method parameters."""
    whole, params, skip = method_problems(config)
    return list(dict.fromkeys(whole + metric_problems(config)
                              + schema_problems(config, schema_path, skip_methods=skip)
                              + dataset_problems(config) + params))
