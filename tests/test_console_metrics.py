"""/metrics: off unless enabled, a bearer token when set, and one sum over every gunicorn worker (multiprocess)."""

import json
import os
from http.client import HTTPConnection

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import make_connection
from tests.test_ratelimit_processes import counting_upstream, serve


def samples(text, name):
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


@pytest.mark.django_db
def test_metrics_are_off_unless_enabled(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_metrics_token_is_required_when_set(client, settings):
    settings.METRICS_ENABLED, settings.METRICS_TOKEN = True, "scrape-SECRET"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-SECRET")
    assert response.status_code == 200
    assert "platform_upstream_calls" in response.content.decode()


@pytest.mark.django_db
def test_calls_are_counted_by_integration_surface_and_outcome(client, settings, alice, integration):
    from connections import client as outbound
    from passthrough.services import call_counted

    settings.METRICS_ENABLED = True
    connection, _ = make_connection(alice.organization, integration)
    key = (("integration", "acme"), ("outcome", "upstream_error"), ("surface", "merge/async"))
    before = samples(client.get("/metrics").content.decode(), "platform_upstream_calls_total").get(key, 0)
    exchange = outbound.Exchange(method="GET", url="https://api.acme.test/v1/x", request_headers={}, request_body=b"",
                                 started_at=timezone.now(), duration_ms=120,
                                 response=outbound.UpstreamResponse(status=503, headers=[], body=b""))
    call_counted(exchange, connection, "merge", "async")
    after = samples(client.get("/metrics").content.decode(), "platform_upstream_calls_total").get(key, 0)
    assert after == before + 1


def test_two_gunicorn_workers_add_up_in_one_scrape(transactional_db, settings, tmp_path):
    from django.db import connection as db

    if db.vendor != "postgresql" or not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("Runs on the PostgreSQL + Redis leg (the served workers share the test database).")
    from tests.factories import make_api_key, make_integration

    s = db.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}",
           "CACHE_URL": settings.RATE_LIMIT_REDIS_URL, "SERVE_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING",
           "METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.pop("DRAMATIQ_BROKER_URL", None)
    calls = 40
    with counting_upstream() as (upstream_url, arrivals):
        integration = make_integration(slug="counted", base_url=upstream_url)
        key, api_key = make_api_key("alice")
        _, token = make_connection(key.organization, integration)
        headers = {"Authorization": f"Bearer {api_key}", "X-Account-Token": token, "Content-Type": "application/json"}
        with serve(env) as port:
            for _ in range(calls):  # a new connection each time: gunicorn hands them to either worker
                conn = HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/api/v1/passthrough", body=json.dumps({"method": "GET", "path": "/x"}), headers=headers)
                assert conn.getresponse().status == 200
                conn.close()
            scrapes = []
            for _ in range(4):
                conn = HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/metrics")
                scrapes.append(conn.getresponse().read().decode())
                conn.close()
    assert len(arrivals) == calls
    assert len(list(tmp_path.glob("counter_*.db"))) >= 2  # both workers served and wrote their values
    key = (("integration", "counted"), ("outcome", "success"), ("surface", "native/sync"))
    for text in scrapes:  # whichever worker answers the scrape, it reports every worker's calls
        assert samples(text, "platform_upstream_calls_total")[key] == calls
        assert sum(v for k, v in samples(text, "platform_upstream_call_duration_seconds_count").items()
                   if ("integration", "counted") in k) == calls


@pytest.mark.django_db
def test_queue_depth_is_read_from_the_rows_at_scrape_time(client, settings, alice_connection):
    from passthrough.models import AsyncPassthroughRequest

    settings.METRICS_ENABLED = True
    connection, _ = alice_connection
    for status in ("pending", "pending", "running", "done"):
        AsyncPassthroughRequest.objects.create(organization=connection.organization, connection=connection,
                                               dialect="native", request={}, status=status, deadline_at=timezone.now())
    depth = samples(client.get("/metrics").content.decode(), "platform_queue_depth")
    assert depth[(("queue", "async_passthrough"), ("status", "pending"))] == 2
    assert depth[(("queue", "async_passthrough"), ("status", "running"))] == 1
    assert depth[(("queue", "webhooks"), ("status", "pending"))] == 0


def test_our_429s_and_upstream_pauses_are_counted(client, settings, alice_connection):
    from connections import ratelimit
    from integration_platform.errors import RateLimited

    settings.METRICS_ENABLED = True
    connection, _ = alice_connection
    connection.integration.rate_limits = [{"requests": 1, "per_seconds": 60}]
    connection.integration.save()

    def value(name, labels):
        return samples(client.get("/metrics").content.decode(), name).get(labels, 0)

    refused_key = (("integration", "acme"), ("priority", ratelimit.INTERACTIVE))
    paused_key = (("integration", "acme"),)
    refused, paused = value("platform_rate_limited_total", refused_key), value("platform_upstream_pauses_total", paused_key)
    limiter = ratelimit.limiter()
    limiter.acquire(connection)
    with pytest.raises(RateLimited):
        limiter.acquire(connection)
    limiter.observe(connection, 429, [("Retry-After", "5")])
    assert value("platform_rate_limited_total", refused_key) == refused + 1
    assert value("platform_upstream_pauses_total", paused_key) == paused + 1
