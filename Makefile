# The two commands of the README: `make up` (run the demo) and `make test`. Both install what is missing first.
PY := .venv/bin/python
CONFIG ?= config/demo.yaml
PYTEST_ARGS ?=

.PHONY: up test test-fast lint setup bench check-config clean

setup:
	@bash scripts/bootstrap.sh

up: setup
	$(PY) -m citywall.cli up --config $(CONFIG)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (rules in pyproject.toml) on everything, mypy on the rooms listed under [tool.mypy]; .ci/run runs it first.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

# The inner loop: everything not marked slow (no Chromium, demo RTSP server, PostgreSQL or whole stack; see
# tests/conftest.py), spread over the cores by pytest-xdist.
test-fast: setup
	$(PY) -m pytest -m "not slow" -n auto $(PYTEST_ARGS)

check-config: setup
	$(PY) -m citywall.cli check-config $(CONFIG)

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv var .pytest_cache
