"""API keys and connections cached in each process (connections/hot_cache.py), invalidated through the Redis of
CACHE_URL: a warm call reads neither from the database, and a write takes effect on the next call in every process."""

import hashlib
import hmac
import json
import os
import uuid
from http.client import HTTPConnection
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from connections import hot_cache, shared_store
from connections.models import ApiKey, Connection, Function, Integration
from tests.factories import make_api_key, make_connection
from tests.network import local_integration, passthrough
from tests.servers import platform_serve, shared_database_url


@pytest.fixture
def cached(settings):
    if not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("The cache is used with a Redis CACHE_URL (the PostgreSQL + Redis leg).")
    settings.HOT_PATH_CACHE = True
    hot_cache.clear()


def test_a_warm_call_runs_no_sql_but_its_log_row(cached, alice, local_server, django_assert_max_num_queries):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    with django_assert_max_num_queries(5) as captured:
        assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert [q["sql"].split(" (")[0] for q in captured] == ['INSERT INTO "passthrough_functioncall"']


def test_an_edit_of_the_rate_limits_applies_to_the_next_call(cached, alice, local_server):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    integration = connection.integration
    integration.rate_limits = [{"requests": 1, "per_seconds": 60}]
    integration.save()
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 429


def test_revoking_deleting_and_editing_take_effect_on_the_next_call(cached, alice, local_server):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    integration = connection.integration
    integration.base_url = local_server.url + "/moved"
    integration.save()
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert local_server.requests[-1].path == "/moved/ping"
    connection.delete()
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 401
    alice.api_key.revoked_at = timezone.now()
    alice.api_key.save()
    assert alice.client.get("/api/v1/integrations").status_code == 401


def test_the_admin_revoke_action_takes_effect_on_the_next_call(cached, alice, admin_client, local_server):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    admin_client.post("/admin/connections/apikey/", {"action": "revoke", "_selected_action": [alice.api_key.pk]})
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked_at is not None
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 401


# --- One round trip: the generation checked by the permit's script --------------------------------------------------

@pytest.fixture
def redis_commands(monkeypatch):
    """The names of the commands this process sends to Redis, as a list that fills up."""
    import redis

    sent = []
    original = redis.Redis.execute_command

    def recording(self, *args, **options):
        sent.append(str(args[0]).upper())
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", recording)
    return sent


def written_elsewhere(update) -> None:
    """A write made by another process: a raw UPDATE (no signal here), then its bump of the generation."""
    update()
    shared_store.redis_client().set(hot_cache.GENERATION_KEY, uuid.uuid4().hex)


def test_a_warm_call_makes_one_round_trip_to_the_shared_store(cached, alice, local_server, redis_commands):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    redis_commands.clear()
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert redis_commands == ["EVALSHA"]


def test_a_key_revoked_elsewhere_is_refused_by_the_permit_and_nothing_is_sent(cached, alice, local_server):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    sent = len(local_server.requests)
    written_elsewhere(lambda: ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now()))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 401
    assert len(local_server.requests) == sent


def test_an_integration_edited_elsewhere_is_called_once_at_its_new_address(cached, alice, local_server):
    connection, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    sent = len(local_server.requests)
    written_elsewhere(lambda: Integration.objects.filter(pk=connection.integration_id).update(
        base_url=local_server.url + "/moved"))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert [r.path for r in local_server.requests[sent:]] == ["/moved/ping"]


def test_an_answer_given_without_a_permit_is_checked_before_it_goes_out(cached, alice, local_server):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    assert passthrough(alice, token, method="GET", path="/ping").status_code == 200
    assert passthrough(alice, token, method="BOGUS", path="/ping").status_code == 400
    written_elsewhere(lambda: ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now()))
    assert passthrough(alice, token, method="BOGUS", path="/ping").status_code == 401


# --- Every surface ------------------------------------------------------------------------------------------------

ZOO = Path(__file__).resolve().parent / "fixtures" / "openapi" / "zoo-3.1.json"


def integry_headers(tenant, user_id="user-1") -> dict:
    digest = hmac.new(tenant.key.encode(), user_id.encode(), hashlib.sha256).hexdigest()
    return {"App-Key": tenant.api_key.key_id, "User-ID": user_id, "Hash": digest}


def surface_calls(tenant, connection, token) -> dict:
    """One call per surface for `connection`, each returning its response."""
    json_post = {"content_type": "application/json"}
    return {
        "native": lambda: passthrough(tenant, token, method="GET", path="/v2/animals"),
        "typed": lambda: tenant.client.post("/api/v1/functions/zoo-list-animals", {}, format="json",
                                            HTTP_X_ACCOUNT_TOKEN=token),
        "merge": lambda: tenant.client.post("/merge/api/crm/v1/passthrough", {"method": "GET", "path": "/v2/animals"},
                                            format="json", HTTP_X_ACCOUNT_TOKEN=token),
        "unified": lambda: Client().get(f"/unified/passthrough/{connection.pk}/v2/animals",
                                        HTTP_AUTHORIZATION=tenant.key),
        "integry": lambda: Client().post("/integry/functions/zoo-passthrough-request/call/",
                                         json.dumps({"method": "GET", "url": "/v2/animals"}),
                                         headers=integry_headers(tenant), **json_post),
    }


@pytest.fixture
def zoo_connection(cached, alice, local_server):
    integration = local_integration(local_server.url, slug="zoo")
    call_command("import_openapi", "--integration", "zoo", str(ZOO), stdout=open(os.devnull, "w"))
    return make_connection(alice.organization, integration)


@pytest.mark.parametrize("surface", ["native", "typed", "merge", "unified", "integry"])
def test_a_warm_call_on_every_surface_runs_no_sql_but_its_log_row(zoo_connection, alice, surface,
                                                                  django_assert_max_num_queries):
    connection, token = zoo_connection
    call = surface_calls(alice, connection, token)[surface]
    assert call().status_code == 200
    with django_assert_max_num_queries(5) as captured:
        assert call().status_code == 200
    assert [q["sql"].split(" (")[0] for q in captured] == ['INSERT INTO "passthrough_functioncall"']


@pytest.mark.parametrize("surface, refused", [("native", 401), ("typed", 401), ("merge", 401), ("unified", 404),
                                              ("integry", 400)])
def test_deleting_the_connection_takes_effect_on_the_next_call_on_every_surface(zoo_connection, alice, surface,
                                                                                refused):
    connection, token = zoo_connection
    call = surface_calls(alice, connection, token)[surface]
    assert call().status_code == 200
    Connection.objects.filter(pk=connection.pk).delete()
    assert call().status_code == refused


def test_disabling_a_function_takes_effect_on_the_next_call(zoo_connection, alice):
    connection, token = zoo_connection
    call = surface_calls(alice, connection, token)["typed"]
    assert call().status_code == 200
    function = Function.objects.get(name="zoo-list-animals")
    function.enabled = False
    function.save()
    assert call().status_code == 404


# --- Two real servers on one Redis -----------------------------------------------------------------------------------

def call(port, key, token, path="/ping") -> tuple[int, dict]:
    http = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        http.request("POST", "/api/v1/passthrough", body=json.dumps({"method": "GET", "path": path}),
                     headers={"Authorization": f"Bearer {key}", "X-Account-Token": token, "Content-Type": "application/json"})
        answer = http.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        http.close()


@pytest.mark.parametrize("store", ["redis", "local"])
def test_a_write_in_one_process_takes_effect_on_the_next_call_in_two_servers(transactional_db, settings, local_server,
                                                                              store):
    """On one Redis (the cache on), and in local mode (the database cache: no cache of keys and connections)."""
    from django.db import connection as db

    if db.vendor != "postgresql" or not settings.RATE_LIMIT_REDIS_URL:
        pytest.skip("Runs on the PostgreSQL + Redis leg (servers share the database and the Redis).")
    api_key, key = make_api_key("alice")
    connection, token = make_connection(api_key.organization, local_integration(local_server.url))
    other, other_token = make_connection(api_key.organization, connection.integration, end_user_id="user-2")
    env = {**os.environ, "DATABASE_URL": shared_database_url(),
           "CACHE_URL": settings.RATE_LIMIT_REDIS_URL, "SERVE_ACCESS_LOG": "false", "LOG_LEVEL": "WARNING",
           "HOT_PATH_CACHE": "true"}
    if store == "local":
        del env["CACHE_URL"]
    with platform_serve(env, threads=2) as (first, _), platform_serve(env, threads=2) as (second, _):
        ports = (first, second)

        def every_worker(token_=token):
            """The statuses of enough calls that both workers of both servers answer (and cache)."""
            return {call(port, key, token_)[0] for port in ports for _ in range(6)}

        assert every_worker() == {200}
        integration = connection.integration
        integration.base_url = local_server.url + "/moved"
        integration.save()
        before = len(local_server.requests)
        assert every_worker() == {200}
        assert {r.path for r in local_server.requests[before:]} == {"/moved/ping"}

        connection.delete()
        assert every_worker() == {401}
        assert every_worker(other_token) == {200}

        api_key.revoked_at = timezone.now()
        api_key.save()
        assert every_worker(other_token) == {401}
