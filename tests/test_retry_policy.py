"""One retry rule (connections/retry_policy.py): what is transient, the backoff shape, and that every caller asks it."""

from unittest import mock

import pytest
import responses

from connections import retry_policy, webhooks
from connections.client import UpstreamResponse
from connections.retry_policy import Backoff, RetryPolicy
from integration_platform import errors
from tests.factories import make_connection, make_integration


def answer(status, headers=()):
    return UpstreamResponse(status, list(headers), b"")


@pytest.mark.parametrize("status, transient", [(200, False), (400, False), (404, False), (408, True), (429, True),
                                               (500, True), (502, True), (503, True)])
def test_an_upstream_status_is_transient_only_if_it_may_change(status, transient):
    assert RetryPolicy.transient(idempotent=True, response=answer(status)) is transient


@pytest.mark.parametrize("error, transient", [
    (errors.UpstreamUnreachable("refused"), True),
    (errors.UpstreamTimeout("slow"), True),
    (errors.SharedStoreUnavailable("down"), True),
    (errors.RateLimited("full"), True),
    (errors.UpstreamAnswerUnusable("larger than the cap"), False),  # it would come back the same
    (errors.InvalidInput("bad"), False),
    (errors.PayloadTooLarge("big"), False),
])
def test_our_errors_say_whether_they_are_transient(error, transient):
    assert RetryPolicy.transient(idempotent=True, error=error) is transient


@pytest.mark.parametrize("status, transient", [(429, True), (503, True), (500, False), (502, False)])
def test_a_request_that_is_not_idempotent_is_repeated_only_when_the_upstream_did_not_act(status, transient):
    assert RetryPolicy.transient(idempotent=False, response=answer(status)) is transient
    assert RetryPolicy.transient(idempotent=False, error=errors.UpstreamUnreachable("reset")) is False


def test_the_backoff_shape_is_the_policys_parameter():
    policy = RetryPolicy(Backoff(base=2, factor=3, jitter=0, cap=50), max_attempts=9)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2, 6, 18, 50]


def test_the_upstreams_retry_after_wins_over_a_shorter_backoff_within_the_cap():
    policy = RetryPolicy(Backoff(base=1, jitter=0, cap=100), max_attempts=5)
    assert policy.delay(1, answer(429, [("Retry-After", "30")]), now=1000.0) == 30
    assert policy.delay(1, answer(429, [("Retry-After", "300")]), now=1000.0) == 100


def test_there_is_no_next_attempt_when_permanent_or_when_attempts_are_spent():
    policy = RetryPolicy(Backoff(base=1, jitter=0), max_attempts=3)
    assert policy.next_delay(1, idempotent=True, response=answer(500)) == 1
    assert policy.next_delay(3, idempotent=True, response=answer(500)) is None
    assert policy.next_delay(1, idempotent=True, response=answer(404)) is None


def test_errors_carry_no_other_retry_flag():
    assert not any(hasattr(cls, "retryable") for cls in vars(errors).values() if isinstance(cls, type))


# --- Every caller asks the policy ----------------------------------------------------------------------------------

class PolicySpy:
    """Replaces a caller's policy factory: records what it was asked, and answers 'no retry'."""

    def __init__(self):
        self.asked = []

    def __call__(self, *args):
        spy = self

        class Asked(RetryPolicy):
            def next_delay(self, attempts, **kwargs):
                spy.asked.append((attempts, kwargs))
                return None

        return Asked(Backoff(1), max_attempts=9)


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock_:
        mock_.get("https://api.acme.test/v1/contacts", status=500, json={})
        yield mock_


def test_sync_passthrough_asks_the_policy(alice, upstream, monkeypatch):
    spy = PolicySpy()
    monkeypatch.setattr("passthrough.services.sync_passthrough_policy", spy)
    _, token = make_connection(alice.organization, make_integration())
    response = alice.client.post("/api/v1/passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=token, HTTP_X_PASSTHROUGH_RETRIES="3")
    assert response.json()["status"] == 500
    assert len(upstream.calls) == 1 and spy.asked[0][0] == 1 and spy.asked[0][1]["response"].status == 500


def test_async_passthrough_asks_the_policy(alice, upstream, monkeypatch, broker, worker):
    spy = PolicySpy()
    monkeypatch.setattr("passthrough.async_passthrough.async_passthrough_policy", spy)
    _, token = make_connection(alice.organization, make_integration())
    created = alice.client.post("/api/v1/async-passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                                HTTP_X_ACCOUNT_TOKEN=token)
    assert created.status_code == 202
    broker.join("async_passthrough")
    worker.join()
    assert len(upstream.calls) == 1 and spy.asked[0][1]["response"].status == 500


def test_webhook_deliveries_ask_the_policy(alice, monkeypatch, settings):
    spy = PolicySpy()
    monkeypatch.setattr(webhooks, "webhook_policy", spy)
    alice.organization.webhook_url = "https://hooks.example.test/in"
    alice.organization.save()
    with responses.RequestsMock() as receiver, mock.patch("connections.webhooks._enqueue"):
        receiver.post("https://hooks.example.test/in", status=502)
        delivery = webhooks.webhook_send(alice.organization, "sync.completed", data={})
        webhooks.webhook_deliver(delivery.pk)
    assert spy.asked[0][0] == 1 and spy.asked[0][1]["response"].status == 502


def test_the_callers_read_their_parameters_from_settings(settings):
    settings.SYNC_RETRY_BASE_SECONDS, settings.SYNC_RETRY_MAX_WAIT_SECONDS, settings.SYNC_MAX_RETRIES = 5, 7, 2
    assert retry_policy.sync_page_policy() == RetryPolicy(Backoff(5, cap=7), max_attempts=3)
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_MAX_ATTEMPTS = 3, 4
    assert retry_policy.webhook_policy() == RetryPolicy(Backoff(3), max_attempts=4)
    settings.ASYNC_PASSTHROUGH_RETRY_BASE_SECONDS, settings.ASYNC_PASSTHROUGH_MAX_ATTEMPTS = 9, 2
    assert retry_policy.async_passthrough_policy() == RetryPolicy(Backoff(9), max_attempts=2)
    settings.PASSTHROUGH_RETRY_BASE_SECONDS = 0.5
    assert retry_policy.sync_passthrough_policy(3) == RetryPolicy(Backoff(0.5), max_attempts=4)
