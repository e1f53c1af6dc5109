"""Credentials an upstream echoes never come back to the caller, and async passthrough stores nothing in clear.

The local upstream repeats the injected Authorization in a response header and in its body, as misbehaving (or
debugging) upstreams do. merge.md §4: "Credentials never appear in response_headers" — on every surface.
"""

import json

import pytest

from connections.crypto import decrypt_json
from passthrough.models import AsyncPassthroughRequest
from tests.factories import make_connection
from tests.network import TOKEN, LocalServer, local_integration, reply

pytestmark = pytest.mark.usefixtures("network_guard")

CALLER_SECRET = "caller-own-SECRET-98765"


def echoing_upstream(received):
    authorization = received.header("Authorization") or ""
    body = json.dumps({"authorization": authorization}).encode()
    return reply(200, [("Content-Type", "application/json"), ("X-Echo-Authorization", authorization),
                       ("X-Token-Seen", f"token={TOKEN}; ok")], body)


@pytest.fixture
def echo_connection(alice):
    with LocalServer(echoing_upstream) as server:
        integration = local_integration(server.url, slug="echo")
        yield make_connection(alice.organization, integration)


def header_values(response_headers) -> str:
    return json.dumps(response_headers)


def test_native_passthrough_redacts_echoed_credentials_from_response_headers(alice, echo_connection):
    _, token = echo_connection
    response = alice.client.post("/api/v1/passthrough", {"method": "GET", "path": "/x"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 200
    headers = response.json()["response_headers"]
    assert TOKEN not in header_values(headers)
    assert headers["X-Echo-Authorization"] == "Bearer <redacted>"
    assert headers["X-Token-Seen"] == "token=<redacted>; ok"


def test_merge_passthrough_redacts_echoed_credentials_from_response_headers(alice, echo_connection):
    _, token = echo_connection
    response = alice.client.post("/merge/api/crm/v1/passthrough", {"method": "GET", "path": "/x"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 200
    assert TOKEN not in header_values(response.json()["response_headers"])


def test_unified_passthrough_redacts_echoed_credentials_from_response_headers(alice, echo_connection):
    connection, _ = echo_connection
    response = alice.client.get(f"/unified/passthrough/{connection.pk}/x")
    assert response.status_code == 200
    assert response["X-Echo-Authorization"] == "Bearer <redacted>"
    assert TOKEN not in response["X-Token-Seen"]


def test_async_passthrough_stores_the_envelope_encrypted_and_redacted(alice, echo_connection, broker):
    _, token = echo_connection
    response = alice.client.post("/api/v1/async-passthrough", {
        "method": "POST", "path": f"/x?api_token={CALLER_SECRET}&page=2", "data": "body-text",
        "headers": {"Authorization": f"Bearer {CALLER_SECRET}", "X-Plain": "visible"},
    }, format="json", HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 202
    row = AsyncPassthroughRequest.objects.values().get()
    stored_in_clear = json.dumps({k: v for k, v in row.items() if k != "request_ciphertext"}, default=str)
    for secret in (CALLER_SECRET, token, alice.key, "body-text"):
        assert secret not in stored_in_clear
    assert row["request"]["headers"]["X-Plain"] == "visible"
    assert CALLER_SECRET not in row["request_ciphertext"]
    assert decrypt_json(row["request_ciphertext"])["headers"]["Authorization"] == f"Bearer {CALLER_SECRET}"


def test_async_passthrough_result_is_redacted_and_the_envelope_deleted_when_done(alice, echo_connection, broker,
                                                                                  worker):
    _, token = echo_connection
    receipt_id = alice.client.post("/api/v1/async-passthrough", {"method": "GET", "path": "/x"}, format="json",
                                   HTTP_X_ACCOUNT_TOKEN=token).json()["async_passthrough_receipt_id"]
    broker.join("async_passthrough")
    worker.join()
    row = AsyncPassthroughRequest.objects.get(pk=receipt_id)
    assert row.status == row.DONE
    assert row.request_ciphertext == ""
    assert TOKEN not in json.dumps(row.result) and TOKEN not in json.dumps(row.request)
    assert row.result["response"] == {"authorization": "Bearer <redacted>"}
    assert alice.client.get(f"/api/v1/async-passthrough/{receipt_id}").json()["response_headers"][
        "X-Echo-Authorization"] == "Bearer <redacted>"
