# mmoe-pipeline. `make install`, `make run`, `make test`; `make help` lists the rest.
SHELL := /bin/bash
VENV ?= .venv
OUTPUT ?= mmoe_output
DATA ?=
ARGS ?=
# TFT and TFMA need Keras 2: bind tf.keras to tf_keras before anything imports TensorFlow.
export TF_USE_LEGACY_KERAS := 1
export PYTHONHASHSEED := 0

# A python3.10 from: $(PYTHON), PATH, pyenv, the usual prefixes. Each candidate must really be 3.10
# (a pyenv shim can exist without its version being active).
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
CANDIDATES := $(PYTHON) python3.10 $(wildcard $(PYENV_ROOT)/versions/3.10*/bin/python3.10) \
	/usr/local/bin/python3.10 /usr/bin/python3.10
PY310 := $(firstword $(foreach p,$(CANDIDATES),$(if $(shell $(p) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null && echo ok),$(p))))
BIN := $(VENV)/bin

.PHONY: help install run data lint test test-unit test-slow test-full bench bench-replicas bench-serving bench-synthetic bench-drift bench-paper bench-trainer-rate bench-pipeline-time bench-scale bench-backup clean
help:
	@echo "make install     create $(VENV) (Python 3.10) and install the project with pinned dependencies"
	@echo "make run         run the whole pipeline locally (DATA=path to the UCI files; default: embedded sample)"
	@echo "make data        download the official UCI files into data/ and verify their checksums"
	@echo "make lint        ruff (pinned in the test extra; settings in pyproject.toml [tool.ruff])"
	@echo "make test        install, then run the test suite (unit tests + a small end-to-end pipeline)"
	@echo "make test-unit   the tests that run no pipeline (about 8 minutes on 2 slow cores)"
	@echo "make test-slow   a run killed during the Trainer and resumed; three spans: cold, warm, drifted (about 4 min)"
	@echo "make test-full   the long tests: the full census test file through the pipeline (needs make data)"
	@echo "make bench       every model variant through the pipeline (docs/BENCHMARKS.md)"
	@echo "make bench-replicas  training examples/s with 1 and 2 replicas (docs/BENCHMARKS.md)"
	@echo "make bench-serving   serving latency and throughput of the model pushed under OUTPUT"
	@echo "make bench-synthetic the paper's synthetic experiment: MMoE, OMoE, shared-bottom, 30 paired seeds, rate grid (hours)"
	@echo "make bench-drift     drift-measure noise between random census samples (the drift defaults)"
	@echo "make bench-paper     the paper's census experiment: every variant tuned, 5 seeds (DATA=census file)"
	@echo "make bench-trainer-rate  the Trainer's steady examples/s against a bare Keras fit (DATA=census file)"
	@echo "make bench-pipeline-time the whole pipeline, BASELINE commit against HEAD, side by side (DATA=census file)"
	@echo "make bench-scale     each component's seconds and peak memory at 100k, 1M, 3M rows (DATA=census file)"
	@echo "make bench-backup    what the Trainer's backups cost its training (a backup every step and at its interval)"
	@echo "make clean       remove $(VENV), $(OUTPUT) and build files"

$(VENV)/.installed: setup.py pyproject.toml constraints.txt
	@if [ -z "$(PY310)" ]; then \
	  echo "error: no Python 3.10 found (tried: $(CANDIDATES))."; \
	  echo "TFX 1.16 needs Python 3.10: install it (e.g. 'pyenv install 3.10.13', or your distribution's python3.10 package)"; \
	  echo "or point to it with 'make install PYTHON=/path/to/python3.10'."; \
	  exit 1; fi
	@echo "Using $(PY310)"
	$(PY310) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23,<25" setuptools wheel
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[test,s3,bench]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/mmoe-pipeline run --output-dir $(OUTPUT) $(if $(DATA),$(foreach d,$(DATA),--data $(d))) $(ARGS)

data: install
	$(BIN)/mmoe-pipeline download --dest data

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/python -m pytest -m "not full and not slow" $(ARGS)

test-unit: install
	$(BIN)/python -m pytest -m "not full and not e2e and not slow" $(ARGS)

test-slow: install
	$(BIN)/python -m pytest -m slow $(ARGS)

test-full: install
	$(BIN)/python -m pytest -m full $(ARGS)

bench: install
	$(BIN)/python bench/variants.py $(ARGS)

bench-replicas: install
	$(BIN)/python bench/replicas.py $(ARGS)

bench-serving: install
	$(BIN)/python bench/serving.py --output-dir $(OUTPUT) $(ARGS)

bench-synthetic: install
	$(BIN)/python bench/synthetic.py --plot docs/synthetic.png $(ARGS)

bench-drift: install
	$(BIN)/python bench/drift_noise.py $(ARGS)

bench-paper: install
	$(BIN)/python bench/paper.py $(foreach d,$(DATA),--data $(d)) $(ARGS)

bench-backup: install
	$(BIN)/python bench/backup.py $(ARGS)

bench-trainer-rate: install
	$(BIN)/python bench/trainer_rate.py $(foreach d,$(DATA),--data $(d)) $(ARGS)

BASELINE ?= ecd1596
bench-pipeline-time: install
	$(BIN)/python bench/pipeline_time.py $(foreach d,$(DATA),--data $(d)) --baseline $(BASELINE) $(ARGS)

clean:
	rm -rf $(VENV) $(OUTPUT) build *.egg-info .pytest_cache mmoe_pipeline.json mmoe_pipeline.yaml

bench-scale: install
	$(BIN)/python bench/scale.py --data $(DATA) $(ARGS)
