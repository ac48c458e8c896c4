"""Glue between a config and the workflow: the targets and rule settings a config asks
for (:mod:`.targets`), the one-line config check (:mod:`.config_check`), the start of a
workflow job (:mod:`.job`) and provenance (:mod:`.provenance`)."""
