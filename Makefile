# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch==2.13.0 first: it is the local CPU wheel; a loose `torch` would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-fast lint docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# spandrel (tests/export/test_spandrel.py) without torchvision: the registry's torchvision is a CUDA build
	$(BIN)/python -m pip install --quiet --no-deps spandrel==0.4.2
	touch $@

demo: setup
	$(BIN)/dcicnn demo -o demo_output

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check dcicnn cli tests benchmarks docs/experiments
	$(BIN)/mypy

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) demo_output .pytest_cache build site *.egg-info
