"""OAuth2 access-token refresh in the outbound client: when, how, what is stored, failure, and concurrency.

The token endpoint and the upstream API are real servers on 127.0.0.1 (`LocalServer`), so every refresh and every
upstream request is counted on the wire.
"""

import json
import threading
import time
from urllib.parse import parse_qsl

import pytest
from django import db
from django.db.utils import OperationalError

from connections import client, oauth2
from connections.models import Connection
from connections.oauth2 import TOKEN_ANSWER_MAX_BYTES
from integration_platform.errors import ConnectionUnusable, UpstreamAnswerUnusable, UpstreamUnreachable
from passthrough import services
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import LocalServer, closed_port, passthrough, reply

pytestmark = pytest.mark.usefixtures("network_guard")

OLD, NEW, REFRESH = "at-OLD-SECRET-111", "at-NEW-SECRET-222", "rt-SECRET-333"


class TokenEndpoint:
    """Answers every refresh with `status` and `body` (after `delay` seconds, to widen races)."""

    def __init__(self, status=200, body=None, delay=0.0):
        self.status, self.delay = status, delay
        self.body = body if body is not None else {"access_token": NEW, "token_type": "Bearer", "expires_in": 3600}

    def __call__(self, received):
        time.sleep(self.delay)
        return reply(self.status, [("Content-Type", "application/json")], json.dumps(self.body).encode())


@pytest.fixture
def upstream():
    with LocalServer() as server:
        yield server


def token_server(**kwargs):
    return LocalServer(TokenEndpoint(**kwargs))


def oauth_integration(upstream, tokens, token_url=None):
    return make_integration(slug="oauthy", base_url=upstream.url, auth={
        "scheme": "oauth2", "authorize_url": "https://acme.test/authorize",
        "token_url": token_url or f"{tokens.url}/oauth/token", "client_id": "client-1", "client_secret": "cs-SECRET-444"})


def oauth_connection(organization, integration, expires_in=-10, **extra):
    credentials = {"access_token": OLD, "refresh_token": REFRESH, "expires_at": int(time.time() + expires_in), **extra}
    return make_connection(organization, integration, credentials=credentials)


def call(connection, path="/me"):
    target = client.build_target(connection.integration, path)
    return services.passthrough_execute(connection=connection, method="GET", target=target, dialect=FunctionCall.DIALECT_NATIVE)


def form(received):
    return dict(parse_qsl(received.body.decode()))


# --- When a refresh happens ----------------------------------------------------------------------------------------

def test_expired_token_is_refreshed_once_with_the_refresh_token(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    assert [(r.method, r.path, form(r)["grant_type"], form(r)["refresh_token"]) for r in tokens.requests] == [
        ("POST", "/oauth/token", "refresh_token", REFRESH)]


def test_refresh_authenticates_with_the_integrations_client_credentials(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    assert (form(tokens.requests[0])["client_id"], form(tokens.requests[0])["client_secret"]) == ("client-1", "cs-SECRET-444")


def test_refreshed_token_is_the_one_sent_upstream(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    assert upstream.requests[0].values("Authorization") == [f"Bearer {NEW}"]


def test_refreshed_token_is_stored_for_the_next_call(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
        call(Connection.objects.select_related("integration").get(pk=connection.pk))
    assert len(tokens.requests) == 1
    assert [r.header("Authorization") for r in upstream.requests] == [f"Bearer {NEW}"] * 2


def test_refreshed_token_is_stored_encrypted(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.credentials["access_token"] == NEW
    assert NEW not in stored.credentials_ciphertext and REFRESH not in stored.credentials_ciphertext


def test_new_expiry_is_computed_from_expires_in(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        before = time.time()
        call(connection)
    assert Connection.objects.get(pk=connection.pk).credentials["expires_at"] >= int(before) + 3600


def test_rotated_refresh_token_replaces_the_old_one(alice, upstream):
    with token_server(body={"access_token": NEW, "refresh_token": "rt-ROTATED-555", "expires_in": 60}) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    assert Connection.objects.get(pk=connection.pk).credentials["refresh_token"] == "rt-ROTATED-555"


def test_refresh_token_is_kept_when_the_answer_has_none(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        call(connection)
    assert Connection.objects.get(pk=connection.pk).credentials["refresh_token"] == REFRESH


def test_token_expiring_within_the_margin_is_refreshed(alice, upstream, settings):
    settings.OAUTH_REFRESH_MARGIN_SECONDS = 60
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens), expires_in=30)
        call(connection)
    assert len(tokens.requests) == 1


def test_token_not_yet_expired_is_not_refreshed(alice, upstream):
    with token_server() as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens), expires_in=3600)
        call(connection)
    assert (len(tokens.requests), upstream.requests[0].header("Authorization")) == (0, f"Bearer {OLD}")


def test_token_without_an_expiry_is_not_refreshed(alice, upstream):
    with token_server() as tokens:
        integration = oauth_integration(upstream, tokens)
        connection, _ = make_connection(alice.organization, integration, credentials={"access_token": OLD, "refresh_token": REFRESH})
        call(connection)
    assert len(tokens.requests) == 0


def test_iso_8601_expiry_in_the_past_is_refreshed(alice, upstream):
    with token_server() as tokens:
        integration = oauth_integration(upstream, tokens)
        connection, _ = make_connection(alice.organization, integration, credentials={
            "access_token": OLD, "refresh_token": REFRESH, "expires_at": "2020-01-01T00:00:00Z"})
        call(connection)
    assert len(tokens.requests) == 1


def test_refresh_through_the_native_api_answers_with_the_upstream(alice, upstream):
    with token_server() as tokens:
        _, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        response = passthrough(alice, token, method="GET", path="/me")
    assert (response.status_code, response.json()["status"], len(tokens.requests)) == (200, 200, 1)


# --- Refresh failure -------------------------------------------------------------------------------------------------

INVALID_GRANT = {"error": "invalid_grant", "error_description": "Token has been revoked."}


def test_refused_refresh_marks_the_connection_needs_reauth(alice, upstream):
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert Connection.objects.get(pk=connection.pk).status == Connection.STATUS_NEEDS_REAUTH


def test_refused_refresh_is_announced_as_needs_reauth(alice, upstream, monkeypatch):
    from connections import lifecycle

    announced = []
    monkeypatch.setitem(lifecycle._subscribers, lifecycle.NEEDS_REAUTH, [lambda connection, **_: announced.append(connection.pk)])
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert announced == [connection.pk]


def test_refused_refresh_is_a_clear_4xx_from_the_api(alice, upstream):
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        _, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        response = passthrough(alice, token, method="GET", path="/me")
    assert 400 <= response.status_code < 500
    assert "re-authoriz" in json.dumps(response.json())


def test_refused_refresh_sends_nothing_upstream_and_logs_nothing(alice, upstream):
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        _, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        passthrough(alice, token, method="GET", path="/me")
    assert (upstream.connections, FunctionCall.objects.count()) == (0, 0)


def test_refused_refresh_keeps_the_old_credentials(alice, upstream):
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        connection, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        passthrough(alice, token, method="GET", path="/me")
    assert Connection.objects.get(pk=connection.pk).credentials["refresh_token"] == REFRESH


def test_connection_needing_reauth_is_not_refreshed_again(alice, upstream):
    with token_server(status=400, body=INVALID_GRANT) as tokens:
        _, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        passthrough(alice, token, method="GET", path="/me")
        second = passthrough(alice, token, method="GET", path="/me")
    assert (second.status_code, len(tokens.requests), upstream.connections) == (400, 1, 0)


def test_answer_without_an_access_token_marks_needs_reauth(alice, upstream):
    with token_server(body={"token_type": "Bearer"}) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert Connection.objects.get(pk=connection.pk).status == Connection.STATUS_NEEDS_REAUTH


def test_expired_token_without_a_refresh_token_marks_needs_reauth(alice, upstream):
    with token_server() as tokens:
        integration = oauth_integration(upstream, tokens)
        connection, _ = make_connection(alice.organization, integration, credentials={"access_token": OLD, "expires_at": 1})
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert (Connection.objects.get(pk=connection.pk).status, len(tokens.requests), upstream.connections) == (
        Connection.STATUS_NEEDS_REAUTH, 0, 0)


def test_token_endpoint_server_error_is_retryable_not_a_reauth(alice, upstream):
    with token_server(status=503, body={"error": "temporarily_unavailable"}) as tokens:
        connection, token = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        response = passthrough(alice, token, method="GET", path="/me")
    assert (response.status_code, upstream.connections) == (502, 0)
    assert Connection.objects.get(pk=connection.pk).status == Connection.STATUS_ACTIVE


def test_unreachable_token_endpoint_is_502_and_keeps_the_connection_active(alice, upstream):
    integration = oauth_integration(upstream, None, token_url=f"http://127.0.0.1:{closed_port()}/token")
    connection, _ = oauth_connection(alice.organization, integration)
    with pytest.raises(UpstreamUnreachable):
        call(connection)
    assert (Connection.objects.get(pk=connection.pk).status, upstream.connections) == (Connection.STATUS_ACTIVE, 0)


def test_refresh_secrets_never_reach_the_log(alice):
    with LocalServer(lambda r: reply(200, [("Content-Type", "text/plain")], r.header("Authorization").encode())) as echo:
        with token_server() as tokens:
            connection, _ = oauth_connection(alice.organization, oauth_integration(echo, tokens))
            call(connection)
    row = json.dumps(list(FunctionCall.objects.values()), default=str)
    assert NEW not in row and OLD not in row and REFRESH not in row


# --- Concurrency -----------------------------------------------------------------------------------------------------

def fresh_credentials_waiting_like_sqlite(connection, patience=60.0):
    """`oauth2.fresh_credentials`, waiting out SQLite write locks.

    On the SQLite leg the test database is in memory with a shared cache, where a second `BEGIN IMMEDIATE` fails at once
    ("database table is locked") instead of waiting as the production file database does (busy timeout). Wait here the
    way SQLite's busy handler would; on PostgreSQL the row lock blocks and nothing is retried.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return oauth2.fresh_credentials(connection)
        except OperationalError as exc:
            if db.connection.vendor != "sqlite" or "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_concurrent_calls_on_one_expired_connection_refresh_exactly_once(transactional_db, alice, upstream):
    threads_count = 8
    with token_server(delay=0.3) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        barrier = threading.Barrier(threads_count)
        seen, errors = [], []

        def worker():
            try:
                own = Connection.objects.select_related("integration").get(pk=connection.pk)
                barrier.wait(timeout=30)
                seen.append(fresh_credentials_waiting_like_sqlite(own)["access_token"])
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.connection.close()

        threads = [threading.Thread(target=worker) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
    assert len(tokens.requests) == 1
    assert seen == [NEW] * threads_count
    assert Connection.objects.get(pk=connection.pk).credentials["access_token"] == NEW



# --- The refresh goes through the guarded send path: no redirects, capped answer -----------------------------------

def redirecting_token_server(location):
    return LocalServer(lambda received: reply(307, [("Location", location)]))


def test_a_redirect_from_the_token_endpoint_is_not_followed_with_the_secrets(alice, upstream):
    with LocalServer(TokenEndpoint()) as elsewhere, redirecting_token_server(f"{elsewhere.url}/collect") as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert len(tokens.requests) == 1
    assert elsewhere.requests == []  # neither the refresh token nor the client secret went anywhere else
    assert not upstream.requests


@pytest.mark.parametrize("host", ["2130706433", "127.1", "[::ffff:127.0.0.1]"])
def test_a_redirect_to_a_loopback_spelling_is_not_followed(alice, upstream, network_guard, host):
    with LocalServer(TokenEndpoint()) as elsewhere, \
            redirecting_token_server(f"http://{host}:{elsewhere.port}/collect") as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert elsewhere.requests == [] and network_guard.lookups == []


def test_a_redirect_to_a_private_address_is_never_connected_to(alice, upstream, network_guard):
    network_guard.decoys.add("10.0.0.7")
    with redirecting_token_server("http://10.0.0.7/collect") as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(ConnectionUnusable):
            call(connection)
    assert network_guard.remote_connects() == []


def test_an_oversized_token_answer_is_refused_and_nothing_is_stored(alice, upstream):
    body = {"access_token": NEW, "expires_in": 3600, "padding": "x" * TOKEN_ANSWER_MAX_BYTES}
    with token_server(body=body) as tokens:
        connection, _ = oauth_connection(alice.organization, oauth_integration(upstream, tokens))
        with pytest.raises(UpstreamAnswerUnusable):
            call(connection)
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.credentials["access_token"], stored.status) == (OLD, Connection.STATUS_ACTIVE)
    assert not upstream.requests
