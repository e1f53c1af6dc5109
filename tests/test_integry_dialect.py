"""The Integry-compatible dialect under /integry/ (../shared/spec/integry.md §1–§7), through Django's test client."""

import hashlib
import hmac
import json
import re
from datetime import datetime

import pytest
from django.test import Client
from django.utils import timezone

from connections.models import ApiKey, Connection
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.servers import free_port

CALL_REFUSED = "Could not call the function due to invalid input. Please see `error_details` for further information."
JSON_TYPES = {"string", "number", "boolean", "null", "object", "array"}
TOKEN = "tok-SECRET-123456"  # the connection's injected credential (factories.make_connection)


def signature(secret: str, user_id: str) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def signed(tenant, user_id="user-1") -> dict:
    return {"App-Key": tenant.api_key.key_id, "User-ID": user_id, "Hash": signature(tenant.key, user_id)}


def post(path, body=None, headers=None, **extra):
    """POST like the SDK: JSON body when given, nothing at all (no Content-Type) otherwise."""
    client = Client(enforce_csrf_checks=True)
    if body is None:
        return client.generic("POST", path, b"", content_type="", headers=headers or {}, **extra)
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.generic("POST", path, data, content_type=extra.pop("content_type", "application/json"),
                          headers=headers or {}, **extra)


def call(tenant, arguments, name="httpbin-passthrough-request", user_id="user-1", query="", **headers):
    path = f"/integry/functions/{name}/call/?allow_workspace_connected_accounts=true{query}"
    return post(path, {**arguments, "_variables": None}, headers={**signed(tenant, user_id), **headers})


def assert_detail(response, status, detail=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    if detail is not None:
        assert body["detail"] == detail
    return body["detail"]


def assert_refused(response, summary=None):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error", "error_details"}
    assert isinstance(body["error"], str) and body["error"]
    assert body["error_details"] and all(isinstance(line, str) and line for line in body["error_details"])
    if summary is not None:
        assert body["error"] == summary
    return body["error_details"]


def schema_nodes(node):
    yield node
    for child in node.get("properties", {}).values():
        yield from schema_nodes(child)
    items = node.get("items")
    for child in items if isinstance(items, list) else [items] if items else []:
        yield from schema_nodes(child)


def many_integrations(count):
    return [make_integration(slug=f"app{i:03d}", base_url=f"https://api.app{i:03d}.test") for i in range(count)]


def all_pages(tenant, path, key, user_id="user-1"):
    """Follow `_cursor` like the SDK's `async for`, with a guard against a cursor that never ends."""
    seen, cursor = [], ""
    for _ in range(20):
        body = post(path, {"_cursor": cursor}, headers=signed(tenant, user_id)).json()
        seen.append([item["name"] for item in body[key]])
        cursor = body["_cursor"]
        if cursor is None:
            return seen
        assert isinstance(cursor, str) and cursor
    raise AssertionError("pagination did not end")


@pytest.fixture
def httpbin_connection(alice, httpbin_integration):
    return make_connection(alice.organization, httpbin_integration)[0]


# --- §1 Routes ------------------------------------------------------------------------------------------------------

ROUTES = [
    "/integry/functions/list/",
    "/integry/functions/predict/",
    "/integry/functions/acme-passthrough-request/get/",
    "/integry/functions/acme-passthrough-request/call/",
    "/integry/apps/list/",
    "/integry/apps/acme/get/",
]


class TestRoutes:
    @pytest.mark.parametrize("path", [
        "/integry/functions/list/", "/integry/functions/list", "/integry//functions/list/",
        "/integry///functions//list//", "/integry/functions/list/?connected_only=false",
    ])
    def test_list_is_served_with_or_without_slashes_and_with_runs_of_slashes(self, alice, integration, path):
        response = post(path, {"_cursor": ""}, headers=signed(alice))
        assert response.status_code == 200
        assert [f["name"] for f in response.json()["functions"]] == ["acme-passthrough-request"]

    @pytest.mark.parametrize("path", [
        "/integry/apps/acme/get", "/integry//apps/acme/get/", "/integry/functions/acme-passthrough-request/get",
        "/integry//functions/acme-passthrough-request/get/", "/integry/functions/predict",
    ])
    def test_every_route_is_served_without_trailing_slash_and_after_a_double_slash(self, alice, integration, path):
        assert post(path, headers=signed(alice)).status_code == 200

    def test_call_sync_path_with_double_slash_executes(self, alice, httpbin_connection):
        path = "/integry//functions/httpbin-passthrough-request/call/?allow_workspace_connected_accounts=true"
        response = post(path, {"method": "GET", "url": "/get", "_variables": None}, headers=signed(alice))
        assert response.status_code == 200
        assert response.json()["network_code"] == "200"

    @pytest.mark.parametrize("path", ROUTES)
    @pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    def test_other_methods_are_405_json(self, alice, integration, path, method):
        response = Client().generic(method, path, headers=signed(alice))
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        if method != "HEAD":
            assert_detail(response, 405)

    @pytest.mark.parametrize("path", [
        "/integry", "/integry/", "/integry/functions/", "/integry/functions/list/extra/", "/integry/flows/list/",
        "/integry/functions/acme-passthrough-request/run/", "/integry/apps/", "/integry/marketplace/",
    ])
    def test_any_other_path_under_integry_is_404_not_found(self, alice, integration, path):
        assert_detail(post(path, headers=signed(alice)), 404, "Not found.")

    @pytest.mark.parametrize("path", ["/integry/functions/a%00b/get/", "/integry/functions/a%00b/call/",
                                      "/integry/apps/a%00b/get/"])
    def test_nul_in_a_name_is_400(self, alice, integration, path):
        response = post(path, {}, headers=signed(alice))
        assert response.status_code == 400 and response.json()["error_details"]

    @pytest.mark.parametrize("path", ROUTES)
    def test_routes_never_redirect(self, alice, integration, path):
        for variant in (path, path.rstrip("/"), path.replace("/integry/", "/integry//")):
            assert post(variant, {}, headers=signed(alice)).status_code not in range(300, 400)

    def test_no_csrf_token_or_cookie_is_needed(self, alice, integration):
        # `post` uses a client that enforces CSRF checks like a browser session would.
        assert post("/integry/apps/list/", {"_cursor": ""}, headers=signed(alice)).status_code == 200

    def test_empty_body_without_content_type_is_accepted(self, alice, integration):
        response = post("/integry/apps/acme/get/", headers=signed(alice))
        assert response.status_code == 200
        assert response.json()["name"] == "acme"

    def test_json_body_with_any_content_type_is_accepted(self, alice, integration):
        response = post("/integry/functions/list/", '{"_cursor": ""}', headers=signed(alice), content_type="text/plain")
        assert response.status_code == 200

    @pytest.mark.parametrize("raw", ["[]", '"text"', "1", "null", "not json", "{", b"\xff\xfe", "[" * 100_000])
    def test_body_that_is_not_a_json_object_is_400(self, alice, integration, raw):
        details = assert_refused(post("/integry/functions/list/", raw, headers=signed(alice)))
        assert details == ["body: Must be a JSON object."]

    def test_oversized_body_is_413_detail(self, alice, integration, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        response = post("/integry/functions/list/", {"_cursor": "", "padding": "x" * 2000}, headers=signed(alice))
        assert_detail(response, 413)


# --- §2 Authentication and tenancy ----------------------------------------------------------------------------------

class TestAuthentication:
    def test_right_hash_is_accepted(self, alice, integration):
        assert post("/integry/apps/list/", {}, headers=signed(alice)).status_code == 200

    def test_upper_case_hex_hash_is_accepted(self, alice, integration):
        headers = signed(alice)
        headers["Hash"] = headers["Hash"].upper()
        assert post("/integry/apps/list/", {}, headers=headers).status_code == 200

    @pytest.mark.parametrize("missing", ["App-Key", "User-ID", "Hash"])
    def test_missing_header_is_401(self, alice, integration, missing):
        headers = signed(alice)
        del headers[missing]
        assert_detail(post("/integry/apps/list/", {}, headers=headers), 401)

    @pytest.mark.parametrize("empty", ["App-Key", "User-ID", "Hash"])
    def test_empty_header_is_401(self, alice, integration, empty):
        assert_detail(post("/integry/apps/list/", {}, headers={**signed(alice), empty: ""}), 401)

    def test_every_refusal_gives_the_same_message(self, alice, bob, integration):
        ApiKey.objects.filter(pk=bob.api_key.pk).update(revoked_at=timezone.now())
        variants = [
            {**signed(alice), "Hash": "0" * 64},
            {**signed(alice), "Hash": signature(alice.key, "someone-else")},
            {**signed(alice), "App-Key": "ak_0000000000000000"},
            {**signed(alice), "App-Key": bob.api_key.key_id},  # alice's hash, bob's (revoked) key
            signed(bob),  # revoked
            {**signed(alice), "App-Key": bob.api_key.key_id, "Hash": signature(bob.key, "user-1")},  # revoked
            {"App-Key": alice.api_key.key_id, "User-ID": "user-1"},
        ]
        messages = {assert_detail(post("/integry/apps/list/", {}, headers=h), 401) for h in variants}
        assert len(messages) == 1

    def test_hash_keyed_with_another_organizations_key_is_401(self, alice, bob, integration):
        headers = {**signed(alice), "Hash": signature(bob.key, "user-1")}
        assert_detail(post("/integry/apps/list/", {}, headers=headers), 401)

    def test_hash_keyed_with_the_key_id_alone_is_401(self, alice, integration):
        headers = {**signed(alice), "Hash": signature(alice.api_key.key_id, "user-1")}
        assert_detail(post("/integry/apps/list/", {}, headers=headers), 401)

    def test_authentication_comes_before_function_lookup(self, alice):
        headers = {**signed(alice), "Hash": "0" * 64}
        assert_detail(post("/integry/functions/nope-passthrough-request/get/", {}, headers=headers), 401)
        assert_detail(post("/integry/functions/nope-passthrough-request/call/", {}, headers=headers), 401)
        assert_detail(post("/integry/apps/nope/get/", headers=headers), 401)

    def test_authentication_comes_before_body_validation(self, alice, integration):
        assert_detail(post("/integry/functions/list/", "[]", headers={**signed(alice), "Hash": "0" * 64}), 401)

    def test_key_without_stored_secret_is_told_to_create_a_new_key(self, alice, integration):
        ApiKey.objects.filter(pk=alice.api_key.pk).update(key_ciphertext="")
        detail = assert_detail(post("/integry/apps/list/", {}, headers=signed(alice)), 401)
        assert "new API key" in detail

    def test_refusals_never_echo_a_secret(self, alice, integration):
        headers = {**signed(alice), "Hash": signature(alice.key, "other")}
        response = post("/integry/apps/list/", {}, headers=headers)
        for secret in (alice.key, alice.key.split(".", 1)[1], headers["Hash"], signature(alice.key, "user-1")):
            assert secret not in response.content.decode()

    @pytest.mark.parametrize("header, value", [("App-Key", "ak_\x00"), ("App-Key", "ak_0123 4567"),
                                               ("User-ID", "user\x00-1"), ("User-ID", "user\n1")])
    def test_impossible_key_id_or_user_id_is_401_even_when_signed(self, alice, integration, header, value):
        headers = {**signed(alice, value if header == "User-ID" else "user-1"), header: value}
        assert_detail(post("/integry/apps/list/", {}, headers=headers), 401)

    def test_user_id_is_part_of_the_signature(self, alice, integration):
        headers = {**signed(alice, "user-1"), "User-ID": "user-2"}
        assert_detail(post("/integry/apps/list/", {}, headers=headers), 401)


class TestTenancy:
    def test_user_connected_only_in_another_organization_is_not_connected(self, alice, bob, httpbin_connection):
        details = assert_refused(call(bob, {"method": "GET", "url": "/get"}), CALL_REFUSED)
        assert "not connected" in details[0]
        assert not FunctionCall.objects.exists()

    def test_another_organizations_account_is_refused(self, alice, bob, httpbin_integration, httpbin_connection):
        make_connection(bob.organization, httpbin_integration)
        response = call(bob, {"method": "GET", "url": "/get"}, query=f"&connected_account_id={httpbin_connection.pk}")
        assert assert_refused(response)[0].startswith("connected_account_id:")
        assert not FunctionCall.objects.exists()

    def test_another_organizations_connections_are_not_shown(self, alice, bob, httpbin_connection):
        response = post("/integry/apps/httpbin/get/", headers=signed(bob))
        assert response.json()["connected_accounts"] == []

    def test_connected_only_ignores_another_organizations_connections(self, alice, bob, httpbin_connection):
        response = post("/integry/functions/list/?connected_only=True", {"_cursor": ""}, headers=signed(bob))
        assert response.json()["functions"] == []


# --- §3 Functions ---------------------------------------------------------------------------------------------------

class TestFunctionsList:
    def test_lists_functions_of_enabled_integrations_ordered_by_name(self, alice):
        make_integration(slug="zeta")
        make_integration(slug="alpha")
        make_integration(slug="off", enabled=False)
        body = post("/integry/functions/list/", {"_cursor": ""}, headers=signed(alice)).json()
        assert [f["name"] for f in body["functions"]] == ["alpha-passthrough-request", "zeta-passthrough-request"]
        assert body["_cursor"] is None

    def test_function_object_has_name_description_and_parameters(self, alice, integration):
        function = post("/integry/functions/list/", {"_cursor": ""}, headers=signed(alice)).json()["functions"][0]
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"] == "Make an authenticated HTTP request to the Acme API."
        parameters = function["parameters"]
        assert parameters["type"] == "object" and parameters["required"] == ["method", "url"]
        assert set(parameters["properties"]) == {"method", "url", "body", "headers", "query"}
        assert parameters["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                                              "OPTIONS"]

    def test_every_schema_node_has_one_json_type(self, alice, integration, httpbin_integration):
        for function in post("/integry/functions/list/", {}, headers=signed(alice)).json()["functions"]:
            for node in schema_nodes(function["parameters"]):
                assert isinstance(node.get("type"), str) and node["type"] in JSON_TYPES, node

    def test_first_page_holds_50_and_a_cursor_and_the_last_page_null(self, alice):
        many_integrations(60)
        pages = all_pages(alice, "/integry/functions/list/", "functions")
        assert [len(p) for p in pages] == [50, 10]
        names = [name for p in pages for name in p]
        assert names == sorted(names) and len(set(names)) == 60

    def test_exactly_one_full_page_ends_with_null_not_an_empty_page(self, alice):
        many_integrations(50)
        assert [len(p) for p in all_pages(alice, "/integry/functions/list/", "functions")] == [50]

    def test_cursor_is_also_accepted_in_the_query(self, alice):
        many_integrations(55)
        cursor = post("/integry/functions/list/", {}, headers=signed(alice)).json()["_cursor"]
        body = post(f"/integry/functions/list/?_cursor={cursor}", headers=signed(alice)).json()
        assert len(body["functions"]) == 5 and body["_cursor"] is None

    def test_empty_catalog_is_an_empty_page_with_null_cursor(self, alice):
        assert post("/integry/functions/list/", {"_cursor": ""}, headers=signed(alice)).json() == {
            "functions": [], "_cursor": None}

    @pytest.mark.parametrize("cursor", ["garbage", "!!", 12, ["x"], {"a": 1},
                                        "YXBwczphY21l",  # an apps cursor
                                        "ZnVuY3Rpb25zOgB4"])  # "functions:<NUL>x"
    def test_invalid_cursor_is_400(self, alice, integration, cursor):
        response = post("/integry/functions/list/", {"_cursor": cursor}, headers=signed(alice))
        assert assert_refused(response) == ["_cursor: Invalid cursor."]

    @pytest.mark.parametrize("kind", ["passthrough", "PASSTHROUGH", "Passthrough"])
    def test_type_passthrough_lists_every_function(self, alice, integration, kind):
        body = post(f"/integry/functions/list/?type={kind}", {"_cursor": ""}, headers=signed(alice)).json()
        assert [f["name"] for f in body["functions"]] == ["acme-passthrough-request"]

    @pytest.mark.parametrize("kind", ["ACTION", "QUERY", "action"])
    def test_type_action_or_query_lists_nothing(self, alice, integration, kind):
        body = post(f"/integry/functions/list/?type={kind}", {"_cursor": ""}, headers=signed(alice)).json()
        assert body == {"functions": [], "_cursor": None}

    def test_unknown_type_is_400(self, alice, integration):
        assert_refused(post("/integry/functions/list/?type=TRIGGER", {"_cursor": ""}, headers=signed(alice)))

    @pytest.mark.parametrize("app", ["acme", "ACME", "Acme"])
    def test_app_filter_matches_slug_or_name_in_any_case(self, alice, integration, app):
        make_integration(slug="other", name="Hubspot")
        body = post(f"/integry/functions/list/?app={app}", {"_cursor": ""}, headers=signed(alice)).json()
        assert [f["name"] for f in body["functions"]] == ["acme-passthrough-request"]

    def test_app_filter_matches_the_display_name(self, alice, integration):
        make_integration(slug="hs", name="HubSpot")
        body = post("/integry/functions/list/?app=hubspot", {"_cursor": ""}, headers=signed(alice)).json()
        assert [f["name"] for f in body["functions"]] == ["hs-passthrough-request"]

    def test_unknown_app_lists_nothing(self, alice, integration):
        body = post("/integry/functions/list/?app=nope", {"_cursor": ""}, headers=signed(alice)).json()
        assert body == {"functions": [], "_cursor": None}

    def test_nul_in_the_app_filter_is_400(self, alice, integration):
        response = post("/integry/functions/list/?app=ac%00me", {"_cursor": ""}, headers=signed(alice))
        assert response.status_code == 400 and response.json()["error_details"]

    @pytest.mark.parametrize("flag", ["True", "true", "1", "TRUE"])
    def test_connected_only_lists_apps_the_user_has_an_active_connection_to(self, alice, integration, flag):
        other = make_integration(slug="other")
        reauth = make_integration(slug="reauth")
        make_connection(alice.organization, other)
        stale, _ = make_connection(alice.organization, reauth)
        Connection.objects.filter(pk=stale.pk).update(status=Connection.STATUS_NEEDS_REAUTH)
        make_connection(alice.organization, integration, end_user_id="someone-else")
        body = post(f"/integry/functions/list/?connected_only={flag}", {"_cursor": ""}, headers=signed(alice)).json()
        assert [f["name"] for f in body["functions"]] == ["other-passthrough-request"]

    def test_connected_only_false_lists_everything(self, alice, integration):
        body = post("/integry/functions/list/?connected_only=false", {"_cursor": ""}, headers=signed(alice)).json()
        assert len(body["functions"]) == 1

    def test_include_meta_adds_the_app(self, alice):
        acme = make_integration(logo_url="https://cdn.acme.test/logo.png")
        body = post("/integry/functions/list/?include=meta", {"_cursor": ""}, headers=signed(alice)).json()
        assert body["functions"][0]["meta"] == {
            "app": {"id": acme.id, "name": "acme", "title": "Acme", "icon_url": "https://cdn.acme.test/logo.png"}}


class TestFunctionGet:
    def test_returns_the_function(self, alice, integration):
        response = post("/integry/functions/acme-passthrough-request/get/", {}, headers=signed(alice))
        assert response.status_code == 200
        assert response.json()["name"] == "acme-passthrough-request"
        assert "meta" not in response.json()

    def test_prompt_and_variables_are_ignored(self, alice, integration):
        body = {"prompt": "list my contacts", "_variables": {"x": 1}}
        response = post("/integry/functions/acme-passthrough-request/get/?include=meta", body, headers=signed(alice))
        assert response.status_code == 200
        assert response.json()["meta"]["app"]["name"] == "acme"
        assert "arguments" not in response.json()

    @pytest.mark.parametrize("name", ["nope-passthrough-request", "acme-send-message", "ACME-passthrough-request"])
    def test_unknown_function_is_404_function_not_found(self, alice, integration, name):
        assert_detail(post(f"/integry/functions/{name}/get/", {}, headers=signed(alice)), 404, "Function not found")

    def test_function_of_a_disabled_integration_is_404(self, alice):
        make_integration(slug="off", enabled=False)
        assert_detail(post("/integry/functions/off-passthrough-request/get/", {}, headers=signed(alice)), 404)


class TestPredict:
    def test_predict_answers_no_functions(self, alice, integration):
        response = post("/integry/functions/predict/?predict_arguments=true", {"prompt": "send a slack message"},
                        headers=signed(alice))
        assert response.status_code == 200
        assert response.json() == {"functions": []}


# --- §4 Calling a passthrough function ------------------------------------------------------------------------------

class TestCallExecuted:
    def test_answers_network_code_as_string_and_parsed_json_output(self, alice, httpbin_connection):
        response = call(alice, {"method": "GET", "url": "/get", "query": {"limit": "2"}})
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"network_code", "output"}
        assert body["network_code"] == "200"
        assert body["output"]["args"] == {"limit": "2"}

    def test_absolute_url_on_the_integration_host(self, alice, httpbin_url, httpbin_connection):
        response = call(alice, {"method": "get", "url": f"{httpbin_url}/anything/contacts?limit=2"})
        assert response.json()["network_code"] == "200"
        assert response.json()["output"]["url"].endswith("/anything/contacts?limit=2")

    def test_upstream_error_status_is_still_200(self, alice, httpbin_connection):
        response = call(alice, {"method": "GET", "url": "/status/404"})
        assert response.status_code == 200
        assert response.json() == {"network_code": "404", "output": None}

    def test_object_body_is_sent_as_json(self, alice, httpbin_connection):
        output = call(alice, {"method": "POST", "url": "/anything", "body": {"name": "Ada"}}).json()["output"]
        assert output["json"] == {"name": "Ada"}
        assert output["headers"]["Content-Type"] == "application/json"

    def test_string_body_is_sent_as_is(self, alice, httpbin_connection):
        arguments = {"method": "POST", "url": "/anything", "body": "a=1", "headers": {"Content-Type": "text/plain"}}
        output = call(alice, arguments).json()["output"]
        assert output["data"] == "a=1" and output["headers"]["Content-Type"] == "text/plain"

    def test_text_output_is_a_string(self, alice, httpbin_connection):
        output = call(alice, {"method": "GET", "url": "/robots.txt"}).json()["output"]
        assert isinstance(output, str) and "Disallow" in output

    def test_binary_output_is_base64(self, alice, httpbin_connection):
        output = call(alice, {"method": "GET", "url": "/image/png"}).json()["output"]
        assert re.fullmatch(r"[A-Za-z0-9+/]+=*", output) and output.startswith("iVBORw0KGgo")  # PNG magic

    def test_null_arguments_are_absent(self, alice, httpbin_connection):
        arguments = {"method": "GET", "url": "/get", "body": None, "headers": None, "query": None}
        assert call(alice, arguments).json()["network_code"] == "200"

    def test_variables_cursor_and_unknown_keys_are_ignored_and_no_cursor_is_answered(self, alice, httpbin_connection):
        path = "/integry/functions/httpbin-passthrough-request/call/?allow_workspace_connected_accounts=true"
        body = {"method": "GET", "url": "/get", "_variables": {"x": "{y}"}, "_cursor": "abc", "extra": 1}
        response = post(path, body, headers=signed(alice))
        assert set(response.json()) == {"network_code", "output"}
        assert response.json()["output"]["args"] == {}

    def test_integration_id_parameter_is_ignored(self, alice, httpbin_connection):
        response = call(alice, {"method": "GET", "url": "/get"}, query="&integration_id=999")
        assert response.json()["network_code"] == "200"

    def test_headers_argument_goes_upstream_but_our_headers_never_do(self, alice, httpbin_connection):
        output = call(alice, {"method": "GET", "url": "/headers", "headers": {"X-Custom": "yes"}},
                      **{"X-Other": "not-forwarded"}).json()["output"]
        sent = {name.lower() for name in output["headers"]}
        assert "x-custom" in sent
        assert not sent & {"app-key", "user-id", "hash", "x-other"}

    def test_injected_credential_wins_over_a_caller_authorization_header(self, alice, httpbin_connection):
        output = call(alice, {"method": "GET", "url": "/headers", "headers": {"authorization": "Bearer mine"}}).json()
        assert output["output"]["headers"]["Authorization"] == f"Bearer {TOKEN}"

    def test_connected_account_id_selects_among_several_accounts(self, alice, httpbin_integration, httpbin_connection):
        second, _ = make_connection(alice.organization, httpbin_integration)
        response = call(alice, {"method": "GET", "url": "/get"}, query=f"&connected_account_id={second.pk}")
        assert response.json()["network_code"] == "200"
        assert FunctionCall.objects.get().connection == second


class TestCallRefused:
    @pytest.fixture(autouse=True)
    def _nothing_is_logged(self, db):
        yield
        assert not FunctionCall.objects.exists()

    @pytest.mark.parametrize("arguments, detail", [
        ({"method": "GET"}, "url: This parameter is required."),
        ({"url": "/get"}, "method: This parameter is required."),
        ({"method": "GET", "url": None}, "url: This parameter is required."),
        ({"method": "FETCH", "url": "/get"}, "method: Must be one of"),
        ({"method": "GET", "url": 5}, "url: Must be a string."),
        ({"method": "GET", "url": "/get", "headers": "x"}, "headers: Must be an object."),
        ({"method": "GET", "url": "/get", "query": ["a"]}, "query: Must be an object."),
        ({"method": "GET", "url": "/../admin"}, "path:"),
        ({"method": "GET", "url": "/get", "headers": {"X-Name": "a\r\nX-Injected: 1"}}, "headers:"),
        ({"method": "GET", "url": "/get", "headers": {"X Name": "a"}}, "headers:"),
        ({"method": "GET", "url": "/get", "headers": {"X-Name": "\u20ac"}}, "headers:"),
        ({"method": "POST", "url": "/post", "body": "\ud800"}, "arguments:"),
        ({"method": "GET", "url": "/get\ud800"}, "arguments:"),
    ])
    def test_invalid_arguments_are_400_with_field_details(self, alice, httpbin_connection, arguments, detail):
        details = assert_refused(call(alice, arguments), CALL_REFUSED)
        assert any(line.startswith(detail) for line in details), details

    @pytest.mark.parametrize("url", ["https://evil.test/steal", "http://169.254.169.254/latest/meta-data",
                                     "ftp://127.0.0.1/x", "https://user:pw@127.0.0.1/x",
                                     "http://[::1/x"])
    def test_host_not_allowed_is_400(self, alice, httpbin_connection, url):
        assert_refused(call(alice, {"method": "GET", "url": url}), CALL_REFUSED)

    def test_empty_body_is_400_missing_method_and_url(self, alice, httpbin_connection):
        path = "/integry/functions/httpbin-passthrough-request/call/"
        details = assert_refused(post(path, headers=signed(alice)), CALL_REFUSED)
        assert details == ["method: This parameter is required.", "url: This parameter is required."]

    def test_user_without_connection_is_not_connected(self, alice, httpbin_integration):
        details = assert_refused(call(alice, {"method": "GET", "url": "/get"}), CALL_REFUSED)
        assert details == ["User has not connected their Httpbin account."]

    def test_two_active_accounts_ask_for_connected_account_id(self, alice, httpbin_integration, httpbin_connection):
        make_connection(alice.organization, httpbin_integration)
        details = assert_refused(call(alice, {"method": "GET", "url": "/get"}), CALL_REFUSED)
        assert "connected_account_id" in details[0]

    @pytest.mark.parametrize("state, word", [(Connection.STATUS_NEEDS_REAUTH, "re-authorization"),
                                             (Connection.STATUS_DISABLED, "disabled")])
    def test_unusable_connection_is_400_saying_so(self, alice, httpbin_connection, state, word):
        Connection.objects.filter(pk=httpbin_connection.pk).update(status=state)
        assert word in assert_refused(call(alice, {"method": "GET", "url": "/get"}))[0]
        query = f"&connected_account_id={httpbin_connection.pk}"
        assert word in assert_refused(call(alice, {"method": "GET", "url": "/get"}, query=query))[0]

    @pytest.mark.parametrize("account_id", ["999999", "abc", "-1", "1e3", "99999999999999999999999"])
    def test_unknown_connected_account_id_is_400(self, alice, httpbin_connection, account_id):
        response = call(alice, {"method": "GET", "url": "/get"}, query=f"&connected_account_id={account_id}")
        assert assert_refused(response)[0].startswith("connected_account_id:")

    def test_another_users_account_cannot_be_selected(self, alice, httpbin_integration, httpbin_connection):
        theirs, _ = make_connection(alice.organization, httpbin_integration, end_user_id="user-2")
        response = call(alice, {"method": "GET", "url": "/get"}, query=f"&connected_account_id={theirs.pk}")
        assert assert_refused(response)[0].startswith("connected_account_id:")

    def test_another_integrations_account_cannot_be_selected(self, alice, integration, httpbin_connection):
        acme, _ = make_connection(alice.organization, integration)
        response = call(alice, {"method": "GET", "url": "/get"}, query=f"&connected_account_id={acme.pk}")
        assert assert_refused(response)[0].startswith("connected_account_id:")

    def test_unknown_function_is_404_not_400(self, alice, httpbin_connection):
        response = call(alice, {"method": "GET", "url": "/get"}, name="nope-passthrough-request")
        assert_detail(response, 404, "Function not found")


class TestCallUpstreamFailures:
    def test_unreachable_upstream_is_502_detail_and_logged(self, alice):
        dead = make_integration(slug="dead", base_url=f"http://127.0.0.1:{free_port()}")
        make_connection(alice.organization, dead)
        response = call(alice, {"method": "GET", "url": "/x"}, name="dead-passthrough-request")
        assert_detail(response, 502)
        row = FunctionCall.objects.get()
        assert row.dialect == "integry" and row.response_status is None and row.error

    def test_upstream_past_the_time_budget_is_408_detail_pointing_to_async(self, alice, httpbin_connection, settings):
        settings.SYNC_PASSTHROUGH_TIMEOUT = 0.5
        response = call(alice, {"method": "GET", "url": "/delay/3"})
        assert "async" in assert_detail(response, 408)
        assert FunctionCall.objects.get().error

    def test_our_rate_limit_is_429_detail_with_retry_after_and_not_logged(self, alice, settings, httpbin_url):
        settings.RATE_LIMIT_INTERACTIVE_MAX_WAIT = 0
        limited = make_integration(slug="limited", base_url=httpbin_url,
                                   rate_limits=[{"requests": 1, "per_seconds": 3600}])
        make_connection(alice.organization, limited)
        assert call(alice, {"method": "GET", "url": "/get"}, name="limited-passthrough-request").status_code == 200
        response = call(alice, {"method": "GET", "url": "/get"}, name="limited-passthrough-request")
        assert_detail(response, 429)
        assert int(response["Retry-After"]) >= 1
        assert FunctionCall.objects.count() == 1


# --- §5 Apps --------------------------------------------------------------------------------------------------------

APP_FIELDS = {"id", "name", "title", "icon_url", "docs_url", "login_url", "allow_multiple_connected_accounts",
              "connected_accounts"}


class TestApps:
    def test_app_has_every_field_the_sdk_requires(self, alice, httpbin_integration, httpbin_connection):
        app = post("/integry/apps/httpbin/get/", headers=signed(alice)).json()
        assert set(app) == APP_FIELDS
        assert app["id"] == httpbin_integration.id and app["id"] > 0
        assert (app["name"], app["title"]) == ("httpbin", "Httpbin")
        assert all(isinstance(app[key], str) for key in ("icon_url", "docs_url", "login_url"))
        assert app["allow_multiple_connected_accounts"] is True

    def test_connected_accounts_are_the_users_active_connections(self, alice, httpbin_integration, httpbin_connection):
        other, _ = make_connection(alice.organization, httpbin_integration, end_user_id="user-2")
        stale, _ = make_connection(alice.organization, httpbin_integration)
        Connection.objects.filter(pk=stale.pk).update(status=Connection.STATUS_DISABLED)
        labelled, _ = make_connection(alice.organization, httpbin_integration)
        Connection.objects.filter(pk=labelled.pk).update(label="Work account")
        accounts = post("/integry/apps/httpbin/get/", headers=signed(alice)).json()["connected_accounts"]
        assert [a["id"] for a in accounts] == [httpbin_connection.pk, labelled.pk]
        assert [a["display_name"] for a in accounts] == ["user-1", "Work account"]

    def test_connected_account_modified_at_is_utc_with_z(self, alice, httpbin_connection):
        account = post("/integry/apps/httpbin/get/", headers=signed(alice)).json()["connected_accounts"][0]
        assert isinstance(account["id"], int) and account["id"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", account["modified_at"])
        moment = datetime.fromisoformat(account["modified_at"].replace("Z", "+00:00"))
        assert abs((moment - httpbin_connection.updated_at).total_seconds()) < 1

    def test_user_without_connection_has_no_connected_accounts(self, alice, httpbin_connection):
        app = post("/integry/apps/httpbin/get/", headers=signed(alice, "user-9")).json()
        assert app["connected_accounts"] == []

    def test_app_name_is_case_insensitive(self, alice, httpbin_integration):
        assert post("/integry/apps/HttpBin/get/", headers=signed(alice)).json()["name"] == "httpbin"

    @pytest.mark.parametrize("slug", ["nope", "off"])
    def test_unknown_or_disabled_app_is_404_app_not_found(self, alice, slug):
        make_integration(slug="off", enabled=False)
        assert_detail(post(f"/integry/apps/{slug}/get/", headers=signed(alice)), 404, "App not found")

    def test_list_is_every_enabled_app_by_slug(self, alice, httpbin_integration, httpbin_connection):
        make_integration(slug="acme")
        make_integration(slug="off", enabled=False)
        body = post("/integry/apps/list/", {"_cursor": ""}, headers=signed(alice)).json()
        assert [a["name"] for a in body["apps"]] == ["acme", "httpbin"]
        assert all(set(app) == APP_FIELDS for app in body["apps"])
        assert [a["id"] for a in body["apps"][1]["connected_accounts"]] == [httpbin_connection.pk]
        assert body["_cursor"] is None

    def test_list_pages_by_50_and_ends_with_null(self, alice):
        many_integrations(60)
        pages = all_pages(alice, "/integry/apps/list/", "apps")
        assert [len(p) for p in pages] == [50, 10]
        assert len({name for p in pages for name in p}) == 60

    def test_list_connected_only(self, alice, httpbin_connection):
        make_integration(slug="acme")
        body = post("/integry/apps/list/?connected_only=true", {"_cursor": ""}, headers=signed(alice)).json()
        assert [a["name"] for a in body["apps"]] == ["httpbin"]

    def test_list_rejects_an_invalid_cursor(self, alice, integration):
        assert_refused(post("/integry/apps/list/", {"_cursor": "nonsense"}, headers=signed(alice)))


# --- §7 Call log ----------------------------------------------------------------------------------------------------

class TestCallLog:
    def test_executed_call_writes_one_integry_row_with_the_upstream_url(self, alice, httpbin_url, httpbin_connection):
        call(alice, {"method": "GET", "url": "/get", "query": {"limit": "2"}})
        row = FunctionCall.objects.get()
        assert (row.dialect, row.method, row.response_status) == ("integry", "GET", 200)
        assert row.url == f"{httpbin_url}/get?limit=2"
        assert row.connection == httpbin_connection and row.organization == alice.organization
        assert row.function.name == "httpbin-passthrough-request"

    def test_upstream_error_status_is_logged_too(self, alice, httpbin_connection):
        call(alice, {"method": "DELETE", "url": "/status/500"})
        assert FunctionCall.objects.get().response_status == 500

    def test_row_is_listed_in_the_organizations_function_calls(self, alice, bob, httpbin_connection):
        call(alice, {"method": "GET", "url": "/get"})
        results = alice.client.get("/api/v1/function-calls", {"dialect": "integry"}).json()["results"]
        assert len(results) == 1 and results[0]["function"] == "httpbin-passthrough-request"
        assert bob.client.get("/api/v1/function-calls").json()["results"] == []

    def test_no_secret_is_stored_anywhere_in_the_row_while_output_is_unaltered(self, alice, httpbin_connection):
        headers = signed(alice)
        secrets = [headers["Hash"], alice.key, TOKEN]
        # httpbin echoes headers, query and body: every secret would come back in the response body.
        arguments = {"method": "POST", "url": "/anything", "query": {"h": headers["Hash"]},
                     "headers": {"X-Echo": alice.key}, "body": {"hash": headers["Hash"], "key": alice.key}}
        response = call(alice, arguments)
        assert response.json()["output"]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert response.json()["output"]["json"]["hash"] == headers["Hash"]
        row = FunctionCall.objects.get()
        stored = json.dumps({field.name: str(getattr(row, field.attname)) for field in row._meta.concrete_fields})
        assert row.response_body and "<redacted>" in row.response_body
        for secret in secrets:
            assert secret not in stored
        api = json.dumps(alice.client.get(f"/api/v1/function-calls/{row.pk}").json())
        assert not any(secret in api for secret in secrets)

    def test_refused_call_writes_no_row(self, alice, httpbin_connection):
        call(alice, {"method": "GET"})
        call(alice, {"method": "GET", "url": "/get"}, **{"Hash": "0" * 64})
        call(alice, {"method": "GET", "url": "/get"}, name="nope-passthrough-request")
        Client().get("/integry/functions/httpbin-passthrough-request/call/", headers=signed(alice))
        assert not FunctionCall.objects.exists()
