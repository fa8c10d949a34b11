# The single entry point: `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Two installs, each remembered by a stamp: the package with its runtime dependencies (all
# `make demo` needs) and the package with its dev tools (tests, linters, type checker,
# benchmark baselines). The dev install stamps both.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-fast lint format typecheck bench docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The pip that Python 3.11+ bundles already installs a pyproject-only package in editable mode.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(RUNTIME_STAMP)

venv: $(STAMP)  ## create .venv and install the package with its dev tools

demo: $(RUNTIME_STAMP)  ## end to end on the embedded emulator: export twice, then an HTML report
	$(BIN)/cijobs demo --out demo_output

test: $(STAMP) lint typecheck  ## lint, type check, then the whole test suite (notebooks included)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## the suite without the tests marked slow
	$(BIN)/python -m pytest -m 'not slow'

lint: $(STAMP)  ## ruff format --check and ruff check
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)  ## mypy --strict on the package
	$(BIN)/mypy

bench: $(STAMP)  ## run every benchmark; prints ratios against baselines timed in the same run
	$(BIN)/python benchmarks/run_all.py

docs: $(STAMP)  ## regenerate docs/cli.md from --help and the notebooks from their builder
	$(BIN)/python docs/build_cli_doc.py
	$(BIN)/python notebooks/build_notebooks.py

clean:  ## remove the venv, caches and demo output
	rm -rf $(VENV) demo_output .pytest_cache .mypy_cache .ruff_cache .hypothesis benchmarks/_work
