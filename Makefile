# The README's two commands: `make run` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLIENT := tests/e2e/client

.PHONY: run test lint bench clean

run: $(VENV)/.installed
	$(BIN)/blueprint serve --db data/blueprint.db --blueprints-dir blueprints --load-blueprints

test: $(VENV)/.installed-dev $(CLIENT)/node_modules/.package-lock.json
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(VENV)/.installed $@

$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package-lock.json
	npm ci --prefix $(CLIENT) --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) $(CLIENT)/node_modules bench/node_trpc/node_modules .pytest_cache .mypy_cache .ruff_cache
