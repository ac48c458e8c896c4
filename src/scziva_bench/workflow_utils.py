"""Compatibility names for the workflow's helpers, which live in three modules by job:

- :mod:`scziva_bench.config_targets` -- what a config asks for (targets, scenarios,
  resources, conda envs, figures, the run's description);
- :mod:`scziva_bench.job_setup` -- the start of a workflow script, values for ``uns``,
  Snakemake benchmark files;
- :mod:`scziva_bench.provenance` -- package versions, git commit, GPU presence.

New code imports from those modules; this one only re-exports their names.
"""

from .config_targets import (  # noqa: F401
    DEFAULT_ENV, METHOD_ENVS, name_regex, dataset_scenarios, datasets_by_source,
    describe_config, figure_names, imputed_file, method_env, method_resources,
    metric_targets, scenario_id, scenario_ids, scenario_params, scenario_spec, umap_target,
)
from .job_setup import h5_safe, read_benchmark, start_script, write_text_atomic  # noqa: F401
from .provenance import (  # noqa: F401
    PROVENANCE_PACKAGES, git_commit, nvidia_gpu_present, package_versions, provenance,
)
