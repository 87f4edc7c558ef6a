# Quick start: `make demo` (install + segment an embedded example), `make test` (install + tests).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mslesion-installed
DEMO_OUT ?= demo_out
export MSLESION_SHARED_DATA ?= $(abspath ../shared/data)
# The default model's run folder is kept in the repo (runs/) so a later session can --resume it.
RUN ?= runs/default

.PHONY: install demo test test-all clean default-model

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

# Rebuild the shipped default model (configs/default.yaml): data, training (add RESUME=--resume), install.
default-model: install
	mkdir -p build/default/masks
	for f in $(MSLESION_SHARED_DATA)/lesjak-mni-masks/*.nii.gz; do \
	  case $$f in *patient07*) ;; *) ln -sf $$f build/default/masks/ ;; esac; done
	test -f build/default/synth/manifest.csv || $(BIN)/mslesion synth --out build/default/synth --n 40 --sites 8 \
	  --seed 2024 --lesion-masks build/default/masks
	$(BIN)/mslesion train --config configs/default.yaml --out $(RUN) $(RESUME)
	mkdir -p src/mslesion/data/models/default
	cp $(RUN)/model/model.safetensors $(RUN)/model/model.json src/mslesion/data/models/default/

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
