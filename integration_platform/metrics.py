"""The metrics registry: counters and histograms every app increments with one call, scraped at /metrics.

With several processes (gunicorn workers, Dramatiq workers) set PROMETHEUS_MULTIPROC_DIR to one empty directory
shared by all of them, before they start: each process writes its values there and a scrape adds them up
(prometheus_client's multiprocess mode).
"""

from prometheus_client import Counter, Histogram

CALLS = Counter("platform_upstream_calls", "Upstream calls made, by integration, surface and outcome class.",
                ["integration", "surface", "outcome"])
CALL_SECONDS = Histogram("platform_upstream_call_duration_seconds", "Upstream call duration.", ["integration"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
LIMITER_WAIT_SECONDS = Histogram("platform_rate_limit_wait_seconds", "Time a call waited for our rate-limit permit.",
                                ["integration", "priority"], buckets=(0, 0.01, 0.1, 0.5, 1, 5, 30))
RATE_LIMITED = Counter("platform_rate_limited", "Calls our limiter refused: interactive ones answered 429, background "
                       "ones delayed.", ["integration", "priority"])
UPSTREAM_PAUSES = Counter("platform_upstream_pauses", "Pauses an upstream imposed (Retry-After, rate-limit reset).",
                          ["integration"])
ASYNC_JOBS = Counter("platform_async_jobs", "Async passthrough requests finished, by status.", ["status"])
SYNC_RUNS = Counter("platform_sync_runs", "Sync runs finished, by status.", ["model", "status"])
SYNC_RECORDS = Counter("platform_sync_records", "Records changed by syncing.", ["model", "change"])
WEBHOOK_DELIVERIES = Counter("platform_webhook_attempts", "Webhook delivery attempts, by outcome class.", ["outcome"])


def outcome_of(status: int | None) -> str:
    """The outcome class of one upstream answer: the call log's filter, the dashboard and these metrics share it."""
    if status is None:
        return "network_error"
    if status == 429:
        return "rate_limited"
    return "success" if status < 400 else "client_error" if status < 500 else "upstream_error"


def call_logged(integration_slug: str, dialect: str, mode: str, status: int | None, duration_ms: int) -> None:
    CALLS.labels(integration_slug, f"{dialect}/{mode}", outcome_of(status)).inc()
    CALL_SECONDS.labels(integration_slug).observe(duration_ms / 1000)


def sync_run_finished(run) -> None:
    SYNC_RUNS.labels(run.model, run.status).inc()
    for change in ("added", "updated", "deleted"):
        SYNC_RECORDS.labels(run.model, change).inc(getattr(run, change))
