"""Outbound rate limits (spec/limits.md): sliding windows, priorities, upstream pauses, and what callers see.

Every limiter test runs on both backends: the database (SQLite or PostgreSQL, whichever the leg uses) and Redis
(when CACHE_URL is redis://). Time is a fake clock: `sleep` moves it, nothing here waits or measures real time.
"""

import random
import time
import uuid
from email.utils import formatdate

import pytest
import requests
import responses
from django.urls import reverse

from connections import client, ratelimit
from connections.models import Integration
from integration_platform.errors import RateLimited
from passthrough import async_passthrough
from passthrough.models import AsyncPassthroughRequest
from tests.factories import make_connection, make_integration

T0 = 1_700_000_000.0  # a realistic Unix time, so X-RateLimit-Reset values can be Unix times too
UPSTREAM = "https://api.limited.test/v1"


class FakeClock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def at(self, offset):
        """Move to T0 + offset seconds."""
        self.now = T0 + offset


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def exact_windows(settings):
    """The arithmetic below states exact windows; the safety margin has its own test."""
    settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS = 0


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    if request.param == "database":
        return ratelimit.DatabaseBackend()
    if not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("The Redis backend runs when CACHE_URL is redis://.")
    return ratelimit.RedisBackend(settings.RATE_LIMIT_REDIS_URL, prefix=f"test-ratelimit-{uuid.uuid4().hex}")


@pytest.fixture
def limiter(backend, clock, monkeypatch):
    """A limiter on the fake clock, also the one every outbound call uses."""
    limiter = ratelimit.Limiter(backend, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(ratelimit, "limiter", lambda: limiter)
    return limiter


def limited(*windows, slug="limited"):
    return make_integration(slug=slug, base_url=UPSTREAM, rate_limits=list(windows))


def window(requests, per_seconds, per=None):
    return {"requests": requests, "per_seconds": per_seconds, **({"per": per} if per else {})}


@pytest.fixture
def connection(alice):
    """Alice's connection to an integration allowing 3 requests per 10 s; tests change its windows as needed."""
    return make_connection(alice.organization, limited(window(3, 10)))[0]


@pytest.fixture
def no_wait(settings):
    """Interactive calls are refused rather than wait, so a test sees the limiter's decision at one instant."""
    settings.RATE_LIMIT_INTERACTIVE_MAX_WAIT = 0


def set_windows(integration, *windows):
    Integration.objects.filter(pk=integration.pk).update(rate_limits=list(windows))


def admitted(limiter, connection, priority=ratelimit.INTERACTIVE) -> bool:
    try:
        limiter.acquire(connection, priority)
    except RateLimited:
        return False
    return True


def take(limiter, connection, count, priority=ratelimit.INTERACTIVE):
    for _ in range(count):
        assert admitted(limiter, connection, priority)


# --- The limiter, on both backends ---------------------------------------------------------------------------------

class TestLimiter:
    def test_admits_n_requests_in_a_window_and_refuses_the_next(self, limiter, connection):
        take(limiter, connection, 3)
        assert not admitted(limiter, connection)

    def test_a_send_leaves_the_window_exactly_one_window_after_it_was_sent(self, limiter, connection, clock, no_wait):
        take(limiter, connection, 3)
        clock.at(9.999)
        assert not admitted(limiter, connection)
        clock.at(10)
        assert admitted(limiter, connection)

    def test_a_fixed_window_boundary_does_not_reset_the_count(self, limiter, connection, clock):
        for offset in (9.0, 9.5, 9.9):
            clock.at(offset)
            take(limiter, connection, 1)
        clock.at(10.1)  # a new fixed 10-s window would start at 10.0
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection, budget=0)
        assert refused.value.retry_after == 9  # 8.9 s until the send at 9.0 leaves, rounded up

    def test_never_admits_n_plus_one_in_any_span_of_the_window(self, limiter, connection, clock):
        set_windows(connection.integration, window(5, 2))
        rng = random.Random(7)
        sent = []
        for _ in range(300):
            clock.sleep(rng.choice([0.0, 0.01, 0.1, 0.3, 0.7]))
            if admitted(limiter, connection):
                sent.append(clock())
        assert len(sent) > 60  # the budget is used, not just respected
        assert all(later - earlier >= 2 for earlier, later in zip(sent, sent[5:]))

    def test_a_send_whose_answer_is_awaited_counts_from_the_margin_after_its_permit(self, limiter, connection, clock,
                                                                                     settings, no_wait):
        settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS = 0.25
        take(limiter, connection, 3)
        clock.at(10.249)
        assert not admitted(limiter, connection)
        clock.at(10.25)
        assert admitted(limiter, connection)

    def test_an_answered_send_counts_from_its_answer(self, limiter, connection, clock, settings, no_wait):
        settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS = 0.25
        tickets = [limiter.acquire(connection) for _ in range(3)]
        clock.at(0.04)
        for ticket in tickets:
            limiter.settle(ticket)  # answered 40 ms later: it had reached the upstream by then
        clock.at(10.039)
        assert not admitted(limiter, connection)
        clock.at(10.04)
        assert admitted(limiter, connection)

    def test_a_slow_answer_counts_from_the_margin_after_the_permit(self, limiter, connection, clock, settings, no_wait):
        settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS = 0.25
        tickets = [limiter.acquire(connection) for _ in range(3)]
        clock.at(3)
        for ticket in tickets:
            limiter.settle(ticket)
        clock.at(10.25)
        assert admitted(limiter, connection)

    def test_background_never_waits_longer_than_its_budget(self, limiter, connection, clock, settings):
        settings.RATE_LIMIT_BACKGROUND_RESERVE = 0
        take(limiter, connection, 3, ratelimit.BACKGROUND)
        clock.at(2)
        with pytest.raises(ratelimit.PermitDelayed) as delayed:
            limiter.acquire(connection, ratelimit.BACKGROUND, budget=5)
        assert delayed.value.delay == 8
        assert clock() == T0 + 2

    def test_every_window_of_an_integration_applies(self, limiter, connection, clock, no_wait):
        set_windows(connection.integration, window(2, 1), window(3, 10))
        take(limiter, connection, 2)
        assert not admitted(limiter, connection)  # 2 per second
        clock.at(1)
        take(limiter, connection, 1)
        clock.at(2)
        assert not admitted(limiter, connection)  # 3 per 10 s, though the 1-s window has room

    def test_per_connection_windows_count_each_connection_separately(self, limiter, connection, bob):
        set_windows(connection.integration, window(2, 10, "connection"))
        bobs, _ = make_connection(bob.organization, connection.integration)
        take(limiter, connection, 2)
        assert not admitted(limiter, connection)
        take(limiter, bobs, 2)

    def test_per_integration_windows_count_all_connections_together(self, limiter, connection, bob):
        bobs, _ = make_connection(bob.organization, connection.integration)
        take(limiter, connection, 3)
        assert not admitted(limiter, bobs)

    def test_background_leaves_the_reserve_to_interactive_calls(self, limiter, connection, settings):
        set_windows(connection.integration, window(10, 60))
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 0
        take(limiter, connection, 8, ratelimit.BACKGROUND)
        with pytest.raises(ratelimit.PermitDelayed):
            limiter.acquire(connection, ratelimit.BACKGROUND)
        take(limiter, connection, 2, ratelimit.INTERACTIVE)
        assert not admitted(limiter, connection)

    def test_interactive_sends_count_against_the_background_share(self, limiter, connection, settings, clock):
        settings.RATE_LIMIT_BACKGROUND_RESERVE = 0.5
        set_windows(connection.integration, window(4, 10))
        take(limiter, connection, 2, ratelimit.INTERACTIVE)
        assert limiter.acquire(connection, ratelimit.BACKGROUND).waited == 10  # 2 of 4 used: only the reserve is left
        assert clock() == T0 + 10

    def test_a_window_too_small_to_split_still_gives_background_one_permit(self, limiter, connection, settings):
        set_windows(connection.integration, window(1, 60))
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 0
        take(limiter, connection, 1, ratelimit.BACKGROUND)

    def test_interactive_waits_for_a_permit_that_frees_within_the_bound(self, limiter, connection, clock):
        take(limiter, connection, 3)
        clock.at(9.5)
        assert limiter.acquire(connection).waited == 0.5
        assert clock() == T0 + 10

    def test_interactive_beyond_the_bound_is_refused_with_whole_seconds_until_the_next_permit(self, limiter, connection, clock):
        take(limiter, connection, 3)
        clock.at(3.2)
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection, budget=0)
        assert refused.value.retry_after == 7  # 6.8 s, rounded up
        assert refused.value.status == 429
        assert clock() == T0 + 3.2  # refused at once: waiting could not help

    def test_interactive_waits_out_the_fraction_of_a_second_so_that_retry_after_is_exact(self, limiter, connection, clock):
        take(limiter, connection, 3)
        clock.at(3.2)
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection)
        assert clock() == T0 + 4  # 0.8 s waited, within the 1 s bound...
        assert refused.value.retry_after == 6  # ...so a caller back in 6 s finds the permit just freed

    def test_interactive_retry_after_is_at_least_one_second(self, limiter, connection, clock, no_wait):
        take(limiter, connection, 3)
        clock.at(9.9)
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection)
        assert refused.value.retry_after == 1

    def test_interactive_never_waits_longer_than_the_shortest_window(self, limiter, connection, settings):
        settings.RATE_LIMIT_INTERACTIVE_MAX_WAIT = 5
        set_windows(connection.integration, window(100, 0.5))
        limiter.observe(connection, 429, [("Retry-After", "2")])
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection)
        assert refused.value.retry_after == 2

    def test_background_sleeps_for_a_permit_within_its_bound(self, limiter, connection, clock, settings):
        settings.RATE_LIMIT_BACKGROUND_RESERVE = 0
        take(limiter, connection, 3, ratelimit.BACKGROUND)
        clock.at(2)
        assert limiter.acquire(connection, ratelimit.BACKGROUND).waited == 8
        assert clock() == T0 + 10

    def test_background_beyond_its_bound_is_delayed_with_the_wait_not_refused(self, limiter, connection, clock, settings):
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 30
        limiter.observe(connection, 503, [("Retry-After", "45.5")])
        with pytest.raises(ratelimit.PermitDelayed) as delayed:
            limiter.acquire(connection, ratelimit.BACKGROUND)
        assert delayed.value.delay == 45.5
        assert delayed.value.retry_after == 46
        assert clock() == T0  # no point sleeping 30 s for a 45.5 s wait

    def test_a_permit_is_not_given_back(self, limiter, connection):
        take(limiter, connection, 3)  # taken, then (say) the call was refused later: nothing undoes a permit
        assert not admitted(limiter, connection)

    def test_an_edited_limit_applies_to_the_next_call(self, limiter, connection):
        take(limiter, connection, 3)
        make_integration(slug="limited", base_url=UPSTREAM, rate_limits=[window(4, 10)])  # load_catalog's upsert
        assert admitted(limiter, connection)
        assert not admitted(limiter, connection)

    def test_no_windows_means_no_limit(self, limiter, connection):
        set_windows(connection.integration)
        take(limiter, connection, 50)

    @pytest.mark.parametrize("signal", [(429, [("Retry-After", "30")]), (503, [("Retry-After", "30")]),
                                        (200, [("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "30")])])
    def test_an_upstream_signal_pauses_only_the_connection_that_received_it(self, limiter, connection, bob, clock,
                                                                           no_wait, signal):
        bobs, _ = make_connection(bob.organization, connection.integration)
        limiter.observe(connection, *signal)
        assert admitted(limiter, bobs)  # another tenant's quota is not this one's
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(connection)
        assert refused.value.retry_after == 30
        clock.at(30)
        assert admitted(limiter, connection)

    def test_pause_integration_makes_an_upstream_signal_stop_every_connection(self, limiter, connection, bob, clock):
        Integration.objects.filter(pk=connection.integration_id).update(pause=Integration.PAUSE_INTEGRATION)
        bobs, _ = make_connection(bob.organization, connection.integration)
        limiter.observe(connection, 429, [("Retry-After", "30")])
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(bobs)
        assert refused.value.retry_after == 30
        clock.at(30)
        assert admitted(limiter, bobs)

    def test_a_shorter_signal_does_not_shorten_a_pause(self, limiter, connection, clock, no_wait):
        limiter.observe(connection, 429, [("Retry-After", "30")])
        limiter.observe(connection, 429, [("Retry-After", "5")])
        clock.at(29)
        assert not admitted(limiter, connection)

    def test_remaining_zero_on_a_success_pauses_until_the_reset(self, limiter, connection, clock, no_wait):
        limiter.observe(connection, 200, [("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(int(T0) + 20))])
        clock.at(19.5)
        assert not admitted(limiter, connection)
        clock.at(20)
        assert admitted(limiter, connection)

    def test_usage_shows_each_window_and_its_current_use(self, limiter, connection, bob):
        set_windows(connection.integration, window(3, 10), window(5, 60, "connection"))
        bobs, _ = make_connection(bob.organization, connection.integration)
        take(limiter, connection, 2)
        take(limiter, bobs, 1)
        assert limiter.usage(connection.integration) == [
            "3 requests per 10 s per integration: 3 used in the last 10 s",
            "5 requests per 60 s per connection: 2 used in the last 60 s (busiest connection)",
        ]

    def test_usage_shows_an_upstream_pause(self, limiter, connection):
        limiter.observe(connection, 429, [("Retry-After", "90")])
        assert limiter.usage(connection.integration)[-1] == "1 connection(s) paused by the upstream."
        Integration.objects.filter(pk=connection.integration_id).update(pause=Integration.PAUSE_INTEGRATION)
        limiter.observe(connection, 429, [("Retry-After", "90")])
        assert limiter.usage(connection.integration)[-2] == "Paused by the upstream until 2023-11-14T22:14:50+00:00."


# --- Upstream signals: parsing -------------------------------------------------------------------------------------

def http_date(unix_time):
    return formatdate(unix_time, usegmt=True)


@pytest.mark.parametrize("value, expected", [("120", T0 + 120), ("0.5", T0 + 0.5), ("  7 ", T0 + 7)])
def test_retry_after_delta_seconds_counts_from_now(value, expected):
    assert ratelimit.pause_until(429, [("Retry-After", value)], T0) == expected


def test_retry_after_http_date_is_honoured_to_the_sub_second():
    assert ratelimit.pause_until(429, [("Retry-After", http_date(T0 + 60))], T0 + 0.75) == T0 + 60


@pytest.mark.parametrize("value", ["Tuesday, 14-Nov-23 22:14:20 GMT", "Tue Nov 14 22:14:20 2023"])
def test_retry_after_obsolete_http_date_forms_are_understood(value):
    assert ratelimit.pause_until(503, [("Retry-After", value)], T0) == T0 + 60


@pytest.mark.parametrize("value", ["soon", "", "-5", "1e3", "NaN", "inf", "0x10", "Tue, 99 Foo 2023 99:99:99 GMT", "0"])
def test_garbage_retry_after_is_ignored(value):
    assert ratelimit.pause_until(429, [("Retry-After", value)], T0) is None


def test_retry_after_in_the_past_is_ignored():
    assert ratelimit.pause_until(429, [("Retry-After", http_date(T0 - 60))], T0) is None


@pytest.mark.parametrize("status", [200, 301, 500, 502])
def test_retry_after_counts_only_on_429_and_503(status):
    assert ratelimit.pause_until(status, [("Retry-After", "30")], T0) is None


@pytest.mark.parametrize("remaining, reset", [("X-RateLimit-Remaining", "X-RateLimit-Reset"),
                                              ("RateLimit-Remaining", "RateLimit-Reset"),
                                              ("x-ratelimit-remaining", "ratelimit-reset")])
def test_remaining_zero_with_a_unix_time_reset_pauses_until_then(remaining, reset):
    assert ratelimit.pause_until(200, [(remaining, "0"), (reset, str(int(T0) + 42))], T0) == T0 + 42


def test_remaining_zero_with_a_delta_reset_pauses_that_long():
    assert ratelimit.pause_until(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "42"}, T0) == T0 + 42


@pytest.mark.parametrize("headers", [
    [("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset", "42")],
    [("X-RateLimit-Remaining", "none"), ("X-RateLimit-Reset", "42")],
    [("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "tomorrow")],
    [("X-RateLimit-Remaining", "0")],
    [("X-RateLimit-Reset", "42")],
])
def test_rate_limit_headers_without_a_zero_remaining_and_a_valid_reset_are_ignored(headers):
    assert ratelimit.pause_until(200, headers, T0) is None


def test_a_pause_is_capped(settings):
    settings.RATE_LIMIT_MAX_PAUSE_SECONDS = 3600
    assert ratelimit.pause_until(429, [("Retry-After", "999999")], T0) == T0 + 3600


def test_the_later_of_two_signals_wins():
    headers = [("Retry-After", "10"), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "20")]
    assert ratelimit.pause_until(429, headers, T0) == T0 + 20


# --- What callers see: the outbound client and the APIs ------------------------------------------------------------

def passthrough(tenant, token, path="/contacts"):
    return tenant.client.post("/api/v1/passthrough", {"method": "GET", "path": path}, format="json",
                              HTTP_X_ACCOUNT_TOKEN=token)


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class TestCallers:
    def test_an_upstream_429_pauses_only_the_connection_that_received_it(self, limiter, alice, bob, upstream):
        integration = limited(window(100, 60))
        _, alices_token = make_connection(alice.organization, integration)
        _, bobs_token = make_connection(bob.organization, integration)
        upstream.get(f"{UPSTREAM}/contacts", status=429, headers={"Retry-After": "120"}, json={"error": "slow down"})
        first = passthrough(alice, alices_token)
        assert first.status_code == 200 and first.json()["status"] == 429  # the upstream's answer, as it came
        refused = passthrough(alice, alices_token)
        assert refused.status_code == 429
        assert refused["Retry-After"] == "120"
        assert set(refused.json()) == {"error", "error_details"}
        assert len(upstream.calls) == 1
        assert passthrough(bob, bobs_token).status_code == 200  # bob's account has its own quota: sent
        assert len(upstream.calls) == 2

    def test_an_upstream_429_pauses_every_caller_of_an_integration_with_pause_integration(self, limiter, alice, bob,
                                                                                          upstream):
        integration = limited(window(100, 60))
        Integration.objects.filter(pk=integration.pk).update(pause=Integration.PAUSE_INTEGRATION)
        _, alices_token = make_connection(alice.organization, integration)
        _, bobs_token = make_connection(bob.organization, integration)
        upstream.get(f"{UPSTREAM}/contacts", status=429, headers={"Retry-After": "120"}, json={"error": "slow down"})
        assert passthrough(alice, alices_token).json()["status"] == 429
        refused = passthrough(bob, bobs_token)
        assert refused.status_code == 429
        assert refused["Retry-After"] == "120"
        assert len(upstream.calls) == 1

    def test_the_native_api_answers_429_json_with_retry_after_when_the_window_is_full(self, limiter, alice, upstream, clock):
        _, token = make_connection(alice.organization, limited(window(1, 60)))
        upstream.get(f"{UPSTREAM}/contacts", json={"contacts": []})
        assert passthrough(alice, token).status_code == 200
        clock.at(15)
        refused = passthrough(alice, token)
        assert refused.status_code == 429
        assert refused["Retry-After"] == "45"
        assert refused.json()["error"].startswith("Rate limit for Limited reached")
        assert len(upstream.calls) == 1

    def test_a_permit_taken_for_a_call_that_failed_is_not_given_back(self, limiter, alice, upstream):
        connection, _ = make_connection(alice.organization, limited(window(1, 60)))
        upstream.get(f"{UPSTREAM}/contacts", body=requests.ConnectionError("refused"))
        target = client.build_target(connection.integration, "/contacts")
        assert client.send(connection, "GET", target, timeout=5).error is not None
        with pytest.raises(RateLimited):
            client.send(connection, "GET", target, timeout=5)
        assert len(upstream.calls) == 1

    def test_a_request_counts_from_when_its_answer_came_back(self, limiter, alice, upstream, clock, settings, no_wait):
        settings.RATE_LIMIT_SAFETY_MARGIN_SECONDS = 0.25
        connection, _ = make_connection(alice.organization, limited(window(1, 60)))
        upstream.get(f"{UPSTREAM}/contacts", json={})
        target = client.build_target(connection.integration, "/contacts")
        client.send(connection, "GET", target, timeout=5)
        clock.at(60)  # answered at once (on this clock), so the margin does not apply
        assert client.send(connection, "GET", target, timeout=5).response.status == 200

    def test_every_redirect_hop_takes_a_permit(self, limiter, alice, upstream):
        connection, _ = make_connection(alice.organization, limited(window(2, 60)))
        upstream.get(f"{UPSTREAM}/old", status=302, headers={"Location": f"{UPSTREAM}/new"})
        upstream.get(f"{UPSTREAM}/new", json={})
        assert client.send(connection, "GET", client.build_target(connection.integration, "/old"), timeout=5).response.status == 200
        with pytest.raises(RateLimited):
            client.send(connection, "GET", client.build_target(connection.integration, "/new"), timeout=5)

    def test_a_refused_redirect_hop_is_an_upstream_error_because_the_first_hop_was_sent(self, limiter, alice, upstream):
        connection, _ = make_connection(alice.organization, limited(window(1, 60)))
        upstream.post(f"{UPSTREAM}/old", status=303, headers={"Location": f"{UPSTREAM}/new"})
        exchange = client.send(connection, "POST", client.build_target(connection.integration, "/old"), timeout=5)
        assert "No rate-limit permit to follow the upstream's redirect" in str(exchange.error)

    def test_a_background_wait_is_added_to_the_calls_deadline(self, limiter, connection, settings):
        settings.RATE_LIMIT_BACKGROUND_RESERVE = 0
        take(limiter, connection, 3, ratelimit.BACKGROUND)
        # The upstream's time to answer starts when the permit is taken, not when the worker began to wait.
        assert ratelimit.Permit(connection, ratelimit.BACKGROUND).take(deadline=500.0) == 510.0

    def test_an_interactive_wait_comes_out_of_the_calls_budget(self, limiter, connection, clock):
        take(limiter, connection, 3)
        clock.at(9.2)  # a permit in 0.8 s, within the 1 s bound, but the call has less than that left
        with pytest.raises(RateLimited):
            ratelimit.Permit(connection).take(deadline=time.monotonic() + 0.5)

    def test_async_passthrough_takes_background_permits(self, limiter, alice, upstream, broker, clock, settings):
        settings.RATE_LIMIT_BACKGROUND_MAX_WAIT = 120
        _, token = make_connection(alice.organization, limited(window(5, 60)))
        upstream.get(f"{UPSTREAM}/contacts", json={"contacts": []})
        for _ in range(4):
            assert passthrough(alice, token).status_code == 200
        created = alice.client.post("/api/v1/async-passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                                    HTTP_X_ACCOUNT_TOKEN=token)
        receipt_id = created.json()["async_passthrough_receipt_id"]
        async_passthrough.async_passthrough_run(receipt_id)
        assert AsyncPassthroughRequest.objects.get(pk=receipt_id).status == AsyncPassthroughRequest.DONE
        assert clock() == T0 + 60  # 4 of 5 used: background (4 of 5 allowed) waited; interactive would not have

    def test_the_admin_shows_limits_and_current_usage(self, limiter, alice, admin_client):
        integration = limited(window(3, 10))
        connection, _ = make_connection(alice.organization, integration)
        take(limiter, connection, 2)
        page = admin_client.get(reverse("admin:connections_integration_change", args=[integration.pk])).content.decode()
        assert "Rate limits and current usage" in page
        assert "3 requests per 10 s per integration: 2 used in the last 10 s" in page
