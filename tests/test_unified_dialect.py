"""The Unified-compatible passthrough at the HTTP level (shared/spec/unified.md), against a real local httpbin.

Calls go through Django's test client as Unified's SDK would send them (key raw in `Authorization`). Under gunicorn
the raw request target arrives as `RAW_URI`; tests that depend on it pass it explicitly.
"""

import io
import ipaddress
import json
import socket

import pytest
import requests
from django.test import Client
from django.utils import timezone
from urllib3.util import connection as urllib3_connection

from connections.client import UpstreamResponse
from connections.models import Connection
from integration_platform.errors import RateLimited, UpstreamUnreachable
from passthrough import services
from passthrough.dialects import unified as unified_dialect
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.servers import free_port, recording_server

SECRET_TOKEN = "tok-SECRET-123456"


def unified(tenant, method, url, body=b"", content_type=None, auth=None, **extra):
    """One raw HTTP call to /unified/passthrough/...: the key as the SDK sends it, unless `auth` says otherwise."""
    if content_type is not None:
        extra["CONTENT_TYPE"] = content_type
    authorization = tenant.key if auth is None else auth
    if authorization:
        extra["HTTP_AUTHORIZATION"] = authorization
    return Client().generic(method, url, body, **extra)


def assert_unified_error(response, status, reason=None):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == status
    if reason:
        assert body["error"] == reason
    assert isinstance(body["message"], str) and body["message"]
    return body


def echoed(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


@pytest.fixture
def connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)[0]


@pytest.fixture
def anything(connection):
    """The URL of httpbin's echo endpoint through the dialect."""
    return f"/unified/passthrough/{connection.pk}/anything"


def is_loopback(host) -> bool:
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class FakeNetwork:
    """Name lookups answered from `names` (loopback: the real resolver); connections other than loopback are
    recorded in `attempts` and refused. Anything else fails the test: nothing ever leaves the machine."""

    def __init__(self, monkeypatch):
        self.names, self.attempts = {}, []
        self.real_getaddrinfo, self.real_create_connection = socket.getaddrinfo, urllib3_connection.create_connection
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        monkeypatch.setattr(urllib3_connection, "create_connection", self.create_connection)

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host in self.names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.names[host], port))]
        if not is_loopback(host):
            raise AssertionError(f"name lookup of {host!r} attempted")
        return self.real_getaddrinfo(host, port, *args, **kwargs)

    def create_connection(self, address, *args, **kwargs):
        if is_loopback(address[0]):
            return self.real_create_connection(address, *args, **kwargs)
        self.attempts.append(address)
        raise ConnectionRefusedError("refused by the test")


@pytest.fixture
def network(monkeypatch):
    return FakeNetwork(monkeypatch)


# --- §1 Routes -----------------------------------------------------------------------------------------------------

class TestRoutes:
    @pytest.mark.parametrize("url", ["/unified/", "/unified/connection", "/unified/crm/123/contact",
                                     "/unified/passthrough", "/unified/passthrough/1"])
    def test_other_urls_under_unified_are_404_in_unified_shape(self, alice, url):
        body = assert_unified_error(unified(alice, "GET", url), 404, "Not Found")
        assert "passthrough" in body["message"]

    def test_post_to_an_unknown_url_is_404_not_a_csrf_failure(self, alice):
        assert_unified_error(unified(alice, "POST", "/unified/hris/employee", b"{}", "application/json"), 404)

    def test_connection_id_without_trailing_slash_is_404_never_a_redirect(self, alice, connection):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}")
        assert_unified_error(response, 404)
        assert not response.has_header("Location")

    def test_unsupported_method_is_405_with_allow(self, alice, anything):
        response = unified(alice, "TRACE", anything)
        assert_unified_error(response, 405, "Method Not Allowed")
        assert set(response["Allow"].split(", ")) == {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
    def test_each_method_reaches_the_upstream_with_that_method(self, alice, anything, method):
        assert echoed(unified(alice, method, anything))["method"] == method

    def test_head_is_passed_through(self, alice, connection):
        response = unified(alice, "HEAD", f"/unified/passthrough/{connection.pk}/get")
        assert response.status_code == 200
        assert response.content == b""
        assert FunctionCall.objects.get().method == "HEAD"

    def test_options_is_passed_through_with_the_upstream_allow_header(self, alice, connection):
        response = unified(alice, "OPTIONS", f"/unified/passthrough/{connection.pk}/get")
        assert response.status_code == 200
        assert "GET" in response["Allow"]
        assert FunctionCall.objects.get().method == "OPTIONS"


# --- §2 Authentication and tenancy ---------------------------------------------------------------------------------

class TestAuthentication:
    def test_raw_key_as_the_sdk_sends_it(self, alice, anything):
        assert echoed(unified(alice, "GET", anything))["method"] == "GET"

    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
    def test_bearer_key_as_unified_docs_send_it(self, alice, anything, scheme):
        assert echoed(unified(alice, "GET", anything, auth=f"{scheme} {alice.key}"))["method"] == "GET"

    @pytest.mark.parametrize("auth", ["", "Bearer", "Bearer ", "ak_0000000000000000.nope", "Basic dXNlcjpwYXNz"])
    def test_missing_empty_or_unknown_key_is_401(self, alice, anything, auth):
        body = assert_unified_error(unified(alice, "GET", anything, auth=auth), 401, "Unauthorized")
        assert "key" in body["message"]
        assert not FunctionCall.objects.exists()

    def test_revoked_key_is_401(self, alice, anything):
        alice.api_key.revoked_at = timezone.now()
        alice.api_key.save()
        assert_unified_error(unified(alice, "GET", anything), 401)

    def test_other_organizations_connection_is_404_like_an_unknown_one(self, alice, bob, httpbin_integration):
        bobs = make_connection(bob.organization, httpbin_integration)[0]
        foreign = assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{bobs.pk}/anything"), 404)
        unknown = assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{bobs.pk + 1000}/anything"), 404)
        assert foreign == unknown
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("connection_id", ["abc", "%C2%B2", "-1", "1.0", "9" * 30])
    def test_malformed_connection_id_is_404(self, alice, httpbin_integration, connection_id):
        assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection_id}/anything"), 404)

    def test_connection_needing_reauthorization_is_401(self, alice, connection, anything):
        Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_NEEDS_REAUTH)
        body = assert_unified_error(unified(alice, "GET", anything), 401)
        assert "re-authoriz" in body["message"]
        assert not FunctionCall.objects.exists()

    def test_disabled_connection_is_403(self, alice, connection, anything):
        Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_DISABLED)
        assert_unified_error(unified(alice, "GET", anything), 403, "Forbidden")
        assert not FunctionCall.objects.exists()


# --- §3 Upstream URL -----------------------------------------------------------------------------------------------

class TestUpstreamUrl:
    def test_leading_slashes_of_the_path_are_ignored(self, alice, connection, httpbin_url):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}//anything/users")
        assert echoed(response)["url"] == f"{httpbin_url}/anything/users"

    def test_path_is_joined_below_the_base_path(self, alice, httpbin_url):
        integration = make_integration(slug="based", base_url=f"{httpbin_url}/anything/v1")
        connection = make_connection(alice.organization, integration)[0]
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}//users")
        assert echoed(response)["url"] == f"{httpbin_url}/anything/v1/users"

    def test_empty_path_targets_the_base_url(self, alice, httpbin_url):
        integration = make_integration(slug="based", base_url=f"{httpbin_url}/anything/v1")
        connection = make_connection(alice.organization, integration)[0]
        assert echoed(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/"))["url"] == f"{httpbin_url}/anything/v1"

    def test_encoded_slash_is_forwarded_encoded_when_the_server_gives_the_raw_path(self, alice):
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            path = f"/unified/passthrough/{connection.pk}/files/a%2Fb%20c/x%25y/%C3%A9%FF"
            unified(alice, "POST", f"{path}?q=1", b"x", "text/plain", RAW_URI=f"{path}?q=1")
        assert received[0]["path"] == "/hook/files/a%2Fb%20c/x%25y/%C3%A9%FF?q=1"

    def test_without_the_raw_path_segments_are_re_encoded(self, alice):
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            unified(alice, "POST", f"/unified/passthrough/{connection.pk}/files/a%2Fb%20c/%C3%A9/x%25y", b"x", "text/plain")
        assert received[0]["path"] == "/hook/files/a/b%20c/%C3%A9/x%25y"

    def test_raw_path_that_does_not_match_the_routed_path_is_not_trusted(self, alice):
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            unified(alice, "POST", f"/unified/passthrough/{connection.pk}/real", b"x", "text/plain",
                    RAW_URI=f"/unified/passthrough/{connection.pk}/other")
        assert received[0]["path"] == "/hook/real"

    def test_absolute_url_in_the_path_stays_below_the_base_url(self, alice, connection, httpbin_url, network):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/anything/https://evil.example/x")
        assert echoed(response)["url"].startswith(f"{httpbin_url}/anything/")
        assert FunctionCall.objects.get().url.startswith(f"{httpbin_url}/anything/https:")

    @pytest.mark.parametrize("path", ["anything/../admin", "anything/./x", "..", "anything/%2E%2E/admin",
                                      "anything/a%2F..%2Fb"])
    def test_dot_segments_are_400(self, alice, connection, path):
        url = f"/unified/passthrough/{connection.pk}/{path}"
        body = assert_unified_error(unified(alice, "GET", url, RAW_URI=url), 400, "Bad Request")
        assert "'..'" in body["message"]
        assert not FunctionCall.objects.exists()

    def test_query_is_forwarded_in_order_with_repeats(self, alice, anything, httpbin_url):
        response = unified(alice, "GET", f"{anything}?b=2&a=1&b=3&empty=&sp=x+y")
        assert echoed(response)["url"] == f"{httpbin_url}/anything?b=2&a=1&b=3&empty=&sp=x+y"

    def test_too_many_query_parameters_are_400(self, alice, anything, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
        assert_unified_error(unified(alice, "GET", f"{anything}?a=1&b=2&c=3&d=4"), 400)
        assert not FunctionCall.objects.exists()

    def test_domain_parameter_is_not_forwarded(self, alice, anything, httpbin_url):
        response = unified(alice, "GET", f"{anything}?a=1&__domain=127.0.0.1:{httpbin_url.rsplit(':', 1)[1]}&b=2")
        assert echoed(response)["url"] == f"{httpbin_url}/anything?a=1&b=2"

    def test_api_key_query_credential_overrides_a_caller_parameter(self, alice, httpbin_url):
        integration = make_integration(slug="keyed", base_url=httpbin_url,
                                       auth={"scheme": "api_key", "in": "query", "name": "api_key"})
        connection = make_connection(alice.organization, integration, credentials={"api_key": "QK-SECRET-999"})[0]
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/anything?api_key=mine&x=1")
        assert echoed(response)["args"] == {"api_key": "QK-SECRET-999", "x": "1"}


# --- §4 Upstream request: headers and body -------------------------------------------------------------------------

class TestRequestHeaders:
    def test_caller_headers_are_forwarded(self, alice, anything):
        headers = echoed(unified(alice, "GET", anything, HTTP_X_API_VERSION="2023-06-01", HTTP_ACCEPT="text/csv",
                                 HTTP_USER_AGENT="my-agent/1", HTTP_IF_NONE_MATCH='"abc"'))["headers"]
        assert headers["X-Api-Version"] == "2023-06-01"
        assert headers["Accept"] == "text/csv"
        assert headers["User-Agent"] == "my-agent/1"
        assert headers["If-None-Match"] == '"abc"'

    def test_host_is_the_upstreams(self, alice, anything, httpbin_url):
        headers = echoed(unified(alice, "GET", anything, HTTP_HOST="localhost"))["headers"]
        assert headers["Host"] == httpbin_url.removeprefix("http://")

    def test_our_credentials_cookies_and_proxy_headers_are_not_forwarded(self, alice, anything):
        headers = echoed(unified(
            alice, "GET", anything, HTTP_COOKIE="sessionid=ours", HTTP_ACCEPT_ENCODING="x-caller-coding",
            HTTP_FORWARDED="for=1.2.3.4", HTTP_X_FORWARDED_FOR="1.2.3.4", HTTP_X_FORWARDED_PROTO="https",
            HTTP_X_REAL_IP="1.2.3.4", HTTP_X_ACCOUNT_TOKEN="acct-secret", HTTP_PROXY_AUTHORIZATION="Basic eDp5",
            HTTP_KEEP_ALIVE="timeout=5", HTTP_TE="trailers", HTTP_UPGRADE="h2c",
            HTTP_CONNECTION="keep-alive, X-Hop", HTTP_X_HOP="dropped", HTTP_X_KEPT="kept",
        ))["headers"]
        names = {name.lower() for name in headers}
        assert not names & {"cookie", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip",
                            "x-account-token", "proxy-authorization", "keep-alive", "te", "upgrade", "x-hop"}
        assert headers["X-Kept"] == "kept"
        assert "x-caller-coding" not in headers.get("Accept-Encoding", "")

    def test_caller_authorization_is_replaced_by_the_connection_credentials(self, alice, anything):
        headers = echoed(unified(alice, "GET", anything, auth=f"Bearer {alice.key}"))["headers"]
        assert headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
        assert alice.key not in json.dumps(headers)

    def test_upstream_cookies_are_never_replayed_to_later_calls(self, alice, bob, connection, httpbin_integration):
        unified(alice, "GET", f"/unified/passthrough/{connection.pk}/response-headers?Set-Cookie=leak%3D1")
        bobs = make_connection(bob.organization, httpbin_integration)[0]
        for tenant, conn in ((alice, connection), (bob, bobs)):
            assert echoed(unified(tenant, "GET", f"/unified/passthrough/{conn.pk}/cookies")) == {"cookies": {}}

    def test_api_key_header_credential_wins_over_a_caller_header(self, alice, httpbin_url):
        integration = make_integration(slug="keyed", base_url=httpbin_url,
                                       auth={"scheme": "api_key", "in": "header", "name": "X-Api-Key"})
        connection = make_connection(alice.organization, integration, credentials={"api_key": "HK-SECRET-999"})[0]
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/anything", HTTP_X_API_KEY="mine")
        assert echoed(response)["headers"]["X-Api-Key"] == "HK-SECRET-999"


class TestRequestBody:
    def test_json_body_and_content_type_are_forwarded(self, alice, anything):
        body = echoed(unified(alice, "POST", anything, b'{"name":"John Doe","n":[1,2]}', "application/json"))
        assert body["data"] == '{"name":"John Doe","n":[1,2]}'
        assert body["headers"]["Content-Type"] == "application/json"

    def test_xml_body_is_forwarded_unchanged(self, alice, anything):
        xml = '<?xml version="1.0" encoding="UTF-8"?>\n<a x="1"><b>é &amp; ü</b></a>'.encode()
        body = echoed(unified(alice, "PUT", anything, xml, "application/xml; charset=utf-8"))
        assert body["data"].encode() == xml
        assert body["headers"]["Content-Type"] == "application/xml; charset=utf-8"

    def test_form_body_is_forwarded_not_parsed(self, alice, anything):
        body = echoed(unified(alice, "POST", anything, b"a=1&b=x+y&a=2", "application/x-www-form-urlencoded"))
        assert body["form"] == {"a": ["1", "2"], "b": "x y"}

    def test_multipart_body_is_forwarded_byte_for_byte(self, alice):
        boundary = "----boundary7MA4YWxkTrZu0gW"
        multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"
                     f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
                     f"Content-Type: application/octet-stream\r\n\r\n").encode() + bytes(range(256)) \
            + f"\r\n--{boundary}--\r\n".encode()
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            unified(alice, "POST", f"/unified/passthrough/{connection.pk}/upload", multipart,
                    f"multipart/form-data; boundary={boundary}")
        assert received[0]["body"] == multipart
        assert received[0]["headers"]["Content-Type"] == f"multipart/form-data; boundary={boundary}"
        assert received[0]["headers"]["Content-Length"] == str(len(multipart))

    def test_multipart_body_is_understood_by_the_upstream(self, alice, anything):
        boundary = "XyZ"
        multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"
                     f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"
                     f"file content\r\n--{boundary}--\r\n").encode()
        body = echoed(unified(alice, "POST", anything, multipart, f"multipart/form-data; boundary={boundary}"))
        assert body["form"] == {"field": "value"}
        assert body["files"] == {"file": "file content"}

    def test_delete_body_is_forwarded(self, alice, anything):
        body = echoed(unified(alice, "DELETE", anything, b'{"ids":[1,2]}', "application/json"))
        assert body["method"] == "DELETE"
        assert body["data"] == '{"ids":[1,2]}'

    def test_no_body_sends_no_body_and_no_content_type(self, alice, anything):
        body = echoed(unified(alice, "POST", anything))
        assert body["data"] == ""
        assert "Content-Type" not in body["headers"]

    def test_chunked_body_is_read_from_the_server_stream(self, alice):
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            unified(alice, "POST", f"/unified/passthrough/{connection.pk}/up", content_type="text/plain",
                    HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(b"de-chunked body"),
                                                          "wsgi.input_terminated": True})
        assert received[0]["body"] == b"de-chunked body"

    def test_body_over_the_limit_is_413(self, alice, anything, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        body = assert_unified_error(unified(alice, "POST", anything, b"x" * 101, "text/plain"), 413)
        assert "100 bytes" in body["message"]
        assert not FunctionCall.objects.exists()

    def test_chunked_body_over_the_limit_is_413(self, alice, anything, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        response = unified(alice, "POST", anything, content_type="text/plain", HTTP_TRANSFER_ENCODING="chunked",
                           **{"wsgi.input": io.BytesIO(b"x" * 101), "wsgi.input_terminated": True})
        assert_unified_error(response, 413)

    def test_body_at_the_limit_is_forwarded(self, alice, anything, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
        assert echoed(unified(alice, "POST", anything, b"x" * 100, "text/plain"))["data"] == "x" * 100


# --- §5 __domain ---------------------------------------------------------------------------------------------------

class TestDomainOverride:
    def test_allowed_ip_literal_host_and_port_replace_the_base_urls(self, alice, httpbin_url):
        dead = make_integration(slug="dead", base_url=f"http://127.0.0.1:{free_port()}/anything",
                                allowed_override_hosts=["127.0.0.1"])
        connection = make_connection(alice.organization, dead)[0]
        port = httpbin_url.rsplit(":", 1)[1]
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/users?__domain=127.0.0.1:{port}&x=1")
        body = echoed(response)
        assert body["url"] == f"{httpbin_url}/anything/users?x=1"
        assert body["headers"]["Authorization"] == f"Bearer {SECRET_TOKEN}"

    def test_loopback_name_is_refused_unless_the_operator_allows_private_overrides(self, alice, anything, httpbin_url):
        port = httpbin_url.rsplit(":", 1)[1]
        body = assert_unified_error(unified(alice, "GET", f"{anything}?__domain=localhost:{port}"), 400)
        assert "private or loopback" in body["message"]
        assert not FunctionCall.objects.exists()

    def test_allowed_name_reaches_the_upstream_when_private_overrides_are_on(self, alice, anything, httpbin_url, settings):
        settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES = True
        port = httpbin_url.rsplit(":", 1)[1]
        body = echoed(unified(alice, "GET", f"{anything}?__domain=localhost:{port}"))
        assert body["url"] == f"http://localhost:{port}/anything"

    def test_host_not_on_the_allowlist_is_400_and_never_resolved(self, alice, anything, network):
        body = assert_unified_error(unified(alice, "GET", f"{anything}?__domain=evil.example"), 400)
        assert "evil.example" in body["message"]
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("domain", ["2130706433", "[::ffff:127.0.0.1]", "127.1", "0177.0.0.1", "0x7f.0.0.1",
                                        "[::1]", "0.0.0.0"])
    def test_other_spellings_of_loopback_are_400(self, alice, anything, network, domain):
        assert_unified_error(unified(alice, "GET", f"{anything}?__domain={domain}"), 400)
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("domain", ["2130706433", "127.1", "0177.0.0.1", "169.254.169.254", "[fe80::1]", "0.0.0.0"])
    def test_non_canonical_and_never_reachable_addresses_are_400_even_when_allowlisted(
            self, alice, httpbin_url, network, domain):
        integration = make_integration(slug="lax", base_url=httpbin_url, allowed_override_hosts=[domain])
        connection = make_connection(alice.organization, integration)[0]
        assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/x?__domain={domain}"), 400)
        assert not FunctionCall.objects.exists()

    def test_wildcard_entry_allows_subdomains_and_the_resolved_address_is_checked(self, alice, network):
        integration = make_integration(slug="corp", base_url="https://api.corp.example/v1",
                                       allowed_override_hosts=["*.corp.example"])
        connection = make_connection(alice.organization, integration)[0]
        network.names["eu.api.corp.example"] = "10.0.0.5"
        body = assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/x?__domain=eu.api.corp.example"), 400)
        assert "10.0.0.5" in body["message"]
        assert network.attempts == []
        assert not FunctionCall.objects.exists()

    def test_wildcard_subdomain_with_a_public_address_connects_to_the_checked_address(self, alice, network):
        integration = make_integration(slug="corp", base_url="https://api.corp.example/v1",
                                       allowed_override_hosts=["*.corp.example"])
        connection = make_connection(alice.organization, integration)[0]
        network.names["eu.corp.example"] = "93.184.216.34"
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/x?__domain=eu.corp.example:8443")
        assert_unified_error(response, 502)  # the test refuses the connection: nothing leaves the machine
        assert network.attempts == [("93.184.216.34", 8443)]

    def test_wildcard_does_not_match_the_bare_suffix(self, alice, network):
        integration = make_integration(slug="corp", base_url="https://api.corp.example/v1",
                                       allowed_override_hosts=["*.corp.example"])
        connection = make_connection(alice.organization, integration)[0]
        assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/x?__domain=corp.example"), 400)

    @pytest.mark.parametrize("query", ["__domain=", "__domain=https://127.0.0.1", "__domain=127.0.0.1/x",
                                       "__domain=user@127.0.0.1", "__domain=127.0.0.1%3Fa", "__domain=127.0.0.1%23a",
                                       "__domain=127.0.0.1+x", "__domain=127.0.0.1:http", "__domain=127.0.0.1:99999",
                                       "__domain=127.0.0.1&__domain=127.0.0.1"])
    def test_malformed_or_repeated_domain_is_400(self, alice, anything, network, query):
        body = assert_unified_error(unified(alice, "GET", f"{anything}?{query}"), 400)
        assert "__domain" in body["message"]
        assert not FunctionCall.objects.exists()


# --- §6 Response ---------------------------------------------------------------------------------------------------

class TestResponse:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 304])
    def test_upstream_status_is_our_status(self, alice, connection, status):
        assert unified(alice, "GET", f"/unified/passthrough/{connection.pk}/status/{status}").status_code == status

    def test_upstream_error_with_a_body_passes_through_untouched(self, alice, connection):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/status/418")
        assert response.status_code == 418
        assert b"teapot" in response.content
        assert response["X-More-Info"] == "http://tools.ietf.org/html/rfc2324"

    @pytest.mark.parametrize("status", [404, 500, 503])
    def test_upstream_error_with_an_empty_body_gets_the_unified_shape_with_its_status(self, alice, connection, status):
        body = assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/status/{status}"), status)
        assert "upstream" in body["message"] and "empty body" in body["message"]
        assert FunctionCall.objects.get().response_status == status

    def test_head_answer_with_an_empty_error_body_passes_through(self, alice, connection):
        response = unified(alice, "HEAD", f"/unified/passthrough/{connection.pk}/status/404")
        assert response.status_code == 404
        assert response.content == b""
        assert response["Content-Type"] != "application/json"

    def test_upstream_headers_come_back_and_repeated_ones_as_separate_lines(self, alice, connection):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/response-headers"
                                         "?Set-Cookie=a%3D1%3B+Path%3D%2F&Set-Cookie=b%3D2&X-Custom=yes")
        assert response.status_code == 200
        assert [value for name, value in response.items() if name.lower() == "set-cookie"] == ["a=1; Path=/", "b=2"]
        assert response["X-Custom"] == "yes"

    def test_content_type_is_passed_exactly(self, alice, connection):
        for path, content_type in [("xml", "application/xml"), ("html", "text/html; charset=utf-8"),
                                   ("json", "application/json"), ("robots.txt", "text/plain")]:
            assert unified(alice, "GET", f"/unified/passthrough/{connection.pk}/{path}")["Content-Type"] == content_type

    def test_no_upstream_content_type_means_none_from_us(self, alice):
        with recording_server() as (url, received):
            integration = make_integration(slug="recorder", base_url=url)
            connection = make_connection(alice.organization, integration)[0]
            response = unified(alice, "POST", f"/unified/passthrough/{connection.pk}/x", b"x", "text/plain")
        assert response.status_code == 200
        assert not response.has_header("Content-Type")

    def test_binary_body_is_byte_exact(self, alice, connection, httpbin_url):
        direct = requests.get(f"{httpbin_url}/image/png", timeout=10).content
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/image/png")
        assert response["Content-Type"] == "image/png"
        assert response.content == direct and direct.startswith(b"\x89PNG")

    def test_random_bytes_are_byte_exact(self, alice, connection, httpbin_url):
        direct = requests.get(f"{httpbin_url}/bytes/4096?seed=7", timeout=10).content
        assert unified(alice, "GET", f"/unified/passthrough/{connection.pk}/bytes/4096?seed=7").content == direct

    def test_compressed_upstream_body_is_decoded_and_its_encoding_dropped(self, alice, connection):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/gzip", HTTP_ACCEPT_ENCODING="gzip")
        assert json.loads(response.content)["gzipped"] is True
        assert not response.has_header("Content-Encoding")
        assert response["Content-Length"] == str(len(response.content))

    def test_upstream_redirects_are_followed(self, alice, connection, httpbin_url):
        response = unified(alice, "GET", f"/unified/passthrough/{connection.pk}/redirect-to?url=%2Fanything%2Ffinal")
        assert echoed(response)["url"] == f"{httpbin_url}/anything/final"
        assert not response.has_header("Location")

    def test_upstream_date_and_server_are_left_to_our_server(self, alice, anything):
        response = unified(alice, "GET", anything)  # httpbin sends both; the test client adds neither
        assert not response.has_header("Date") and not response.has_header("Server")

    def test_odd_upstream_headers_never_break_the_answer(self):
        upstream = UpstreamResponse(200, [("X Bad Name", "v"), ("X-Folded", "a\r\n b"), ("X-Control", "a\x00b"),
                                          ("X-Latin", "caf\xe9"), ("X-Ok", "ok")], b"{}")
        response = unified_dialect.upstream_response("GET", upstream)
        assert dict(response.items()) == {"X-Folded": "a b", "X-Latin": "caf\xe9", "X-Ok": "ok"}

    def test_upstream_status_outside_what_http_allows_is_502(self):
        with pytest.raises(UpstreamUnreachable):
            unified_dialect.upstream_response("GET", UpstreamResponse(799, [], b"x"))


# --- §7 Our errors -------------------------------------------------------------------------------------------------

class TestErrors:
    def test_unreachable_upstream_is_502_and_logged(self, alice):
        integration = make_integration(slug="down", base_url=f"http://127.0.0.1:{free_port()}")
        connection = make_connection(alice.organization, integration)[0]
        assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/x"), 502, "Bad Gateway")
        assert FunctionCall.objects.get().error

    def test_timeout_is_408_pointing_to_the_async_passthrough(self, alice, connection, settings):
        settings.SYNC_PASSTHROUGH_TIMEOUT = 0.5
        body = assert_unified_error(unified(alice, "GET", f"/unified/passthrough/{connection.pk}/delay/3"), 408)
        assert "POST http://testserver/api/v1/async-passthrough" in body["message"]
        assert FunctionCall.objects.get().error

    @pytest.mark.parametrize("url", ["{anything}/%FF%FE", "{anything}?a=%FF&b=%", "{anything}/%", "{anything}/a%00b",
                                     "{anything}/\u00e9?\u00e9=\u00fc"])
    def test_odd_input_is_never_a_server_error(self, alice, anything, url):
        assert unified(alice, "GET", url.format(anything=anything)).status_code < 500

    def test_rate_limited_is_429_with_whole_seconds_retry_after(self, alice, anything, monkeypatch):
        def rate_limited(**kwargs):
            raise RateLimited("Rate limit reached for httpbin.", retry_after=2.2)

        monkeypatch.setattr(services, "passthrough_execute", rate_limited)
        response = unified(alice, "GET", anything)
        assert_unified_error(response, 429, "Too Many Requests")
        assert response["Retry-After"] == "3"


# --- §8 Logging and schema -----------------------------------------------------------------------------------------

class TestLogging:
    def test_one_redacted_function_call_per_executed_call(self, alice, connection, anything):
        unified(alice, "POST", f"{anything}?x=1", b'{"a":1}', "application/json", HTTP_COOKIE="c=1")
        call = FunctionCall.objects.get()
        assert (call.dialect, call.method, call.response_status) == ("unified", "POST", 200)
        assert call.connection == connection and call.organization == alice.organization
        assert call.request_body == '{"a":1}'
        stored = json.dumps([call.url, call.request_headers, call.request_body, call.response_headers,
                             call.response_body, call.error])
        assert alice.key not in stored and SECRET_TOKEN not in stored

    def test_our_key_in_the_upstream_answer_is_redacted_in_the_log(self, alice, anything):
        unified(alice, "GET", f"{anything}?echo={alice.key}")
        call = FunctionCall.objects.get()
        assert alice.key not in call.response_body and alice.key not in call.url


class TestSchema:
    def test_route_is_in_the_openapi_schema(self, alice):
        response = alice.client.get("/api/schema/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        schema = json.loads(response.content)
        operations = schema["paths"]["/unified/passthrough/{connection_id}/{path}"]
        assert set(operations) >= {"get", "post", "put", "patch", "delete"}
        for operation in (operations[method] for method in ("get", "post", "put", "patch", "delete")):
            assert operation["tags"] == ["unified"]
            assert {p["name"] for p in operation["parameters"]} >= {"connection_id", "path", "__domain"}
