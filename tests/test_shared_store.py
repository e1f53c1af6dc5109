"""The shared store down (CACHE_URL's Redis): sync calls answer 503 with Retry-After in each surface's error shape,
naming the cause, instead of a 500; the outage is logged once per interval and visible to operators; calls recover by
themselves when the store is back. The Redis is the test's own (tests/servers.py), stopped and started mid-test."""

import hashlib
import hmac
import json
import logging
import time
from unittest import mock

import pytest
import responses
from django.test import Client

from connections import ratelimit, shared_store
from connections.shared_store import shared_store_state
from integration_platform.errors import RateLimited, SharedStoreUnavailable
from tests.factories import make_connection, make_integration
from tests.servers import redis_server

UPSTREAM = "https://api.acme.test/v1"
CAUSE = "The shared store (Redis, CACHE_URL) is unreachable"


@pytest.fixture
def store(settings, monkeypatch):
    with redis_server() as server:
        settings.RATE_LIMIT_REDIS_URL = server.url
        monkeypatch.setattr(ratelimit, "_redis_backends", {})
        monkeypatch.setattr(shared_store, "_outage", shared_store._Outage())
        yield server


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{UPSTREAM}/contacts", json={"contacts": []})
        yield mock


@pytest.fixture
def connection(alice):
    return make_connection(alice.organization, make_integration(rate_limits=[{"requests": 100, "per_seconds": 60}]))


def native(tenant, connection):
    return tenant.client.post("/api/v1/passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                              HTTP_X_ACCOUNT_TOKEN=connection[1])


def merge(tenant, connection):
    return tenant.client.post("/merge/api/crm/v1/passthrough", {"method": "GET", "path": "/contacts"}, format="json",
                              HTTP_X_ACCOUNT_TOKEN=connection[1])


def unified(tenant, connection):
    return Client().get(f"/unified/passthrough/{connection[0].pk}/contacts", HTTP_AUTHORIZATION=tenant.key)


def integry(tenant, connection):
    headers = {"App-Key": tenant.api_key.key_id, "User-ID": "user-1",
               "Hash": hmac.new(tenant.key.encode(), b"user-1", hashlib.sha256).hexdigest()}
    return Client().generic("POST", "/integry/functions/acme-passthrough-request/call/",
                            json.dumps({"method": "GET", "url": "/contacts", "_variables": None}),
                            content_type="application/json", headers=headers)


def message(surface, response) -> str:
    body = response.json()
    return {native: lambda: body["error"], merge: lambda: body["detail"], unified: lambda: body["message"],
            integry: lambda: body["detail"]}[surface]()


SURFACES = [native, merge, unified, integry]


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.__name__)
def test_a_stopped_store_is_a_503_with_retry_after_and_calls_recover_when_it_is_back(alice, connection, store,
                                                                                     upstream, surface):
    assert surface(alice, connection).status_code == 200
    store.stop()
    refused = surface(alice, connection)
    assert refused.status_code == 503
    assert refused["Retry-After"] == str(shared_store.RETRY_AFTER_SECONDS)
    assert message(surface, refused).startswith(CAUSE)
    assert len(upstream.calls) == 1  # fails closed: nothing is sent without a permit
    store.start()
    assert surface(alice, connection).status_code == 200
    assert len(upstream.calls) == 2


def test_the_outage_is_logged_once_per_interval_and_its_end_once(alice, connection, store, upstream, caplog):
    store.stop()
    with caplog.at_level(logging.INFO, logger="connections.shared_store"):
        for _ in range(5):
            assert native(alice, connection).status_code == 503
        store.start()
        for _ in range(2):
            assert native(alice, connection).status_code == 200
    records = [r for r in caplog.records if r.name == "connections.shared_store"]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"]
    assert "unreachable" in records[0].getMessage() and "reachable again" in records[1].getMessage()


def test_operators_see_the_stores_state(store):
    assert shared_store_state()["available"] is True
    store.stop()
    state = shared_store_state()
    assert (state["store"], state["available"]) == ("redis", False)
    assert "503" in state["detail"]


def test_the_rate_limit_lines_of_the_admin_name_the_outage(connection, store):
    store.stop()
    assert ratelimit.limiter().usage(connection[0].integration)[0].startswith(CAUSE)


def test_local_mode_has_no_shared_store_to_lose(settings):
    settings.RATE_LIMIT_REDIS_URL = ""
    assert shared_store_state()["store"] == "database"


def test_an_outage_on_a_later_redirect_hop_does_not_pass_for_a_call_never_sent(connection, monkeypatch):
    class StoreLostAfterOnePermit:
        def __init__(self):
            self.asked = 0

        def acquire(self, *args, **kwargs):
            self.asked += 1
            if self.asked > 1:
                raise SharedStoreUnavailable("down", retry_after=5)
            return ratelimit.Ticket(None, 0.0, 0.0)

    store = StoreLostAfterOnePermit()
    monkeypatch.setattr(ratelimit, "limiter", lambda: store)
    permit = ratelimit.Permit(connection[0])
    permit.take(deadline=time.monotonic() + 10)
    with pytest.raises(RateLimited) as refused:  # the client turns a refused later hop into an unusable answer
        permit.take(deadline=time.monotonic() + 10)
    assert refused.value.message.startswith("down")
    with pytest.raises(SharedStoreUnavailable):  # a first hop: nothing was sent, the call may be tried again
        ratelimit.Permit(connection[0]).take(deadline=time.monotonic() + 10)


def test_the_cache_on_a_stopped_store_is_a_503_too_not_a_500(alice, connection, store, settings):
    """Async retrievals are limited through the cache, which is the same Redis in scale-out."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": store.url}}
    with mock.patch("passthrough.async_passthrough.enqueue"):
        created = alice.client.post("/api/v1/async-passthrough", {"method": "GET", "path": "/contacts"},
                                    format="json", HTTP_X_ACCOUNT_TOKEN=connection[1])
    receipt = created.json()["async_passthrough_receipt_id"]
    store.stop()
    for url in (f"/api/v1/async-passthrough/{receipt}", f"/merge/api/crm/v1/async-passthrough/{receipt}"):
        refused = alice.client.get(url, HTTP_X_ACCOUNT_TOKEN=connection[1])
        assert refused.status_code == 503, url
        assert refused["Retry-After"] == str(shared_store.RETRY_AFTER_SECONDS)
        assert CAUSE in refused.content.decode()
