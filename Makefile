# ringlog — the two commands are `make run` and `make test`; everything else supports them.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: help install run demo test lint typecheck unit integration browser bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv if missing and install ringlog with its dev tools

run: install  ## start the platform on the embedded stack; Ctrl-C stops it
	$(BIN)/ringlog run

demo: install  ## play the end-to-end stories and show what landed where
	$(BIN)/ringlog demo

lint: install  ## ruff
	$(BIN)/ruff check ringlog tests bench

typecheck: install  ## mypy --strict on the package and the benches
	$(BIN)/mypy --strict ringlog bench

unit: install  ## unit tests only (no servers)
	$(BIN)/pytest tests/unit

integration: install browser  ## integration tests (starts the embedded stack itself)
	$(BIN)/pytest tests/integration

browser:  ## Debian's chromium for the console's browser tests, if missing (apt-get, as root)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)

test: lint typecheck browser  ## ruff, mypy --strict, then the whole pytest suite
	$(BIN)/pytest

bench: install  ## benchmarks against the raw clients (prints ratios)
	$(BIN)/python -m bench

clean:  ## remove local state (.ringlog) and caches, keep .venv
	rm -rf .ringlog .pytest_cache .mypy_cache .ruff_cache
