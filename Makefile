# Two entry points for a fresh machine:
#   make run   -> create .venv if needed, run the default benchmark (offline, config.yaml)
#   make test  -> create .venv if needed, run the test suite
# and one more measurement:
#   make standard -> the standard tier (config/standard.yaml; README's verdicts come from it)
#   make scaling -> time and peak memory of every method against the number of cells
#                   (config/scaling.yaml; extra options: make scaling SCALING_ARGS="--methods alra")
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= 2
STAMP  := $(VENV)/.installed
LOCK   := envs/constraints.txt

# torch: the version of the lock file; the build is chosen with TORCH (or TORCH_INDEX).
#   make test                 CPU build (default): no multi-GB CUDA download
#   make test TORCH=cuda      the CUDA build PyPI serves on Linux x86-64
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cu126   a build of that index
# The index is only ever an *extra* index: when it cannot be reached (an offline
# machine with a local wheel or mirror), pip warns, retries a few times and installs
# from the other sources. A venv built before keeps its torch: `rm -rf .venv` first to
# switch builds.
TORCH_VERSION := $(shell sed -n 's/^torch==\([^ ;]*\).*/\1/p' $(LOCK))
TORCH ?= cpu
ifeq ($(TORCH),cpu)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
else ifeq ($(TORCH),cuda)
TORCH_INDEX ?=
else
$(error TORCH must be cpu or cuda (or set TORCH_INDEX=URL), got '$(TORCH)')
endif
TORCH_PIP := $(if $(strip $(TORCH_INDEX)),--extra-index-url $(TORCH_INDEX))

.PHONY: run test standard scaling venv clean lint lock

venv: $(STAMP)

# Everything is installed at the exact versions of envs/constraints.txt (the same as
# envs/*.yaml for --use-conda; tests/test_envs.py checks they agree). torch first, on
# its own (its dependencies come with the second call, from the usual indexes).
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -c $(LOCK) "torch==$(TORCH_VERSION)" $(TORCH_PIP)
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[bench,test]"
	@touch $@

# The profile lets one GPU-tagged job run at a time (one GPU). The CPU build has no GPU
# to share, so there the GPU-tagged jobs may use every core at once.
GPU_SLOTS ?= $(if $(filter cpu,$(TORCH)),$(CORES),1)
SMK := $(VENV)/bin/snakemake --cores $(CORES) --workflow-profile profiles/default --resources gpu=$(GPU_SLOTS)

run: $(STAMP)
	$(SMK) --configfile config.yaml

# the standard tier (config/standard.yaml: >= 1,000 cells, 5 seeds, package defaults;
# its header says what it took); writes results/ like `make run`
standard: $(STAMP)
	$(SMK) --configfile config/standard.yaml

test: $(STAMP)
	$(PY) -m pytest -q

# time and peak memory of every method against the number of cells -> results_scaling/
scaling: $(STAMP)
	$(VENV)/bin/python benchmarks/scaling.py --config config/scaling.yaml $(SCALING_ARGS)

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint

# after changing pyproject.toml: update the venv, then regenerate the locks from it
lock: $(STAMP)
	$(PY) envs/lock.py

clean:
	rm -rf results .snakemake
