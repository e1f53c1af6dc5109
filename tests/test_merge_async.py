"""Merge-compatible async passthrough (merge.md §5): raw HTTP and the unmodified SDK."""

import pytest
from merge.core.api_error import ApiError
from merge.resources.crm import DataPassthroughRequest, MethodEnum, RequestFormatEnum

from passthrough.models import AsyncPassthroughRequest
from tests.factories import make_connection

BASE = "/merge/api/crm/v1/async-passthrough"


@pytest.fixture
def httpbin_connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)


def post(tenant, token, body):
    return tenant.client.post(BASE, body, format="json", HTTP_X_ACCOUNT_TOKEN=token)


def test_create_answers_200_with_a_receipt_and_stores_nothing_for_bad_input(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    created = post(alice, token, {"method": "GET", "path": "/anything"})
    assert created.status_code == 200
    assert set(created.json()) == {"async_passthrough_receipt_id"}
    assert post(alice, token, {"method": "POST", "path": "/x", "data": {"an": "object"}}).status_code == 400
    assert AsyncPassthroughRequest.objects.count() == 1


def test_pending_receipt_is_202_with_the_json_string_pending(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = post(alice, token, {"method": "GET", "path": "/anything"}).json()["async_passthrough_receipt_id"]
    pending = alice.client.get(f"{BASE}/{receipt_id}", HTTP_X_ACCOUNT_TOKEN=token)
    assert pending.status_code == 202 and pending.json() == "PENDING"


def test_failed_receipt_is_500_with_detail(alice, httpbin_connection, broker):
    connection, token = httpbin_connection
    receipt_id = post(alice, token, {"method": "GET", "path": "/anything"}).json()["async_passthrough_receipt_id"]
    AsyncPassthroughRequest.objects.filter(pk=receipt_id).update(status="failed", error="upstream down")
    failed = alice.client.get(f"{BASE}/{receipt_id}", HTTP_X_ACCOUNT_TOKEN=token)
    assert failed.status_code == 500 and failed.json() == {"detail": "upstream down"}


def test_another_connections_receipt_is_404(alice, httpbin_connection, httpbin_integration, broker):
    _, token = httpbin_connection
    _, other_token = make_connection(alice.organization, httpbin_integration, end_user_id="user-2")
    receipt_id = post(alice, token, {"method": "GET", "path": "/anything"}).json()["async_passthrough_receipt_id"]
    assert alice.client.get(f"{BASE}/{receipt_id}", HTTP_X_ACCOUNT_TOKEN=other_token).json() == {"detail": "Not found."}


def test_second_retrieval_within_the_window_is_429_with_retry_after(alice, httpbin_connection, broker):
    _, token = httpbin_connection
    receipt_id = post(alice, token, {"method": "GET", "path": "/anything"}).json()["async_passthrough_receipt_id"]
    alice.client.get(f"{BASE}/{receipt_id}", HTTP_X_ACCOUNT_TOKEN=token)
    refused = alice.client.get(f"{BASE}/{receipt_id}", HTTP_X_ACCOUNT_TOKEN=token)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 10 and "detail" in refused.json()


def test_sdk_create_then_retrieve_returns_the_remote_response(merge_sdk, alice, httpbin_connection, broker, worker):
    _, token = httpbin_connection
    client = merge_sdk(alice.key, token)
    receipt = client.crm.async_passthrough.create(request=DataPassthroughRequest(
        method=MethodEnum.POST, path="/anything", data="<a>1</a>", request_format=RequestFormatEnum.XML))
    broker.join("async_passthrough")
    worker.join()
    result = client.crm.async_passthrough.retrieve(str(receipt.async_passthrough_receipt_id))
    assert result.status == 200
    assert result.response["data"] == "<a>1</a>"
    assert result.response["headers"]["Content-Type"] == "application/xml"


def test_sdk_retrieve_while_pending_returns_the_string_pending(merge_sdk, alice, httpbin_connection, broker):
    _, token = httpbin_connection
    client = merge_sdk(alice.key, token)
    receipt = client.ats.async_passthrough.create(request=DataPassthroughRequest(method=MethodEnum.GET, path="/get"))
    assert client.ats.async_passthrough.retrieve(str(receipt.async_passthrough_receipt_id)) == "PENDING"


def test_sdk_unknown_receipt_raises_404(merge_sdk, alice, httpbin_connection):
    client = merge_sdk(alice.key, httpbin_connection[1])
    with pytest.raises(ApiError) as error:
        client.crm.async_passthrough.retrieve("00000000-0000-4000-8000-000000000000")
    assert error.value.status_code == 404
