"""MAX_REQUEST_BODY_BYTES is enforced once, before any parser reads the body, on every surface; chunked bodies (no
Content-Length; gunicorn de-chunks them and sets `wsgi.input_terminated`) are read, and limited the same way."""

import base64
import gzip
import io
import json

import pytest

from tests.factories import make_connection
from tests.network import LocalServer, local_integration

pytestmark = pytest.mark.usefixtures("network_guard")

LIMIT = 2000


@pytest.fixture
def upstream():
    with LocalServer() as server:
        yield server


@pytest.fixture
def connection(alice, upstream, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    return make_connection(alice.organization, local_integration(upstream.url))


def surfaces(connection, token):
    """(path, extra headers, error body keys) of each surface's passthrough call."""
    connection_obj, _ = connection
    return [
        ("/api/v1/passthrough", {"HTTP_X_ACCOUNT_TOKEN": token}, {"error", "error_details"}),
        ("/api/v1/local-passthrough-request", {"HTTP_X_ACCOUNT_TOKEN": token}, {"error", "error_details"}),
        ("/api/v1/async-passthrough", {"HTTP_X_ACCOUNT_TOKEN": token}, {"error", "error_details"}),
        ("/merge/api/crm/v1/passthrough", {"HTTP_X_ACCOUNT_TOKEN": token}, {"detail"}),
        (f"/unified/passthrough/{connection_obj.pk}/x", {}, {"statusCode", "error", "message"}),
        ("/integry/functions/local-passthrough-request/call/", {}, {"detail"}),
    ]


def big_json() -> bytes:
    return json.dumps({"method": "POST", "path": "/x", "url": "/x", "data": "x" * (LIMIT * 2)}).encode()


def chunked(client, path, body: bytes, **extra):
    """A request as gunicorn hands over a chunked one: no Content-Length, de-chunked input, input_terminated."""
    return client.generic("POST", path, b"", content_type="application/json", **{"CONTENT_LENGTH": "",
                                                 "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body),
                                                 "wsgi.input_terminated": True, **extra})


@pytest.mark.parametrize("index", range(6))
def test_a_body_over_the_limit_is_413_in_the_surfaces_shape_and_nothing_is_sent(alice, connection, upstream, index):
    path, extra, keys = surfaces(connection, connection[1])[index]
    response = alice.client.generic("POST", path, big_json(), content_type="application/json", **extra)
    assert response.status_code == 413
    assert set(response.json()) == keys
    assert upstream.requests == []


@pytest.mark.parametrize("index", range(6))
def test_a_chunked_body_over_the_limit_is_413_in_the_surfaces_shape(alice, connection, upstream, index):
    path, extra, keys = surfaces(connection, connection[1])[index]
    response = chunked(alice.client, path, big_json(), **extra)
    assert response.status_code == 413
    assert set(response.json()) == keys
    assert upstream.requests == []


def test_a_chunked_body_within_the_limit_is_read(alice, connection, upstream):
    _, token = connection
    body = json.dumps({"method": "POST", "path": "/x", "data": "chunked-payload"}).encode()
    response = chunked(alice.client, "/api/v1/passthrough", body, HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 200
    assert upstream.requests[0].body == b"chunked-payload"


def test_a_chunked_raw_body_reaches_the_unified_upstream(alice, connection, upstream):
    connection_obj, _ = connection
    response = chunked(alice.client, f"/unified/passthrough/{connection_obj.pk}/x", b"raw-bytes")
    assert response.status_code == 200
    assert upstream.requests[0].body == b"raw-bytes"


def gzip_part(size: int) -> dict:
    return {"name": "file", "file_name": "f.txt", "encoding": "GZIP_BASE64",
            "data": base64.b64encode(gzip.compress(b"\0" * size)).decode()}


@pytest.mark.parametrize("path", ["/api/v1/passthrough", "/api/v1/async-passthrough", "/merge/api/crm/v1/passthrough"])
def test_a_gzip_part_that_expands_past_the_limit_is_413_and_nothing_is_sent(alice, connection, upstream, path):
    _, token = connection
    body = {"method": "POST", "path": "/x", "request_format": "MULTIPART", "multipart_form_data": [gzip_part(LIMIT * 50)]}
    assert len(json.dumps(body)) < LIMIT
    response = alice.client.post(path, body, format="json", HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 413
    assert upstream.requests == []


def test_gzip_parts_within_the_limit_are_sent_decompressed(alice, connection, upstream):
    _, token = connection
    body = {"method": "POST", "path": "/x", "request_format": "MULTIPART",
            "multipart_form_data": [gzip_part(100), gzip_part(100)]}
    response = alice.client.post("/api/v1/passthrough", body, format="json", HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 200
    assert upstream.requests[0].body.count(b"\0" * 100) == 2


def test_without_a_limit_a_chunked_body_is_still_read(alice, connection, upstream, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    _, token = connection
    body = json.dumps({"method": "POST", "path": "/x", "data": "y" * 200_000}).encode()
    response = chunked(alice.client, "/api/v1/passthrough", body, HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 200
    assert upstream.requests[0].body == b"y" * 200_000
