# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv themselves from nothing but python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint deploy-check bench crash-soak system-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aomd demo

test: $(STAMP) system-deps
	$(BIN)/pytest -q -n 2 --dist loadgroup -p no:cacheprovider

# PostgreSQL and Chromium, which tests start for real, installed when missing (.ci/system-deps)
system-deps:
	@bash .ci/system-deps

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

# The crash test with more SIGKILLs (default 300, ~8 min): AOMD_CRASH_KILLS=N AOMD_CRASH_SEED=S
crash-soak: $(STAMP)
	AOMD_CRASH_KILLS=$${AOMD_CRASH_KILLS:-300} $(BIN)/pytest -q -s -p no:cacheprovider \
		tests/e2e/test_crash_safety.py

clean:
	rm -rf $(VENV)
