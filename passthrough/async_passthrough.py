"""Async passthrough: receipts now, the upstream call in a worker, results kept 24 h.

The `AsyncPassthroughRequest` row is the source of truth. A job is claimed atomically (pending → running), so a
duplicate broker message never runs a call twice. The sweeper finds what the broker lost: pending rows never picked
up (re-enqueued), running rows whose worker died (re-run if the method is idempotent, else failed), rows past the
global deadline (failed) and results past retention (deleted).

Calls are background work for the rate limiter. A job that finds no permit goes back to pending with
`next_attempt_at` set and a delayed message (nothing was sent: no attempt). A network error, 429 or 5xx is retried
(passthrough/retries.py) after 1 min, 2 min... with jitter, up to ASYNC_PASSTHROUGH_MAX_ATTEMPTS, never sooner than
the upstream's Retry-After. All of it stays within the global deadline: a retry that could not start before it is
not made, and the request ends with its last answer (or error).
"""

import logging
import math
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connections import crypto
from connections.client import clean_request_headers, ensure_usable
from connections.models import Connection
from connections.ratelimit import PermitDelayed
from connections.retry_policy import async_passthrough_policy
from integration_platform import metrics
from integration_platform.errors import (NotFound, PlatformError, RateLimited, SharedStoreUnavailable, UpstreamTimeout,
                                         UpstreamUnreachable)
from passthrough import services
from passthrough.envelopes import Envelope
from passthrough.formats import remote_response
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from passthrough.redaction import Redactor, harvested_secrets
from passthrough.retries import IDEMPOTENT_METHODS

log = logging.getLogger(__name__)
# A retrieval-limit entry lives this many windows: past its window it is taken over, not expired (retrieval_allowed).
POLL_ENTRY_WINDOWS = 6
WORKER_LOST = "Worker lost while the request was in flight; not retried to avoid a duplicate side effect."
DEADLINE_PASSED = "The request did not complete within the {seconds} s global deadline (queue wait included)."
ENVELOPE_GONE = "The stored request is gone (it is deleted when a request finishes)."
NO_PERMIT = ("The request could not be sent within the {seconds} s global deadline: the integration's rate limit "
             "had no permit free in time.")


def async_passthrough_create(*, connection: Connection, envelope: Envelope, dialect: str,
                             extra_secrets=()) -> AsyncPassthroughRequest:
    """Validate like a sync call (raises InvalidInput, nothing stored), store the receipt, enqueue after commit.

    The envelope is stored encrypted (until the job finishes); the row's readable `request` is a redacted summary.
    `extra_secrets` (our API key, the account token) are redacted from it too."""
    envelope.target(connection.integration)
    clean_request_headers(envelope.headers)
    ensure_usable(connection)
    with transaction.atomic():
        request = AsyncPassthroughRequest.objects.create(
            organization_id=connection.organization_id, connection=connection, dialect=dialect,
            request=_summary(envelope, _redactor(connection, extra_secrets, envelope)),
            request_ciphertext=crypto.encrypt_json(envelope.as_json()),
            deadline_at=timezone.now() + timedelta(seconds=settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS),
        )
        transaction.on_commit(lambda: enqueue(request.pk))
    return request


def _redactor(connection: Connection, extra_secrets=(), envelope: Envelope | None = None) -> Redactor:
    """The connection's credentials, our caller's, and whatever the caller put in secret headers or parameters."""
    harvested = harvested_secrets(f"/?{urlencode(envelope.query)}", [envelope.headers.items()]) if envelope else []
    return Redactor([*connection.secret_values(), *extra_secrets, *harvested])


def _summary(envelope: Envelope, redactor: Redactor) -> dict:
    """What the row keeps readable (the admin shows it): the envelope without its body, redacted."""
    path, _, query = envelope.path.partition("?")
    path += f"?{urlencode(redactor.query(parse_qsl(query, keep_blank_values=True)), safe='/:<>')}" if query else ""
    return {"method": envelope.method, "path": redactor.text(path),
            "base_url_override": redactor.text(envelope.base_url_override or "") or None,
            "headers": redactor.headers(envelope.headers), "query": redactor.query(envelope.query),
            "normalize_response": envelope.normalize_response}


def _stored_result(result: dict, redactor: Redactor) -> dict:
    """The answer as stored for 24 h: credentials an upstream echoed are redacted (a base64 body is left as is)."""
    if result["response_type"] == "JSON":
        return redactor.json(result)
    return {**redactor.json({k: v for k, v in result.items() if k != "response"}), "response": result["response"]}


def enqueue(request_id, delay_seconds: float = 0) -> None:
    """Wake a worker (after a delay, for a retry). A broker outage is not an error for the caller: the sweeper
    enqueues the row later."""
    from passthrough.tasks import run_async_passthrough

    try:
        if delay_seconds > 0:
            run_async_passthrough.send_with_options(args=(str(request_id),), delay=math.ceil(delay_seconds * 1000))
        else:
            run_async_passthrough.send(str(request_id))
    except Exception:
        log.warning("Could not enqueue async passthrough %s; the sweeper will retry.", request_id, exc_info=True)


def async_passthrough_run(request_id) -> None:
    """Claim and run one attempt of a request (a worker's job). Does nothing if another worker claimed it already,
    or if it is waiting for a retry (an early message: the delayed one, or the sweeper, wakes it later)."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = AsyncPassthroughRequest.objects.filter(due, pk=request_id, status=AsyncPassthroughRequest.PENDING).update(
        status=AsyncPassthroughRequest.RUNNING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return
    request = AsyncPassthroughRequest.objects.select_related("connection__integration", "organization").get(pk=request_id)
    remaining = (request.deadline_at - now).total_seconds()
    if remaining <= 0:
        return _finish(request, error=DEADLINE_PASSED.format(seconds=settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS))
    if not request.request_ciphertext:
        return _finish(request, error=ENVELOPE_GONE)
    envelope = Envelope.from_json(crypto.decrypt_json(request.request_ciphertext))
    response = error = None
    try:
        response = services.passthrough_execute(
            connection=request.connection, method=envelope.method, target=envelope.target(request.connection.integration),
            headers=envelope.headers, body=envelope.body, dialect=request.dialect, mode=FunctionCall.MODE_ASYNC,
            timeout=min(settings.ASYNC_PASSTHROUGH_OUTBOUND_TIMEOUT, remaining), priority="background",
            permit_wait=remaining,
        )
    except (PermitDelayed, SharedStoreUnavailable) as exc:
        # Nothing was sent: wait for a permit (or for the shared store to be back) without counting an attempt.
        if not _retry_later(request, getattr(exc, "delay", exc.retry_after), attempted=False):
            _finish(request, error=NO_PERMIT.format(seconds=settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS))
        return
    except (UpstreamTimeout, UpstreamUnreachable) as exc:
        error = exc
    except PlatformError as exc:
        return _finish(request, error=exc.message)
    delay = async_passthrough_policy().next_delay(request.attempts, idempotent=envelope.method in IDEMPOTENT_METHODS,
                                                  response=response, error=error, now=timezone.now().timestamp())
    if delay is not None and _retry_later(request, delay, attempted=True):
        return
    if error is not None:
        return _finish(request, error=error.message)
    result = remote_response(envelope.method, envelope.path, response, normalize=envelope.normalize_response)
    _finish(request, result=_stored_result(result, _redactor(request.connection)))


def _retry_later(request, delay: float, *, attempted: bool) -> bool:
    """Back to pending, woken in `delay` s; False (nothing changed) if that is past the global deadline.
    A wait for a permit sent nothing, so it is not counted as an attempt."""
    next_attempt_at = timezone.now() + timedelta(seconds=delay)
    if next_attempt_at >= request.deadline_at:
        return False
    moved = AsyncPassthroughRequest.objects.filter(pk=request.pk, status=AsyncPassthroughRequest.RUNNING).update(
        status=AsyncPassthroughRequest.PENDING, next_attempt_at=next_attempt_at, claimed_at=None,
        attempts=F("attempts") if attempted else F("attempts") - 1)
    if moved:
        log.info("Async passthrough %s: %s in %.1f s.", request.pk, "retry" if attempted else "waiting for a permit",
                 delay)
        enqueue(request.pk, delay)
    return True


def _finish(request, *, result=None, error=""):
    """Record the outcome once (only a running row can finish), delete the stored envelope, then notify the
    organization's webhook."""
    finished = AsyncPassthroughRequest.objects.filter(pk=request.pk, status=AsyncPassthroughRequest.RUNNING).update(
        status=AsyncPassthroughRequest.FAILED if error else AsyncPassthroughRequest.DONE,
        result=result, error=error, finished_at=timezone.now(), request_ciphertext="")
    if finished:
        metrics.ASYNC_JOBS.labels(AsyncPassthroughRequest.FAILED if error else AsyncPassthroughRequest.DONE).inc()
        _notify(request.pk)


def _notify(request_id):
    from connections.webhooks import webhook_send

    request = AsyncPassthroughRequest.objects.select_related("connection__integration", "organization").get(pk=request_id)
    webhook_send(request.organization, "async_passthrough.completed", connection=request.connection, data={
        "async_passthrough_receipt_id": str(request.pk),
        "status": "DONE" if request.status == AsyncPassthroughRequest.DONE else "FAILED",
    })


def async_passthrough_sweep() -> dict:
    """Repair what the broker or a dead worker left behind; delete expired results. Safe to run concurrently."""
    now = timezone.now()
    rows = AsyncPassthroughRequest.objects
    overdue = rows.filter(status__in=[AsyncPassthroughRequest.PENDING, AsyncPassthroughRequest.RUNNING], deadline_at__lte=now)
    timed_out = overdue.update(status=AsyncPassthroughRequest.FAILED, finished_at=now, request_ciphertext="",
                               error=DEADLINE_PASSED.format(seconds=settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS))
    lost = rows.filter(status=AsyncPassthroughRequest.RUNNING,
                       claimed_at__lt=now - timedelta(seconds=settings.ASYNC_PASSTHROUGH_LOST_AFTER_SECONDS))
    retried = failed = 0
    for request in lost:
        if request.method in IDEMPOTENT_METHODS:
            retried += rows.filter(pk=request.pk, status=AsyncPassthroughRequest.RUNNING).update(status=AsyncPassthroughRequest.PENDING)
        elif rows.filter(pk=request.pk, status=AsyncPassthroughRequest.RUNNING).update(
                status=AsyncPassthroughRequest.FAILED, error=WORKER_LOST, finished_at=now, request_ciphertext=""):
            failed += 1
            _notify(request.pk)
    stale_before = now - timedelta(seconds=settings.ASYNC_PASSTHROUGH_REQUEUE_AFTER_SECONDS)
    stale = rows.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=stale_before),
                        status=AsyncPassthroughRequest.PENDING, created_at__lt=stale_before)
    requeued = 0
    for request_id in stale.values_list("pk", flat=True):
        enqueue(request_id)
        requeued += 1
    return {"timed_out": timed_out, "lost_retried": retried, "lost_failed": failed, "requeued": requeued,
            "purged": async_results_purge()}


def async_results_purge(now=None) -> int:
    """Delete finished requests older than the retention period; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.ASYNC_PASSTHROUGH_RETENTION_HOURS)
    deleted, _ = AsyncPassthroughRequest.objects.filter(finished_at__lt=cutoff).delete()
    return deleted


def async_passthrough_get(organization, request_id, connection=None) -> AsyncPassthroughRequest:
    """A receipt of this organization (and connection, if given), unexpired; NotFound otherwise."""
    cutoff = timezone.now() - timedelta(hours=settings.ASYNC_PASSTHROUGH_RETENTION_HOURS)
    requests = AsyncPassthroughRequest.objects.filter(organization=organization).exclude(finished_at__lt=cutoff)
    if connection is not None:
        requests = requests.filter(connection=connection)
    try:
        request_id = uuid.UUID(str(request_id))
    except ValueError:
        raise NotFound("Not found.") from None
    request = requests.filter(pk=request_id).first()
    if request is None:
        raise NotFound("Not found.")
    return request


def retrieval_allowed(request_id) -> None:
    """At most one retrieval per receipt per interval, across processes (the shared cache); RateLimited otherwise.

    The window starts at the allowed request; refused requests do not restart it, and Retry-After counts down.
    """
    interval = settings.ASYNC_RESULT_POLL_INTERVAL_SECONDS
    key = f"async-poll:{request_id}"
    now = timezone.now().timestamp()
    # The window is the start time stored in the entry, not the entry's expiry: the database cache keeps expiry times
    # in whole seconds (a window would last up to 11 s). The entry outlives its window; once the window is over, the
    # next retrieval takes it over, once across processes (claimed by the start time it replaces).
    lifetime = interval * POLL_ENTRY_WINDOWS
    if cache.add(key, now, timeout=lifetime):
        return
    started = cache.get(key)
    if started is None or now - started >= interval:
        if cache.add(f"{key}:after:{started}", now, timeout=interval):
            cache.set(key, now, timeout=lifetime)
            return
        started = cache.get(key, now)  # another retrieval took this window a moment ago
    retry_after = max(1, math.ceil(interval - (now - started)))
    raise RateLimited(f"Results of one receipt may be fetched once every {interval} s.", retry_after=retry_after)
