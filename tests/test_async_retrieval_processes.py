"""The 1-per-10 s retrieval limit of an async receipt holds across two real server processes.

Both servers run this project's WSGI app under gunicorn on this test's database (a SQLite file or PostgreSQL) and
its cache (the database cache on the SQLite leg, Redis on the PostgreSQL leg), as two `serve` hosts behind a
balancer would. No broker is configured for them, so a receipt stays pending (202) until the limit answers.
"""

import os
import urllib.error
import urllib.request
from contextlib import ExitStack

import pytest
from django.db import connection as db_connection

from passthrough import async_passthrough, envelopes
from tests.factories import make_connection
from tests.servers import gunicorn

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    s = db_connection.settings_dict
    if db_connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def two_servers():
    env = {**os.environ, "DATABASE_URL": database_url()}
    env.pop("DRAMATIQ_BROKER_URL", None)
    with ExitStack() as stack:
        yield [stack.enter_context(gunicorn("integration_platform.wsgi:application", env=env)) for _ in range(2)]


@pytest.fixture
def receipts(alice, integration):
    connection, _ = make_connection(alice.organization, integration)
    envelope = envelopes.parse({"method": "GET", "path": "/anything"}, data_must_be_string=True)
    return [async_passthrough.async_passthrough_create(connection=connection, envelope=envelope, dialect="native").pk
            for _ in range(2)]


def retrieve(server: str, receipt_id, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server}/api/v1/async-passthrough/{receipt_id}",
                                     headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_a_second_retrieval_on_another_server_process_is_429(alice, receipts, two_servers):
    first, second = two_servers
    assert retrieve(first, receipts[0], alice.key)[0] == 202
    status, headers = retrieve(second, receipts[0], alice.key)
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 10
    assert retrieve(first, receipts[0], alice.key)[0] == 429


def test_the_shared_limit_is_per_receipt(alice, receipts, two_servers):
    first, second = two_servers
    assert retrieve(first, receipts[0], alice.key)[0] == 202
    assert retrieve(second, receipts[1], alice.key)[0] == 202
