# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv themselves from nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint deploy-check bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aomd demo

test: $(STAMP)
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict daemon
	$(BIN)/lint-imports

deploy-check: $(STAMP)
	bash .ci/deploy-check

check: lint deploy-check test

bench: $(STAMP)
	$(BIN)/python bench/client.py
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/reaction.py

clean:
	rm -rf $(VENV)
