# Quick start: `make demo` (install + segment an embedded example), `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mslesion-installed
DEMO_OUT ?= demo_out

.PHONY: install demo test test-all clean

install: $(STAMP)

# torch goes in first, pinned to the local CPU build, so nothing later pulls CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/mslesion demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest

# Everything, the slow tests included (not run by CI).
test-all: install
	$(BIN)/python -m pytest -m ""

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
