"""Passthrough: execute one upstream call for a connection, and keep the function-call log.

Every surface (native, Integry, Merge, Unified) parses its own request shape, then calls `passthrough_execute`.
"""

import dataclasses
import functools
import json
import math
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Subquery
from django.utils import timezone

from connections import client
from connections.models import Connection, Function
from connections.retry_policy import sync_passthrough_policy
from integration_platform import metrics
from integration_platform.errors import InvalidInput, RateLimited, UpstreamTimeout, UpstreamUnreachable
from passthrough import call_log, retries as retrying
from passthrough.formats import function_output, headers_dict
from passthrough.models import FunctionCall
from passthrough.redaction import Redactor, capped_text, harvested_secrets

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# A retry is made only if at least this much of the call's budget is left once its backoff is over.
MIN_ATTEMPT_SECONDS = 1.0


def method_checked(method) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidInput("Invalid input.", [f"method: Must be one of {', '.join(METHODS)}."])
    return method.upper()


def passthrough_execute(*, connection: Connection, method: str, target: client.Target, headers: dict | None = None,
                        body: bytes | None = None, dialect: str, mode: str = FunctionCall.MODE_SYNC,
                        timeout: float | None = None, extra_secrets=(),
                        priority: str = "interactive", permit_wait: float = math.inf,
                        function_id: int | None = None) -> client.UpstreamResponse:
    """Send one call upstream for `connection`, log it (redacted), and return the upstream's answer.

    `priority` is the rate-limit priority: "interactive" (a caller waits) or "background" (async work, syncing);
    `permit_wait` bounds a background call's wait for a permit further. Raises InvalidInput or RateLimited (nothing
    sent, nothing logged) or, after logging, UpstreamTimeout / UpstreamUnreachable. The log row names
    `function_id` (a typed function), else the integration's passthrough function.
    """
    exchange = client.send(connection, method_checked(method), target, headers, body,
                           timeout=timeout if timeout is not None else settings.SYNC_PASSTHROUGH_TIMEOUT,
                           priority=priority, permit_wait=permit_wait)
    call_counted(exchange, connection, dialect, mode)
    if mode == FunctionCall.MODE_SYNC and call_log.batched():
        call_log.writer.submit(functools.partial(function_call_row, exchange, connection=connection, dialect=dialect,
                                                 mode=mode, extra_secrets=extra_secrets, function_id=function_id))
    else:
        function_call_record(exchange, connection=connection, dialect=dialect, mode=mode, extra_secrets=extra_secrets,
                             function_id=function_id)
    if exchange.error is not None:
        raise exchange.error
    return caller_response(exchange)


def caller_response(exchange: client.Exchange) -> client.UpstreamResponse:
    """The upstream's answer as every surface hands it on: a credential we injected, echoed by the upstream in a
    response header, is redacted (merge.md §4: credentials never appear in response headers). The body is the
    upstream's own and is not altered for a sync caller."""
    redactor = Redactor(exchange.secret_values)
    response = exchange.response
    return dataclasses.replace(response, headers=[(name, redactor.text(value)) for name, value in response.headers])


def passthrough_execute_retrying(*, retries: int, method: str, timeout: float | None = None,
                                 **call) -> client.UpstreamResponse:
    """`passthrough_execute` for a sync caller who asked for up to `retries` more attempts (X-Passthrough-Retries).

    Only idempotent methods are retried, only on what connections/retry_policy.py calls transient, after a
    backoff from PASSTHROUGH_RETRY_BASE_SECONDS or the upstream's Retry-After, and only while the whole call stays
    within its budget. Each attempt is logged. The caller gets the last attempt's answer; when our own rate limit
    refuses a retry, the answer the upstream gave before.
    """
    method = method_checked(method)
    deadline = time.monotonic() + (timeout if timeout is not None else settings.SYNC_PASSTHROUGH_TIMEOUT)
    retries = retries if method in retrying.IDEMPOTENT_METHODS else 0
    policy = sync_passthrough_policy(retries)
    for attempt in range(1, retries + 2):
        try:
            response, error = passthrough_execute(method=method, timeout=deadline - time.monotonic(), **call), None
        except (UpstreamTimeout, UpstreamUnreachable) as exc:
            response, error = None, exc
        except RateLimited:
            if attempt == 1:
                raise
            break
        delay = policy.next_delay(attempt, idempotent=True, response=response, error=error)  # retries: idempotent only
        if delay is None or time.monotonic() + delay + MIN_ATTEMPT_SECONDS > deadline:
            break
        time.sleep(delay)
    if error is not None:
        raise error
    return response


def function_call_record(exchange: client.Exchange, *, connection: Connection, dialect: str, mode: str,
                         extra_secrets=(), store_bodies: bool = True, function_id: int | None = None) -> FunctionCall:
    """Write one redacted, size-capped log row for an executed call."""
    call = function_call_row(exchange, connection=connection, dialect=dialect, mode=mode, extra_secrets=extra_secrets,
                             store_bodies=store_bodies, function_id=function_id)
    call.save(force_insert=True)
    # The instance holds the subquery, not its value: make the field deferred (read from the row if ever asked for).
    vars(call).pop("function_id")
    return call


def verify_call_record(exchange: client.Exchange, probe: Connection) -> None:
    """Log the connect flow's `verify` request of typed credentials, redacted like any call. `probe` is unsaved: the
    connection being re-linked (its id), or none yet."""
    call_counted(exchange, probe, FunctionCall.DIALECT_NATIVE, FunctionCall.MODE_SYNC)
    call = function_call_row(exchange, connection=probe, dialect=FunctionCall.DIALECT_NATIVE, mode=FunctionCall.MODE_SYNC)
    if probe.pk is None:
        call.connection = None
    call.save(force_insert=True)


def passthrough_function_ids(integration_id):
    """The id of the integration's passthrough function (the first by name), as a query."""
    return Function.objects.filter(integration_id=integration_id, type=Function.TYPE_PASSTHROUGH).order_by("name").values("pk")


def call_counted(exchange: client.Exchange, connection: Connection, dialect: str, mode: str) -> None:
    """Count an executed call in the metrics, on the caller's path: the log row may be built later, in the writer
    thread, and a scrape right after the answer must see the call."""
    response = exchange.response
    metrics.call_logged(connection.integration.slug, dialect, mode, response.status if response else None, exchange.duration_ms)


def function_call_row(exchange: client.Exchange, *, connection: Connection, dialect: str, mode: str,
                      extra_secrets=(), store_bodies: bool = True, function_id: int | None = None) -> FunctionCall:
    """The unsaved log row of an executed call, redacted and size-capped (syncing writes its rows in bulk)."""
    response = exchange.response
    # Besides the injected credentials: whatever the caller or the upstream put in secret headers or parameters
    # (Cookie, Set-Cookie, a caller's own Authorization...), so that an echo of it in a body is redacted as well.
    harvested = harvested_secrets(exchange.url, [exchange.request_headers.items(), response.headers if response else []])
    redactor = Redactor([*exchange.secret_values, *extra_secrets, *harvested])
    limit = settings.FUNCTION_CALL_BODY_LIMIT
    # Redacted before the cut, so a secret the cut would split is still found whole.
    request_body, request_truncated = (capped_text(exchange.request_body, limit, redactor) if store_bodies
                                       else ("", False))
    response_body, response_truncated = (capped_text(response.body, limit, redactor) if response and store_bodies
                                         else ("", False))
    return FunctionCall(
        organization_id=connection.organization_id,
        connection=connection,
        integration_id=connection.integration_id,
        # Read with the connection (connection_lookup), else looked up by the INSERT itself: no statement of its own.
        function_id=(function_id or getattr(connection, "passthrough_function_id", None)
                     or Subquery(passthrough_function_ids(connection.integration_id)[:1])),
        dialect=dialect,
        mode=mode,
        method=exchange.method,
        url=redactor.url(exchange.url),
        request_headers=redactor.headers(exchange.request_headers),
        request_body=request_body,
        request_body_truncated=request_truncated,
        request_size=len(exchange.request_body or b""),
        response_status=response.status if response else None,
        response_headers=redactor.headers(headers_dict(response)) if response else {},
        response_body=response_body,
        response_body_truncated=response_truncated,
        response_size=len(response.body) if response else 0,
        duration_ms=exchange.duration_ms,
        error=redactor.text(str(exchange.error)) if exchange.error else "",
        started_at=exchange.started_at,
    )


def function_call_execute(*, connection: Connection, arguments, dialect: str, extra_secrets=(), retries: int = 0) -> dict:
    """Call a connection's passthrough function with Integry-style arguments; returns `{network_code, output}`."""
    if not isinstance(arguments, dict):
        raise InvalidInput("Invalid input.", ["body: Must be a JSON object of function arguments."])
    args = {k: v for k, v in arguments.items() if v is not None}  # tool wrappers send absent arguments as null
    errors = [f"{name}: This parameter is required." for name in ("method", "url") if name not in args]
    errors += [f"{name}: Must be an object." for name in ("headers", "query") if name in args and not isinstance(args[name], dict)]
    if "url" in args and not isinstance(args["url"], str):
        errors.append("url: Must be a string.")
    try:
        json.dumps(args, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # JSON allows "\ud800"; no URL, header or body can carry it
        errors.append("arguments: Contain an unpaired surrogate (invalid Unicode).")
    if errors:
        raise InvalidInput("Could not call the function due to invalid input. Please see `error_details` for further information.", errors)
    headers = {str(k): str(v) for k, v in args.get("headers", {}).items()}
    body = args.get("body")
    if isinstance(body, (dict, list, int, float, bool)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    target = client.absolute_url_target(connection.integration, args["url"], [(str(k), str(v)) for k, v in args.get("query", {}).items()])
    response = passthrough_execute_retrying(connection=connection, method=args["method"], target=target,
                                            headers=headers, body=body, dialect=dialect, extra_secrets=extra_secrets,
                                            retries=retries)
    return function_output(response)


def function_calls_purge(older_than_days: int) -> int:
    """Delete log rows older than the retention period; returns how many."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = FunctionCall.objects.filter(created_at__lt=cutoff).delete()
    return deleted
