"""Real `rundramatiq` worker processes on a Redis broker (the PostgreSQL + Redis CI leg sets TEST_REDIS_BROKER_URL).

The test process writes rows through the services, then wakes the worker processes through Redis; the outcome is
read back from the database (the source of truth), waiting a bounded time.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.utils import timezone
from dramatiq.brokers.redis import RedisBroker

from passthrough import async_passthrough, envelopes
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from tests.factories import make_connection, make_integration
from tests.servers import ROOT, gunicorn

REDIS_URL = os.environ.get("TEST_REDIS_BROKER_URL", "")
pytestmark = [
    pytest.mark.skipif(not REDIS_URL, reason="needs TEST_REDIS_BROKER_URL (the PostgreSQL + Redis leg of make test)"),
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("sqlite") or not os.environ.get("DATABASE_URL"),
                       reason="worker processes need a database server shared with the test process"),
    pytest.mark.django_db(transaction=True),
]


def database_url() -> str:
    settings = db_connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


@contextmanager
def rundramatiq():
    """One worker process with two threads, on the Redis broker and this test's database."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DRAMATIQ_BROKER_URL": REDIS_URL}
    process = subprocess.Popen([sys.executable, "manage.py", "rundramatiq", "--processes", "1", "--threads", "2"],
                               cwd=ROOT, env=env, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def wait_for(predicate, seconds=60.0):
    """Poll the database until `predicate()` holds; fail after a bound (this measures nothing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("condition not reached within the bound")


@pytest.fixture(autouse=True)
def redis_actor():
    """The async passthrough actor sends through Redis in this test, so worker processes receive its messages."""
    from passthrough.tasks import run_async_passthrough

    redis = RedisBroker(url=REDIS_URL)
    redis.client.flushdb()
    redis.declare_queue(run_async_passthrough.queue_name)
    original, run_async_passthrough.broker = run_async_passthrough.broker, redis
    yield
    run_async_passthrough.broker = original
    redis.client.flushdb()
    redis.close()


@pytest.fixture
def upstream():
    """A local upstream that counts requests (httpbin has /delay/N for slow answers)."""
    with gunicorn("httpbin:app") as url:
        yield url


def receipt(alice_org, integration, method, path):
    connection, _ = make_connection(alice_org, integration)
    envelope = envelopes.parse({"method": method, "path": path, "data": "{}" if method == "POST" else None},
                               data_must_be_string=True)
    return async_passthrough.async_passthrough_create(connection=connection, envelope=envelope, dialect="native")


def status_of(receipt_id):
    return AsyncPassthroughRequest.objects.get(pk=receipt_id).status


def test_a_worker_process_on_redis_completes_an_async_request(alice, upstream):
    integration = make_integration(slug="up", base_url=upstream)
    request = receipt(alice.organization, integration, "GET", "/get?x=1")
    with rundramatiq():
        wait_for(lambda: status_of(request.pk) == "done")
    assert AsyncPassthroughRequest.objects.get(pk=request.pk).result["response"]["args"] == {"x": "1"}


def killed_mid_request(alice, upstream, method, settings):
    """Start a slow request in a worker process, SIGKILL the process while it waits on the upstream."""
    settings.ASYNC_PASSTHROUGH_LOST_AFTER_SECONDS = 1
    integration = make_integration(slug="slow", base_url=upstream)
    request = receipt(alice.organization, integration, method, "/delay/3")
    with rundramatiq() as process:
        wait_for(lambda: status_of(request.pk) == "running")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    AsyncPassthroughRequest.objects.filter(pk=request.pk).update(claimed_at=timezone.now() - timedelta(seconds=5),
                                                                 created_at=timezone.now() - timedelta(minutes=1))
    return request


def test_a_post_whose_worker_was_killed_is_failed_not_repeated(alice, upstream, settings):
    request = killed_mid_request(alice, upstream, "POST", settings)
    assert async_passthrough.async_passthrough_sweep()["lost_failed"] == 1
    failed = AsyncPassthroughRequest.objects.get(pk=request.pk)
    assert failed.status == "failed" and "not retried" in failed.error
    assert not FunctionCall.objects.exists()  # the killed worker never logged; nothing ran a second time


def test_a_get_whose_worker_was_killed_is_run_again_by_another_worker(alice, upstream, settings):
    request = killed_mid_request(alice, upstream, "GET", settings)
    with rundramatiq():
        assert async_passthrough.async_passthrough_sweep()["lost_retried"] == 1
        wait_for(lambda: status_of(request.pk) == "done")
    assert AsyncPassthroughRequest.objects.get(pk=request.pk).attempts == 2
