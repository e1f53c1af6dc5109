"""The Merge-compatible dialect over raw HTTP (/merge/api/): routing, auth and tenancy, errors, passthrough, account
endpoints, pagination and sync status. The wire contract is shared/spec/merge.md; test_merge_sdk.py drives the SDK."""

import base64
import gzip
import json
from base64 import b64encode
from datetime import datetime, timezone as dt_timezone

import pytest
import requests
import responses
import yaml
from django.utils import timezone

from connections.models import Connection
from integration_platform.errors import RateLimited
from passthrough.dialects import merge_views
from passthrough.dialects.merge_views import CATEGORIES
from passthrough.models import FunctionCall
from syncing import services as syncing_services
from syncing.models import SyncRun, SyncState
from tests.factories import make_connection, make_integration
from tests.servers import free_port
from tests.sync_upstream import sync_model

SECRET_TOKEN = "tok-SECRET-123456"
ACME = "https://api.acme.test/v1"
ACCOUNT_ENDPOINTS = [("post", "passthrough"), ("get", "account-details"), ("post", "delete-account"),
                     ("get", "sync-status"), ("post", "sync-status/resync")]
ALL_ENDPOINTS = [*ACCOUNT_ENDPOINTS, ("get", "linked-accounts"), ("get", "account-token/some-public-token")]


def url(endpoint, category="crm"):
    return f"/merge/api/{category}/v1/{endpoint}"


def passthrough(tenant, token, category="crm", **body):
    return tenant.client.post(url("passthrough", category), {"method": "GET", "path": "/things", **body}, format="json",
                              HTTP_X_ACCOUNT_TOKEN=token)


def account_get(tenant, token, endpoint, **params):
    return tenant.client.get(url(endpoint), params, HTTP_X_ACCOUNT_TOKEN=token)


def assert_merge_error(response, status):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"detail", "errors"}
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_utc_z(value):
    assert value.endswith("Z")
    assert datetime.fromisoformat(value).utcoffset().total_seconds() == 0


def bare_cursor(value):
    assert value is not None
    assert "://" not in value and "?" not in value and "cursor=" not in value
    return value


@pytest.fixture
def acme_upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def httpbin_connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)


# --- Routing -------------------------------------------------------------------------------------------------------

class TestRouting:
    def test_routes_match_without_a_trailing_slash(self, alice, alice_connection):
        assert account_get(alice, alice_connection[1], "account-details").status_code == 200

    def test_an_extra_trailing_slash_is_accepted(self, alice, alice_connection):
        assert account_get(alice, alice_connection[1], "account-details/").status_code == 200

    @pytest.mark.parametrize("method,endpoint", ALL_ENDPOINTS)
    @pytest.mark.parametrize("slash", ["", "/"])
    def test_no_route_is_ever_redirected(self, alice, alice_connection, method, endpoint, slash):
        response = getattr(alice.client, method)(url(endpoint) + slash, HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert response.status_code not in (301, 302, 303, 307, 308)
        assert "Location" not in response

    @pytest.mark.parametrize("category", CATEGORIES)
    def test_every_category_serves_the_endpoints(self, alice, alice_connection, category):
        response = alice.client.get(url("account-details", category), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert response.status_code == 200
        assert response.json()["category"] == category

    def test_unknown_category_is_404(self, alice, alice_connection):
        response = alice.client.get(url("account-details", "marketing"), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert assert_merge_error(response, 404) == {"detail": "Not found."}

    @pytest.mark.parametrize("method,path", [
        ("get", "crm/v1/contacts"), ("get", "hris/v1/employees"), ("post", "crm/v1/account-token/regenerate"),
        ("get", "calendar/v1/linked-accounts/123"), ("get", "crm/v1/field-mappings"),
        ("get", "nothing-here"), ("delete", "crm/v2/passthrough"),
    ])
    def test_endpoints_not_offered_are_json_404(self, alice, method, path):
        response = getattr(alice.client, method)(f"/merge/api/{path}")
        assert assert_merge_error(response, 404) == {"detail": "Not found."}

    def test_a_wrong_method_on_a_known_route_is_404(self, alice, alice_connection):
        response = alice.client.get(url("passthrough"), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert assert_merge_error(response, 404) == {"detail": "Not found."}


# --- Authentication and tenancy --------------------------------------------------------------------------------------

class TestAuthentication:
    @pytest.mark.parametrize("method,endpoint", ALL_ENDPOINTS)
    def test_missing_api_key_is_401(self, client, alice_connection, method, endpoint):
        response = getattr(client, method)(url(endpoint), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 401)

    def test_unknown_api_key_is_401(self, client, alice_connection):
        response = client.get(url("account-details"), HTTP_AUTHORIZATION="Bearer ak_0000.nope",
                              HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 401)

    def test_revoked_api_key_is_401(self, alice, alice_connection):
        alice.api_key.revoked_at = timezone.now()
        alice.api_key.save()
        assert_merge_error(account_get(alice, alice_connection[1], "account-details"), 401)

    @pytest.mark.parametrize("method,endpoint", ACCOUNT_ENDPOINTS)
    def test_account_endpoints_without_account_token_are_401(self, alice, alice_connection, method, endpoint):
        body = assert_merge_error(getattr(alice.client, method)(url(endpoint)), 401)
        assert "X-Account-Token" in body["detail"]

    @pytest.mark.parametrize("method,endpoint", ACCOUNT_ENDPOINTS)
    def test_unknown_account_token_is_401(self, alice, alice_connection, method, endpoint):
        response = getattr(alice.client, method)(url(endpoint), HTTP_X_ACCOUNT_TOKEN="at_unknown-token")
        assert_merge_error(response, 401)

    @pytest.mark.parametrize("method,endpoint", ACCOUNT_ENDPOINTS)
    def test_bobs_key_with_alices_account_token_is_401(self, bob, alice_connection, method, endpoint):
        response = getattr(bob.client, method)(url(endpoint), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 401)

    def test_bob_cannot_delete_alices_connection(self, bob, alice_connection):
        connection, token = alice_connection
        assert_merge_error(bob.client.post(url("delete-account"), HTTP_X_ACCOUNT_TOKEN=token), 401)
        assert Connection.objects.filter(pk=connection.pk).exists()

    def test_org_endpoints_ignore_the_account_token(self, alice, alice_connection):
        response = alice.client.get(url("linked-accounts"), HTTP_X_ACCOUNT_TOKEN="at_not-a-real-token")
        assert response.status_code == 200
        assert [a["id"] for a in response.json()["results"]] == [str(alice_connection[0].pk)]


# --- Errors --------------------------------------------------------------------------------------------------------

class TestErrors:
    def test_rate_limited_is_429_with_a_whole_retry_after_of_at_least_one(self, alice, alice_connection, monkeypatch):
        def refuse(**kwargs):
            raise RateLimited("Too many requests for this connection.", retry_after=0.2)

        monkeypatch.setattr(merge_views.services, "passthrough_execute", refuse)
        response = passthrough(alice, alice_connection[1])
        assert_merge_error(response, 429)
        assert response["Retry-After"] == "1"
        assert "retry-after-ms" not in response

    def test_retry_after_counts_whole_seconds_up(self, alice, alice_connection, monkeypatch):
        def refuse(**kwargs):
            raise RateLimited("Too many requests.", retry_after=4.1)

        monkeypatch.setattr(merge_views.services, "passthrough_execute", refuse)
        assert passthrough(alice, alice_connection[1])["Retry-After"] == "5"

    def test_malformed_json_is_400(self, alice, alice_connection):
        response = alice.client.post(url("passthrough"), '{"method": "GET",', content_type="application/json",
                                     HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 400)

    def test_a_non_json_content_type_is_400_not_415(self, alice, alice_connection):
        response = alice.client.post(url("passthrough"), "method=GET", content_type="text/plain",
                                     HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 400)

    def test_an_unexpected_failure_is_a_json_500(self, alice, alice_connection, monkeypatch):
        def crash(**kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(merge_views.services, "passthrough_execute", crash)
        assert assert_merge_error(passthrough(alice, alice_connection[1]), 500) == {"detail": "Internal server error."}


# --- Passthrough -----------------------------------------------------------------------------------------------------

class TestPassthroughInput:
    @pytest.mark.parametrize("data", [{"name": "x"}, ["x"], 12, True])
    def test_data_that_is_not_a_string_is_400(self, alice, alice_connection, acme_upstream, data):
        body = assert_merge_error(passthrough(alice, alice_connection[1], method="POST", data=data), 400)
        assert "data" in body["errors"]
        assert not acme_upstream.calls
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("body,field", [
        ({"method": "FETCH"}, "method"), ({"method": None}, "method"), ({"path": ""}, "path"), ({"path": None}, "path"),
        ({"request_format": "YAML"}, "request_format"), ({"headers": ["X-A: 1"]}, "headers"),
        ({"base_url_override": 5}, "base_url_override"),
    ])
    def test_invalid_fields_are_400_naming_the_field(self, alice, alice_connection, body, field):
        response = passthrough(alice, alice_connection[1], **body)
        assert field in assert_merge_error(response, 400)["errors"]

    @pytest.mark.parametrize("body", [
        {"method": "POST", "path": "/x", "data": "\ud800"}, {"method": "GET", "path": "/\ud800"},
        {"method": "POST", "path": "/x", "request_format": "MULTIPART",
         "multipart_form_data": [{"name": "\udfff", "data": "x"}]},
    ])
    def test_unpaired_surrogates_are_400_not_500(self, alice, alice_connection, acme_upstream, body):
        response = alice.client.post(url("passthrough"), json.dumps(body), content_type="application/json",
                                     HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 400)
        assert not acme_upstream.calls

    def test_a_body_that_is_not_an_object_is_400(self, alice, alice_connection):
        response = alice.client.post(url("passthrough"), ["GET", "/things"], format="json",
                                     HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert_merge_error(response, 400)

    def test_null_fields_are_treated_as_absent(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/things", json={"ok": True})
        response = passthrough(alice, alice_connection[1], base_url_override=None, data=None, multipart_form_data=None,
                               headers=None, request_format=None, normalize_response=None)
        assert response.status_code == 200
        assert response.json()["response"] == {"ok": True}
        assert acme_upstream.calls[0].request.body is None

    @pytest.mark.parametrize("status", [Connection.STATUS_NEEDS_REAUTH, Connection.STATUS_DISABLED])
    def test_an_unusable_connection_is_400_saying_why(self, alice, alice_connection, acme_upstream, status):
        connection, token = alice_connection
        Connection.objects.filter(pk=connection.pk).update(status=status)
        body = assert_merge_error(passthrough(alice, token), 400)
        assert ("re-authorization" if status == Connection.STATUS_NEEDS_REAUTH else "disabled") in body["detail"]
        assert not acme_upstream.calls
        assert not FunctionCall.objects.exists()

    def test_a_refused_override_host_is_400_and_not_logged(self, alice, alice_connection, acme_upstream):
        response = passthrough(alice, alice_connection[1], base_url_override="https://evil.example")
        body = assert_merge_error(response, 400)
        assert "evil.example" in body["detail"]
        assert not acme_upstream.calls
        assert not FunctionCall.objects.exists()

    def test_an_absolute_path_on_another_host_is_refused(self, alice, alice_connection, acme_upstream):
        assert_merge_error(passthrough(alice, alice_connection[1], path="https://evil.example/x"), 400)
        assert not acme_upstream.calls


class TestPassthroughResponse:
    @pytest.mark.parametrize("status", [200, 201, 404, 429, 500, 503])
    def test_any_upstream_status_is_wrapped_in_200(self, alice, alice_connection, acme_upstream, status):
        acme_upstream.get(f"{ACME}/things", json={"error": "upstream says"}, status=status)
        response = passthrough(alice, alice_connection[1], path="/things?limit=2")
        assert response.status_code == 200
        body = response.json()
        assert body["method"] == "GET" and body["path"] == "/things?limit=2"
        assert body["status"] == status and isinstance(body["status"], int)
        assert body["response"] == {"error": "upstream says"}
        assert body["response_type"] == "JSON"
        assert body["response_headers"]["Content-Type"] == "application/json"

    def test_credentials_go_upstream_and_the_callers_own_headers_do_not(self, alice, alice_connection, acme_upstream):
        acme_upstream.post(f"{ACME}/things", json={})
        response = alice.client.post(
            url("passthrough"),
            {"method": "POST", "path": "/things", "data": '{"name": "Ada"}',
             "headers": {"X-Probe": 1, "X-Flag": True, "Authorization": "Bearer caller-value", "Host": "evil.example"}},
            format="json", HTTP_X_ACCOUNT_TOKEN=alice_connection[1], HTTP_USER_AGENT="MergePythonClient/4.2.1",
            HTTP_X_FERN_LANGUAGE="Python", HTTP_X_FERN_SDK_NAME="MergePythonClient")
        assert response.status_code == 200
        sent = acme_upstream.calls[0].request
        assert sent.headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
        assert sent.headers["X-Probe"] == "1" and sent.headers["X-Flag"] == "true"
        assert sent.headers["Content-Type"] == "application/json"
        assert sent.body == b'{"name": "Ada"}'
        assert "api.acme.test" in sent.url
        names = {name.lower() for name in sent.headers}
        assert not names & {"x-account-token", "x-fern-language", "x-fern-sdk-name"}
        assert "MergePythonClient" not in sent.headers.get("User-Agent", "")
        assert alice.key not in json.dumps(dict(sent.headers))

    def test_data_goes_as_the_body_with_any_method(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/search", json={})
        passthrough(alice, alice_connection[1], path="/search", data="q=1", headers={"Content-Type": "text/plain"})
        sent = acme_upstream.calls[0].request
        assert sent.body == b"q=1" and sent.headers["Content-Type"] == "text/plain"

    def test_text_is_a_json_string_and_an_empty_body_is_null(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/text", body="hello", content_type="text/plain")
        acme_upstream.delete(f"{ACME}/things/1", body=b"", status=204)
        assert passthrough(alice, alice_connection[1], path="/text").json()["response"] == "hello"
        empty = passthrough(alice, alice_connection[1], method="DELETE", path="/things/1").json()
        assert (empty["status"], empty["response"], empty["response_type"]) == (204, None, "JSON")

    def test_normalize_response_wraps_the_value_with_its_type(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/things", json=[1, 2])
        body = passthrough(alice, alice_connection[1], normalize_response=True).json()
        assert body["response"] == {"type": "array", "value": [1, 2]}

    def test_upstream_unreachable_is_502(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/things", body=requests.exceptions.ConnectionError("refused"))
        assert_merge_error(passthrough(alice, alice_connection[1]), 502)
        assert FunctionCall.objects.get().error

    def test_the_sync_cap_is_408_pointing_to_async_passthrough(self, alice, alice_connection, acme_upstream):
        acme_upstream.get(f"{ACME}/slow", body=requests.exceptions.ReadTimeout("slow"))
        body = assert_merge_error(passthrough(alice, alice_connection[1], category="hris", path="/slow"), 408)
        assert "POST /merge/api/hris/v1/async-passthrough" in body["detail"]


class TestPassthroughLog:
    def test_each_executed_call_writes_one_merge_function_call(self, alice, alice_connection, acme_upstream):
        connection, token = alice_connection
        acme_upstream.get(f"{ACME}/things", json={"n": 1}, status=404)
        passthrough(alice, token, path="/things")
        call = FunctionCall.objects.get()
        assert call.dialect == FunctionCall.DIALECT_MERGE
        assert (call.connection, call.organization, call.method, call.response_status) == (
            connection, alice.organization, "GET", 404)

    def test_no_secret_is_stored_in_the_row(self, alice, alice_connection, acme_upstream):
        acme_upstream.post(f"{ACME}/things", json={"echo": SECRET_TOKEN})
        passthrough(alice, alice_connection[1], method="POST", data=f'{{"token": "{SECRET_TOKEN}"}}')
        row = json.dumps({f.name: str(getattr(FunctionCall.objects.get(), f.attname))
                          for f in FunctionCall._meta.concrete_fields})
        for secret in (SECRET_TOKEN, alice.key, alice_connection[1]):
            assert secret not in row

    def test_refused_calls_write_no_row(self, alice, alice_connection):
        passthrough(alice, alice_connection[1], method="FETCH")
        passthrough(alice, alice_connection[1], base_url_override="https://evil.example")
        passthrough(alice, "at_unknown")
        assert not FunctionCall.objects.exists()


class TestPassthroughAgainstHttpbin:
    """The real local httpbin as the upstream."""

    def test_query_string_in_the_path_reaches_the_upstream(self, alice, httpbin_connection):
        body = passthrough(alice, httpbin_connection[1], path="/anything/deals?x=1&x=2").json()
        assert body["status"] == 200
        assert body["response"]["args"] == {"x": ["1", "2"]}
        assert body["response"]["headers"]["Authorization"] == f"Bearer {SECRET_TOKEN}"

    def test_a_binary_body_round_trips_as_base64_gzip(self, alice, httpbin_connection, httpbin_url):
        expected = requests.get(f"{httpbin_url}/bytes/512?seed=7", timeout=10).content
        body = passthrough(alice, httpbin_connection[1], path="/bytes/512?seed=7").json()
        assert body["response_type"] == "BASE64_GZIP"
        assert gzip.decompress(base64.b64decode(body["response"])) == expected

    def test_an_image_is_base64_gzip(self, alice, httpbin_connection, httpbin_url):
        expected = requests.get(f"{httpbin_url}/image/png", timeout=10).content
        body = passthrough(alice, httpbin_connection[1], path="/image/png").json()
        assert body["response_type"] == "BASE64_GZIP"
        assert gzip.decompress(base64.b64decode(body["response"])) == expected

    def test_an_xml_answer_is_a_json_string(self, alice, httpbin_connection):
        body = passthrough(alice, httpbin_connection[1], path="/xml").json()
        assert body["response_type"] == "JSON"
        assert body["response"].startswith("<?xml")

    def test_an_xml_request_is_sent_with_its_content_type(self, alice, httpbin_connection):
        body = passthrough(alice, httpbin_connection[1], method="POST", path="/anything",
                           data="<deal><id>1</id></deal>", request_format="XML").json()
        assert body["response"]["data"] == "<deal><id>1</id></deal>"
        assert body["response"]["headers"]["Content-Type"] == "application/xml"

    def test_multipart_form_data_with_raw_base64_and_gzip_items(self, alice, httpbin_connection):
        items = [
            {"name": "note", "data": "hello"},
            {"name": "upload", "data": b64encode(b"plain file bytes").decode(), "encoding": "BASE64",
             "file_name": "a.txt", "content_type": "text/plain"},
            {"name": "zipped", "data": b64encode(gzip.compress(b"unzipped text")).decode(), "encoding": "GZIP_BASE64",
             "file_name": "b.txt", "content_type": "text/plain"},
        ]
        body = passthrough(alice, httpbin_connection[1], method="POST", path="/anything", request_format="MULTIPART",
                           multipart_form_data=items).json()
        echoed = body["response"]
        assert echoed["form"] == {"note": "hello"}
        assert echoed["files"] == {"upload": "plain file bytes", "zipped": "unzipped text"}
        assert echoed["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")

    def test_invalid_base64_in_a_multipart_item_is_400(self, alice, httpbin_connection):
        response = passthrough(alice, httpbin_connection[1], method="POST", path="/anything",
                               request_format="MULTIPART",
                               multipart_form_data=[{"name": "f", "data": "%%%", "encoding": "BASE64"}])
        assert_merge_error(response, 400)

    def test_a_credential_echoed_in_a_response_header_is_redacted(self, alice, httpbin_connection):
        body = passthrough(alice, httpbin_connection[1], path=f"/response-headers?X-Echo=key%20{SECRET_TOKEN}").json()
        assert body["response_headers"]["X-Echo"] == "key <redacted>"
        assert SECRET_TOKEN not in json.dumps(body["response_headers"])

    def test_an_upstream_500_from_httpbin_is_wrapped_in_200(self, alice, httpbin_connection):
        response = passthrough(alice, httpbin_connection[1], method="POST", path="/status/500")
        assert response.status_code == 200 and response.json()["status"] == 500

    def test_base_url_override_to_an_allowed_host(self, alice, httpbin_url):
        # The registered base is elsewhere; 127.0.0.1 is allowed because it is written literally in the list.
        integration = make_integration(slug="crmish", base_url="https://crm.example.test/api",
                                       allowed_override_hosts=["127.0.0.1"])
        _, token = make_connection(alice.organization, integration)
        body = passthrough(alice, token, path="/anything/deals", base_url_override=f"{httpbin_url}/anything/v2").json()
        assert body["status"] == 200
        assert body["response"]["url"].endswith("/anything/v2/anything/deals")
        assert FunctionCall.objects.get().dialect == FunctionCall.DIALECT_MERGE

    def test_base_url_override_to_a_host_not_allowed_is_400(self, alice, httpbin_url):
        integration = make_integration(slug="crmish", base_url="https://crm.example.test/api",
                                       allowed_override_hosts=["127.0.0.1"])
        _, token = make_connection(alice.organization, integration)
        port = httpbin_url.rsplit(":", 1)[1]
        assert_merge_error(passthrough(alice, token, base_url_override=f"http://localhost:{port}"), 400)
        assert not FunctionCall.objects.exists()

    def test_an_allowed_name_that_resolves_to_loopback_is_refused(self, alice, httpbin_url):
        integration = make_integration(slug="crmish", base_url="https://crm.example.test/api",
                                       allowed_override_hosts=["localhost"])
        _, token = make_connection(alice.organization, integration)
        port = httpbin_url.rsplit(":", 1)[1]
        assert_merge_error(passthrough(alice, token, base_url_override=f"http://localhost:{port}"), 400)
        assert not FunctionCall.objects.exists()

    def test_an_allowed_override_host_that_does_not_answer_is_502(self, alice, httpbin_connection):
        response = passthrough(alice, httpbin_connection[1], base_url_override=f"http://127.0.0.1:{free_port()}")
        assert_merge_error(response, 502)


# --- Account endpoints -----------------------------------------------------------------------------------------------

class TestAccountDetails:
    def test_shape(self, alice, integration):
        connection, token = make_connection(alice.organization, integration, end_user_id="user-42")
        body = alice.client.get(url("account-details", "ats"), HTTP_X_ACCOUNT_TOKEN=token).json()
        assert_utc_z(body.pop("completed_at"))
        assert body == {
            "id": str(connection.pk), "integration": "Acme", "integration_slug": "acme", "category": "ats",
            "end_user_origin_id": "user-42", "end_user_organization_name": None, "end_user_email_address": None,
            "status": "COMPLETE", "webhook_listener_url": None, "is_duplicate": None, "account_type": "PRODUCTION",
        }

    def test_end_user_details_are_shown_when_known(self, alice, alice_connection):
        connection, token = alice_connection
        Connection.objects.filter(pk=connection.pk).update(end_user_email="ada@example.com",
                                                           end_user_organization_name="Analytical Engines")
        body = account_get(alice, token, "account-details").json()
        assert body["end_user_email_address"] == "ada@example.com"
        assert body["end_user_organization_name"] == "Analytical Engines"

    @pytest.mark.parametrize("status,merge_status", [
        (Connection.STATUS_ACTIVE, "COMPLETE"), (Connection.STATUS_NEEDS_REAUTH, "RELINK_NEEDED"),
        (Connection.STATUS_DISABLED, "IDLE"),
    ])
    def test_status_mapping_and_unusable_connections_still_answer(self, alice, alice_connection, status, merge_status):
        connection, token = alice_connection
        Connection.objects.filter(pk=connection.pk).update(status=status)
        response = account_get(alice, token, "account-details")
        assert response.status_code == 200
        assert response.json()["status"] == merge_status


class TestAccountToken:
    @pytest.mark.parametrize("public_token", ["pt_abc123", "regenerate", "0"])
    def test_an_unknown_public_token_is_404(self, alice, public_token):
        response = alice.client.get(url(f"account-token/{public_token}"))
        assert assert_merge_error(response, 404) == {"detail": "Not found."}


class TestDeleteAccount:
    def test_deletes_the_connection_and_answers_an_empty_object(self, alice, alice_connection):
        connection, token = alice_connection
        response = alice.client.post(url("delete-account"), HTTP_X_ACCOUNT_TOKEN=token)
        assert response.status_code == 200
        assert response.json() == {}
        assert not Connection.objects.filter(pk=connection.pk).exists()

    def test_the_account_token_stops_working_at_once(self, alice, alice_connection):
        _, token = alice_connection
        alice.client.post(url("delete-account"), HTTP_X_ACCOUNT_TOKEN=token)
        assert_merge_error(account_get(alice, token, "account-details"), 401)
        assert_merge_error(passthrough(alice, token), 401)

    def test_the_call_log_survives_the_connection(self, alice, alice_connection, acme_upstream):
        _, token = alice_connection
        acme_upstream.get(f"{ACME}/things", json={})
        passthrough(alice, token)
        alice.client.post(url("delete-account"), HTTP_X_ACCOUNT_TOKEN=token)
        assert FunctionCall.objects.get().connection is None


# --- Linked accounts and pagination ----------------------------------------------------------------------------------

def walk(tenant, **params):
    """Every page of linked-accounts, following `next` as the SDK does; returns the pages."""
    pages, cursor = [], None
    while True:
        response = tenant.client.get(url("linked-accounts"), {**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        pages.append(response.json())
        cursor = pages[-1]["next"]
        if cursor is None:
            return pages
        bare_cursor(cursor)


class TestLinkedAccounts:
    def test_shape(self, alice):
        integration = make_integration(slug="hubspot", name="HubSpot", categories=["crm", "mktg"])
        connection, _ = make_connection(alice.organization, integration, end_user_id="user-9")
        page = alice.client.get(url("linked-accounts", "mktg")).json()
        assert (page["next"], page["previous"]) == (None, None)
        [account] = page["results"]
        assert_utc_z(account.pop("completed_at"))
        assert account == {
            "id": str(connection.pk), "category": "mktg", "status": "COMPLETE", "status_detail": None,
            "end_user_origin_id": "user-9", "end_user_organization_name": "", "end_user_email_address": "",
            "webhook_listener_url": "", "is_duplicate": None, "account_type": "PRODUCTION",
            "integration": {"name": "HubSpot", "slug": "hubspot", "categories": ["crm", "mktg"], "image": None,
                            "square_image": None, "color": "#000000", "passthrough_available": True},
            "integration_specific_fields": {},
        }

    def test_lists_only_the_tenants_connections(self, alice, bob, integration):
        mine, _ = make_connection(alice.organization, integration)
        make_connection(bob.organization, integration, end_user_id="bobs-user")
        results = alice.client.get(url("linked-accounts")).json()["results"]
        assert [a["id"] for a in results] == [str(mine.pk)]

    def test_a_walk_with_page_size_visits_every_account_once(self, alice, integration):
        ids = {str(make_connection(alice.organization, integration, end_user_id=f"u{i}")[0].pk) for i in range(7)}
        pages = walk(alice, page_size=3)
        assert [len(p["results"]) for p in pages] == [3, 3, 1]
        seen = [a["id"] for p in pages for a in p["results"]]
        assert len(seen) == len(set(seen)) and set(seen) == ids

    def test_accounts_created_with_the_same_timestamp_are_not_repeated(self, alice, integration):
        ids = {make_connection(alice.organization, integration, end_user_id=f"u{i}")[0].pk for i in range(5)}
        Connection.objects.filter(pk__in=ids).update(created_at=timezone.now())
        seen = [a["id"] for p in walk(alice, page_size=2) for a in p["results"]]
        assert sorted(seen) == sorted(str(pk) for pk in ids)

    def test_previous_leads_back(self, alice, integration):
        for i in range(4):
            make_connection(alice.organization, integration, end_user_id=f"u{i}")
        first = alice.client.get(url("linked-accounts"), {"page_size": 2}).json()
        assert first["previous"] is None
        second = alice.client.get(url("linked-accounts"), {"page_size": 2, "cursor": first["next"]}).json()
        back = alice.client.get(url("linked-accounts"), {"page_size": 2, "cursor": bare_cursor(second["previous"])})
        assert back.json()["results"] == first["results"]

    def test_page_size_is_clamped_to_100(self, alice, integration):
        for i in range(101):
            make_connection(alice.organization, integration, end_user_id=f"u{i}")
        page = alice.client.get(url("linked-accounts"), {"page_size": 500}).json()
        assert len(page["results"]) == 100
        assert bare_cursor(page["next"])

    @pytest.mark.parametrize("page_size", ["0", "-3", "many"])
    def test_a_meaningless_page_size_gives_the_default(self, alice, alice_connection, page_size):
        assert alice.client.get(url("linked-accounts"), {"page_size": page_size}).status_code == 200

    @pytest.mark.parametrize("cursor", [
        "not a cursor!", b64encode(b"nope").decode(), b64encode(b"p=not-a-date").decode(),
        b64encode(b"o=-1").decode(), b64encode(b"o=1&x=2").decode(), "https://example.com/?cursor=abc",
    ])
    def test_an_invalid_cursor_is_400(self, alice, alice_connection, cursor):
        body = assert_merge_error(alice.client.get(url("linked-accounts"), {"cursor": cursor}), 400)
        assert "cursor" in body["errors"]

    def test_filters(self, alice, integration):
        other = make_integration(slug="globex", name="Globex Corp")
        a, _ = make_connection(alice.organization, integration, end_user_id="ada")
        b, _ = make_connection(alice.organization, integration, end_user_id="bob")
        c, _ = make_connection(alice.organization, other, end_user_id="cyd")
        Connection.objects.filter(pk=b.pk).update(status=Connection.STATUS_NEEDS_REAUTH)

        def ids(**params):
            return {int(x["id"]) for x in alice.client.get(url("linked-accounts"), params).json()["results"]}

        assert ids(id=str(b.pk)) == {b.pk}
        assert ids(ids=f"{a.pk}, {c.pk},nope") == {a.pk, c.pk}
        assert ids(end_user_origin_id="cyd") == {c.pk}
        assert ids(end_user_origin_ids="ada,cyd") == {a.pk, c.pk}
        assert ids(integration_name="globex corp") == ids(integration_name="GLOBEX") == {c.pk}
        assert ids(status="RELINK_NEEDED") == {b.pk}
        assert ids(status="COMPLETE") == {a.pk, c.pk}
        assert ids(status="INCOMPLETE") == set()
        assert ids(id="abc") == ids(id="99999999999999999999999") == set()
        assert ids(category="hris", include_duplicates="true", is_test_account="false", id="") == {a.pk, b.pk, c.pk}

    def test_an_unknown_status_filter_is_400(self, alice):
        body = assert_merge_error(alice.client.get(url("linked-accounts"), {"status": "DONE"}), 400)
        assert "status" in body["errors"]


# --- Sync status -----------------------------------------------------------------------------------------------------

SYNC_STATUS_FIELDS = {"model_name", "model_id", "last_sync_start", "next_sync_start", "last_sync_result",
                      "last_sync_finished", "status", "is_initial_sync", "selective_sync_configurations_usage",
                      "data_fresh_as_of", "historical_data_since", "sync_status_reason"}


class TestSyncStatus:
    def test_a_connection_that_syncs_nothing_has_an_empty_page(self, alice, alice_connection):
        response = account_get(alice, alice_connection[1], "sync-status")
        assert response.status_code == 200
        assert response.json() == {"next": None, "previous": None, "results": []}

    def test_an_invalid_cursor_is_400(self, alice, alice_connection):
        assert_merge_error(account_get(alice, alice_connection[1], "sync-status", cursor="%%%"), 400)

    def test_resync_of_a_connection_that_syncs_nothing_is_an_empty_array(self, alice, alice_connection):
        response = alice.client.post(url("sync-status/resync"), HTTP_X_ACCOUNT_TOKEN=alice_connection[1])
        assert response.status_code == 200
        assert response.json() == []

    def test_statuses_are_paged_with_bare_cursors_and_utc_datetimes(self, alice, alice_connection, monkeypatch):
        started = datetime(2026, 11, 23, 6, 24, 29, 123456, tzinfo=dt_timezone.utc)
        statuses = [{"model_name": name, "model_id": f"crm.{name}", "last_sync_start": started, "next_sync_start": None,
                     "last_sync_result": "DONE", "last_sync_finished": started, "status": "SYNCING",
                     "is_initial_sync": False, "selective_sync_configurations_usage": None}
                    for name in ("Account", "Contact", "Deal")]
        monkeypatch.setattr(merge_views, "sync_statuses", lambda connection, category: statuses)
        first = account_get(alice, alice_connection[1], "sync-status", page_size=2).json()
        second = account_get(alice, alice_connection[1], "sync-status", page_size=2,
                             cursor=bare_cursor(first["next"])).json()
        assert [s["model_name"] for s in first["results"] + second["results"]] == ["Account", "Contact", "Deal"]
        assert second["next"] is None and bare_cursor(second["previous"])
        assert first["results"][0]["last_sync_start"] == "2026-11-23T06:24:29.123456Z"
        assert first["results"][0]["is_initial_sync"] is False
        assert first["results"][0]["data_fresh_as_of"] is None

    def test_every_declared_model_has_a_status_named_after_the_urls_category(self, alice, synced_connection):
        connection, token = synced_connection
        response = alice.client.get(url("sync-status", "hris"), HTTP_X_ACCOUNT_TOKEN=token)
        assert response.status_code == 200
        body = response.json()
        assert (body["next"], body["previous"]) == (None, None)
        contacts, leads = body["results"]
        assert set(contacts) == SYNC_STATUS_FIELDS
        assert (contacts["model_name"], contacts["model_id"], leads["model_name"], leads["model_id"]) == (
            "contacts", "hris.contacts", "leads", "hris.leads")
        assert (contacts["status"], contacts["last_sync_result"], contacts["is_initial_sync"]) == ("DONE", "DONE", False)
        assert (leads["status"], leads["last_sync_result"], leads["is_initial_sync"]) == ("PAUSED", None, True)
        run = SyncRun.objects.get(connection=connection, model="contacts")
        assert contacts["last_sync_start"] == run.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert contacts["last_sync_finished"] == run.finished_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert (contacts["next_sync_start"], leads["last_sync_start"], leads["last_sync_finished"]) == (None, None, None)
        assert contacts["selective_sync_configurations_usage"] is None

    def test_statuses_of_many_models_walk_every_page_once(self, alice, sync_upstream):
        models = [sync_model(name=f"model{i:02d}") for i in range(5)]
        integration = make_integration(slug="upstream", base_url=sync_upstream.url, sync_models=models)
        _, token = make_connection(alice.organization, integration)
        names, cursor = [], None
        while True:
            page = account_get(alice, token, "sync-status", page_size=2, **({"cursor": cursor} if cursor else {})).json()
            names += [status["model_name"] for status in page["results"]]
            cursor = page["next"] and bare_cursor(page["next"])
            if cursor is None:
                break
        assert names == [f"model{i:02d}" for i in range(5)]

    def test_a_failed_run_and_a_disabled_model(self, alice, synced_connection, sync_upstream):
        connection, token = synced_connection
        sync_upstream.fault("/cursor/contacts", 403, times=1)
        syncing_services.sync_now(connection, "contacts")
        syncing_services.model_enable(connection, "leads", False)
        contacts, leads = account_get(alice, token, "sync-status").json()["results"]
        assert (contacts["status"], contacts["last_sync_result"], contacts["is_initial_sync"]) == (
            "FAILED", "FAILED", False)
        assert leads["status"] == "DISABLED"

    def test_resync_asks_for_every_enabled_model_and_answers_an_array(self, alice, synced_connection):
        connection, token = synced_connection
        syncing_services.model_enable(connection, "leads", False)
        response = alice.client.post(url("sync-status/resync", "ats"), HTTP_X_ACCOUNT_TOKEN=token)
        assert response.status_code == 200
        contacts, leads = response.json()
        assert (contacts["model_id"], contacts["status"], leads["model_id"], leads["status"]) == (
            "ats.contacts", "SYNCING", "ats.leads", "DISABLED")
        states = {state.model: state for state in SyncState.objects.filter(connection=connection)}
        assert states["contacts"].requested_by == "resync" and states["leads"].requested_at is None

    def test_resync_of_a_connection_that_needs_reauthorization_changes_nothing(self, alice, synced_connection):
        connection, token = synced_connection
        Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_NEEDS_REAUTH)
        response = alice.client.post(url("sync-status/resync"), HTTP_X_ACCOUNT_TOKEN=token)
        assert response.status_code == 200
        assert [status["status"] for status in response.json()] == ["PAUSED", "PAUSED"]
        assert not SyncState.objects.filter(connection=connection, requested_at__isnull=False).exists()

    def test_another_tenants_account_token_is_401(self, bob, synced_connection):
        _, token = synced_connection
        assert_merge_error(bob.client.get(url("sync-status"), HTTP_X_ACCOUNT_TOKEN=token), 401)
        assert_merge_error(bob.client.post(url("sync-status/resync"), HTTP_X_ACCOUNT_TOKEN=token), 401)
        assert not SyncState.objects.filter(requested_at__isnull=False).exists()


# --- Schema ----------------------------------------------------------------------------------------------------------

def test_every_endpoint_is_in_the_openapi_schema(alice):
    schema = yaml.safe_load(alice.client.get("/api/schema/").content)
    expected = {"passthrough": "post", "account-details": "get", "linked-accounts": "get",
                "account-token/{public_token}": "get", "delete-account": "post", "sync-status": "get",
                "sync-status/resync": "post"}
    for endpoint, method in expected.items():
        operation = schema["paths"][f"/merge/api/{{category}}/v1/{endpoint}"][method]
        assert operation["tags"] == ["merge"]


def test_a_redirect_to_a_refused_address_after_delivery_is_a_final_400_not_a_retried_502(alice, httpbin_integration):
    """The POST reached the upstream; the Merge SDK repeats 5xx answers, so the refusal must not be one."""
    from tests.factories import make_connection

    _, token = make_connection(alice.organization, httpbin_integration, end_user_id="redirected")
    response = alice.client.post("/merge/api/crm/v1/passthrough",
                                 {"method": "POST", "path": "/redirect-to?url=http://169.254.169.254/&status_code=307", "data": "{}"},
                                 format="json", HTTP_X_ACCOUNT_TOKEN=token)
    assert response.status_code == 400
    assert "delivered" in response.json()["detail"]
