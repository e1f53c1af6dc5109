"""Unified's published Python SDK (unified-python-sdk 0.61.5), unmodified, against our /unified/ dialect.

The SDK talks to `live_server`, which calls the real local httpbin. Django's test server (wsgiref) gives no raw
request target and defaults a missing request Content-Type to text/plain, so those two details are checked at the
HTTP level in test_unified_dialect.py.
"""

import asyncio
import json

import pytest
import requests
from unified_python_sdk import UnifiedTo
from unified_python_sdk.models import errors, shared
from unified_python_sdk.passthrough import ListPassthroughsAcceptEnum

from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.servers import free_port

SECRET_TOKEN = "tok-SECRET-123456"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk_for(live_server):
    """Builds SDK clients for a key. Their connections are closed after the test: a kept-alive connection would keep
    a test-server thread (and its database connection) alive past the test."""
    built = []

    def build(key: str) -> UnifiedTo:
        built.append(UnifiedTo(security=shared.Security(jwt=key), server_url=live_server.url + "/unified"))
        return built[-1]

    yield build
    for sdk in built:
        sdk.__exit__(None, None, None)


@pytest.fixture
def passthrough(sdk_for, alice):
    """Alice's SDK client's passthrough namespace."""
    return sdk_for(alice.key).passthrough


@pytest.fixture
def connection_id(alice, httpbin_integration) -> str:
    return str(make_connection(alice.organization, httpbin_integration)[0].pk)


def echo(result) -> dict:
    """httpbin's /anything echo, as the SDK parsed it (application/json)."""
    assert result.status_code == 200
    assert result.content_type == "application/json"
    return result.default_application_json_any


# --- Each SDK call -------------------------------------------------------------------------------------------------

def test_list_passthroughs_returns_the_parsed_json(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "/anything/v2/users"})
    body = echo(result)
    assert body["method"] == "GET"
    assert body["url"] == f"{httpbin_url}/anything/v2/users"
    assert body["headers"]["Authorization"] == f"Bearer {SECRET_TOKEN}"


def test_path_without_leading_slash_works_the_same(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything/v2/users"})
    assert echo(result)["url"] == f"{httpbin_url}/anything/v2/users"


def test_create_passthrough_json_sends_the_json_body(passthrough, connection_id):
    result = passthrough.create_passthrough_json(request={
        "connection_id": connection_id, "path": "/anything/customers",
        "request_body": {"name": "John Doe", "tags": ["a", "é"], "n": 1.5, "ok": True},
    })
    body = echo(result)
    assert body["method"] == "POST"
    assert body["json"] == {"name": "John Doe", "tags": ["a", "é"], "n": 1.5, "ok": True}
    assert body["headers"]["Content-Type"] == "application/json"


def test_create_passthrough_json_without_a_body_sends_none(passthrough, connection_id):
    body = echo(passthrough.create_passthrough_json(request={"connection_id": connection_id, "path": "anything"}))
    assert body["data"] == "" and body["json"] is None


def test_create_passthrough_raw_sends_the_bytes(passthrough, connection_id):
    raw = b"\x00\x01binary\xff\xfe"
    body = echo(passthrough.create_passthrough_raw(request={"connection_id": connection_id, "path": "anything",
                                                             "request_body": raw}))
    assert body["headers"]["Content-Type"] == "application/octet-stream"
    assert body["data"] == "data:application/octet-stream;base64,AAFiaW5hcnn//g=="


def test_create_passthrough_raw_with_a_content_type_header(passthrough, connection_id):
    xml = '<?xml version="1.0"?><customer><name>é</name></customer>'.encode()
    result = passthrough.create_passthrough_raw(request={"connection_id": connection_id, "path": "anything",
                                                         "request_body": xml},
                                                http_headers={"content-type": "application/xml"})
    body = echo(result)
    assert body["data"].encode() == xml
    assert body["headers"]["Content-Type"] == "application/xml"


def test_update_passthrough_json_and_raw_are_puts(passthrough, connection_id):
    body = echo(passthrough.update_passthrough_json(request={"connection_id": connection_id, "path": "anything/1",
                                                             "request_body": {"name": "Jane"}}))
    assert (body["method"], body["json"]) == ("PUT", {"name": "Jane"})
    body = echo(passthrough.update_passthrough_raw(request={"connection_id": connection_id, "path": "anything/1",
                                                            "request_body": b"plain"}))
    assert (body["method"], body["data"]) == ("PUT", "plain")


def test_patch_passthrough_json_and_raw_are_patches(passthrough, connection_id):
    body = echo(passthrough.patch_passthrough_json(request={"connection_id": connection_id, "path": "anything/1",
                                                            "request_body": [1, 2, 3]}))
    assert (body["method"], body["json"]) == ("PATCH", [1, 2, 3])
    body = echo(passthrough.patch_passthrough_raw(request={"connection_id": connection_id, "path": "anything/1",
                                                           "request_body": b"patch"}))
    assert (body["method"], body["data"]) == ("PATCH", "patch")


def test_remove_passthrough_is_a_delete(passthrough, connection_id, httpbin_url):
    body = echo(passthrough.remove_passthrough(request={"connection_id": connection_id, "path": "anything/1"}))
    assert body["method"] == "DELETE"
    assert body["url"] == f"{httpbin_url}/anything/1"


def test_async_twin_works_too(sdk_for, alice, connection_id):
    async def call():
        async with sdk_for(alice.key) as sdk:
            return await sdk.passthrough.list_passthroughs_async(request={"connection_id": connection_id, "path": "anything"})

    assert echo(asyncio.run(call()))["method"] == "GET"


# --- Headers, query, __domain --------------------------------------------------------------------------------------

def test_custom_http_headers_are_forwarded(passthrough, connection_id):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything"},
                                           http_headers={"x-api-version": "2023-06-01"})
    headers = echo(result)["headers"]
    assert headers["X-Api-Version"] == "2023-06-01"
    assert headers["Accept"].startswith("application/json;q=1, text/csv;q=0.8")
    assert headers["User-Agent"].startswith("speakeasy-sdk/python")


def test_accept_header_override_is_forwarded(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "robots.txt"},
                                           accept_header_override=ListPassthroughsAcceptEnum.TEXT_PLAIN)
    assert result.content_type == "text/plain"
    assert result.default_text_plain_res == requests.get(f"{httpbin_url}/robots.txt", timeout=10).text


def test_our_api_key_never_reaches_the_upstream(passthrough, connection_id, alice):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything"})
    assert alice.key not in json.dumps(echo(result))


def test_query_parameters_are_forwarded(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything",
                                                    "query": {"limit": "2", "q": "a b", "flag": True, "none": None}})
    body = echo(result)
    assert body["args"] == {"limit": "2", "q": "a b", "flag": "true"}
    assert body["url"] == f"{httpbin_url}/anything?limit=2&q=a+b&flag=true"


def test_domain_query_parameter_overrides_the_host(passthrough, alice, httpbin_url):
    dead = make_integration(slug="dead", base_url=f"http://127.0.0.1:{free_port()}", allowed_override_hosts=["127.0.0.1"])
    connection = make_connection(alice.organization, dead)[0]
    port = httpbin_url.rsplit(":", 1)[1]
    result = passthrough.list_passthroughs(request={"connection_id": str(connection.pk), "path": "anything",
                                                    "query": {"__domain": f"127.0.0.1:{port}", "x": "1"}})
    assert echo(result)["url"] == f"{httpbin_url}/anything?x=1"


def test_refused_domain_is_an_sdk_error_400(passthrough, connection_id):
    with pytest.raises(errors.SDKError) as caught:
        passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything",
                                               "query": {"__domain": "evil.example"}})
    assert caught.value.status_code == 400
    assert json.loads(caught.value.body)["statusCode"] == 400


# --- Responses -----------------------------------------------------------------------------------------------------

def test_xml_answer_is_the_xml_text(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "xml"})
    assert result.content_type == "application/xml"
    assert result.default_application_xml_res == requests.get(f"{httpbin_url}/xml", timeout=10).text


def test_binary_answer_is_a_byte_exact_stream(passthrough, connection_id, httpbin_url):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "image/png"})
    assert result.content_type == "image/png"
    assert result.default_wildcard_wildcard_response_stream.read() == requests.get(f"{httpbin_url}/image/png", timeout=10).content


def test_compressed_answer_is_readable(passthrough, connection_id):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "gzip"})
    assert echo(result)["gzipped"] is True


def test_no_content_answer_has_no_body_field(passthrough, connection_id):
    result = passthrough.remove_passthrough(request={"connection_id": connection_id, "path": "status/204"})
    assert result.status_code == 204
    assert result.default_application_json_any is None and result.default_wildcard_wildcard_response_stream is None


def test_upstream_headers_come_back_with_set_cookie_lines_separate(passthrough, connection_id):
    result = passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "response-headers",
                                                    "query": {"X-Custom": "yes", "Set-Cookie": "a=1; Path=/"}})
    assert result.headers["x-custom"] == ["yes"]
    assert result.raw_response.headers.get_list("set-cookie") == ["a=1; Path=/"]


def test_repeated_set_cookie_headers_are_separate_lines(live_server, alice, connection_id):
    # The SDK's query dict cannot repeat a name, so this one call is made with requests.
    url = f"{live_server.url}/unified/passthrough/{connection_id}/response-headers?Set-Cookie=a%3D1&Set-Cookie=b%3D2"
    response = requests.get(url, headers={"Authorization": alice.key}, timeout=10)
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]


# --- Errors --------------------------------------------------------------------------------------------------------

def test_upstream_404_with_an_empty_body_is_an_sdk_error_404(passthrough, connection_id):
    with pytest.raises(errors.SDKError) as caught:
        passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "status/404"})
    assert caught.value.status_code == 404
    body = json.loads(caught.value.body)
    assert body["statusCode"] == 404 and "empty body" in body["message"]


def test_upstream_404_with_a_body_is_an_sdk_error_with_that_body(passthrough, alice, httpbin_url):
    integration = make_integration(slug="bodied", base_url=f"{httpbin_url}/base64")
    connection = make_connection(alice.organization, integration)[0]
    # httpbin's /base64/<value> echoes the decoded value; an unknown route below it is a 404 with an HTML body.
    with pytest.raises(errors.SDKError) as caught:
        passthrough.list_passthroughs(request={"connection_id": str(connection.pk), "path": "a/b/c"})
    assert caught.value.status_code == 404
    assert "Not Found" in caught.value.body


def test_upstream_500_is_an_sdk_error_500(passthrough, connection_id):
    with pytest.raises(errors.SDKError) as caught:
        passthrough.create_passthrough_json(request={"connection_id": connection_id, "path": "status/500",
                                                     "request_body": {"a": 1}})
    assert caught.value.status_code == 500


def test_unknown_connection_is_an_sdk_error_404(passthrough, httpbin_integration):
    with pytest.raises(errors.SDKError) as caught:
        passthrough.list_passthroughs(request={"connection_id": "987654", "path": "anything"})
    assert caught.value.status_code == 404
    assert json.loads(caught.value.body) == {"statusCode": 404, "error": "Not Found", "message": "Connection not found."}


def test_other_organizations_connection_is_an_sdk_error_404(sdk_for, bob, connection_id):
    with pytest.raises(errors.SDKError) as caught:
        sdk_for(bob.key).passthrough.list_passthroughs(request={"connection_id": connection_id, "path": "anything"})
    assert caught.value.status_code == 404


def test_bad_key_is_an_sdk_error_401(sdk_for, connection_id):
    with pytest.raises(errors.SDKError) as caught:
        sdk_for("ak_0000000000000000.wrong").passthrough.list_passthroughs(
            request={"connection_id": connection_id, "path": "anything"})
    assert caught.value.status_code == 401
    assert json.loads(caught.value.body)["statusCode"] == 401


def test_bearer_prefixed_key_works(sdk_for, alice, connection_id):
    result = sdk_for(f"Bearer {alice.key}").passthrough.list_passthroughs(
        request={"connection_id": connection_id, "path": "anything"})
    assert echo(result)["method"] == "GET"


# --- Log -----------------------------------------------------------------------------------------------------------

def test_each_sdk_call_writes_one_unified_function_call_without_our_key(passthrough, connection_id, alice):
    passthrough.create_passthrough_json(request={"connection_id": connection_id, "path": "anything",
                                                 "request_body": {"a": 1}})
    call = FunctionCall.objects.get()
    assert (call.dialect, call.method, call.response_status) == ("unified", "POST", 200)
    stored = json.dumps([call.url, call.request_headers, call.request_body, call.response_headers, call.response_body])
    assert alice.key not in stored and SECRET_TOKEN not in stored
