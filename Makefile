PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: install run test test-sqlite test-postgres bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py load_catalog catalog/demo.json
	$(PY) manage.py setup_demo
	$(PY) manage.py serve --bind 127.0.0.1:8000

test: test-sqlite test-postgres

test-sqlite: install
	env -u DATABASE_URL -u DRAMATIQ_BROKER_URL -u CACHE_URL $(PY) -m pytest

test-postgres: install
	DATABASE_URL=$(PG_URL) DRAMATIQ_BROKER_URL=$(REDIS_URL)/14 CACHE_URL=$(REDIS_URL)/15 $(PY) -m pytest

bench: install
	$(PY) -m tests.bench.run
