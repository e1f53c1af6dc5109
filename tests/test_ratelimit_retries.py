"""Retries (issue 6): background work retries on its own with backoff from 1 minute; a sync call only when its caller
asks (X-Passthrough-Retries), only for idempotent methods, within its budget. Every attempt is in the call log.

The limiter runs on a fake clock (tests/test_ratelimit.py); backoff sleeps of sync calls move that clock.
"""

import json
import time
from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from connections import ratelimit
from passthrough import async_passthrough, retries
from passthrough.models import AsyncPassthroughRequest, FunctionCall
from tests.factories import make_connection
from tests.test_ratelimit import T0, UPSTREAM, FakeClock, exact_windows, limited, window  # noqa: F401 (autouse)

CONTACTS = f"{UPSTREAM}/contacts"
DQ = "async_passthrough.DQ"  # the StubBroker's queue of delayed messages


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for the limiter and for the backoff sleeps of sync retries (which it records)."""
    clock = FakeClock()
    clock.slept = []

    def sleep(seconds):
        clock.slept.append(seconds)
        clock.sleep(seconds)

    limiter = ratelimit.Limiter(ratelimit.DatabaseBackend(), clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(ratelimit, "limiter", lambda: limiter)
    monkeypatch.setattr(time, "sleep", sleep)
    return clock


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def account(alice, clock):
    """Alice's connection (and token) to an integration allowing 100 requests per 10 s."""
    return make_connection(alice.organization, limited(window(100, 10)))


def answers(upstream, method, *statuses, headers=None):
    """The upstream answers `statuses` in turn (the last repeats); an exception instance is a network error."""
    for status in statuses:
        if isinstance(status, Exception):
            upstream.add(method, CONTACTS, body=status)
        else:
            upstream.add(method, CONTACTS, status=status, json={"status": status}, headers=headers or {})


def passthrough(tenant, token, method="GET", retry=None):
    extra = {"HTTP_X_PASSTHROUGH_RETRIES": retry} if retry is not None else {}
    return tenant.client.post("/api/v1/passthrough", {"method": method, "path": "/contacts"}, format="json",
                              HTTP_X_ACCOUNT_TOKEN=token, **extra)


def logged_statuses():
    return list(FunctionCall.objects.order_by("id").values_list("response_status", flat=True))


# --- Sync passthrough: only when asked, only idempotent methods, within the budget ---------------------------------

class TestSyncRetries:
    def test_without_the_header_a_failed_call_is_not_retried(self, alice, account, upstream):
        answers(upstream, "GET", 503, 200)
        assert passthrough(alice, account[1]).json()["status"] == 503
        assert logged_statuses() == [503]

    def test_a_get_is_retried_when_the_caller_asks_and_each_attempt_is_logged(self, alice, account, upstream, clock):
        answers(upstream, "GET", 503, 502, 200)
        assert passthrough(alice, account[1], retry="2").json()["status"] == 200
        assert logged_statuses() == [503, 502, 200]
        first, second = clock.slept
        assert 1 <= first <= 1.25 and 2 <= second <= 2.5  # exponential from 1 s, with jitter

    def test_retries_stop_at_the_number_asked_for(self, alice, account, upstream):
        answers(upstream, "GET", 500)
        assert passthrough(alice, account[1], retry="1").json()["status"] == 500
        assert logged_statuses() == [500, 500]

    def test_a_network_error_is_retried(self, alice, account, upstream):
        answers(upstream, "GET", requests.ConnectionError("refused"), 200)
        assert passthrough(alice, account[1], retry="1").json()["status"] == 200
        assert logged_statuses() == [None, 200]

    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    def test_a_non_idempotent_call_is_never_retried(self, alice, account, upstream, method):
        answers(upstream, method, 503, 200)
        assert passthrough(alice, account[1], method=method, retry="3").json()["status"] == 503
        assert logged_statuses() == [503]

    def test_a_client_error_is_not_retried(self, alice, account, upstream):
        answers(upstream, "GET", 404, 200)
        assert passthrough(alice, account[1], retry="3").json()["status"] == 404
        assert logged_statuses() == [404]

    def test_a_retry_waits_as_long_as_the_upstreams_retry_after(self, alice, account, upstream, clock):
        answers(upstream, "GET", 429, 200, headers={"Retry-After": "7"})
        assert passthrough(alice, account[1], retry="1").json()["status"] == 200
        assert clock.slept == [pytest.approx(7)]

    def test_no_retry_is_made_that_would_not_fit_in_the_budget(self, alice, account, upstream, clock):
        answers(upstream, "GET", 503, 200, headers={"Retry-After": "120"})  # more than the 55 s budget
        assert passthrough(alice, account[1], retry="3").json()["status"] == 503
        assert logged_statuses() == [503] and clock.slept == []

    def test_when_our_limit_refuses_a_retry_the_caller_gets_the_upstreams_answer(self, alice, upstream, clock):
        _, token = make_connection(alice.organization, limited(window(1, 60)))
        answers(upstream, "GET", 503, 200)
        assert passthrough(alice, token, retry="1").json()["status"] == 503
        assert logged_statuses() == [503]

    @pytest.mark.parametrize("value", ["4", "-1", "one", ""])
    def test_an_invalid_retry_header_is_refused(self, alice, account, upstream, value):
        refused = passthrough(alice, account[1], retry=value)
        assert refused.status_code == 400
        assert refused.json()["error_details"] == ["X-Passthrough-Retries: Must be a whole number from 0 to 3."]
        assert not upstream.calls

    def test_unified_passthrough_retries_and_does_not_forward_the_header(self, alice, account, upstream):
        connection, _ = account
        answers(upstream, "GET", 503, 200)
        answer = alice.client.get(f"/unified/passthrough/{connection.pk}/contacts", HTTP_X_PASSTHROUGH_RETRIES="1")
        assert answer.status_code == 200
        assert logged_statuses() == [503, 200]
        assert all(retries.RETRY_HEADER.lower() not in {k.lower() for k in call.request.headers} for call in upstream.calls)

    def test_merge_passthrough_retries_when_asked(self, alice, account, upstream):
        answers(upstream, "GET", 503, 200)
        answer = alice.client.post("/merge/api/crm/v1/passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                                   HTTP_X_ACCOUNT_TOKEN=account[1], HTTP_X_PASSTHROUGH_RETRIES="1")
        assert answer.json()["status"] == 200
        assert logged_statuses() == [503, 200]

    def test_function_calls_retry_when_asked(self, alice, account, upstream):
        connection, token = account
        answers(upstream, "GET", 503, 200)
        answer = alice.client.post(f"/api/v1/{connection.integration.slug}-passthrough-request",
                                   {"method": "GET", "url": "/contacts"}, format="json", HTTP_X_ACCOUNT_TOKEN=token,
                                   HTTP_X_PASSTHROUGH_RETRIES="1")
        assert answer.json()["network_code"] == "200"
        assert logged_statuses() == [503, 200]


# --- Async passthrough: backoff from 1 minute, jitter, bounded attempts, within the global deadline ----------------

def receipt(tenant, token, method="GET"):
    created = tenant.client.post("/api/v1/async-passthrough", {"method": method, "path": "/contacts"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=token)
    return AsyncPassthroughRequest.objects.get(pk=created.json()["async_passthrough_receipt_id"])


def run(request) -> AsyncPassthroughRequest:
    async_passthrough.async_passthrough_run(request.pk)
    return AsyncPassthroughRequest.objects.get(pk=request.pk)


def make_due(request):
    """The retry's time has come (instead of waiting for it)."""
    AsyncPassthroughRequest.objects.filter(pk=request.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def delayed_messages(broker) -> list:
    return [json.loads(message) for message in list(broker.queues[DQ].queue)]


class TestAsyncRetries:
    def test_a_503_is_retried_after_about_a_minute_and_both_attempts_are_logged(self, alice, account, upstream, broker):
        answers(upstream, "GET", 503, 200)
        request = receipt(alice, account[1])
        before = timezone.now()
        waiting = run(request)
        assert waiting.status == AsyncPassthroughRequest.PENDING and waiting.attempts == 1
        assert before + timedelta(seconds=60) <= waiting.next_attempt_at <= timezone.now() + timedelta(seconds=75)
        [message] = delayed_messages(broker)
        assert message["args"] == [str(request.pk)]
        assert 60_000 <= message["options"]["eta"] - before.timestamp() * 1000 <= 75_000 + 1000
        make_due(request)
        done = run(request)
        assert done.status == AsyncPassthroughRequest.DONE and done.result["status"] == 200 and done.attempts == 2
        assert logged_statuses() == [503, 200]
        assert set(FunctionCall.objects.values_list("mode", flat=True)) == {FunctionCall.MODE_ASYNC}

    def test_the_backoff_doubles(self, alice, account, upstream, broker):
        answers(upstream, "GET", 500)
        request = receipt(alice, account[1])
        run(request)
        make_due(request)
        started = timezone.now()
        waiting = run(request)
        assert started + timedelta(seconds=120) <= waiting.next_attempt_at <= timezone.now() + timedelta(seconds=150)

    def test_attempts_are_bounded_and_the_last_answer_is_the_result(self, alice, account, upstream, broker, settings):
        settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS = 3
        settings.ASYNC_PASSTHROUGH_DEADLINE_SECONDS = 3600
        answers(upstream, "GET", 503)
        request = receipt(alice, account[1])
        for _ in range(2):
            assert run(request).status == AsyncPassthroughRequest.PENDING
            make_due(request)
        done = run(request)
        assert done.status == AsyncPassthroughRequest.DONE and done.result["status"] == 503 and done.attempts == 3
        assert logged_statuses() == [503, 503, 503]

    def test_a_network_error_is_retried_then_reported_if_it_persists(self, alice, account, upstream, broker, settings):
        settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS = 2
        answers(upstream, "GET", requests.ConnectionError("refused"))
        request = receipt(alice, account[1])
        assert run(request).status == AsyncPassthroughRequest.PENDING
        make_due(request)
        failed = run(request)
        assert failed.status == AsyncPassthroughRequest.FAILED and "could not be reached" in failed.error
        assert logged_statuses() == [None, None]

    def test_a_retry_after_longer_than_the_backoff_is_honoured(self, alice, account, upstream, broker):
        answers(upstream, "GET", 429, 200, headers={"Retry-After": "100"})
        request = receipt(alice, account[1])
        started = timezone.now()
        assert run(request).next_attempt_at >= started + timedelta(seconds=100)

    def test_no_retry_is_made_that_could_not_start_before_the_global_deadline(self, alice, account, upstream, broker):
        answers(upstream, "GET", 503, 200)
        request = receipt(alice, account[1])
        AsyncPassthroughRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() + timedelta(seconds=50))
        done = run(request)
        assert done.status == AsyncPassthroughRequest.DONE and done.result["status"] == 503
        assert not delayed_messages(broker)

    def test_a_post_is_retried_when_the_upstream_did_not_act_on_it(self, alice, account, upstream, broker):
        answers(upstream, "POST", 429, 200)
        assert run(receipt(alice, account[1], "POST")).status == AsyncPassthroughRequest.PENDING

    @pytest.mark.parametrize("failure", [500, 502, requests.ConnectionError("reset")])
    def test_a_post_is_not_retried_when_the_upstream_may_have_acted_on_it(self, alice, account, upstream, broker, failure):
        answers(upstream, "POST", failure, 200)
        finished = run(receipt(alice, account[1], "POST"))
        assert finished.status in (AsyncPassthroughRequest.DONE, AsyncPassthroughRequest.FAILED)
        assert len(upstream.calls) == 1

    def test_an_early_message_does_not_run_a_waiting_retry(self, alice, account, upstream, broker):
        answers(upstream, "GET", 503, 200)
        request = receipt(alice, account[1])
        run(request)
        assert run(request).status == AsyncPassthroughRequest.PENDING  # e.g. a duplicate message: not yet
        assert len(upstream.calls) == 1

    def test_the_sweeper_wakes_a_retry_whose_message_was_lost_only_once_it_is_overdue(self, alice, account, upstream,
                                                                                       broker):
        answers(upstream, "GET", 503, 200)
        request = receipt(alice, account[1])
        AsyncPassthroughRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(minutes=2))
        run(request)
        assert async_passthrough.async_passthrough_sweep()["requeued"] == 0
        AsyncPassthroughRequest.objects.filter(pk=request.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=31))
        assert async_passthrough.async_passthrough_sweep()["requeued"] == 1

    def test_no_permit_puts_the_job_back_with_the_limiters_delay_and_no_attempt_counted(self, alice, upstream, broker,
                                                                                         clock, settings):
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 5
        connection, token = make_connection(alice.organization, limited(window(1, 60)))
        answers(upstream, "GET", 200)
        assert passthrough(alice, token).json()["status"] == 200  # the window's one permit
        clock.at(20)
        started = timezone.now()
        waiting = run(receipt(alice, token))
        assert waiting.status == AsyncPassthroughRequest.PENDING and waiting.attempts == 0
        assert started + timedelta(seconds=40) <= waiting.next_attempt_at <= timezone.now() + timedelta(seconds=40)
        assert len(upstream.calls) == 1 and logged_statuses() == [200]

    def test_no_permit_before_the_global_deadline_fails_the_request_saying_why(self, alice, upstream, broker, clock,
                                                                               settings):
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 5
        _, token = make_connection(alice.organization, limited(window(1, 600)))
        answers(upstream, "GET", 200)
        passthrough(alice, token)
        failed = run(receipt(alice, token))
        assert failed.status == AsyncPassthroughRequest.FAILED
        assert "rate limit had no permit free" in failed.error
        assert len(upstream.calls) == 1

    def test_a_background_wait_for_a_permit_never_outlasts_the_deadline(self, alice, upstream, broker, clock, settings):
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 30
        _, token = make_connection(alice.organization, limited(window(1, 60)))
        answers(upstream, "GET", 200)
        passthrough(alice, token)
        request = receipt(alice, token)
        AsyncPassthroughRequest.objects.filter(pk=request.pk).update(deadline_at=timezone.now() + timedelta(seconds=10))
        assert run(request).status == AsyncPassthroughRequest.FAILED
        assert clock() == T0  # it did not sleep 30 s past a 10 s deadline
