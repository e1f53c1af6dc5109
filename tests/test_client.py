"""The one outbound client (connections/client.py): URL building, credentials, headers, bodies, timeouts.

Unit tests use `responses`; integration tests use real servers on 127.0.0.1 (httpbin under gunicorn, or `LocalServer`,
an in-process server that records exactly what arrived on the wire). No packet leaves this machine: the autouse
`network_guard` fails any test that resolves a name through real DNS or connects to a non-loopback address.

The shared helpers (`LocalServer`, `closed_port`, `passthrough`) are in tests/network.py.
"""

import base64
import gzip
import json
import threading
import time

import pytest
import requests
import responses

from connections import client
from connections.addresses import AddressRefused
from integration_platform.errors import InvalidInput, UpstreamTimeout, UpstreamUnreachable
from passthrough import services
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import TOKEN, LocalServer, closed_port, local_integration, passthrough, reply, send

pytestmark = pytest.mark.usefixtures("network_guard")

# --- 1. URL building -----------------------------------------------------------------------------------------------

@pytest.fixture
def acme(db):
    return make_integration(slug="acme-urls", base_url="https://api.acme.test/v1",
                            allowed_override_hosts=["eu.acme.test", "*.acme-cdn.test", "xn--bcher-kva.example"])


def url_of(integration, path="", query=(), base_url=None):
    return client.build_target(integration, path, query, base_url=base_url).url()


@pytest.mark.parametrize("base_url, path, expected", [
    ("https://api.acme.test/v1", "users", "https://api.acme.test/v1/users"),
    ("https://api.acme.test/v1", "/users", "https://api.acme.test/v1/users"),
    ("https://api.acme.test/v1", "//users", "https://api.acme.test/v1/users"),
    ("https://api.acme.test/v1", "///users/42", "https://api.acme.test/v1/users/42"),
    ("https://api.acme.test/v1/", "users", "https://api.acme.test/v1/users"),
    ("https://api.acme.test/v1/", "/users", "https://api.acme.test/v1/users"),
    ("https://api.acme.test", "users", "https://api.acme.test/users"),
    ("https://api.acme.test/", "/users", "https://api.acme.test/users"),
    ("https://api.acme.test/api/v2", "users/", "https://api.acme.test/api/v2/users/"),
])
def test_path_is_joined_below_the_base_path_with_exactly_one_slash(db, base_url, path, expected):
    integration = make_integration(slug="joined", base_url=base_url)
    assert url_of(integration, path) == expected


@pytest.mark.parametrize("base_url, path, expected", [
    ("https://api.acme.test/v1", "", "https://api.acme.test/v1"),
    ("https://api.acme.test/v1", "/", "https://api.acme.test/v1"),
    ("https://api.acme.test/v1/", "", "https://api.acme.test/v1/"),
    ("https://api.acme.test", "", "https://api.acme.test/"),
])
def test_empty_path_targets_the_base_url_itself(db, base_url, path, expected):
    integration = make_integration(slug="empty", base_url=base_url)
    assert url_of(integration, path) == expected


def test_override_base_url_keeps_its_own_path(acme):
    assert url_of(acme, "/users", base_url="https://eu.acme.test/v2") == "https://eu.acme.test/v2/users"


def test_query_merges_base_then_path_then_extra_in_order_with_repeats(acme):
    target = client.build_target(acme, "search?c=3&a=4&a=5", [("a", "6"), ("d", "7")],
                                 base_url="https://api.acme.test/v1?a=1&b=2")
    assert target.query == [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4"), ("a", "5"), ("a", "6"), ("d", "7")]
    assert target.url() == "https://api.acme.test/v1/search?a=1&b=2&c=3&a=4&a=5&a=6&d=7"


def test_blank_query_values_are_kept(acme):
    assert client.build_target(acme, "x?flag=&y=1").query == [("flag", ""), ("y", "1")]


def test_fragment_of_the_path_is_not_sent(acme):
    assert url_of(acme, "users?a=1#section") == "https://api.acme.test/v1/users?a=1"


def test_percent_encoded_slash_in_the_path_stays_encoded(acme):
    assert url_of(acme, "files/a%2Fb") == "https://api.acme.test/v1/files/a%2Fb"


def test_space_in_the_path_is_percent_encoded(acme):
    assert url_of(acme, "files/my file") == "https://api.acme.test/v1/files/my%20file"


def test_non_ascii_path_is_utf8_percent_encoded(acme):
    assert url_of(acme, "cafés/ü") == "https://api.acme.test/v1/caf%C3%A9s/%C3%BC"


def test_existing_percent_escapes_are_not_encoded_twice(acme):
    assert url_of(acme, "name/John%20Doe") == "https://api.acme.test/v1/name/John%20Doe"


def test_percent_encoded_slash_reaches_the_upstream_encoded(alice, local_server):
    connection, _ = make_connection(alice.organization, local_integration(local_server.url + "/v1"))
    send(connection, path="files/a%2Fb c")
    assert local_server.requests[0].path == "/v1/files/a%2Fb%20c"


@pytest.mark.parametrize("path", [".", "..", "./users", "../admin", "users/../admin", "users/./me", "users/..",
                                  "%2e%2e/admin", "%2E%2E/admin", ".%2e/admin", "users/%2e", "a/%2e%2E"])
def test_dot_segments_are_refused(acme, path):
    with pytest.raises(InvalidInput):
        client.build_target(acme, path)


@pytest.mark.parametrize("path", ["v1.2/x", "..hidden", "a..b", "file.", ".well-known/x"])
def test_dots_inside_a_segment_are_not_dot_segments(acme, path):
    assert client.build_target(acme, path).path.startswith("/v1/")


def test_encoded_dot_segments_never_reach_the_upstream(alice, local_server):
    connection, _ = make_connection(alice.organization, local_integration(local_server.url + "/v1/private"))
    with pytest.raises(InvalidInput):
        send(connection, path="%2e%2e/admin")
    assert local_server.connections == 0


def test_absolute_url_on_the_base_host_is_trusted(acme):
    target = client.absolute_url_target(acme, "https://api.acme.test/v2/users?x=1", [("y", "2")])
    assert (target.url(), target.policy) == ("https://api.acme.test/v2/users?x=1&y=2", client.TRUSTED)


def test_absolute_url_host_is_compared_case_insensitively_without_trailing_dot(acme):
    target = client.absolute_url_target(acme, "https://API.Acme.Test./v1/users")
    assert (target.host, target.policy) == ("api.acme.test", client.TRUSTED)


def test_absolute_url_on_the_base_host_with_the_default_port_is_trusted(acme):
    assert client.absolute_url_target(acme, "https://api.acme.test:443/v1/x").policy == client.TRUSTED


def test_absolute_url_on_an_allowed_override_host_is_guarded(acme):
    target = client.absolute_url_target(acme, "https://eu.acme.test/v1/users")
    assert (target.host, target.policy) == ("eu.acme.test", client.PUBLIC_ONLY)


def test_base_host_on_another_port_is_guarded_not_trusted(acme):
    assert client.build_target(acme, "x", base_url="https://api.acme.test:8443").policy == client.PUBLIC_ONLY


def test_relative_url_given_as_absolute_url_argument_is_a_path_below_the_base(acme):
    assert client.absolute_url_target(acme, "/users").url() == "https://api.acme.test/v1/users"


@pytest.mark.parametrize("host", ["eu.acme-cdn.test", "a.b.acme-cdn.test", "EU.Acme-Cdn.Test"])
def test_wildcard_entry_matches_one_or_more_labels_before_its_suffix(acme, host):
    assert client.build_target(acme, "x", base_url=f"https://{host}").host == host.lower()


def test_wildcard_entry_does_not_match_the_bare_suffix(acme):
    with pytest.raises(InvalidInput):
        client.build_target(acme, "x", base_url="https://acme-cdn.test")


def test_bare_suffix_matches_when_listed_itself(db):
    integration = make_integration(slug="both", allowed_override_hosts=["*.acme-cdn.test", "acme-cdn.test"])
    assert client.build_target(integration, "x", base_url="https://acme-cdn.test").host == "acme-cdn.test"


def test_wildcard_entry_does_not_match_a_host_merely_ending_with_the_suffix_text(acme):
    with pytest.raises(InvalidInput):
        client.build_target(acme, "x", base_url="https://evilacme-cdn.test")


def test_idna_host_matches_its_punycode_entry(acme):
    assert client.build_target(acme, "x", base_url="https://bücher.example").host == "xn--bcher-kva.example"


@pytest.mark.parametrize("entry", ["::1", "[::1]"])
def test_ipv6_literal_entry_matches_with_or_without_brackets(db, entry):
    integration = make_integration(slug="v6", allowed_override_hosts=[entry])
    target = client.build_target(integration, "x", base_url="http://[::1]:8080")
    assert (target.url(), target.policy) == ("http://[::1]:8080/x", client.PRIVATE_ALLOWED)


@pytest.mark.parametrize("url", ["https://evil.example/x", "https://api.acme.test.evil.example/", "https://eu.acme.test.evil/",
                                 "https://acme.test/", "https://10.0.0.1/"])
def test_absolute_url_on_any_other_host_is_refused(acme, url):
    with pytest.raises(InvalidInput):
        client.absolute_url_target(acme, url)


@pytest.mark.parametrize("url", ["https://user@api.acme.test/v1", "https://user:pw@api.acme.test/v1",
                                 "https://api.acme.test@eu.acme.test/v1", "https://:pw@api.acme.test/"])
def test_userinfo_in_a_url_is_refused(acme, url):
    with pytest.raises(InvalidInput):
        client.absolute_url_target(acme, url)


@pytest.mark.parametrize("url", ["ftp://api.acme.test/x", "file:///etc/passwd", "gopher://api.acme.test/"])
def test_non_http_scheme_is_refused(acme, url):
    with pytest.raises(InvalidInput):
        client.absolute_url_target(acme, url)


@pytest.mark.parametrize("url", ["http://[::1", "http://[evil.example]/", "https://a\x00b.acme-cdn.test/",
                                 "https://a b.acme-cdn.test/", "https://api.acme.test:99999/", "https://api.acme.test:x/"])
def test_malformed_override_url_is_invalid_input_not_a_crash(acme, url):
    with pytest.raises(InvalidInput):
        client.build_target(acme, "x", base_url=url)


@pytest.mark.parametrize("domain, expected", [
    ("eu.acme.test", "https://eu.acme.test/v1"),
    ("eu.acme.test:8443", "https://eu.acme.test:8443/v1"),
    ("[2001:db8::1]:8443", "https://[2001:db8::1]:8443/v1"),
    ("[2001:db8::1]", "https://[2001:db8::1]/v1"),
])
def test_domain_value_replaces_host_and_port_keeping_scheme_and_base_path(acme, domain, expected):
    assert client.domain_base_url(acme, domain) == expected


def test_domain_override_goes_through_the_host_allowlist(acme):
    with pytest.raises(InvalidInput):
        client.build_target(acme, "x", base_url=client.domain_base_url(acme, "evil.example"))


@pytest.mark.parametrize("domain", ["https://eu.acme.test", "//eu.acme.test", "eu.acme.test/x", "user@eu.acme.test",
                                    "eu.acme.test?x=1", "eu.acme.test#x", "eu acme.test", " eu.acme.test",
                                    "eu.acme.test\n", "eu.acme.test\t", "eu.acme.test\x0b", "\u00a0eu.acme.test", "",
                                    "eu.acme.test:99999", "eu.acme.test:http", "[::1", "a\\b"])
def test_invalid_domain_values_are_refused(acme, domain):
    with pytest.raises(InvalidInput):
        client.build_target(acme, "x", base_url=client.domain_base_url(acme, domain))


# --- 3. Credentials, headers, bodies (unit: `responses`) ------------------------------------------------------------

@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, "https://api.acme.test/v1/me", json={"ok": True})
        rsps.add(responses.POST, "https://api.acme.test/v1/me", json={"ok": True})
        yield rsps


def scheme_connection(organization, auth, credentials, slug="schemes"):
    integration = make_integration(slug=slug, base_url="https://api.acme.test/v1", auth=auth)
    return make_connection(organization, integration, credentials=credentials)[0]


def sent_request(mocked):
    assert len(mocked.calls) == 1
    return mocked.calls[0].request


@pytest.mark.parametrize("caller_name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_bearer_token_is_injected_over_a_caller_authorization_header(alice, alice_connection, mocked, caller_name):
    connection, _ = alice_connection
    send(connection, path="me", headers={caller_name: "Bearer caller-chosen"})
    assert sent_request(mocked).headers["Authorization"] == f"Bearer {TOKEN}"


def test_api_key_is_injected_in_its_configured_header(alice, mocked):
    connection = scheme_connection(alice.organization, {"scheme": "api_key", "in": "header", "name": "X-Api-Key"},
                                   {"api_key": "key-SECRET-987654"})
    send(connection, path="me", headers={"x-API-key": "caller-chosen"})
    assert sent_request(mocked).headers["X-Api-Key"] == "key-SECRET-987654"


def test_api_key_in_query_is_added_last(alice, mocked):
    connection = scheme_connection(alice.organization, {"scheme": "api_key", "in": "query", "name": "api_key"},
                                   {"api_key": "key-SECRET-987654"})
    send(connection, path="me?a=1", query=[("b", "2")])
    assert sent_request(mocked).url == "https://api.acme.test/v1/me?a=1&b=2&api_key=key-SECRET-987654"


def test_api_key_in_query_overrides_a_caller_parameter_of_that_name(alice, mocked):
    connection = scheme_connection(alice.organization, {"scheme": "api_key", "in": "query", "name": "api_key"},
                                   {"api_key": "key-SECRET-987654"})
    send(connection, path="me?api_key=mine&a=1", query=[("api_key", "mine-too")])
    assert sent_request(mocked).url == "https://api.acme.test/v1/me?a=1&api_key=key-SECRET-987654"


def test_basic_credentials_are_injected_over_a_caller_authorization_header(alice, mocked):
    connection = scheme_connection(alice.organization, {"scheme": "basic"}, {"username": "ann", "password": "pw-SECRET-42"})
    send(connection, path="me", headers={"authorization": "Basic Y2FsbGVyOmNhbGxlcg=="})
    assert sent_request(mocked).headers["Authorization"] == "Basic " + base64.b64encode(b"ann:pw-SECRET-42").decode()


def test_oauth2_access_token_is_injected_as_bearer(alice, mocked):
    auth = {"scheme": "oauth2", "authorize_url": "https://acme.test/authorize", "token_url": "https://acme.test/token"}
    connection = scheme_connection(alice.organization, auth, {"access_token": "at-SECRET-1", "expires_at": time.time() + 3600})
    send(connection, path="me", headers={"Authorization": "Bearer caller-chosen"})
    assert sent_request(mocked).headers["Authorization"] == "Bearer at-SECRET-1"


def test_custom_caller_headers_are_forwarded(alice_connection, mocked):
    send(alice_connection[0], path="me", headers={"x-api-version": "2024-01-01", "Accept": "application/xml"})
    request = sent_request(mocked)
    assert (request.headers["x-api-version"], request.headers["Accept"]) == ("2024-01-01", "application/xml")


def test_exchange_records_the_headers_sent_including_the_injected_credential(alice_connection, mocked):
    exchange = send(alice_connection[0], path="me", headers={"X-Probe": "1"})
    assert exchange.request_headers == {"X-Probe": "1", "Authorization": f"Bearer {TOKEN}"}


def test_exchange_names_the_injected_credential_as_a_secret(alice_connection, mocked):
    assert TOKEN in send(alice_connection[0], path="me").secret_values


def test_repeated_response_headers_are_kept(alice_connection, mocked):
    mocked.replace(responses.GET, "https://api.acme.test/v1/me", body="ok",
                   headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Multi", "x"), ("X-Multi", "y")])
    headers = send(alice_connection[0], path="me").response.headers
    assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert [v for k, v in headers if k == "X-Multi"] == ["x", "y"]


def test_gzip_response_is_decoded_and_its_content_encoding_dropped(alice_connection, mocked):
    text = b"hello " * 500
    mocked.replace(responses.GET, "https://api.acme.test/v1/me", body=gzip.compress(text),
                   headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    response = send(alice_connection[0], path="me").response
    assert response.body == text
    assert response.header("Content-Encoding") is None


def test_binary_request_body_is_sent_byte_exact(alice_connection, mocked):
    payload = bytes(range(256)) * 8
    send(alice_connection[0], "POST", path="me", body=payload, headers={"Content-Type": "application/octet-stream"})
    assert sent_request(mocked).body == payload


def test_binary_response_body_is_received_byte_exact(alice_connection, mocked):
    payload = bytes(range(255, -1, -1)) * 8
    mocked.replace(responses.GET, "https://api.acme.test/v1/me", body=payload, content_type="application/octet-stream")
    assert send(alice_connection[0], path="me").response.body == payload


def test_unusable_connection_sends_nothing(alice_connection, mocked):
    connection, _ = alice_connection
    connection.status = connection.STATUS_NEEDS_REAUTH
    connection.save()
    with pytest.raises(InvalidInput):
        send(connection, path="me")
    assert len(mocked.calls) == 0


# --- 3. Headers and bodies on the wire (real local server) ----------------------------------------------------------

CALLER_HOP_HEADERS = {
    "Connection": "X-Listed-In-Connection", "X-Listed-In-Connection": "1", "Keep-Alive": "timeout=5",
    "TE": "trailers", "Trailer": "X-Trailer", "Transfer-Encoding": "chunked", "Upgrade": "websocket",
    "Proxy-Authorization": "Basic cHJveHk6cHJveHk=", "Proxy-Connection": "keep-alive", "Proxy-Authenticate": "Basic",
}


@pytest.fixture
def wire(alice, local_server):
    """A connection whose base URL is the recording local server: (connection, server)."""
    connection, _ = make_connection(alice.organization, local_integration(local_server.url + "/v1"))
    return connection, local_server


@pytest.mark.parametrize("name", ["X-Listed-In-Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding",
                                  "Upgrade", "Proxy-Authorization", "Proxy-Connection", "Proxy-Authenticate"])
def test_hop_by_hop_request_header_is_not_forwarded(wire, name):
    connection, server = wire
    send(connection, "POST", "echo", headers={**CALLER_HOP_HEADERS, "X-Api-Version": "2"}, body=b"hello")
    assert server.requests[0].values(name) == []


def test_caller_connection_header_is_not_forwarded(wire):
    connection, server = wire
    send(connection, "GET", "echo", headers={"Connection": "X-Listed-In-Connection, close"})
    assert all("x-listed" not in v.lower() and "close" not in v.lower() for v in server.requests[0].values("Connection"))


def test_host_header_is_the_upstream_host_not_the_callers(wire):
    connection, server = wire
    send(connection, "GET", "echo", headers={"Host": "evil.example"})
    assert server.requests[0].values("Host") == [f"127.0.0.1:{server.port}"]


def test_content_length_is_recomputed_from_the_body_sent(wire):
    connection, server = wire
    send(connection, "POST", "echo", headers={"Content-Length": "999"}, body=b"hello")
    assert (server.requests[0].values("Content-Length"), server.requests[0].body) == (["5"], b"hello")


def test_custom_header_reaches_the_upstream(wire):
    connection, server = wire
    send(connection, "GET", "echo", headers={**CALLER_HOP_HEADERS, "x-api-version": "2024-01-01"})
    assert server.requests[0].values("X-Api-Version") == ["2024-01-01"]


@pytest.mark.parametrize("caller_name", ["authorization", "AUTHORIZATION"])
def test_upstream_receives_exactly_one_authorization_header_the_injected_one(wire, caller_name):
    connection, server = wire
    send(connection, "GET", "echo", headers={caller_name: "Bearer caller-chosen"})
    assert server.requests[0].values("Authorization") == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("headers", [{"X-Snow": "\u2603"}, {"X-Line": "a\r\nX-Injected: 1"}, {"X-Nul": "a\x00b"},
                                     {"Bad Name": "1"}, {"X-Colon:": "1"}, {"": "1"}])
def test_header_that_cannot_be_sent_is_refused_before_anything_is_sent(wire, headers):
    connection, server = wire
    with pytest.raises(InvalidInput):
        send(connection, "GET", "echo", headers=headers)
    assert server.connections == 0


def test_unsendable_header_is_400_and_not_logged(alice, local_server):
    _, token = make_connection(alice.organization, local_integration(local_server.url))
    response = passthrough(alice, token, method="GET", path="/x", headers={"X-Snow": "\u2603"})
    assert response.status_code == 400
    assert FunctionCall.objects.count() == 0


HOP_RESPONSE_HEADERS = [("Connection", "X-Hop-Listed"), ("X-Hop-Listed", "1"), ("Keep-Alive", "timeout=5"),
                        ("Proxy-Authenticate", "Basic"), ("Upgrade", "h2c"), ("Trailer", "X-T"), ("X-Kept", "yes")]


@pytest.mark.parametrize("name", ["Connection", "X-Hop-Listed", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Trailer"])
def test_hop_by_hop_response_header_is_dropped(alice, name):
    with LocalServer(lambda r: reply(200, HOP_RESPONSE_HEADERS, b"ok")) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        response = send(connection).response
    assert response.header(name) is None


def test_end_to_end_response_headers_are_kept(alice):
    with LocalServer(lambda r: reply(200, HOP_RESPONSE_HEADERS, b"ok")) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        response = send(connection).response
    assert response.header("X-Kept") == "yes"


def test_repeated_response_headers_arrive_as_separate_values(alice):
    headers = [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"), ("Link", "<a>"), ("Link", "<b>")]
    with LocalServer(lambda r: reply(200, headers, b"ok")) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        response = send(connection).response
    assert [(k, v) for k, v in response.headers if k in ("Set-Cookie", "Link")] == headers


def test_gzip_answer_on_the_wire_is_decoded_without_its_encoding_headers(alice):
    text = json.dumps({"items": list(range(2000))}).encode()
    with LocalServer(lambda r: reply(200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                                     gzip.compress(text))) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        response = send(connection).response
    assert response.body == text
    assert (response.header("Content-Encoding"), response.header("Content-Length")) == (None, None)


def test_binary_bodies_are_byte_exact_both_ways_on_the_wire(alice):
    payload = bytes(range(256)) * 64 + b"\x00\xff\r\n\x1f\x8b"
    with LocalServer(lambda r: reply(200, [("Content-Type", "application/octet-stream")], r.body[::-1])) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        response = send(connection, "PUT", "blob", body=payload, headers={"Content-Type": "application/octet-stream"}).response
        assert server.requests[0].body == payload
    assert response.body == payload[::-1]


def test_cookies_set_by_an_upstream_are_never_sent_with_a_later_call(alice, bob):
    with LocalServer(lambda r: reply(200, [("Set-Cookie", "sid=alice-session; Path=/")], b"ok")) as server:
        integration = local_integration(server.url)
        alices, _ = make_connection(alice.organization, integration)
        bobs, _ = make_connection(bob.organization, integration)
        send(alices, path="login")
        send(bobs, path="me")
        assert server.requests[1].values("Cookie") == []


# --- 3. Integration with the real local httpbin ---------------------------------------------------------------------

def test_httpbin_sees_the_injected_token_over_the_callers(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    response = passthrough(alice, token, method="GET", path="/anything",
                           headers={"authorization": "Bearer caller-chosen", "x-api-version": "2024-01-01"})
    assert response.status_code == 200
    seen = response.json()["response"]["headers"]
    assert (seen["Authorization"], seen["X-Api-Version"]) == (f"Bearer {TOKEN}", "2024-01-01")


def test_httpbin_sees_the_caller_query_then_the_api_key(alice, httpbin_url):
    integration = make_integration(slug="httpbin-key", base_url=httpbin_url,
                                   auth={"scheme": "api_key", "in": "query", "name": "api_key"})
    _, token = make_connection(alice.organization, integration, credentials={"api_key": "key-SECRET-987654"})
    response = passthrough(alice, token, method="GET", path="/get?a=1&a=2&api_key=mine", query={"b": "3"})
    assert response.json()["response"]["url"].endswith("/get?a=1&a=2&b=3&api_key=key-SECRET-987654")


def test_httpbin_gzip_answer_comes_back_decoded(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    body = passthrough(alice, token, method="GET", path="/gzip").json()
    assert body["response"]["gzipped"] is True
    assert "Content-Encoding" not in body["response_headers"]


def test_httpbin_binary_answer_survives_the_native_envelope_byte_exact(alice, httpbin_integration, httpbin_url):
    _, token = make_connection(alice.organization, httpbin_integration)
    body = passthrough(alice, token, method="GET", path="/image/png").json()
    expected = requests.get(f"{httpbin_url}/image/png", timeout=10).content
    assert body["response_type"] == "BASE64_GZIP"
    assert gzip.decompress(base64.b64decode(body["response"])) == expected


def test_httpbin_echoes_a_request_body_byte_exact(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    data = "é\u2603 <xml a='1'/>\r\n\t" * 20
    body = passthrough(alice, token, method="POST", path="/anything", data=data,
                       headers={"Content-Type": "text/plain; charset=utf-8"}).json()
    assert body["response"]["data"] == data


# --- 4. Timeouts and unreachable upstreams --------------------------------------------------------------------------

def test_upstream_slower_than_the_timeout_is_an_upstream_timeout(alice, httpbin_integration):
    connection, _ = make_connection(alice.organization, httpbin_integration)
    exchange = send(connection, path="/delay/2", timeout=0.5)
    assert isinstance(exchange.error, UpstreamTimeout)


def test_timed_out_call_is_logged_as_executed_with_its_error(alice, httpbin_integration):
    connection, _ = make_connection(alice.organization, httpbin_integration)
    with pytest.raises(UpstreamTimeout):
        services.passthrough_execute(connection=connection, method="GET", target=client.build_target(httpbin_integration, "/delay/2"),
                                     dialect=FunctionCall.DIALECT_NATIVE, timeout=0.5)
    call = FunctionCall.objects.get()
    assert (call.response_status, call.url.endswith("/delay/2"), "in time" in call.error) == (None, True, True)


def test_sync_passthrough_past_its_limit_is_408_pointing_to_async_passthrough(alice, httpbin_integration, settings):
    settings.SYNC_PASSTHROUGH_TIMEOUT = 0.5
    _, token = make_connection(alice.organization, httpbin_integration)
    response = passthrough(alice, token, method="GET", path="/delay/2")
    assert response.status_code == 408
    assert "async passthrough" in response.json()["error"].lower()


def test_sync_passthrough_past_its_limit_is_logged(alice, httpbin_integration, settings):
    settings.SYNC_PASSTHROUGH_TIMEOUT = 0.5
    _, token = make_connection(alice.organization, httpbin_integration)
    passthrough(alice, token, method="GET", path="/delay/2")
    assert FunctionCall.objects.get().error


def test_unreachable_upstream_is_502(alice):
    _, token = make_connection(alice.organization, local_integration(f"http://127.0.0.1:{closed_port()}"))
    response = passthrough(alice, token, method="GET", path="/x")
    assert response.status_code == 502


def test_unreachable_upstream_is_logged_with_its_error(alice):
    connection, _ = make_connection(alice.organization, local_integration(f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(UpstreamUnreachable):
        services.passthrough_execute(connection=connection, method="GET", target=client.build_target(connection.integration, "x"),
                                     dialect=FunctionCall.DIALECT_NATIVE)
    call = FunctionCall.objects.get()
    assert call.response_status is None and "could not be reached" in call.error


def test_allowed_override_host_that_does_not_answer_is_502(alice, httpbin_integration):
    _, token = make_connection(alice.organization, httpbin_integration)
    response = passthrough(alice, token, method="GET", path="/x", base_url_override=f"http://127.0.0.1:{closed_port()}")
    assert response.status_code == 502


class Drip:
    """Answers with a Content-Length body sent one byte at a time; records whether the client left before the end."""

    def __init__(self, size=400, pause=0.05):
        self.size, self.pause = size, pause
        self.outcome = []
        self.done = threading.Event()

    def __call__(self, received):
        def write(handler):
            handler.send_response_only(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(self.size))
            handler.end_headers()
            try:
                for _ in range(self.size):
                    handler.wfile.write(b"x")
                    time.sleep(self.pause)
            except OSError:
                self.outcome.append("client left")
            else:
                self.outcome.append("sent everything")
            finally:
                self.done.set()
        return write


def test_body_dripping_past_the_deadline_is_an_upstream_timeout(alice):
    with LocalServer(Drip()) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        assert isinstance(send(connection, timeout=0.5).error, UpstreamTimeout)


def test_client_stops_reading_a_dripping_body_at_the_deadline(alice):
    drip = Drip()
    with LocalServer(drip) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        send(connection, timeout=0.5)
        drip.done.wait(60)  # the server notices the client left at its next write
    assert drip.outcome == ["client left"]


def test_upstream_answer_larger_than_the_limit_is_an_upstream_error(alice, settings):
    settings.OUTBOUND_MAX_RESPONSE_BYTES = 1000
    with LocalServer(lambda r: reply(200, [("Content-Type", "text/plain")], b"x" * 5000)) as server:
        connection, _ = make_connection(alice.organization, local_integration(server.url))
        assert isinstance(send(connection).error, UpstreamUnreachable)


def test_address_refused_is_a_kind_of_invalid_input():
    assert issubclass(AddressRefused, InvalidInput)
