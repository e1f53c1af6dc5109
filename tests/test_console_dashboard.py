"""The operator dashboard: numbers per integration and window, checked against hand-computed ones, each a link."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from connections.models import WebhookDelivery
from console.dashboard import dashboard
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from syncing.models import SyncRun
from tests.factories import make_connection, make_function_call


@pytest.fixture
def logged(alice, integration):
    """Five calls in the last hour (one per outcome class) and one three hours ago."""
    connection, _ = make_connection(alice.organization, integration, end_user_id="customer-42")
    for status, duration in [(200, 10), (200, 20), (404, 30), (502, 40), (None, 100)]:
        make_function_call(alice.organization, connection, response_status=status, duration_ms=duration)
    old = make_function_call(alice.organization, connection, response_status=429, duration_ms=1000)
    FunctionCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=3))
    return connection


def numbers(row):
    return (row.calls.value, {key: n.value for key, n in row.outcomes.items()}, round(row.error_rate, 4),
            row.p50_ms, round(row.p95_ms, 3))


@pytest.mark.django_db
def test_last_hour_and_day_per_integration(logged):
    (_, [hour]), (_, [day]) = dashboard()["windows"]
    assert numbers(hour) == (5, {"success": 2, "client_error": 1, "rate_limited": 0, "upstream_error": 1,
                                 "network_error": 1}, 0.6, 30, 88.0)  # p95: 40 + (100 - 40) * 0.8
    assert numbers(day) == (6, {"success": 2, "client_error": 1, "rate_limited": 1, "upstream_error": 1,
                                "network_error": 1}, round(4 / 6, 4), 35, 775.0)  # p95: 100 + (1000 - 100) * 0.75


@pytest.mark.django_db
def test_every_number_links_to_the_calls_it_counts(admin_client, logged):
    (_, [hour]), _ = dashboard()["windows"]
    listed = admin_client.get(hour.outcomes["upstream_error"].url).content.decode()
    assert listed.count('title="Upstream error (5xx)">502<') == 1 and ">200<" not in listed
    assert admin_client.get(hour.calls.url).status_code == 200


@pytest.mark.django_db
def test_backlog_counts_failing_syncs_webhooks_and_async_requests(alice, logged):
    SyncRun.objects.create(connection=logged, model="contacts", status=SyncRun.FAILED, error="HTTP 500")
    SyncRun.objects.create(connection=logged, model="contacts", status=SyncRun.DONE)
    WebhookDelivery.objects.create(organization=alice.organization, event="e", url="https://h.test", payload={},
                                   status=WebhookDelivery.FAILED, attempts=6)
    WebhookDelivery.objects.create(organization=alice.organization, event="e", url="https://h.test", payload={}, attempts=2)
    for status in ("pending", "running", "failed", "done"):
        AsyncPassthroughRequest.objects.create(organization=alice.organization, connection=logged, dialect="native",
                                               request={}, status=status, deadline_at=timezone.now(),
                                               finished_at=timezone.now() if status in ("failed", "done") else None)
    backlog = {label: number.value for label, number in dashboard()["backlog"].items()}
    assert backlog == {"Sync runs failed (24 h)": 1, "Webhook deliveries failed (24 h)": 1,
                       "Webhook deliveries retrying": 1, "Async requests waiting or running": 2,
                       "Async requests failed (24 h)": 1}


@pytest.mark.django_db
def test_backlog_links_list_what_they_count(admin_client, alice, logged):
    SyncRun.objects.create(connection=logged, model="contacts", status=SyncRun.FAILED, error="HTTP 500 boom")
    for label, number in dashboard()["backlog"].items():
        response = admin_client.get(number.url)
        assert response.status_code == 200, label
    assert "HTTP 500 boom" in admin_client.get(dashboard()["backlog"]["Sync runs failed (24 h)"].url).content.decode()


@pytest.mark.django_db
def test_dashboard_is_linked_first_from_the_admin_index_and_renders(admin_client, logged):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert index.index(reverse("console-dashboard")) < index.index("Connections")
    html = admin_client.get(reverse("console-dashboard")).content.decode()
    assert "Calls — Last hour" in html and ">acme<" in html and "88 ms" in html and "60 %" in html


@pytest.mark.django_db
def test_dashboard_needs_a_staff_login(client):
    assert client.get(reverse("console-dashboard")).status_code == 302


@pytest.mark.django_db
def test_the_day_window_reads_rollups_and_the_log_after_them(logged):
    from console import rollup
    from console.models import CallMinute

    rollup.roll_up(now=timezone.now())  # settles only the call of three hours ago
    assert CallMinute.objects.count() == 1
    (_, [hour]), (_, [day]) = dashboard()["windows"]
    assert numbers(hour)[:3] == (5, {"success": 2, "client_error": 1, "rate_limited": 0, "upstream_error": 1,
                                     "network_error": 1}, 0.6)
    # Durations 10, 20 | 30, 40 | 100 | 1000 fall in the buckets [10, 25), [25, 50), [100, 150), [1000, 1500):
    # p50 = rank 3 of 6 = 25 + 25 * 1/2; p95 = rank 5.7 = 1000 + 500 * 0.7.
    assert numbers(day) == (6, {"success": 2, "client_error": 1, "rate_limited": 1, "upstream_error": 1,
                                "network_error": 1}, round(4 / 6, 4), 37.5, 1350.0)


@pytest.mark.django_db
def test_rolling_up_twice_counts_each_call_once(logged):
    from console import rollup

    later = timezone.now() + timedelta(minutes=10)
    assert rollup.roll_up(now=later) in (2, 3)  # the minute of three hours ago and the minute(s) of now
    assert rollup.roll_up(now=later) == 0
    _, (_, [day]) = dashboard(now=later)["windows"]
    assert day.calls.value == 6


@pytest.mark.django_db
def test_a_failing_call_is_two_clicks_from_the_admin_index(admin_client, logged):
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "<strong>3</strong> failed calls in the last hour" in index  # 404, 502, network error (429 was 3 h ago)
    failed_url = index.split('<p style="padding:0 8px 8px" id="failed-calls-last-hour"><a href="', 1)[1].split('"', 1)[0]
    listed = admin_client.get(failed_url.replace("&amp;", "&")).content.decode()
    call = FunctionCall.objects.get(response_status=502)
    assert listed.count("<strong style=\"color:") == 3  # one coloured status per row: the three failures
    assert reverse("admin:passthrough_functioncall_change", args=[call.pk]) in listed
    detail = admin_client.get(reverse("admin:passthrough_functioncall_change", args=[call.pk])).content.decode()
    assert "customer-42" in detail and "502" in detail
