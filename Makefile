# Whisper fine-tuning curriculum. `make demo` and `make test` work as the very first command on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
KERNEL := $(VENV)/share/jupyter/kernels/whisper-curriculum/kernel.json
TEST_DEPS := $(VENV)/.test-deps
BROWSER := $(VENV)/.browser
MODELS := models/whisper-base/model.safetensors models/whisper-tiny.en/model.safetensors
REAL_DATA := data/real/.built
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

LANGUAGES ?= es
DATASET ?= sample
MODEL ?= models/whisper-base
RUNS ?= runs

# Headless runs stay quiet; demo and tests never need the Hub (everything they use is local).
export TRANSFORMERS_VERBOSITY := error
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export HF_DATASETS_DISABLE_PROGRESS_BARS := 1
export TOKENIZERS_PARALLELISM := false
demo test: export HF_HUB_OFFLINE := 1
demo test: export HF_DATASETS_OFFLINE := 1

.PHONY: setup real-data demo test unit nbval lab batch bench gpu-check clean-notebooks check-notebooks clean

setup: $(INSTALLED) $(KERNEL) $(MODELS)

$(INSTALLED): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(KERNEL): $(INSTALLED)
	$(PY) -m ipykernel install --sys-prefix --name whisper-curriculum --display-name "Python (whisper-curriculum)" >/dev/null

# What only the tests need (requirements-test.txt; Chromium for the JupyterLab test); `make demo` and `make lab` skip it.
$(TEST_DEPS): requirements-test.txt $(INSTALLED)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

$(BROWSER): | $(INSTALLED)
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		{ echo "make test needs Chromium for its JupyterLab test: install the 'chromium' package" >&2; exit 1; }
	touch $@

models/%/model.safetensors: $(INSTALLED)
	$(PY) -m tools.convert $*

# Real human speech (Czech game dialogue, Spanish/French/Italian telephone prompts) from Debian packages, laid out
# like Common Voice in data/real/<locale>: dataset "real". Needs apt-get and dpkg-deb (no root, nothing installed).
real-data: $(REAL_DATA)

$(REAL_DATA): tools/make_real_data.py | $(INSTALLED)
	$(PY) -m tools.make_real_data
	touch $@

demo: setup
	$(PY) -m tools.batch --languages $(LANGUAGES) --dataset $(DATASET) --model $(MODEL) --runs $(RUNS)

test: setup $(TEST_DEPS) $(BROWSER) $(REAL_DATA)
	$(PY) -m pytest -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		tests $(NOTEBOOKS)

# the unit tests alone: not the smoke batch over the real notebooks, not the JupyterLab test
unit: setup $(TEST_DEPS)
	$(PY) -m pytest -p no:cacheprovider tests --ignore=tests/test_batch_smoke.py --ignore=tests/test_jupyterlab.py

nbval: setup
	$(PY) -m pytest -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

CONFIG ?=
BATCH_ARGS ?=
# make batch LANGUAGES="es de fr" DATASET=... MODEL=...   or   make batch CONFIG=configs/sample.yaml BATCH_ARGS="--set max_steps=20"
batch: setup
	$(PY) -m tools.batch $(if $(CONFIG),--config $(CONFIG),--languages $(LANGUAGES) --dataset $(DATASET) --model $(MODEL)) --runs $(RUNS) $(BATCH_ARGS)

# On a CUDA machine: training throughput and peak memory (base, small), evaluation speed by backend -> runs/gpu_check.json
gpu-check: setup
	$(PY) benchmarks/gpu_check.py --out $(RUNS)/gpu_check.json

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean-notebooks: $(INSTALLED)
	$(PY) -m tools.clean_notebooks $(NOTEBOOKS)

check-notebooks: $(INSTALLED)
	$(PY) -m tools.clean_notebooks --check $(NOTEBOOKS)

clean:
	rm -rf $(RUNS) .pytest_cache
