"""Cross-process: two real processes taking permits from one store never admit more than a window allows.

Each process is a fresh interpreter (multiprocessing "spawn") with its own Django setup and database connection,
as two `serve` workers or a web process and a Dramatiq worker would be. They meet at a barrier, then race for the
permits of one instant (a fake clock): exactly N may pass. Each round moves to a fresh window, so the race at the
N-th permit, where a store without a lock lets N+1 through, is run many times.

Stores: the database backend on a SQLite file the processes migrate themselves (rows a `db` test writes stay in
its uncommitted transaction, invisible to them), the database backend on the PostgreSQL test database (row locks,
rows committed by `transactional_db`), and Redis.
"""

import multiprocessing
import os

import pytest

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
        now[0] = NOW + round_number * WINDOW
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
