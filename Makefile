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

PORT ?= 8000

run: install
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py load_catalog catalog/demo.json
	$(PY) manage.py setup_demo --base-url http://127.0.0.1:$(PORT)
	$(PY) manage.py import_openapi --integration echo catalog/echo-openapi.yaml --prune
	$(PY) manage.py serve --bind 127.0.0.1:$(PORT)

test: test-sqlite test-postgres

test-sqlite: install
	env -u DATABASE_URL -u DRAMATIQ_BROKER_URL -u CACHE_URL $(PY) -m pytest

# In-process job tests use the StubBroker on both legs (deterministic joins); this leg adds real `rundramatiq`
# worker processes on a Redis broker (tests/test_worker_process.py) and the Redis cache and rate limiter.
test-postgres: install
	env -u DRAMATIQ_BROKER_URL DATABASE_URL=$(PG_URL) CACHE_URL=$(REDIS_URL)/15 TEST_REDIS_BROKER_URL=$(REDIS_URL)/14 $(PY) -m pytest

bench: install
	$(PY) -m tests.bench.run
