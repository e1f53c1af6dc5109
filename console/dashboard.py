"""The operator dashboard's numbers: aggregate queries over indexed columns, one per time window.

Every number comes with the admin list it counts, so an operator goes from a number to the rows behind it.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection as db
from django.db.models import Aggregate, Count, FloatField
from django.utils import timezone

from connections import ratelimit
from console import rollup
from console.models import CallMinute
from connections.models import Integration, WebhookDelivery
from passthrough.admin import OUTCOMES, changelist_url
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from syncing.models import SyncRun

WINDOWS = {"1h": ("Last hour", timedelta(hours=1)), "24h": ("Last 24 hours", timedelta(days=1))}
ERROR_OUTCOMES = ["client_error", "rate_limited", "upstream_error", "network_error"]


class PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont: the interpolated percentile, computed in the database."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def percentile(ordered: list[int], fraction: float) -> float | None:
    """percentile_cont over an ordered list (linear interpolation between the closest ranks)."""
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Number:
    value: float | int | None
    url: str


@dataclass
class IntegrationRow:
    integration: Integration
    calls: Number
    outcomes: dict = field(default_factory=dict)
    error_rate: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None


def exact_totals(calls) -> dict:
    """Per integration: calls, calls per outcome class, exact p50/p95 duration (percentile_cont)."""
    counts = {key: Count("id", filter=condition) for key, (_, condition) in OUTCOMES.items()}
    if db.vendor == "postgresql":
        counts |= {"p50": PercentileCont("duration_ms", fraction=0.5), "p95": PercentileCont("duration_ms", fraction=0.95)}
    totals = {row["integration"]: row for row in calls.values("integration").annotate(n=Count("id"), **counts)}
    if db.vendor != "postgresql":
        durations = {}
        for integration_id, duration in calls.order_by("duration_ms").values_list("integration", "duration_ms"):
            durations.setdefault(integration_id, []).append(duration)
        for integration_id, row in totals.items():
            row["p50"], row["p95"] = (percentile(durations[integration_id], f) for f in (0.5, 0.95))
    return totals


def rolled_up_totals(since, rolled_until, now) -> dict:
    """Per integration: the per-minute rollups up to `rolled_until`, plus the log itself after it; p50/p95 from
    the merged duration histogram."""
    totals = {}

    def add(integration_id, outcomes, durations):
        row = totals.setdefault(integration_id, {key: 0 for key in OUTCOMES} | {"durations": [0] * len(durations)})
        for key in OUTCOMES:
            row[key] += outcomes[key]
        row["durations"] = [a + b for a, b in zip(row["durations"], durations)]

    minutes = CallMinute.objects.filter(minute__gte=since, minute__lt=rolled_until)
    for integration_id, durations, *counts in minutes.values_list("integration", "durations", *OUTCOMES):
        add(integration_id, dict(zip(OUTCOMES, counts)), durations)
    tail = FunctionCall.objects.filter(created_at__gte=rolled_until, integration__isnull=False)
    buckets = rollup.bucket_counts()
    for row in tail.values("integration").annotate(**{k: Count("id", filter=c) for k, (_, c) in OUTCOMES.items()}, **buckets):
        add(row["integration"], row, [row[key] for key in buckets])
    for row in totals.values():
        row["n"] = sum(row[key] for key in OUTCOMES)
        row["p50"], row["p95"] = (rollup.bucket_percentile(row["durations"], f) for f in (0.5, 0.95))
    return totals


def call_rows(since_key: str, now) -> list[IntegrationRow]:
    """Per integration with calls in the window: calls, calls per outcome class, error rate, p50/p95 duration.
    The last hour is read from the log; the last day from the per-minute rollups where there are some."""
    since = now - WINDOWS[since_key][1]
    rolled_until = rollup.rolled_up_until() if since_key == "24h" else None
    if rolled_until is not None and rolled_until > since:
        totals = rolled_up_totals(since, rolled_until, now)
    else:
        totals = exact_totals(FunctionCall.objects.filter(created_at__gte=since, integration__isnull=False))
    rows = []
    for integration in Integration.objects.filter(pk__in=totals).order_by("slug"):
        total = totals[integration.pk]
        link = {"integration__id__exact": integration.pk, "since": since_key}
        row = IntegrationRow(integration, Number(total["n"], changelist_url(FunctionCall, **link)),
                             p50_ms=total["p50"], p95_ms=total["p95"])
        row.outcomes = {key: Number(total[key], changelist_url(FunctionCall, **link, outcome=key)) for key in OUTCOMES}
        row.error_rate = sum(total[key] for key in ERROR_OUTCOMES) / total["n"]
        rows.append(row)
    return rows


def rate_limits() -> list[tuple[Integration, list[str]]]:
    """Each enabled integration with declared limits: use of each window now, and any upstream pause."""
    limiter = ratelimit.limiter()
    return [(integration, limiter.usage(integration))
            for integration in Integration.objects.filter(enabled=True).exclude(rate_limits=[]).order_by("slug")]


def backlog(now) -> dict[str, Number]:
    """What is waiting or has failed: syncs, webhook deliveries, async requests."""
    day_ago = now - timedelta(days=1)
    failed_syncs = SyncRun.objects.filter(status=SyncRun.FAILED, started_at__gte=day_ago)
    failed_webhooks = WebhookDelivery.objects.filter(status=WebhookDelivery.FAILED, created_at__gte=day_ago)
    retrying_webhooks = WebhookDelivery.objects.filter(status=WebhookDelivery.PENDING, attempts__gt=0)
    waiting = AsyncPassthroughRequest.objects.filter(status__in=[AsyncPassthroughRequest.PENDING, AsyncPassthroughRequest.RUNNING])
    failed_async = AsyncPassthroughRequest.objects.filter(status=AsyncPassthroughRequest.FAILED, finished_at__gte=day_ago)
    since = day_ago.isoformat()
    return {
        "Sync runs failed (24 h)": Number(failed_syncs.count(), changelist_url(
            SyncRun, status__exact=SyncRun.FAILED, started_at__gte=since)),
        "Webhook deliveries failed (24 h)": Number(failed_webhooks.count(), changelist_url(
            WebhookDelivery, status__exact=WebhookDelivery.FAILED, created_at__gte=since)),
        "Webhook deliveries retrying": Number(retrying_webhooks.count(), changelist_url(
            WebhookDelivery, status__exact=WebhookDelivery.PENDING, attempts__gt=0)),
        "Async requests waiting or running": Number(waiting.count(), changelist_url(
            AsyncPassthroughRequest, status__in=f"{AsyncPassthroughRequest.PENDING},{AsyncPassthroughRequest.RUNNING}")),
        "Async requests failed (24 h)": Number(failed_async.count(), changelist_url(
            AsyncPassthroughRequest, status__exact=AsyncPassthroughRequest.FAILED,
            finished_at__gte=since)),
    }


def dashboard(now=None) -> dict:
    now = now or timezone.now()
    return {"windows": [(label, call_rows(key, now)) for key, (label, _) in WINDOWS.items()],
            "outcomes": [(key, label) for key, (label, _) in OUTCOMES.items()],
            "rate_limits": rate_limits(), "backlog": backlog(now)}
