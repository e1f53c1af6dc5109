"""The function-call log of sync calls, written off the request path (FUNCTION_CALL_LOG_MODE=batched, the default).

A sync call hands its row to this process's writer and answers; a writer thread builds the rows (redaction and size
caps) and INSERTs them in one multi-row statement every FUNCTION_CALL_LOG_FLUSH_SECONDS or FUNCTION_CALL_LOG_BATCH_ROWS
rows, whichever comes first. Rows are flushed when a `serve` worker exits gracefully (SIGTERM, `serve` shutdown,
max-requests recycling: gunicorn's `worker_exit` hook) and at interpreter exit. A write that fails (database down) is
logged and retried with the same rows; they stay in memory until written. What a hard crash (SIGKILL, power loss) can
lose is the rows not yet written: one flush interval of calls, more while a write keeps failing.
FUNCTION_CALL_LOG_MODE=sync writes each row before the call answers.
"""

import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection as db_connection

from connections.models import Connection, Function, Integration, Organization
from passthrough.models import FunctionCall

log = logging.getLogger(__name__)
RETRY_MAX_SECONDS = 5.0
EXIT_ATTEMPTS = 3
EXIT_RETRY_SECONDS = 1.0  # times the attempt number


def batched() -> bool:
    return settings.FUNCTION_CALL_LOG_MODE == "batched"


class CallLogWriter:
    """Rows of this process waiting to be written, and the thread that writes them."""

    def __init__(self):
        self.rows = collections.deque()
        self.ready = threading.Condition()
        self.write_lock = threading.Lock()  # one writer at a time: the thread, or a flush at exit
        self.thread = None
        self.pid = None
        self.stopping = False

    def submit(self, build: Callable[[], FunctionCall]) -> None:
        """Queue the row of one call, which `build()` makes in the writer."""
        with self.ready:
            self.rows.append(build)
            if self.thread is None or self.pid != os.getpid():  # first row, or first row after a fork
                self._start()
            if len(self.rows) >= settings.FUNCTION_CALL_LOG_BATCH_ROWS:
                self.ready.notify()

    def pending(self) -> int:
        return len(self.rows)

    def _start(self) -> None:
        self.pid, self.stopping = os.getpid(), False
        self.thread = threading.Thread(target=self._run, name="call-log-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self.ready:
                self.ready.wait_for(lambda: self.stopping or len(self.rows) >= settings.FUNCTION_CALL_LOG_BATCH_ROWS,
                                    timeout=max(delay, settings.FUNCTION_CALL_LOG_FLUSH_SECONDS))
                if self.stopping:
                    return
            try:
                self.write_pending()
                delay = 0.0
            except Exception:  # noqa: BLE001 - logged; the rows stay queued and are tried again
                delay = min(RETRY_MAX_SECONDS, max(0.5, 2 * delay))
                log.exception("Function-call log: %d row(s) could not be written; retrying in %.1f s.",
                              self.pending(), delay)
                db_connection.close()  # a broken connection is opened anew on the next try
            finally:
                close_old_connections()

    def write_pending(self) -> int:
        """Write the rows queued now, one INSERT per batch; returns how many. Rows that come meanwhile wait for the
        next flush (writing until the queue is empty would, under load, make an INSERT of a row or two every few
        milliseconds). On a failure the unwritten rows stay queued (in order) and the error is raised."""
        written = 0
        with self.write_lock:
            queued = len(self.rows)
            while queued > 0:
                batch = [self.rows.popleft() for _ in range(min(queued, settings.FUNCTION_CALL_LOG_BATCH_ROWS))]
                queued -= len(batch)
                try:
                    written += insert_rows(built(batch))
                except BaseException:
                    self.rows.extendleft(reversed(batch))
                    raise
        return written

    def close(self) -> None:
        """Stop the thread and write what is left (a few tries); rows that still cannot be written are logged."""
        with self.ready:
            self.stopping = True
            self.ready.notify()
        if self.thread is not None and self.pid == os.getpid():
            self.thread.join(timeout=RETRY_MAX_SECONDS + 1)
        self.thread = None
        for attempt in range(1, EXIT_ATTEMPTS + 1):
            try:
                while self.rows:  # rows of calls still answering are written too
                    self.write_pending()
                return
            except Exception:  # noqa: BLE001 - logged below, then tried again
                log.exception("Function-call log: flushing %d row(s) at exit failed (try %d of %d).",
                              self.pending(), attempt, EXIT_ATTEMPTS)
                db_connection.close()
                time.sleep(EXIT_RETRY_SECONDS * attempt)
        if self.rows:
            log.error("Function-call log: %d row(s) LOST at process exit: the database could not be written.",
                      self.pending())


def built(builders) -> list[FunctionCall]:
    rows = []
    for build in builders:
        try:
            rows.append(build())
        except Exception:  # noqa: BLE001 - a bug in building one row must not stop the others
            log.exception("Function-call log: a row could not be built and is not written.")
    return rows


def insert_rows(rows: list[FunctionCall]) -> int:
    """One multi-row INSERT. A row whose connection, integration or function was deleted in the meantime is written
    without it (as the deletion would have done to a written row); one whose organization was deleted is not written
    (the deletion removes its log), and that is logged."""
    try:
        FunctionCall.objects.bulk_create(rows)
        return len(rows)
    except IntegrityError:
        if db_connection.in_atomic_block:
            raise
    live = rows_with_live_references(rows)
    if len(live) < len(rows):
        log.warning("Function-call log: %d row(s) not written: their organization was deleted.", len(rows) - len(live))
    FunctionCall.objects.bulk_create(live)
    return len(live)


def rows_with_live_references(rows: list[FunctionCall]) -> list[FunctionCall]:
    def existing(model, ids):
        return set(model.objects.filter(pk__in={i for i in ids if i is not None}).values_list("pk", flat=True))

    organizations = existing(Organization, (r.organization_id for r in rows))
    connections = existing(Connection, (r.connection_id for r in rows))
    integrations = existing(Integration, (r.integration_id for r in rows))
    functions = existing(Function, (r.function_id for r in rows if isinstance(r.function_id, int)))
    for row in rows:
        if row.connection_id not in connections:
            row.connection = None
        if row.integration_id not in integrations:
            row.integration = None
        if isinstance(row.function_id, int) and row.function_id not in functions:
            row.function = None
    return [r for r in rows if r.organization_id in organizations]


writer = CallLogWriter()
atexit.register(writer.close)
