"""Native Integry-style endpoints (integry.md §8): `GET /api/v1/functions[/<name>]`, and calling a function with
`POST /api/v1/functions/<name>` or `POST /api/v1/<slug>-passthrough-request` for the `X-Account-Token` connection."""

import json

import pytest
from rest_framework.test import APIClient

from connections.models import Connection
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration

FUNCTION = "httpbin-passthrough-request"
CALL_PATHS = [f"/api/v1/functions/{FUNCTION}", f"/api/v1/{FUNCTION}", f"/api/v1/{FUNCTION}/"]
TOKEN = "tok-SECRET-123456"


def assert_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "error_details"} and body["error"] and isinstance(body["error_details"], list)
    return body["error_details"]


@pytest.fixture
def account_token(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)[1]


def call(tenant, arguments, token, path=CALL_PATHS[0]):
    headers = {"HTTP_X_ACCOUNT_TOKEN": token} if token is not None else {}
    return tenant.client.post(path, arguments, format="json", **headers)


class TestList:
    def test_result_is_the_function_with_type_and_integration(self, alice, integration):
        [function] = alice.client.get("/api/v1/functions").json()["results"]
        assert set(function) == {"name", "description", "parameters", "output", "type", "integration"}
        assert (function["name"], function["type"], function["integration"]) == (
            "acme-passthrough-request", "passthrough", "acme")
        assert function["parameters"]["required"] == ["method", "url"]

    def test_pages_of_50_end_with_next_null(self, alice):
        for i in range(60):
            make_integration(slug=f"app{i:03d}", base_url=f"https://api.app{i:03d}.test")
        first = alice.client.get("/api/v1/functions").json()
        assert len(first["results"]) == 50 and first["next"] and first["previous"] is None
        second = alice.client.get(first["next"]).json()
        assert len(second["results"]) == 10 and second["next"] is None
        names = [f["name"] for f in first["results"] + second["results"]]
        assert names == sorted(names) and len(set(names)) == 60

    def test_type_and_integration_filters_combine(self, alice, integration):
        make_integration(slug="other")
        params = {"type": "Passthrough", "integration": "other"}
        assert [f["name"] for f in alice.client.get("/api/v1/functions", params).json()["results"]] == [
            "other-passthrough-request"]
        assert alice.client.get("/api/v1/functions", {"type": "QUERY"}).json()["results"] == []

    def test_without_api_key_is_401(self, integration):
        assert_error(APIClient().get("/api/v1/functions"), 401)

    def test_nul_in_the_integration_filter_is_400(self, alice, integration):
        assert_error(alice.client.get("/api/v1/functions?integration=ac%00me"), 400)


class TestGet:
    def test_returns_one_function(self, alice, integration):
        response = alice.client.get("/api/v1/functions/acme-passthrough-request")
        assert response.status_code == 200
        assert response.json()["integration"] == "acme"

    def test_unknown_function_is_404(self, alice, integration):
        assert_error(alice.client.get("/api/v1/functions/acme-send-message"), 404)

    def test_nul_in_the_function_name_is_400(self, alice, integration):
        assert_error(alice.client.get("/api/v1/functions/acme%00-passthrough-request"), 400)


class TestCall:
    @pytest.mark.parametrize("path", CALL_PATHS)
    def test_executed_call_answers_network_code_string_and_output(self, alice, account_token, path):
        response = call(alice, {"method": "GET", "url": "/get", "query": {"limit": "2"}}, account_token, path)
        assert response.status_code == 200
        assert response.json()["network_code"] == "200"
        assert response.json()["output"]["args"] == {"limit": "2"}
        assert set(response.json()) == {"network_code", "output"}

    def test_upstream_error_status_is_still_200(self, alice, account_token):
        response = call(alice, {"method": "GET", "url": "/status/404"}, account_token)
        assert response.status_code == 200 and response.json()["network_code"] == "404"

    def test_executed_call_is_logged_once_as_native(self, alice, account_token):
        call(alice, {"method": "GET", "url": "/get"}, account_token)
        row = FunctionCall.objects.get()
        assert (row.dialect, row.response_status, row.function.name) == ("native", 200, FUNCTION)

    def test_account_token_and_api_key_never_go_upstream_nor_into_the_log(self, alice, account_token):
        arguments = {"method": "POST", "url": "/anything", "body": {"key": alice.key, "token": account_token}}
        output = call(alice, arguments, account_token).json()["output"]
        sent = {name.lower(): value for name, value in output["headers"].items()}
        assert "x-account-token" not in sent
        assert sent["authorization"] == f"Bearer {TOKEN}"
        row = FunctionCall.objects.get()
        stored = json.dumps({field.name: str(getattr(row, field.attname)) for field in row._meta.concrete_fields})
        for secret in (alice.key, account_token, TOKEN):
            assert secret not in stored

    def test_missing_account_token_is_400(self, alice, account_token):
        assert assert_error(call(alice, {"method": "GET", "url": "/get"}, None), 400) == [
            "X-Account-Token: This header is required."]

    def test_unknown_account_token_is_401(self, alice, account_token):
        assert_error(call(alice, {"method": "GET", "url": "/get"}, "at_unknown-token-value"), 401)

    def test_another_organizations_account_token_is_401(self, alice, bob, httpbin_integration):
        _, bobs_token = make_connection(bob.organization, httpbin_integration)
        assert_error(call(alice, {"method": "GET", "url": "/get"}, bobs_token), 401)

    def test_another_integrations_connection_is_400(self, alice, integration, account_token):
        _, acme_token = make_connection(alice.organization, integration)
        details = assert_error(call(alice, {"method": "GET", "url": "/get"}, acme_token), 400)
        assert details[0].startswith("X-Account-Token:")

    @pytest.mark.parametrize("state", [Connection.STATUS_NEEDS_REAUTH, Connection.STATUS_DISABLED])
    def test_inactive_connection_is_400(self, alice, account_token, state):
        Connection.objects.update(status=state)
        assert_error(call(alice, {"method": "GET", "url": "/get"}, account_token), 400)

    @pytest.mark.parametrize("arguments, detail", [
        ({"method": "GET"}, "url: This parameter is required."),
        ({"url": "/get"}, "method: This parameter is required."),
        ({"method": "GET", "url": "https://evil.test/x"}, "host:"),
    ])
    def test_invalid_arguments_are_400(self, alice, account_token, arguments, detail):
        details = assert_error(call(alice, arguments, account_token), 400)
        assert any(line.startswith(detail) for line in details), details

    def test_body_that_is_not_an_object_is_400(self, alice, account_token):
        response = alice.client.post(CALL_PATHS[0], "[1]", content_type="application/json",
                                     HTTP_X_ACCOUNT_TOKEN=account_token)
        assert_error(response, 400)

    @pytest.mark.parametrize("path", ["/api/v1/functions/nope-passthrough-request", "/api/v1/nope-passthrough-request"])
    def test_unknown_function_is_404(self, alice, account_token, path):
        assert_error(call(alice, {"method": "GET", "url": "/get"}, account_token, path), 404)

    def test_without_api_key_is_401(self, account_token):
        response = APIClient().post(CALL_PATHS[0], {"method": "GET", "url": "/get"}, format="json",
                                    HTTP_X_ACCOUNT_TOKEN=account_token)
        assert_error(response, 401)

    def test_refused_calls_are_not_logged(self, alice, bob, integration, account_token):
        call(alice, {"method": "GET"}, account_token)
        call(alice, {"method": "GET", "url": "/get"}, None)
        call(alice, {"method": "GET", "url": "/get"}, make_connection(alice.organization, integration)[1])
        call(bob, {"method": "GET", "url": "/get"}, account_token)
        assert not FunctionCall.objects.exists()
