# One entry point for people and CI. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck bench bench-flood bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/tillkey serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	@! grep -rn --include='*.py' -e '# fmt: skip' -e '# fmt: off' src tests bench examples || { echo "ruff format does the formatting: no fmt: skip/off"; exit 1; }
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite in two passes: everything in parallel (TEST_WORKERS processes), then the tests marked
# `serial`, alone, because they measure time and must not share the CPU with other tests.
# `--dist loadgroup`: the tests sharing a server, nginx or Chromium run on one worker, so each
# starts once (tests/conftest.py groups them); the longest groups are handed out first, by the
# seconds in tests/durations.json and this checkout's earlier runs (refresh the file with
# `PYTEST_ARGS=--store-durations`).
TEST_WORKERS ?= 4
test: lint typecheck
	@status=0; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial" --durations=25 $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/pytest -p no:xdist -m serial $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	exit $$status

# Ratios, token endpoints and both backends (bench/run.py), then the login flood (bench/flood.py).
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/flood.py

bench-flood: $(STAMP)
	$(BIN)/python bench/flood.py

# Installs Medusa, fastapi-users and oidc-provider into a scratch folder outside the repository
# ($$TILLKEY_PEER_DIR, default ~/.cache/tillkey-peers); never part of `make test` or CI.
bench-peers: $(STAMP)
	$(BIN)/python bench/peers.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
