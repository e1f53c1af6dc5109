"""The function-call log written off the request path (FUNCTION_CALL_LOG_MODE=batched, passthrough/call_log.py)."""

import json
import logging
import os
import signal
import threading
import time
from http.client import HTTPConnection
from unittest import mock

import pytest
from django.db import OperationalError
from prometheus_client import REGISTRY

from connections.models import Function
from passthrough import call_log
from passthrough.models import FunctionCall
from tests.factories import make_connection
from tests.network import local_integration, passthrough
from tests.servers import platform_serve, shared_database_url

LOG_FIELDS = ["organization_id", "connection_id", "integration_id", "function_id", "dialect", "mode", "method", "url",
              "request_headers", "request_body", "response_status", "response_headers", "response_body", "error"]


@pytest.fixture
def writer(transactional_db, settings):
    """Batched mode with a writer that only writes when told to (no thread races the test)."""
    settings.FUNCTION_CALL_LOG_MODE = "batched"
    writer = call_log.CallLogWriter()
    writer._start = lambda: setattr(writer, "pid", os.getpid())
    with mock.patch.object(call_log, "writer", writer), mock.patch.object(call_log, "EXIT_RETRY_SECONDS", 0):
        yield writer


def logged(token_connection_id):
    return list(FunctionCall.objects.filter(connection_id=token_connection_id).order_by("pk").values(*LOG_FIELDS))


def test_a_batched_row_is_written_after_the_answer_with_the_same_content_as_a_sync_one(alice, local_server, writer, settings):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    call = {"method": "POST", "path": "/items?api_key=s3cr3t-query", "headers": {"Authorization": "Bearer caller-secret"},
            "data": {"echo": "s3cr3t-query"}}
    assert passthrough(alice, token, **call).status_code == 200
    assert FunctionCall.objects.count() == 0 and writer.pending() == 1  # answered before the row is written
    assert writer.write_pending() == 1
    settings.FUNCTION_CALL_LOG_MODE = "sync"
    assert passthrough(alice, token, **call).status_code == 200
    batched_row, sync_row = logged(connection.pk)
    assert batched_row == sync_row
    assert "s3cr3t-query" not in json.dumps(batched_row) and "caller-secret" not in json.dumps(batched_row)
    assert batched_row["function_id"] is not None


def test_a_batched_call_is_counted_in_the_metrics_when_answered_not_when_its_row_is_written(alice, local_server, writer):
    _, token = make_connection(alice.organization, local_integration(local_server.url, slug="counted-early"))
    labels = {"integration": "counted-early", "surface": "native/sync", "outcome": "success"}
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert writer.pending() == 1
    assert REGISTRY.get_sample_value("platform_upstream_calls_total", labels) == 1
    writer.write_pending()
    assert REGISTRY.get_sample_value("platform_upstream_calls_total", labels) == 1


def test_a_failed_write_keeps_the_rows_logs_the_failure_and_writes_them_when_the_database_is_back(
        alice, local_server, writer, caplog):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    for _ in range(3):
        assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    down = OperationalError("the database is down")
    with mock.patch.object(FunctionCall.objects, "bulk_create", side_effect=down), caplog.at_level(logging.ERROR):
        with pytest.raises(OperationalError):
            writer.write_pending()
        writer.close()  # at exit, still down: tried, then said loudly
    assert writer.pending() == 3 and FunctionCall.objects.count() == 0
    assert "3 row(s) LOST" in caplog.text and "flushing 3 row(s) at exit failed" in caplog.text
    assert writer.write_pending() == 3  # the database is back
    assert len(logged(connection.pk)) == 3


def test_the_writer_thread_retries_a_failed_batch(alice, local_server, transactional_db, settings, caplog):
    settings.FUNCTION_CALL_LOG_MODE, settings.FUNCTION_CALL_LOG_FLUSH_SECONDS = "batched", 0.05
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    writer = call_log.CallLogWriter()
    real_bulk_create, failures = FunctionCall.objects.bulk_create, []

    def fails_once(rows):
        if not failures:
            failures.append(len(rows))
            raise OperationalError("the database is down")
        return real_bulk_create(rows)

    with mock.patch.object(call_log, "writer", writer), mock.patch.object(FunctionCall.objects, "bulk_create", fails_once):
        assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
        deadline = time.monotonic() + 30
        while FunctionCall.objects.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        writer.close()
    assert failures == [1] and FunctionCall.objects.count() == 1
    assert "1 row(s) could not be written; retrying" in caplog.text


def test_a_row_of_a_connection_deleted_before_the_write_is_kept_without_it(alice, local_server, writer):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    connection.delete()
    assert writer.write_pending() == 1
    row = FunctionCall.objects.get()
    assert row.connection_id is None and row.organization_id == alice.organization.pk


def test_a_row_of_a_function_deleted_before_the_write_is_kept_without_it(alice, local_server, writer):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    Function.objects.filter(integration=connection.integration).delete()
    assert writer.write_pending() == 1
    assert FunctionCall.objects.get().function_id is None


def test_a_flush_writes_the_rows_queued_when_it_starts_in_one_insert(alice, local_server, writer):
    """Rows of calls answered while it writes wait for the next flush: under load, draining the queue would make an
    INSERT of a row or two every few milliseconds."""
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    for _ in range(3):
        assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    inserts, original = [], call_log.insert_rows

    def insert_while_a_call_answers(rows):
        inserts.append(len(rows))
        writer.rows.append(writer.rows[0] if writer.rows else rows[0])  # a call answered meanwhile
        return original(rows)

    with mock.patch.object(call_log, "insert_rows", insert_while_a_call_answers):
        assert writer.write_pending() == 3
    assert inserts == [3] and writer.pending() == 1


# --- A real server restarted gracefully under load -------------------------------------------------------------------

def test_a_graceful_restart_under_load_loses_no_log_row(transactional_db, settings, local_server):
    """`serve` with a flush interval longer than the test: only the exit flush can write the rows. Calls go on while
    gunicorn replaces its workers (SIGHUP: the old ones exit gracefully) and until `serve` stops (SIGTERM)."""
    from django.db import connection as db

    if db.vendor != "postgresql":
        pytest.skip("Runs on the PostgreSQL leg (the server process shares the test database).")
    from tests.factories import make_api_key

    api_key, key = make_api_key("alice")
    connection, token = make_connection(api_key.organization, local_integration(local_server.url))
    env = {**os.environ, "DATABASE_URL": shared_database_url(),
           "FUNCTION_CALL_LOG_MODE": "batched", "FUNCTION_CALL_LOG_FLUSH_SECONDS": "3600",
           "SERVE_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING"}
    answered, stop = [], threading.Event()
    body = json.dumps({"method": "GET", "path": "/ping"})
    headers = {"Authorization": f"Bearer {key}", "X-Account-Token": token, "Content-Type": "application/json"}

    def client():
        while not stop.is_set():
            try:
                http = HTTPConnection("127.0.0.1", port, timeout=30)
                http.request("POST", "/api/v1/passthrough", body=body, headers=headers)
                if http.getresponse().status == 200:
                    answered.append(1)
                http.close()
            except OSError:  # refused while no worker listens: not answered, not logged
                time.sleep(0.01)

    with platform_serve(env) as (port, process):
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(2)
        os.kill(process.pid, signal.SIGHUP)  # graceful restart of every worker
        time.sleep(3)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    assert answered
    assert FunctionCall.objects.filter(connection=connection).count() == len(answered)
