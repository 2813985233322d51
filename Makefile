# Two commands: `make pipeline` (build everything) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORES  ?= all
# the venv first on PATH: rules call `python -m atlas_forge`, whatever shell Snakemake starts
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Offline is a setting of the embedded default and of the tests (they must never reach a hub), not
# of every command: a paper config on an online GPU node fetches its Hub model (README, GPU).
pipeline dry-run test: export HF_HUB_OFFLINE ?= 1
pipeline dry-run test: export HF_DATASETS_OFFLINE ?= 1
# tests/test_slurm.py runs only as root with CI=true or ATLAS_FORGE_SLURM_TEST=1 (it installs
# packages and writes /etc/slurm): only there does `make test` install the SLURM executor plugin
SLURM_TEST := $(shell [ "$$(id -u)" = 0 ] && [ "$$ATLAS_FORGE_SLURM_TEST" != 0 ] && \
	{ [ "$$CI" = true ] || [ "$$ATLAS_FORGE_SLURM_TEST" = 1 ]; } && echo yes)

.PHONY: install install-slurm pipeline test lint clean dry-run corpora pull

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build; unpinned it would pull CUDA (GBs)
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

$(VENV)/.installed-slurm: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,slurm]"
	touch $@

install-slurm: $(VENV)/.installed-slurm

pipeline: install
	$(PY) -m snakemake --cores $(CORES)

corpora: install
	$(PY) -m snakemake mixture --cores $(CORES) --configfile configs/corpora.yaml

# fetch the exact artifacts in dvc.lock, then let Snakemake adopt them (DVC does not keep file times)
pull: install
	$(VENV)/bin/dvc pull
	$(PY) -m snakemake --cores $(CORES) --touch

dry-run: install
	$(PY) -m snakemake -n --cores $(CORES)

test: install $(if $(SLURM_TEST),install-slurm)
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check src tests bench
	$(PY) -m snakemake --lint

clean:
	rm -rf data/interim data/processed data/reports data/cache models results plots metrics logs .snakemake
