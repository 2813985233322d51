# Two commands: `make pipeline` (build everything) and `make test` (the fast suite; `make check`: all).
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
pipeline dry-run test check: export HF_HUB_OFFLINE ?= 1
pipeline dry-run test check: export HF_DATASETS_OFFLINE ?= 1
UV_VERSION := 0.13.9

.PHONY: install pipeline test check lint clean dry-run corpora pull lock

# One install route for make pipeline, make test, make check and CI: pinned versions from
# requirements.lock, installed by uv: 28 s against pip's 93 s on a fresh clone, cold caches, the same
# 206 versions (bench/results/install_time.txt).
# torch goes through pip: its CPU build lies on this machine's disk where pip's config points, and
# uv does not look there (unpinned or through uv it would pull a multi-GB CUDA build). uv then installs
# the lock as it is (--no-deps: the lock is pip's complete resolution, scripts/lock.py).
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -r requirements.lock -e .
	touch $@

install: $(VENV)/.installed

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

# the contributor's tier: everything but the long end-to-end checks (marked slow), < 8 min. Two
# pytest-xdist workers: 273 s against 346 s serial on 2 cores (bench/results/xdist.txt); the workers
# share the one default build (tests/conftest.py, build_once).
test: install
	$(PY) -m pytest -q -n 2 -m "not slow" --durations=25

# the whole suite (what CI runs), < 30 min: the slow tier's corpora, DVC, recovery and training
# checks too. Serial: the corpora build runs in the background of the session instead (its tests
# last), which a worker of xdist cannot do. tests/test_slurm.py runs only as root with CI=true or
# ATLAS_FORGE_SLURM_TEST=1.
check: install
	$(PY) -m pytest -q --durations=25

# after a change to pyproject.toml's dependencies: the pins every fresh clone installs (pip's
# resolution; torch is left out, see above)
lock: install
	$(PY) scripts/lock.py

lint: install
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m snakemake --lint

clean:
	rm -rf data/interim data/processed data/reports data/cache models results plots metrics logs .snakemake
