# noisecraft developer commands. Everything runs inside a local virtual environment (.venv).
# The CPU build of PyTorch is installed first so that pip never pulls a multi-GB CUDA build
# on a machine without a GPU. GPU users: see README "Installing with CUDA".
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.noisecraft-installed

.PHONY: install test test-slow demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,diffusers,text,audio,video,web]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow"

test-slow: $(STAMP)  # minutes: SIGKILL crash safety with real processes (docs/reliability.md)
	$(PY) -m pytest -m slow -s

demo: $(STAMP)
	$(VENV)/bin/noisecraft demo --out runs/demo

bench: $(STAMP)
	$(PY) benchmarks/samplers.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
