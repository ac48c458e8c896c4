"""What a benchmark config asks for: datasets, scenarios, targets, resources, figures.

The Snakefile turns its (schema-validated) config into lists of targets and rule
settings with these functions. Nothing here imports numpy, anndata or torch, so that
parsing the workflow (``snakemake -n``, ``--lint``) stays fast. Scenario ids follow the
one grammar of :mod:`scziva_bench.catalog.scenarios`.
"""

from __future__ import annotations

import re
from pathlib import Path

from scziva_bench.catalog import methods as method_catalog
from scziva_bench.catalog import metrics as metric_catalog
from scziva_bench.catalog import scenarios as scenario_ids_mod

#: the conda environment files shipped in envs/ and the one of a method without its own
#: (:mod:`scziva_bench.catalog.methods`)
ENV_FAMILIES = method_catalog.ENVS
DEFAULT_ENV = method_catalog.DEFAULT_ENV


_NEVER = "(?!x)x"  # a regular expression that matches nothing


def scenario_spec(config: dict, dataset: str) -> dict:
    """The ``scenarios:`` block that applies to ``dataset`` (its own, else the default)."""
    ds = config["datasets"][dataset]
    return ds.get("scenarios") or config.get("scenarios") or {}


def dataset_scenarios(config: dict, dataset: str) -> list[str]:
    """Scenario ids for one dataset."""
    return scenario_ids_mod.ids_from_spec(scenario_spec(config, dataset))


def scenario_options(config: dict, dataset: str, scenario: str) -> dict:
    """The keyword options of ``scenarios.make(adata, scenario, **options)`` beyond the
    id, from the scenario kind's config block (e.g. ``train_fraction``, ``shape``)."""
    kind = scenario_ids_mod.parse_id(scenario).kind
    block = scenario_spec(config, dataset).get(kind)
    if not isinstance(block, dict):  # `none: true` has no options
        return {}
    return {k: v for k, v in block.items() if k not in ("rates", "seeds")}


def datasets_by_source(config: dict, source: str) -> list[str]:
    """Names of the datasets whose ``source`` is ``simulate``, ``local`` or ``zenodo``."""
    return [name for name, ds in config.get("datasets", {}).items() if ds.get("source") == source]


def name_regex(names) -> str:
    """A wildcard constraint that matches exactly these names (datasets, methods; nothing
    if empty)."""
    names = list(names)
    if not names:
        return _NEVER
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def method_env(name: str, config: dict | None = None) -> str:
    """The conda environment of a method's jobs: a file of envs/ (relative to
    workflow/rules) for the method families; for a user method's ``conda_env``, the
    absolute path of its .yaml/.yml file (given relative to the working directory), or
    the name of an existing conda environment."""
    env = None
    if config is not None:
        env = (config.get("methods", {}).get(name) or {}).get("conda_env")
    row = method_catalog.row(name)
    env = env or (row.env if row is not None else DEFAULT_ENV)
    if env in ENV_FAMILIES:
        return f"../../envs/{env}.yaml"
    if str(env).endswith((".yaml", ".yml")):
        return str(Path(env).resolve())
    return str(env)


def method_resources(config: dict, name: str) -> dict:
    """threads, mem_mb, runtime (minutes), gpu of a method: its own over
    ``default_resources`` (whose defaults the schema fills in: ``config`` is a validated
    config); ``gpu`` defaults to the catalog's ``uses_gpu`` (1 for a built-in method that
    can use a GPU)."""
    row = method_catalog.row(name)
    res = {"gpu": int(bool(row is not None and row.uses_gpu))}
    res.update(config["default_resources"])  # threads, mem_mb, runtime: schema defaults
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


def imputed_file(method_dir, scenario: str) -> Path:
    """A method's output for one scenario inside its per-dataset folder (impute.smk)."""
    return Path(method_dir) / f"{scenario}.h5ad"


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
    """Base names (no extension) of the figures in ``results/figures/``
    (:func:`scziva_bench.catalog.figures.figure_names`); the paper-layout figures per dataset
    only where ``figures.paper`` is set (config/paper.yaml)."""
    from scziva_bench.catalog import figures as figure_list

    umap = umap_target(config)
    return figure_list.figure_names(
        config.get("metrics") or metric_catalog.names(),  # none given: every metric
        {ds: dataset_scenarios(config, ds) for ds in config.get("datasets", {})},
        umap=umap is not None,
        hexbin=umap is not None and scenario_ids_mod.parse_id(umap[1]).rate is not None,
        paper=bool((config.get("figures") or {}).get("paper", False)))


def _fmt_params(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (d or {}).items()) or "defaults"


def _dataset_line(name: str, ds: dict, config: dict) -> str:
    src = ds.get("source")
    if src == "simulate":
        s = ds.get("simulate", {})
        what = (f"Splat simulation, {s.get('n_cells')} cells x {s.get('n_genes')} genes, "
                f"{s.get('n_groups')} groups, seed {s.get('seed')}")
    elif src == "zenodo":
        what = f"Zenodo record {ds.get('record')}, file {ds.get('file')}"
    else:
        what = f"local file {ds.get('path')}"
    labels = [f"{k} {ds[k]}" for k in ("regime", "split") if ds.get(k)]
    extra = f" ({'; '.join(labels)})" if labels else ""
    desc = f" {ds['description']}." if ds.get("description") else ""
    return (f"Dataset {name}{extra}: {what}; scenarios "
            f"{', '.join(dataset_scenarios(config, name))}.{desc}")


def describe_config(config: dict) -> str:
    """Plain-text summary of the data, protocol and seeds a config asks for (figure
    captions, report): one sentence per line, every line passed through
    :func:`scziva_bench.report.textsafe.one_line` (user text cannot start a new line). Captions
    show it as a literal block, the HTML report escapes it."""
    from scziva_bench.report.textsafe import one_line

    lines = [_dataset_line(name, ds, config) for name, ds in config.get("datasets", {}).items()]
    lines.append("Scenario ids: dropoutNN_sS drops NN % of the non-zero counts (seed S), "
                 "maskNN_sS masks NN % of them uniformly, mcv_sS is a molecular "
                 "cross-validation split, none is the data as given.")
    meths = [f"{m} ({_fmt_params((spec or {}).get('params'))})"
             for m, spec in config.get("methods", {}).items()]
    lines.append(f"Methods: {'; '.join(meths)}; method seed {config.get('seed', 0)} plus "
                 "the scenario's seed.")
    lines.append(f"Metrics: {', '.join(config.get('metrics', []))}.")
    return "\n".join(one_line(ln) for ln in lines)
