"""Cross-process: two real processes taking permits from one store never admit more than a window allows.

Each process is a fresh interpreter (multiprocessing "spawn") with its own Django setup and database connection,
as two `serve` workers or a web process and a Dramatiq worker would be. They meet at a barrier, then race for the
permits of one instant (a fake clock): exactly N may pass. Each round moves to a fresh window, so the race at the
N-th permit, where a store without a lock lets N+1 through, is run many times.

Stores: the database backend on a SQLite file the processes migrate themselves (rows a `db` test writes stay in
its uncommitted transaction, invisible to them), the database backend on the PostgreSQL test database (row locks,
rows committed by `transactional_db`), and Redis.

Then end to end, on the PostgreSQL + Redis leg: two real `manage.py serve` servers (two gunicorn workers each) on
the same Redis take sync passthrough calls flat out, and a local upstream counts what arrives.
"""

import json
import multiprocessing
import os
import threading
import time
from contextlib import contextmanager
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.servers import platform_serve, shared_database_url

ALLOWED = 5
ATTEMPTS_PER_ROUND = 8
ROUNDS = 20
WINDOW = 60
NOW = 1_700_000_000.0


def _django(env):
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "integration_platform.settings"
    import django

    django.setup()


def _prepare_sqlite_file(env, results):
    """In a child: migrate the SQLite file and create a limited integration with one connection."""
    _django(env)
    from django.core.management import call_command

    from tests.factories import make_connection, make_integration, organization

    call_command("migrate", verbosity=0)
    integration = make_integration(slug="limited", rate_limits=[{"requests": ALLOWED, "per_seconds": WINDOW}])
    results.put(make_connection(organization("alice"), integration)[0].pk)


def _take_permits(env, connection_id, expected_backend, barrier, results):
    """In a child: each round, try ATTEMPTS_PER_ROUND permits at one instant, never waiting; report how many passed."""
    _django(env)
    from connections import ratelimit
    from connections.models import Connection
    from integration_platform.errors import RateLimited

    def no_sleep(seconds):
        raise AssertionError("an interactive call with no budget must not wait")

    backend = ratelimit.configured_backend()
    assert type(backend).__name__ == expected_backend
    now = [NOW]
    limiter = ratelimit.Limiter(backend, clock=lambda: now[0], sleep=no_sleep)
    connection = Connection.objects.select_related("integration").get(pk=connection_id)
    granted = 0
    for round_number in range(ROUNDS):
        now[0] = NOW + round_number * 2 * WINDOW  # the last round's sends are out of the window, margin included
        barrier.wait()
        for _ in range(ATTEMPTS_PER_ROUND):
            try:
                limiter.acquire(connection, ratelimit.INTERACTIVE, budget=0)
                granted += 1
            except RateLimited:
                pass
    results.put(granted)


def _run(target, *args):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    return process, results


def granted_by_two_processes(env, connection_id, expected_backend) -> int:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_take_permits, args=(env, connection_id, expected_backend, barrier, results))
                 for _ in range(2)]
    for process in processes:
        process.start()
    granted = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return sum(granted)


@pytest.fixture
def sqlite_file(tmp_path):
    """Returns (env, connection id): a migrated SQLite file with a limited connection."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'platform.sqlite3'}", "CACHE_URL": None,
           "DRAMATIQ_BROKER_URL": None}
    process, results = _run(_prepare_sqlite_file, env)
    connection_id = results.get(timeout=120)
    process.join(timeout=60)
    assert process.exitcode == 0
    return env, connection_id


def test_database_backend_on_a_sqlite_file_shares_one_window_between_processes(sqlite_file):
    env, connection_id = sqlite_file
    assert granted_by_two_processes(env, connection_id, "DatabaseBackend") == ROUNDS * ALLOWED


def test_redis_backend_shares_one_window_between_processes(sqlite_file, settings):
    if not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("The Redis backend runs when CACHE_URL is redis://.")
    env, connection_id = sqlite_file
    env = {**env, "CACHE_URL": settings.RATE_LIMIT_REDIS_URL}
    assert granted_by_two_processes(env, connection_id, "RedisBackend") == ROUNDS * ALLOWED


def test_database_backend_on_postgresql_shares_one_window_between_processes(transactional_db):
    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("Runs on the PostgreSQL leg.")
    from tests.factories import make_connection, make_integration, organization

    integration = make_integration(slug="limited", rate_limits=[{"requests": ALLOWED, "per_seconds": WINDOW}])
    connection, _ = make_connection(organization("alice"), integration)
    s = db.settings_dict
    url = f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
    env = {"DATABASE_URL": url, "CACHE_URL": None, "DRAMATIQ_BROKER_URL": None}
    assert granted_by_two_processes(env, connection.pk, "DatabaseBackend") == ROUNDS * ALLOWED


# --- Two real servers on one Redis -----------------------------------------------------------------------------------

SERVED_PER_WINDOW, WINDOW_SECONDS, LOAD_SECONDS = 5, 2.0, 6.0


@contextmanager
def counting_upstream():
    """A loopback upstream that notes when each request arrives (monotonic) and answers 200 at once."""
    arrivals = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            arrivals.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(env):
    """`manage.py serve` (two gunicorn workers) on a free loopback port; yields the port."""
    with platform_serve(env) as (port, _):
        yield port


def call_flat_out(ports, api_key, token, seconds) -> list:
    """Sync passthrough calls back to back from 3 clients per server until `seconds` are over; (status, body, headers)."""
    results, stop_at = [], time.monotonic() + seconds
    body = json.dumps({"method": "GET", "path": "/items"})
    headers = {"Authorization": f"Bearer {api_key}", "X-Account-Token": token, "Content-Type": "application/json"}

    def client(port):
        mine = []
        while time.monotonic() < stop_at:
            connection = HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/api/v1/passthrough", body=body, headers=headers)
            answer = connection.getresponse()
            mine.append((port, answer.status, json.loads(answer.read()), answer.getheader("Retry-After")))
            connection.close()
        results.extend(mine)

    threads = [threading.Thread(target=client, args=(port,)) for port in ports for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return results


def most_in_any_span(arrivals, span) -> int:
    arrivals = sorted(arrivals)
    return max((sum(1 for later in arrivals[i:] if later - first < span) for i, first in enumerate(arrivals)), default=0)


def test_two_servers_on_one_redis_share_the_window_and_answer_429_with_retry_after(transactional_db, settings):
    from django.db import connection as db

    if db.vendor != "postgresql" or not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("Runs on the PostgreSQL + Redis leg (servers share the database and the limiter's Redis).")
    from tests.factories import make_api_key, make_connection, make_integration

    env = {**os.environ, "DATABASE_URL": shared_database_url(),
           "CACHE_URL": settings.RATE_LIMIT_REDIS_URL, "SERVE_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING"}
    env.pop("DRAMATIQ_BROKER_URL", None)
    with counting_upstream() as (upstream_url, arrivals):
        integration = make_integration(slug="shared", base_url=upstream_url,
                                       rate_limits=[{"requests": SERVED_PER_WINDOW, "per_seconds": WINDOW_SECONDS}])
        key, api_key = make_api_key("alice")
        _, token = make_connection(key.organization, integration)
        with serve(env) as first, serve(env) as second:
            results = call_flat_out([first, second], api_key, token, LOAD_SECONDS)

    served = [r for r in results if r[1] == 200]
    refused = [r for r in results if r[1] == 429]
    assert len(served) + len(refused) == len(results)  # nothing else: no 5xx, no timeouts
    assert all(body["status"] == 200 for _, _, body, _ in served)
    assert all(retry_after.isdigit() and int(retry_after) >= 1 for _, _, _, retry_after in refused)
    assert {port for port, *_ in served} == {first, second}  # both servers got permits...
    assert len(arrivals) == len(served)
    # ...from one shared window: never more than N arrive in any span of a window (the safety margin absorbs the
    # transit jitter). Four workers with a limiter each would let through four times as many.
    assert most_in_any_span(arrivals, WINDOW_SECONDS) <= SERVED_PER_WINDOW
    assert len(served) >= 2 * SERVED_PER_WINDOW  # and the budget is used
