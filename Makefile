# Quick start: `make demo` (install + segment an embedded example), `make test` (install + tests), `make lint` (ruff + mypy).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mslesion-installed
DEMO_OUT ?= demo_out
export MSLESION_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: install demo test lint test-all clean default-model new-lesions-model browser

install: $(STAMP)

# torch goes in first, pinned to the local CPU build, so nothing later pulls CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,fast]"
	touch $(STAMP)

demo: install
	$(BIN)/mslesion demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest

# Lint (ruff check: pyflakes, pycodestyle, isort, bugbear, pyupgrade; settings and the rules left out in pyproject.toml)
# and format (ruff format --check: code wrapped at 140), and type checks (mypy on the whole package).
lint: install
	$(BIN)/ruff check src/ tests/
	$(BIN)/ruff format --check src/ tests/
	$(BIN)/mypy

# Headless Chromium and its driver for the report's browser test (tests/report/test_viewer_browser.py), from Debian's
# packages; needs root or password-less sudo. Without them that test skips and says why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium and chromedriver present"; \
	elif ! command -v apt-get >/dev/null; then echo "no apt-get: install Chromium and chromedriver by hand for the browser test"; \
	else SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; fi

# Everything, the slow tests included (not run by CI).
test-all: install
	$(BIN)/python -m pytest -m ""

# Rebuild the shipped default model: its recipe (configs/real/scanner-long.yaml, chosen by leave-one-out
# on the two real Lesjak cases plus the raw ISBI scan: benchmarks/results/real_accuracy.md) trained on
# both cases with the postprocessing recorded there, scored on ISBI and installed (benchmarks/real_accuracy.py;
# resumable: rerun the same command). About 1 h on 2 CPU cores. To redo the selection too, give the
# recipes: `benchmarks/real_accuracy.py configs/real/*.yaml --ship best` (about 2 h per 4000-step recipe).
default-model: install
	$(BIN)/python benchmarks/real_accuracy.py --ship configs/real/scanner-long.yaml

# Rebuild the shipped new-lesion model (configs/new_lesions.yaml): synthetic and Draw-and-Erase pairs, training, install.
NL_RUN ?= runs/new_lesions
new-lesions-model: install
	test -f build/newlesions/synth_pairs/manifest.csv || $(BIN)/mslesion synth --out build/newlesions/synth_pairs --n 32 \
	  --sites 4 --seed 606 --longitudinal --lesion-masks $(MSLESION_SHARED_DATA)/lesjak-mni-masks
	test -f build/newlesions/de_patient19/manifest.csv || $(BIN)/mslesion synth --pairs-from $(MSLESION_SHARED_DATA)/lesjak-mni/patient19 \
	  --lesion-masks $(MSLESION_SHARED_DATA)/lesjak-mni-masks --out build/newlesions/de_patient19 --n 16 --seed 1
	test -f build/newlesions/de_patient07/manifest.csv || $(BIN)/mslesion synth --pairs-from $(MSLESION_SHARED_DATA)/lesjak-mni/patient07 \
	  --lesion-masks $(MSLESION_SHARED_DATA)/lesjak-mni-masks --out build/newlesions/de_patient07 --n 16 --seed 2
	$(BIN)/mslesion train --config configs/new_lesions.yaml --out $(NL_RUN) $(RESUME)
	mkdir -p src/mslesion/data/models/new-lesions
	cp $(NL_RUN)/model/model.safetensors $(NL_RUN)/model/model.json src/mslesion/data/models/new-lesions/

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .mypy_cache
