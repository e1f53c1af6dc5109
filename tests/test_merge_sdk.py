"""Merge's published Python SDK (mergepythonclient 4.2.1, unmodified) against the running server.

The server is pytest-django's `live_server`; the upstream is the local httpbin. See shared/spec/merge.md.
"""

import base64
import gzip
import importlib
import json
from datetime import datetime

import pytest
from merge.core.api_error import ApiError
from merge.resources.crm import DataPassthroughRequest, MethodEnum, MultipartFormFieldRequest, RequestFormatEnum

from connections.models import Connection
from passthrough.models import FunctionCall
from syncing import services as syncing_services
from syncing.models import SyncRun, SyncState
from tests.factories import make_connection

SECRET_TOKEN = "tok-SECRET-123456"
SDK_CATEGORIES = ("accounting", "ats", "calendar", "chat", "crm", "email", "filestorage", "hris", "knowledgebase",
                  "ticketing")


def get(path) -> DataPassthroughRequest:
    return DataPassthroughRequest(method=MethodEnum.GET, path=path)


@pytest.fixture
def httpbin_connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)


@pytest.fixture
def client(merge_sdk, alice, httpbin_connection):
    """Alice's SDK client for her httpbin connection."""
    return merge_sdk(alice.key, httpbin_connection[1])


class TestPassthrough:
    def test_create_returns_the_upstream_answer(self, client):
        result = client.crm.passthrough.create(request=get("/anything?x=1"))
        assert (result.method, result.path, result.status) == ("GET", "/anything?x=1", 200)
        assert result.response_type == "JSON"
        assert result.response["args"] == {"x": "1"}
        assert result.response["headers"]["Authorization"] == f"Bearer {SECRET_TOKEN}"
        assert result.response_headers["Content-Type"] == "application/json"

    def test_an_upstream_error_status_is_data_not_an_exception(self, client):
        result = client.crm.passthrough.create(request=DataPassthroughRequest(method=MethodEnum.POST,
                                                                              path="/status/503"))
        assert result.status == 503
        assert FunctionCall.objects.filter(dialect=FunctionCall.DIALECT_MERGE).count() == 1  # not retried

    def test_post_with_data_headers_and_request_format(self, client):
        result = client.crm.passthrough.create(request=DataPassthroughRequest(
            method=MethodEnum.POST, path="/anything/deals", data=json.dumps({"name": "Ada"}),
            headers={"X-Probe": 1}, request_format=RequestFormatEnum.JSON))
        echoed = result.response
        assert echoed["json"] == {"name": "Ada"}
        assert echoed["headers"]["X-Probe"] == "1"
        assert echoed["headers"]["Content-Type"] == "application/json"
        assert "X-Account-Token" not in echoed["headers"] and "X-Fern-Sdk-Name" not in echoed["headers"]
        assert not echoed["headers"]["User-Agent"].startswith("MergePythonClient")

    def test_options_explicitly_set_to_none_are_ignored(self, client):
        result = client.crm.passthrough.create(request=DataPassthroughRequest(
            method=MethodEnum.GET, path="/get", base_url_override=None, data=None, headers=None, request_format=None,
            multipart_form_data=None, normalize_response=None))
        assert result.status == 200

    def test_multipart(self, client):
        result = client.crm.passthrough.create(request=DataPassthroughRequest(
            method=MethodEnum.POST, path="/anything", request_format=RequestFormatEnum.MULTIPART,
            multipart_form_data=[
                MultipartFormFieldRequest(name="note", data="hi"),
                MultipartFormFieldRequest(name="doc", data=base64.b64encode(gzip.compress(b"zipped")).decode(),
                                          encoding="GZIP_BASE64", file_name="doc.txt", content_type="text/plain"),
            ]))
        assert result.response["form"] == {"note": "hi"}
        assert result.response["files"] == {"doc": "zipped"}

    def test_binary_answer(self, client):
        result = client.crm.passthrough.create(request=get("/bytes/64?seed=3"))
        assert result.response_type == "BASE64_GZIP"
        assert len(gzip.decompress(base64.b64decode(result.response))) == 64

    def test_normalize_response(self, client):
        result = client.crm.passthrough.create(request=DataPassthroughRequest(
            method=MethodEnum.GET, path="/get", normalize_response=True))
        assert result.response["type"] == "object"

    @pytest.mark.parametrize("category", SDK_CATEGORIES)
    def test_every_sdk_category(self, client, category):
        types = importlib.import_module(f"merge.resources.{category}")
        request = types.DataPassthroughRequest(method=types.MethodEnum.GET, path="/get")
        assert getattr(client, category).passthrough.create(request=request).status == 200

    def test_a_refused_override_host_raises_400(self, client):
        with pytest.raises(ApiError) as error:
            client.crm.passthrough.create(request=DataPassthroughRequest(
                method=MethodEnum.GET, path="/get", base_url_override="https://evil.example"))
        assert error.value.status_code == 400
        assert "evil.example" in error.value.body["detail"]
        assert not FunctionCall.objects.exists()

    def test_an_unusable_connection_raises_400(self, client, httpbin_connection):
        Connection.objects.filter(pk=httpbin_connection[0].pk).update(status=Connection.STATUS_NEEDS_REAUTH)
        with pytest.raises(ApiError) as error:
            client.crm.passthrough.create(request=get("/get"))
        assert error.value.status_code == 400


class TestAuthentication:
    def test_a_bad_account_token_raises_401(self, merge_sdk, alice, httpbin_connection):
        with pytest.raises(ApiError) as error:
            merge_sdk(alice.key, "at_not-a-token").crm.account_details.retrieve()
        assert error.value.status_code == 401
        assert isinstance(error.value.body["detail"], str)

    def test_a_bad_api_key_raises_401(self, merge_sdk, httpbin_connection):
        with pytest.raises(ApiError) as error:
            merge_sdk("ak_0000.nope", httpbin_connection[1]).crm.passthrough.create(
                request=get("/get"))
        assert error.value.status_code == 401

    def test_no_account_token_raises_401(self, merge_sdk, alice):
        with pytest.raises(ApiError) as error:
            merge_sdk(alice.key).crm.sync_status.list()
        assert error.value.status_code == 401

    def test_bobs_key_with_alices_account_token_raises_401(self, merge_sdk, bob, httpbin_connection):
        bobs = merge_sdk(bob.key, httpbin_connection[1])
        with pytest.raises(ApiError) as error:
            bobs.crm.passthrough.create(request=get("/get"))
        assert error.value.status_code == 401
        with pytest.raises(ApiError) as error:
            bobs.crm.delete_account.delete()
        assert error.value.status_code == 401
        assert Connection.objects.filter(pk=httpbin_connection[0].pk).exists()
        assert not FunctionCall.objects.exists()


class TestAccount:
    @pytest.mark.parametrize("category", SDK_CATEGORIES)
    def test_account_details(self, client, httpbin_connection, category):
        details = getattr(client, category).account_details.retrieve()
        assert details.id == str(httpbin_connection[0].pk)
        assert (details.integration_slug, details.category, details.status) == ("httpbin", category, "COMPLETE")
        assert details.end_user_origin_id == "user-1"
        assert isinstance(details.completed_at, datetime) and details.completed_at.utcoffset().total_seconds() == 0

    def test_linked_accounts_walk_every_page_once(self, merge_sdk, alice, bob, httpbin_integration):
        ids = {str(make_connection(alice.organization, httpbin_integration, end_user_id=f"u{i}")[0].pk)
               for i in range(5)}
        make_connection(bob.organization, httpbin_integration, end_user_id="bobs-user")
        client = merge_sdk(alice.key)
        seen, cursor, pages = [], None, 0
        while True:
            page = client.crm.linked_accounts.list(page_size=2, cursor=cursor)
            pages += 1
            seen += [account.id for account in page.results]
            assert all(a.integration.slug == "httpbin" and a.status == "COMPLETE" for a in page.results)
            assert all(account.completed_at.tzinfo is not None for account in page.results)
            cursor = page.next
            if cursor is None:
                break
        assert pages == 3
        assert len(seen) == len(set(seen)) and set(seen) == ids

    def test_linked_accounts_filters(self, merge_sdk, alice, httpbin_integration):
        make_connection(alice.organization, httpbin_integration, end_user_id="ada")
        wanted, _ = make_connection(alice.organization, httpbin_integration, end_user_id="bob")
        page = merge_sdk(alice.key).hris.linked_accounts.list(end_user_origin_ids="bob,zed", status="COMPLETE")
        assert [account.id for account in page.results] == [str(wanted.pk)]
        assert page.results[0].category == "hris"

    def test_account_token_for_a_public_token_is_404(self, merge_sdk, alice):
        with pytest.raises(ApiError) as error:
            merge_sdk(alice.key).crm.account_token.retrieve("pt_anything")
        assert error.value.status_code == 404

    def test_delete_account(self, client, httpbin_connection):
        assert client.crm.delete_account.delete() is None
        assert not Connection.objects.filter(pk=httpbin_connection[0].pk).exists()
        with pytest.raises(ApiError) as error:
            client.crm.account_details.retrieve()
        assert error.value.status_code == 401


class TestSyncStatus:
    def test_sync_status_of_a_connection_that_syncs_nothing(self, client):
        page = client.crm.sync_status.list()
        assert (page.results, page.next, page.previous) == ([], None, None)

    def test_resync(self, client):
        assert client.crm.force_resync.sync_status_resync_create() == []

    def test_statuses_of_a_syncing_connection_parse_into_the_sdks_models(self, merge_sdk, alice, synced_connection):
        connection, token = synced_connection
        page = merge_sdk(alice.key, token).hris.sync_status.list()
        contacts, leads = page.results
        assert (contacts.model_name, contacts.model_id, contacts.status, contacts.last_sync_result) == (
            "contacts", "hris.contacts", "DONE", "DONE")
        assert contacts.is_initial_sync is False and leads.is_initial_sync is True
        assert (leads.model_id, leads.status, leads.last_sync_start) == ("hris.leads", "PAUSED", None)
        run = SyncRun.objects.get(connection=connection)
        assert contacts.last_sync_start == run.started_at and contacts.last_sync_start.utcoffset().total_seconds() == 0
        assert contacts.last_sync_finished == run.finished_at and contacts.data_fresh_as_of == run.started_at

    def test_a_walk_of_the_pages_sees_every_model_once(self, merge_sdk, alice, synced_connection):
        client = merge_sdk(alice.key, synced_connection[1])
        names, cursor = [], None
        while True:
            page = client.crm.sync_status.list(page_size=1, cursor=cursor)
            names += [status.model_name for status in page.results]
            cursor = page.next
            if cursor is None:
                break
        assert names == ["contacts", "leads"]

    def test_resync_then_poll_until_done_as_merge_recommends(self, merge_sdk, alice, synced_connection):
        connection, token = synced_connection
        client = merge_sdk(alice.key, token)
        initial = {status.model_name: status.last_sync_start for status in client.crm.sync_status.list().results}
        statuses = client.crm.force_resync.sync_status_resync_create()
        assert [(s.model_id, s.status) for s in statuses] == [("crm.contacts", "SYNCING"), ("crm.leads", "SYNCING")]
        for state in SyncState.objects.filter(connection=connection):
            syncing_services.sync_requested(state.pk)  # what the worker does
        after = client.crm.sync_status.list().results
        assert [(s.model_name, s.status) for s in after] == [("contacts", "DONE"), ("leads", "DONE")]
        assert all(s.last_sync_start != initial[s.model_name] for s in after)
