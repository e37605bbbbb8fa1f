# The two commands: `make demo` (arrives with the ROS issue) and `make test`.
# Set-up is idempotent: it (re)installs only when requirements change or the venv is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-done

.PHONY: setup test test-slow bench-models clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt setup.py setup.cfg scripts/setup_venv.sh
	PYTHON=$(PYTHON) VENV=$(VENV) TORCH_SPEC="$(TORCH_SPEC)" bash scripts/setup_venv.sh
	touch $(STAMP)

test: setup
	$(PY) -m pytest -m "not slow"

test-slow: setup
	$(PY) -m pytest -m slow

bench-models: setup
	$(VENV)/bin/uwdet bench-models --json bench/models.json

clean-venv:
	rm -rf $(VENV)
