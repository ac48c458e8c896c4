"""The benchmark's facts, each written once: methods, metrics, scenario ids, figures.

Standard library only: the Snakefile reads the catalog at start (``snakemake -n`` stays
fast) and every other package reads its facts from here.

- :mod:`.methods`: one row per built-in method (module, kind, label, source, conda
  environment, GPU use, colour);
- :mod:`.metrics`: one spec per metric (direction, family, computation group, what a
  scenario needs, ranked or why not);
- :mod:`.scenarios`: the scenario-id grammar and the scenario constants;
- :mod:`.figures`: figure names and captions.
"""
