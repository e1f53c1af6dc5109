"""The function-call log: no secret in any column, bodies capped, binary bodies described, refused calls not logged.

Secrets are sent to upstreams that echo them back (httpbin `/anything`, or a local echo server), so a leak would show in
the response body as well as in the request columns. Every column of the row is checked, raw and URL-decoded.
"""

import base64
import json
from urllib.parse import quote, unquote, unquote_plus

import pytest

from connections import client
from passthrough import services
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import TOKEN, LocalServer, local_integration, passthrough, reply

pytestmark = pytest.mark.usefixtures("network_guard")

REDACTED = "<redacted>"


def strings(value):
    """Every string in a value (dict keys and values, list items), recursively."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)
    elif value is not None:
        yield str(value)


def logged_text():
    """All columns of the one logged call, each raw and URL-decoded (so an encoded leak is caught too)."""
    row = FunctionCall.objects.values().get()
    return [form for s in strings(row) for form in (s, unquote(s), unquote_plus(s))]


def assert_not_logged(*secrets):
    texts = logged_text()
    for secret in secrets:
        assert not [t for t in texts if secret in t], f"{secret!r} is in the function-call log"


def echo(received):
    """Answers with everything it received (request line, headers and body) as text."""
    lines = [f"{received.method} {received.path}", *[f"{k}: {v}" for k, v in received.headers], "", received.body.decode("latin-1")]
    return reply(200, [("Content-Type", "text/plain")], "\n".join(lines).encode("latin-1"))


@pytest.fixture
def echo_server():
    with LocalServer(echo) as server:
        yield server


def row():
    return FunctionCall.objects.get()


# --- Secrets -------------------------------------------------------------------------------------------------------

def test_injected_bearer_token_is_in_no_column_although_httpbin_echoes_it(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="POST", path="/anything", data="{}")
    assert REDACTED in row().response_body  # the echo did happen, and was redacted
    assert_not_logged(TOKEN)


def test_authorization_request_header_is_logged_redacted(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/get")
    assert row().request_headers["Authorization"] == REDACTED


def test_basic_password_and_its_base64_pair_are_in_no_column(alice, httpbin_url):
    integration = make_integration(slug="httpbin-basic", base_url=httpbin_url, auth={"scheme": "basic"})
    _, token = make_connection(alice.organization, integration, credentials={"username": "ann", "password": "pw-SECRET-42"})
    passthrough(alice, token, method="GET", path="/anything")
    assert_not_logged("pw-SECRET-42", base64.b64encode(b"ann:pw-SECRET-42").decode())


def test_api_key_in_query_is_in_no_column(alice, httpbin_url):
    integration = make_integration(slug="httpbin-query", base_url=httpbin_url,
                                   auth={"scheme": "api_key", "in": "query", "name": "api_key"})
    _, token = make_connection(alice.organization, integration, credentials={"api_key": "key-SECRET-987654"})
    passthrough(alice, token, method="GET", path="/anything?x=1")
    assert "key-SECRET-987654" not in row().url
    assert_not_logged("key-SECRET-987654")


def test_api_key_with_url_special_characters_under_a_plain_name_is_in_no_column(alice, httpbin_url):
    secret = "k+ey/SECRET=42 ~!"
    integration = make_integration(slug="httpbin-appid", base_url=httpbin_url,
                                   auth={"scheme": "api_key", "in": "query", "name": "appid"})
    _, token = make_connection(alice.organization, integration, credentials={"api_key": secret})
    passthrough(alice, token, method="GET", path="/anything")
    assert "appid" in row().url
    assert_not_logged(secret, quote(secret, safe=""), secret.replace(" ", "+"))


def test_api_key_in_a_custom_header_is_in_no_column(alice, httpbin_url):
    integration = make_integration(slug="httpbin-header", base_url=httpbin_url,
                                   auth={"scheme": "api_key", "in": "header", "name": "X-Custom-Auth"})
    _, token = make_connection(alice.organization, integration, credentials={"api_key": "hdr-SECRET-24680"})
    passthrough(alice, token, method="GET", path="/anything")
    assert_not_logged("hdr-SECRET-24680")


def test_our_api_key_and_account_token_given_to_an_upstream_are_in_no_column(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="POST", path="/anything", query={"note": alice.key},
                headers={"X-Debug-Key": alice.key, "X-Account-Token": token}, data=json.dumps({"key": alice.key, "token": token}))
    assert_not_logged(alice.key, token)


def test_caller_cookie_is_in_no_column_although_httpbin_echoes_it(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/anything", headers={"Cookie": "session=cookie-SECRET-777; theme=dark"})
    assert row().request_headers["Cookie"] == REDACTED
    assert_not_logged("cookie-SECRET-777")


def test_caller_authorization_for_an_api_key_integration_is_in_no_column(alice, httpbin_url):
    integration = make_integration(slug="httpbin-own-auth", base_url=httpbin_url,
                                   auth={"scheme": "api_key", "in": "header", "name": "X-Api-Key"})
    _, token = make_connection(alice.organization, integration, credentials={"api_key": "key-SECRET-987654"})
    passthrough(alice, token, method="GET", path="/anything", headers={"Authorization": "Bearer callers-own-SECRET-1"})
    assert_not_logged("callers-own-SECRET-1", "key-SECRET-987654")


def test_set_cookie_from_the_upstream_is_in_no_column(alice):
    answer = reply(200, [("Set-Cookie", "sid=setcookie-SECRET-888; Path=/; HttpOnly"), ("Content-Type", "application/json")],
                   b'{"session": "setcookie-SECRET-888"}')
    with LocalServer(lambda r: answer) as server:
        _, token = make_connection(alice.organization, local_integration(server.url))
        passthrough(alice, token, method="GET", path="/login")
    assert row().response_headers["Set-Cookie"] == REDACTED
    assert_not_logged("setcookie-SECRET-888")


def test_secret_looking_query_parameters_are_logged_redacted(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/get", query={"access_token": "callers-token-SECRET", "page": "2"})
    assert "page=2" in row().url
    assert_not_logged("callers-token-SECRET")


def test_secret_split_by_the_body_cap_leaves_no_prefix_in_the_log(alice, settings):
    settings.FUNCTION_CALL_BODY_LIMIT = 105
    with LocalServer(lambda r: reply(200, [("Content-Type", "text/plain")], b"x" * 95 + TOKEN.encode() + b"y" * 100)) as server:
        _, token = make_connection(alice.organization, local_integration(server.url))
        passthrough(alice, token, method="GET", path="/")
    assert row().response_body_truncated
    assert TOKEN[:8] not in row().response_body


def test_secret_in_an_error_message_is_redacted(alice, alice_connection):
    connection, _ = alice_connection
    exchange = client.Exchange("GET", "https://api.acme.test/v1/x", {}, None, client.datetime.now(client.dt_timezone.utc),
                               error=RuntimeError(f"upstream said {TOKEN}"), secret_values=[TOKEN])
    services.function_call_record(exchange, connection=connection, dialect=FunctionCall.DIALECT_NATIVE, mode=FunctionCall.MODE_SYNC)
    assert (TOKEN in row().error, REDACTED in row().error) == (False, True)


# --- Size caps and binary bodies -------------------------------------------------------------------------------------

def test_request_body_over_the_limit_is_cut_and_marked_truncated(alice, httpbin_integration, settings):
    settings.FUNCTION_CALL_BODY_LIMIT = 200
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="POST", path="/anything", data="a" * 1000, headers={"Content-Type": "text/plain"})
    call = row()
    assert (call.request_body, call.request_body_truncated, call.request_size) == ("a" * 200, True, 1000)


def test_response_body_over_the_limit_is_cut_and_marked_truncated(alice, httpbin_integration, settings):
    settings.FUNCTION_CALL_BODY_LIMIT = 200
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="POST", path="/anything", data="a" * 1000, headers={"Content-Type": "text/plain"})
    call = row()
    assert call.response_body_truncated and len(call.response_body.encode()) <= 200 < call.response_size


def test_bodies_within_the_limit_are_stored_whole(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="POST", path="/anything", data='{"a": 1}')
    call = row()
    assert (call.request_body, call.request_body_truncated, call.response_body_truncated) == ('{"a": 1}', False, False)
    assert json.loads(call.response_body)["data"] == '{"a": 1}'


def test_cut_inside_a_multibyte_character_keeps_valid_text(alice, settings):
    settings.FUNCTION_CALL_BODY_LIMIT = 201
    with LocalServer(lambda r: reply(200, [("Content-Type", "text/plain; charset=utf-8")], "é".encode() * 300)) as server:
        _, token = make_connection(alice.organization, local_integration(server.url))
        passthrough(alice, token, method="GET", path="/")
    assert (row().response_body, row().response_body_truncated) == ("é" * 100, True)


def test_binary_response_body_is_described_not_stored(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/image/png")
    call = row()
    assert "binary" in call.response_body and "PNG" not in call.response_body and call.response_size > 1000


def test_binary_request_body_is_described_not_stored(alice, echo_server):
    connection, _ = make_connection(alice.organization, local_integration(echo_server.url))
    payload = bytes(range(256)) * 4
    services.passthrough_execute(connection=connection, method="PUT", target=client.build_target(connection.integration, "/blob"),
                                 body=payload, headers={"Content-Type": "application/octet-stream"}, dialect=FunctionCall.DIALECT_NATIVE)
    call = row()
    assert ("binary" in call.request_body, len(call.request_body) < 100, call.request_size) == (True, True, 1024)


def test_body_with_nul_bytes_is_described_as_binary(alice):
    with LocalServer(lambda r: reply(200, [("Content-Type", "text/plain")], b"abc\x00def" * 10)) as server:
        _, token = make_connection(alice.organization, local_integration(server.url))
        response = passthrough(alice, token, method="GET", path="/")
    assert response.status_code == 200
    assert "\x00" not in row().response_body and "binary" in row().response_body


def test_empty_bodies_are_stored_empty(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/status/204")
    call = row()
    assert (call.request_body, call.response_body, call.response_status) == ("", "", 204)


# --- Refused calls are not logged ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"method": "GET", "path": "/x", "base_url_override": "https://evil.example"},
    {"method": "GET", "path": "/../admin"},
    {"method": "GET", "path": "/%2e%2e/admin"},
    {"method": "GET", "path": "/x", "base_url_override": "http://169.254.169.254"},
    {"method": "GET", "path": "/x", "base_url_override": "http://2130706433"},
    {"method": "GET", "path": "/x", "base_url_override": "http://localhost:1"},
    {"method": "GET", "path": "/x", "headers": {"X-Bad": "a\r\nX-Injected: 1"}},
    {"method": "TRACE", "path": "/x"},
])
def test_refused_call_is_400_and_writes_no_row(alice, httpbin_integration, body):
    _, token = make_connection(alice.organization, httpbin_integration)
    response = passthrough(alice, token, **body)
    assert response.status_code == 400, response.content
    assert FunctionCall.objects.count() == 0
