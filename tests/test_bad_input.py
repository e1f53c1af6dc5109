"""Bad input is a 400, never a 500: headers we read are validated by one helper, "a safe 64-bit id" is spelled
once, and a NUL in a passthrough path or query (which PostgreSQL cannot store) is refused up front.

WSGI hands header bytes over as latin-1 text: the byte 0xB2 arrives as "²", which `str.isdigit()` takes for a digit
and `int()` refuses.
"""

import pytest

from integration_platform.validation import MAX_ID, safe_id
from tests.factories import make_connection
from tests.network import LocalServer, local_integration

pytestmark = pytest.mark.usefixtures("network_guard")


@pytest.fixture
def upstream():
    with LocalServer() as server:
        yield server


@pytest.fixture
def connection(alice, upstream):
    return make_connection(alice.organization, local_integration(upstream.url))


def calls(alice, connection):
    connection_obj, token = connection
    body = {"method": "GET", "path": "/x", "url": "/x"}
    return {
        "native": lambda **h: alice.client.post("/api/v1/passthrough", body, format="json", HTTP_X_ACCOUNT_TOKEN=token, **h),
        "function": lambda **h: alice.client.post("/api/v1/local-passthrough-request", body, format="json",
                                                  HTTP_X_ACCOUNT_TOKEN=token, **h),
        "merge": lambda **h: alice.client.post("/merge/api/crm/v1/passthrough", body, format="json",
                                               HTTP_X_ACCOUNT_TOKEN=token, **h),
        "unified": lambda **h: alice.client.get(f"/unified/passthrough/{connection_obj.pk}/x", **h),
    }


@pytest.mark.parametrize("surface", ["native", "function", "merge", "unified"])
@pytest.mark.parametrize("value", ["²", "1²", "٣", "9" * 5000, "-1", "4", "1\x01"])
def test_a_bad_retries_header_is_400_naming_it_and_nothing_is_sent(alice, connection, upstream, surface, value):
    response = calls(alice, connection)[surface](HTTP_X_PASSTHROUGH_RETRIES=value)
    assert response.status_code == 400
    assert "X-Passthrough-Retries" in response.content.decode()
    assert upstream.requests == []


@pytest.mark.parametrize("surface", ["native", "merge"])
def test_a_retries_header_of_ascii_digits_is_accepted(alice, connection, upstream, surface):
    assert calls(alice, connection)[surface](HTTP_X_PASSTHROUGH_RETRIES=" 2 ").status_code == 200


@pytest.mark.parametrize("value", ["at_²²²", "at_\x01bad", "ümlaut"])
def test_an_account_token_no_token_can_look_like_is_401(alice, connection, upstream, value):
    response = alice.client.post("/api/v1/passthrough", {"method": "GET", "path": "/x"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=value)
    assert response.status_code == 401
    assert upstream.requests == []


@pytest.mark.parametrize("surface", ["native", "merge", "unified"])
@pytest.mark.parametrize("value", ["Bearer ak_²²²", "Bearer \x01", "ümlaut"])
def test_an_authorization_no_key_can_look_like_is_401(alice, connection, upstream, surface, value):
    alice.client.credentials(HTTP_AUTHORIZATION=value)
    response = calls(alice, connection)[surface]()
    assert response.status_code == 401
    assert upstream.requests == []


@pytest.mark.parametrize("value, expected", [
    ("0", 0), ("42", 42), (str(MAX_ID), MAX_ID), (7, 7),
    (str(MAX_ID + 1), None), ("²", None), ("٣", None), ("-1", None), ("", None), (" 1", None), ("1" * 5000, None),
    (True, None), (None, None), (1.5, None),
])
def test_safe_id_accepts_only_ascii_digits_within_a_64_bit_column(value, expected):
    assert safe_id(value) == expected


@pytest.mark.parametrize("url", [
    "/api/v1/function-calls?connection=²", f"/api/v1/function-calls?connection={MAX_ID + 1}",
    "/api/v1/function-calls?status=٣",
])
def test_id_filters_refuse_what_no_id_can_be(alice, url):
    assert alice.client.get(url).status_code == 400


def test_an_id_filter_up_to_the_largest_id_is_accepted(alice):
    assert alice.client.get(f"/api/v1/function-calls?connection={MAX_ID}").status_code == 200


@pytest.mark.parametrize("value", ["²", str(MAX_ID + 1), "1" * 5000])
def test_unified_connection_ids_that_are_not_safe_ids_are_404(alice, value):
    assert alice.client.get(f"/unified/passthrough/{value}/x").status_code == 404


@pytest.mark.parametrize("value", ["²", str(MAX_ID + 1)])
def test_merge_linked_account_id_filters_ignore_what_no_id_can_be(alice, connection, value):
    response = alice.client.get(f"/merge/api/crm/v1/linked-accounts?ids={value},{connection[0].pk}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(connection[0].pk)]


@pytest.mark.parametrize("field", [
    {"path": "/x\u0000y"}, {"path": "/x?a=\u0000"}, {"query": {"a": "b\u0000"}}, {"query": {"a\u0000": "b"}},
    {"base_url_override": "http://127.0.0.1\u0000/"},
])
@pytest.mark.parametrize("url", ["/api/v1/async-passthrough", "/merge/api/crm/v1/async-passthrough",
                                 "/api/v1/passthrough"])
def test_a_nul_in_a_passthrough_path_or_query_is_refused_up_front(alice, connection, upstream, broker, field, url):
    from passthrough.models import AsyncPassthroughRequest

    response = alice.client.post(url, {"method": "GET", "path": "/x", **field}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=connection[1])
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
    assert not AsyncPassthroughRequest.objects.exists()
    assert upstream.requests == []


@pytest.mark.parametrize("value", [{}, [], ["JSON"], 1])
@pytest.mark.parametrize("url", ["/api/v1/passthrough", "/api/v1/async-passthrough", "/merge/api/crm/v1/passthrough"])
def test_a_request_format_that_is_not_a_string_is_400(alice, connection, upstream, broker, url, value):
    """Found by schemathesis: `"request_format": {}` answered 500 (an unhashable dict looked up in a dict)."""
    response = alice.client.post(url, {"method": "GET", "path": "/x", "request_format": value}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=connection[1])
    assert response.status_code == 400
    assert "request_format" in response.content.decode()
    assert upstream.requests == []


@pytest.mark.parametrize("encoding", ["BASE64", "GZIP_BASE64"])
def test_multipart_data_that_is_not_ascii_base64_is_400(alice, connection, upstream, encoding):
    """Found by schemathesis: non-ASCII text in a BASE64 part answered 500 (b64decode raises a plain ValueError)."""
    part = {"name": "f", "data": "n\U00024c28", "encoding": encoding}
    response = alice.client.post("/merge/api/crm/v1/passthrough", {
        "method": "POST", "path": "/x", "request_format": "MULTIPART", "multipart_form_data": [part]},
        format="json", HTTP_X_ACCOUNT_TOKEN=connection[1])
    assert response.status_code == 400
    assert "multipart_form_data[0].data" in response.content.decode()
    assert upstream.requests == []
