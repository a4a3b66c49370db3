# Every target bootstraps what it needs: a fresh machine with Python 3.11+ and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.synced-$(shell cat pyproject.toml uv.lock 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: demo test test-unit lint bench fmt clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/pip install -q "uv==$(UV_VERSION)"
	@# Bytecode now, as pip would: with PYTHONDONTWRITEBYTECODE set, every kiln
	@# command would otherwise compile its ~700 imported modules afresh (0.5 s).
	@UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --quiet --compile-bytecode
	@rm -f $(VENV)/.synced-*; touch $@

demo: $(STAMP)
	@$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/pytest -q --durations=15 $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

# kiln is installed editable, so its own bytecode is compiled here, as an install
# would have it. `make bench SUITES="docker router"` runs only those suites.
bench: $(STAMP)
	@$(BIN)/python -m compileall -q src >/dev/null
	@$(BIN)/python -m bench $(SUITES)

clean:
	rm -rf $(VENV) .kiln examples/hello/.kiln
