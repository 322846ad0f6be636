# labeltune: `make demo`, `make test`, `make bench`. Each sets up .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
DEMO := demo
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)
export LABELTUNE_HOME ?= $(CURDIR)

.PHONY: setup demo test bench browser clean-demo

setup: $(STAMP)

# Reinstall only when pyproject.toml changes. torch/torchvision resolve to 2.14.1/0.29.1 here.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

# The browser test drives Debian's Chromium; install it when missing (root on these machines).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "warning: could not install chromium; the browser test will fail"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Synthetic data -> a small search -> promotion -> predictions, on the CPU in a few minutes.
demo: $(STAMP)
	$(BIN)/labeltune data synth --out $(DEMO)/data --n 1200 --test 100 --seed 0 --force
	$(BIN)/labeltune search --data $(DEMO)/data --space quick --trials 6 --epochs 3 --name $(DEMO_NAME)
	$(BIN)/labeltune promote --search $(DEMO_NAME) --card $(DEMO)/model_card.md
	$(BIN)/labeltune pred --registered labeltune@champion --images $(DEMO)/data/test/images --out $(DEMO)/predictions.tsv
	@echo
	@echo "predictions: $(CURDIR)/$(DEMO)/predictions.tsv"
	@echo "model card:  $(CURDIR)/$(DEMO)/model_card.md"
	@echo "MLflow UI:   $(BIN)/labeltune ui   (then open http://127.0.0.1:5000)"

bench: $(STAMP)
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/tune_overhead.py
	$(BIN)/python bench/search_efficiency.py

clean-demo:
	rm -rf $(DEMO)
