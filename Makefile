# Two entry points for a fresh machine:
#   make run   -> create .venv if needed, run the default benchmark (offline, config.yaml)
#   make test  -> create .venv if needed, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= 2
STAMP  := $(VENV)/.installed

.PHONY: run test venv clean lint

venv: $(STAMP)

# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
# magic-impute is installed in the same pip call as pandas>=2.1 (otherwise pip may
# downgrade pandas to a build that crashes under numpy 2).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[bench,test]" "pandas>=2.1" "magic-impute>=3.0"
	@touch $@

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) --configfile config.yaml --workflow-profile profiles/default

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

clean:
	rm -rf results .snakemake
