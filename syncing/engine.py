"""One sync run of one model of one connection: pages pulled through the outbound client, stored in bulk.

The caller holds the pair's claim (services.py). Each page is fetched (retrying what connections/retry_policy.py
calls transient, with backoff, honouring Retry-After), logged as a function call (rows written in bulk), and upserted in
one transaction with the run's counters: records whose data did not change are not written, so they keep their
`modified_at`. A full run that saw every page marks the records it did not see as deleted. A failure keeps the pages
stored so far.
"""

import hashlib
import json
import logging
import time
from collections import Counter
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connection as db_connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from connections import client
from connections.models import Connection
from connections.retry_policy import sync_page_policy
from integration_platform import metrics
from integration_platform.errors import ConnectionUnusable, PlatformError, RateLimited
from passthrough.models import FunctionCall
from passthrough.services import call_counted, function_call_row, passthrough_function_ids
from syncing.models import Record, SyncRun, SyncState
from syncing.pagination import PaginationError, dig, first_page, next_page
from syncing.spec import SyncModelSpec

log = logging.getLogger(__name__)
sleep = time.sleep  # tests replace it to see the waits without spending them
# Styles whose next page can be found without reading the current answer: an unreadable page is skipped.
SKIPPABLE_STYLES = ("page", "offset", "link_header")
UPSERT_FIELDS = ["data", "data_hash", "remote_updated_at", "modified_at", "remote_was_deleted"]
PROGRESS_FIELDS = ["pages", "requests", "added", "updated", "unchanged", "skipped", "skipped_pages"]
FINAL_FIELDS = [*PROGRESS_FIELDS, "deleted", "status", "error", "finished_at"]
CHUNK = 500  # ids per IN (...) query: well inside SQLite's variable limit
HEARTBEAT_SECONDS = 10.0
CALL_LOG_BATCH, CALL_LOG_SECONDS = 100, 1.0


class SyncFailed(Exception):
    """The run cannot go on; the message becomes the run's error."""


class ClaimLost(SyncFailed):
    """Another worker took the pair over (this one was silent too long): stop without touching its state."""


class UnreadablePage(Exception):
    """A 2xx answer we cannot read records from."""


def run_sync(state: SyncState, claim_id, spec: SyncModelSpec, *, full: bool, trigger: str, progress=None) -> SyncRun:
    """Run one sync of `state`'s pair under the claim `claim_id`; returns the finished run."""
    connection = state.connection
    full = full or state.last_success_started_at is None or spec.modified_since is None
    since = None if full else state.last_success_started_at - timedelta(seconds=spec.lookback_seconds)
    run = SyncRun.objects.create(connection=connection, model=spec.name, full=full, trigger=trigger,
                                 modified_since=since, started_at=timezone.now())
    seen = set() if full else None
    calls = CallLog(connection)
    try:
        client.ensure_usable(connection)
        _pull(run, state, claim_id, spec, since, seen, calls, progress)
        run.status = SyncRun.PARTIALLY_SYNCED if run.skipped or run.skipped_pages else SyncRun.DONE
        if full and run.status == SyncRun.DONE:
            run.deleted = _mark_deleted(run, seen)
    except ConnectionUnusable as exc:
        run.status, run.error = SyncRun.PAUSED, exc.message
    except (SyncFailed, PaginationError) as exc:
        run.status, run.error = SyncRun.FAILED, str(exc)
    except PlatformError as exc:
        run.status, run.error = SyncRun.FAILED, "; ".join([exc.message, *exc.details])
    except Exception as exc:
        log.exception("Sync run %s of connection %s (%s) crashed.", run.pk, connection.pk, spec.name)
        run.status, run.error = SyncRun.FAILED, f"Internal error ({type(exc).__name__}); see the server log."
    calls.write()
    metrics.sync_run_finished(run)
    run.finished_at = timezone.now()
    # An UPDATE, not save(): if the connection was deleted meanwhile, there is nothing left to record.
    SyncRun.objects.filter(pk=run.pk).update(**{field: getattr(run, field) for field in FINAL_FIELDS})
    return run


def _pull(run, state, claim_id, spec, since, seen, calls, progress):
    request = first_page(spec.pagination, _since_query(spec, since))
    skippable = spec.pagination.style in SKIPPABLE_STYLES
    beat_at = time.monotonic()  # taking the claim was the first heartbeat
    while request is not None:
        if run.pages >= settings.SYNC_MAX_PAGES:
            raise SyncFailed(f"Stopped after {settings.SYNC_MAX_PAGES} pages (SYNC_MAX_PAGES).")
        target = (client.absolute_url_target(run.connection.integration, request.url) if request.url
                  else client.build_target(run.connection.integration, spec.path, request.query))
        url, response = _fetch(run, target, calls)
        try:
            body, records = _read(response, spec)
        except UnreadablePage as exc:
            if not skippable or run.skipped_pages >= settings.SYNC_MAX_SKIPPED_PAGES:
                raise SyncFailed(f"{exc} (page {run.pages + 1})") from None
            body, records = None, None
        # A claim silent for SYNC_LOST_AFTER_SECONDS is taken over; writing its heartbeat on every page would cost
        # a statement per page.
        heartbeat = time.monotonic() - beat_at >= HEARTBEAT_SECONDS
        _store(run, state, claim_id, spec, records, seen, heartbeat=heartbeat)
        if heartbeat:
            beat_at = time.monotonic()
        calls.write(due_only=True)
        if progress:
            progress(run)
        request = next_page(spec.pagination, request, url=url, headers=response.headers, body=body, records=records)


def _since_query(spec, since) -> tuple:
    if since is None:
        return ()
    # Floored to the second: some APIs refuse fractions, and asking for a little more is always safe.
    moment = since.astimezone(dt_timezone.utc).replace(microsecond=0)
    value = str(int(moment.timestamp())) if spec.modified_since.format == "unix" else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ((spec.modified_since.param, value),)


class CallLog:
    """The function-call log of a run: one row per request sent upstream (bodies only if SYNC_LOG_BODIES), written
    in bulk, one INSERT every CALL_LOG_BATCH rows or CALL_LOG_SECONDS and at the end of the run, so that logging
    does not cost ingest speed (a row per request cost a quarter of a full sync's CPU time)."""

    def __init__(self, connection):
        self.connection, self.rows, self.written_at = connection, [], time.monotonic()

    def add(self, exchange) -> FunctionCall:
        call_counted(exchange, self.connection, FunctionCall.DIALECT_SYNC, FunctionCall.MODE_BACKGROUND)
        row = function_call_row(exchange, connection=self.connection, dialect=FunctionCall.DIALECT_SYNC,
                                mode=FunctionCall.MODE_BACKGROUND, store_bodies=settings.SYNC_LOG_BODIES)
        self.rows.append(row)
        return row

    def write(self, *, due_only: bool = False) -> None:
        due = len(self.rows) >= CALL_LOG_BATCH or time.monotonic() - self.written_at >= CALL_LOG_SECONDS
        if not self.rows or (due_only and not due):
            return
        rows, self.rows, self.written_at = self.rows, [], time.monotonic()
        # Each row would look the function up in its own subquery: once for the batch is cheaper to compile.
        function_id = passthrough_function_ids(self.connection.integration_id).values_list("pk", flat=True).first()
        for row in rows:
            row.function_id = function_id
        try:
            with transaction.atomic():
                # Deleted during the run, the connection leaves nothing to log against (its runs are gone too).
                if Connection.objects.filter(pk=self.connection.pk).exists():
                    FunctionCall.objects.bulk_create(rows)
        except IntegrityError:  # deleted between the check and the INSERT
            pass


# --- Fetching ------------------------------------------------------------------------------------------------------

def _fetch(run, target: client.Target, calls: CallLog):
    """GET one page, retrying what may succeed later; every attempt goes to `calls`. Returns (url answered,
    response); raises SyncFailed."""
    rate_limited_for = 0.0
    attempt = 0
    while True:
        try:
            exchange = client.send(run.connection, "GET", target, {"Accept": "application/json"},
                                   timeout=settings.SYNC_REQUEST_TIMEOUT, priority="background")
        except RateLimited as exc:
            # Our own limiter refused a permit: nothing was sent, so it is no attempt. Wait within a bound.
            wait = float(getattr(exc, "delay", None) or exc.retry_after or 1)
            if rate_limited_for + wait > settings.SYNC_RATE_LIMIT_MAX_WAIT_SECONDS:
                raise SyncFailed(f"Rate limited for over {settings.SYNC_RATE_LIMIT_MAX_WAIT_SECONDS:g} s: {exc.message}") from None
            rate_limited_for += wait
            sleep(wait)
            continue
        call = calls.add(exchange)
        run.requests += 1
        response = exchange.response
        if exchange.error is None and 200 <= response.status < 300:
            return exchange.url, response
        problem = str(exchange.error) if exchange.error else f"HTTP {response.status}"
        wait = sync_page_policy().next_delay(attempt + 1, idempotent=True, response=response, error=exchange.error)
        if wait is None:
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise SyncFailed(f"GET {call.url}: {problem}{tries}.")  # the URL as logged: redacted
        log.info("Sync of %s: page request answered %s; retry %d in %.1f s.", run.model, problem, attempt + 1, wait)
        retrying(run, calls, problem, wait)
        sleep(wait)
        attempt += 1


def retrying(run, calls, problem: str, wait: float) -> None:
    """While a run waits to retry, operators see why and until when (the run's error, cleared if it then succeeds),
    and the failed attempts in the call log."""
    calls.write()
    next_at = (timezone.now() + timedelta(seconds=wait)).isoformat(timespec="seconds")
    SyncRun.objects.filter(pk=run.pk).update(error=f"retrying: {problem}, next attempt at {next_at}")


def _read(response, spec):
    """(body, records) of a 2xx answer; UnreadablePage if it is not JSON or has no list where records should be."""
    try:
        body = json.loads(response.body) if response.body.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise UnreadablePage("The answer is not JSON.") from None
    records = dig(body, spec.records_field)
    if not isinstance(records, list):
        where = f"field {spec.records_field!r}" if spec.records_field else "the answer"
        raise UnreadablePage(f"Expected a list of records in {where}.")
    return body, records


# --- Storing -------------------------------------------------------------------------------------------------------

def canonical(item) -> tuple[str, str] | None:
    """(canonical JSON text, its hash) of a record, or None if a database could not store it (NUL, lone
    surrogates). Equal data, equal hash: an unchanged record is recognised without reading it back."""
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "\x00" in text or "\\u0000" in text:
        return None
    try:
        return text, hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    except UnicodeEncodeError:
        return None


def remote_time(value) -> datetime | None:
    """An upstream timestamp: ISO-8601 (no offset = UTC) or Unix time in seconds (milliseconds if that large)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = parse_datetime(text)
            except ValueError:
                return None
            if moment is None:
                return None
            return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt_timezone.utc)
        value = number
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= 100_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _store(run, state, claim_id, spec, records: list | None, seen: set | None, *, heartbeat: bool):
    """Store one page (None: unreadable, skipped) in one transaction, if the run still holds the pair's claim: the
    records in bulk and the run's counters; with `heartbeat`, show the claim is alive."""
    page = Counter(pages=1, skipped_pages=records is None)
    rows = {}
    for item in records or []:
        remote_id = dig(item, spec.id_field) if isinstance(item, dict) else None
        if isinstance(remote_id, (int, float)) and not isinstance(remote_id, bool):
            remote_id = str(remote_id)
        stored = canonical(item) if isinstance(remote_id, str) and 0 < len(remote_id) <= 255 else None
        if stored is None:
            page["skipped"] += 1
            continue
        updated_at = remote_time(dig(item, spec.updated_at_field)) if spec.updated_at_field else None
        rows[remote_id] = (item, *stored, updated_at)
    with transaction.atomic():
        if rows:
            added, updated = _upsert(run, rows)
            page.update(added=added, updated=updated, unchanged=len(rows) - added - updated)
        totals = {field: getattr(run, field) + page[field] for field in PROGRESS_FIELDS}
        if not _save_progress(run, state, claim_id, totals):  # taken over, or the connection deleted
            raise ClaimLost("Another worker took this sync over (this run was silent too long); "
                            "this page was not stored.")
        if heartbeat:
            SyncState.objects.filter(pk=state.pk, claim_id=claim_id).update(heartbeat_at=timezone.now())
    for field, value in totals.items():
        setattr(run, field, value)
    if seen is not None:
        seen.update(rows)


def _save_progress(run, state, claim_id, totals: dict) -> bool:
    """Write the run's counters if it still holds the pair's claim; False (nothing written) if not.

    One statement checks the claim and writes the counters, so the claim costs no round trip of its own. In SQL:
    the ORM spent more time compiling this UPDATE (with its EXISTS) than the database spent running it."""
    quote = db_connection.ops.quote_name
    claim = SyncState._meta.get_field("claim_id").get_db_prep_value(claim_id, db_connection)
    sql = (f"UPDATE {quote(SyncRun._meta.db_table)} SET {', '.join(f'{quote(field)} = %s' for field in totals)} "
           f"WHERE id = %s AND EXISTS (SELECT 1 FROM {quote(SyncState._meta.db_table)} WHERE id = %s AND claim_id = %s)")
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [*totals.values(), run.pk, state.pk, claim])
        return cursor.rowcount == 1


# PostgreSQL: one statement per page. The page travels as one JSON document (bulk_create would send an array literal
# per column, escaped in Python value by value); rows whose data did not change are not touched; RETURNING says
# which rows were inserted (xmax = 0) or updated. This halved a full sync's time (tests/bench/sync_bench.py).
# `relaxed` is SET LOCAL synchronous_commit = off without a statement of its own: the page's COMMIT does not wait
# for the disk. A database crash may lose the last pages, with their counters (same transaction), and the next run
# fetches them again; the run's final update commits normally, which flushes every page before it.
UPSERT_POSTGRESQL = """
INSERT INTO syncing_record AS record (connection_id, model, remote_id, data, data_hash, remote_updated_at,
                                      created_at, modified_at, remote_was_deleted)
SELECT %(connection_id)s, %(model)s, r.remote_id, r.data, r.data_hash, r.remote_updated_at, %(now)s, %(now)s, false
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(remote_id text, data jsonb, data_hash text, remote_updated_at timestamptz)
CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
ON CONFLICT (connection_id, model, remote_id) DO UPDATE
SET data = EXCLUDED.data, data_hash = EXCLUDED.data_hash, remote_updated_at = EXCLUDED.remote_updated_at,
    modified_at = EXCLUDED.modified_at, remote_was_deleted = false
WHERE record.data_hash <> EXCLUDED.data_hash OR record.remote_was_deleted
RETURNING xmax = 0
"""


def _upsert(run, rows: dict) -> tuple[int, int]:
    """Write `{remote_id: (data, canonical JSON, data_hash, remote_updated_at)}`: new rows inserted, changed (or
    deleted) ones updated, unchanged ones left alone (they keep `modified_at`). Returns (added, updated)."""
    now = timezone.now()
    if db_connection.vendor == "postgresql":
        # Spliced from the JSON already made for hashing: the page is not encoded a second time.
        document = "[" + ",".join(
            f'{{"remote_id":{json.dumps(remote_id)},"data":{text},"data_hash":"{data_hash}","remote_updated_at":'
            + (f'"{updated_at.isoformat()}"}}' if updated_at else "null}")
            for remote_id, (_, text, data_hash, updated_at) in rows.items()) + "]"
        with db_connection.cursor() as cursor:
            cursor.execute(UPSERT_POSTGRESQL, {"connection_id": run.connection_id, "model": run.model, "now": now,
                                               "rows": document})
            inserted = [row[0] for row in cursor.fetchall()]
        return sum(inserted), len(inserted) - sum(inserted)
    ids = list(rows)
    existing = {}
    for start in range(0, len(ids), CHUNK):
        existing.update((remote_id, (data_hash, deleted)) for remote_id, data_hash, deleted in Record.objects.filter(
            connection_id=run.connection_id, model=run.model, remote_id__in=ids[start:start + CHUNK],
        ).order_by().values_list("remote_id", "data_hash", "remote_was_deleted"))
    changed = [Record(connection_id=run.connection_id, model=run.model, remote_id=remote_id, data=item,
                      data_hash=data_hash, remote_updated_at=updated_at, created_at=now, modified_at=now)
               for remote_id, (item, _, data_hash, updated_at) in rows.items()
               if existing.get(remote_id) != (data_hash, False)]
    Record.objects.bulk_create(changed, batch_size=CHUNK, update_conflicts=True,
                               unique_fields=["connection", "model", "remote_id"], update_fields=UPSERT_FIELDS)
    added = sum(1 for record in changed if record.remote_id not in existing)
    return added, len(changed) - added


def _mark_deleted(run, seen: set) -> int:
    """After a complete full run: records we hold that the upstream no longer listed are marked deleted."""
    alive = Record.objects.filter(connection_id=run.connection_id, model=run.model, remote_was_deleted=False).order_by()
    gone = [pk for pk, remote_id in alive.values_list("pk", "remote_id").iterator(chunk_size=5000) if remote_id not in seen]
    now = timezone.now()
    for start in range(0, len(gone), CHUNK):
        Record.objects.filter(pk__in=gone[start:start + CHUNK]).update(remote_was_deleted=True, modified_at=now)
    return len(gone)
