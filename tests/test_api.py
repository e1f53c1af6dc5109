"""The native REST API (`/api/v1/*`): catalog, connections, the function-call log, tenancy and secrecy."""

import json
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from connections import services
from connections.models import Connection, Integration
from integration_platform.errors import NotFound
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_function_call, make_integration

SECRET_TOKEN = "tok-SECRET-123456"


def assert_json_error(response, status):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_details"}
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["error_details"], list)
    return body


def create_connection(tenant, **body):
    payload = {"integration": "acme", "end_user_id": "user-7", "credentials": {"token": SECRET_TOKEN}, **body}
    return tenant.client.post("/api/v1/connections", payload, format="json")


@pytest.mark.django_db
class TestTenancy:
    def test_bobs_connection_is_not_in_alices_list(self, alice, bob, integration):
        make_connection(bob.organization, integration, end_user_id="bobs-user")
        assert alice.client.get("/api/v1/connections").json()["results"] == []

    def test_bobs_connection_detail_is_404_for_alice(self, alice, bob, integration):
        connection, _ = make_connection(bob.organization, integration)
        assert_json_error(alice.client.get(f"/api/v1/connections/{connection.pk}"), 404)

    def test_alice_cannot_delete_bobs_connection(self, alice, bob, integration):
        connection, _ = make_connection(bob.organization, integration)
        assert_json_error(alice.client.delete(f"/api/v1/connections/{connection.pk}"), 404)
        assert Connection.objects.filter(pk=connection.pk).exists()

    def test_bobs_function_calls_are_not_in_alices_list(self, alice, bob):
        make_function_call(bob.organization)
        assert alice.client.get("/api/v1/function-calls").json()["results"] == []

    def test_bobs_function_call_detail_is_404_for_alice(self, alice, bob):
        call = make_function_call(bob.organization)
        assert_json_error(alice.client.get(f"/api/v1/function-calls/{call.pk}"), 404)

    def test_filtering_alices_log_by_bobs_connection_lists_nothing(self, alice, bob, integration):
        connection, _ = make_connection(bob.organization, integration)
        make_function_call(bob.organization, connection)
        response = alice.client.get("/api/v1/function-calls", {"connection": connection.pk})
        assert response.json()["results"] == []

    def test_connection_created_with_a_key_belongs_to_the_keys_organization(self, alice, bob, integration):
        connection_id = create_connection(bob).json()["id"]
        assert Connection.objects.get(pk=connection_id).organization == bob.organization
        assert alice.client.get("/api/v1/connections").json()["results"] == []
        assert [c["id"] for c in bob.client.get("/api/v1/connections").json()["results"]] == [connection_id]

    def test_bobs_account_token_does_not_resolve_for_alice(self, alice, bob, integration):
        _, bobs_token = make_connection(bob.organization, integration)
        with pytest.raises(NotFound):
            services.connection_for_account_token(alice.organization, bobs_token)


@pytest.mark.django_db
class TestIntegrations:
    def test_list_shows_enabled_integrations(self, alice):
        make_integration(slug="acme")
        make_integration(slug="globex")
        response = alice.client.get("/api/v1/integrations")
        assert response.status_code == 200
        assert [i["slug"] for i in response.json()] == ["acme", "globex"]

    def test_disabled_integration_is_hidden_from_the_list(self, alice):
        make_integration(slug="acme")
        make_integration(slug="retired", enabled=False)
        assert [i["slug"] for i in alice.client.get("/api/v1/integrations").json()] == ["acme"]

    def test_detail_is_found_by_slug(self, alice):
        make_integration(slug="acme", base_url="https://api.acme.test/v1", categories=["crm"])
        body = alice.client.get("/api/v1/integrations/acme").json()
        assert body["slug"] == "acme"
        assert body["base_url"] == "https://api.acme.test/v1"
        assert body["auth_scheme"] == "bearer"
        assert body["categories"] == ["crm"]
        assert body["passthrough_function"] == "acme-passthrough-request"

    def test_disabled_integration_detail_is_404(self, alice):
        make_integration(slug="retired", enabled=False)
        assert_json_error(alice.client.get("/api/v1/integrations/retired"), 404)

    def test_unknown_integration_detail_is_404(self, alice):
        assert_json_error(alice.client.get("/api/v1/integrations/nope"), 404)


@pytest.mark.django_db
class TestFunctions:
    def test_passthrough_functions_of_one_integration_are_listed(self, alice):
        make_integration(slug="acme")
        make_integration(slug="globex")
        response = alice.client.get("/api/v1/functions", {"type": "passthrough", "integration": "acme"})
        assert response.status_code == 200
        results = response.json()["results"]
        assert [f["name"] for f in results] == ["acme-passthrough-request"]
        assert results[0]["type"] == "passthrough"
        assert results[0]["integration"] == "acme"
        assert results[0]["parameters"]["required"] == ["method", "url"]

    def test_all_functions_are_listed_by_name_without_filters(self, alice):
        make_integration(slug="globex")
        make_integration(slug="acme")
        names = [f["name"] for f in alice.client.get("/api/v1/functions").json()["results"]]
        assert names == ["acme-passthrough-request", "globex-passthrough-request"]

    def test_type_filter_is_case_insensitive(self, alice, integration):
        results = alice.client.get("/api/v1/functions", {"type": "PASSTHROUGH"}).json()["results"]
        assert [f["name"] for f in results] == ["acme-passthrough-request"]

    def test_action_functions_list_is_empty(self, alice, integration):
        response = alice.client.get("/api/v1/functions", {"type": "ACTION"})
        assert response.status_code == 200
        assert response.json()["results"] == []

    def test_unknown_function_type_is_400_json(self, alice, integration):
        body = assert_json_error(alice.client.get("/api/v1/functions", {"type": "bogus"}), 400)
        assert any(line.startswith("type:") for line in body["error_details"])

    def test_functions_of_disabled_integrations_are_hidden(self, alice):
        make_integration(slug="retired", enabled=False)
        assert alice.client.get("/api/v1/functions").json()["results"] == []

    def test_detail_is_found_by_name(self, alice, integration):
        response = alice.client.get("/api/v1/functions/acme-passthrough-request")
        assert response.status_code == 200
        assert response.json()["name"] == "acme-passthrough-request"
        assert response.json()["integration"] == "acme"

    def test_function_of_a_disabled_integration_is_404(self, alice):
        make_integration(slug="retired", enabled=False)
        assert_json_error(alice.client.get("/api/v1/functions/retired-passthrough-request"), 404)

    def test_unknown_function_is_404(self, alice):
        assert_json_error(alice.client.get("/api/v1/functions/nope-passthrough-request"), 404)


@pytest.mark.django_db
class TestConnectionCreate:
    def test_create_returns_201_with_id_and_account_token(self, alice, integration):
        response = create_connection(alice, label="Work account")
        assert response.status_code == 201
        body = response.json()
        connection = Connection.objects.get(pk=body["id"])
        assert body["integration"] == "acme"
        assert body["end_user_id"] == "user-7"
        assert body["label"] == "Work account"
        assert body["status"] == "active"
        assert body["account_token"].startswith("at_")
        assert connection.credentials == {"token": SECRET_TOKEN}

    def test_account_token_from_create_finds_the_connection(self, alice, integration):
        body = create_connection(alice).json()
        assert services.connection_for_account_token(alice.organization, body["account_token"]).pk == body["id"]

    def test_create_response_does_not_echo_credentials(self, alice, integration):
        response = create_connection(alice)
        assert "credentials" not in response.json()
        assert SECRET_TOKEN not in response.content.decode()

    def test_detail_never_includes_account_token_or_credentials(self, alice, integration):
        created = create_connection(alice).json()
        response = alice.client.get(f"/api/v1/connections/{created['id']}")
        assert response.status_code == 200
        assert "account_token" not in response.json() and "credentials" not in response.json()
        assert created["account_token"] not in response.content.decode()
        assert SECRET_TOKEN not in response.content.decode()

    def test_list_never_includes_account_token_or_credentials(self, alice, integration):
        created = create_connection(alice).json()
        response = alice.client.get("/api/v1/connections")
        [listed] = response.json()["results"]
        assert listed["id"] == created["id"]
        assert "account_token" not in listed and "credentials" not in listed
        assert created["account_token"] not in response.content.decode()
        assert SECRET_TOKEN not in response.content.decode()

    @pytest.mark.parametrize("body, field", [
        ({"integration": "unknown"}, "integration"),
        ({"end_user_id": None}, "end_user_id"),
        ({"end_user_id": "   "}, "end_user_id"),
        ({"credentials": None}, "credentials"),
        ({"credentials": {}}, "credentials.token"),
        ({"credentials": {"access_token": "x"}}, "credentials.token"),
        ({"credentials": {"token": 123}}, "credentials.token"),
        ({"credentials": ["tok"]}, "credentials"),
        ({"credentials": "tok"}, "credentials"),
    ])
    def test_bad_input_is_400_json_naming_the_field_and_writes_nothing(self, alice, integration, body, field):
        payload = {"integration": "acme", "end_user_id": "user-7", "credentials": {"token": SECRET_TOKEN}, **body}
        payload = {k: v for k, v in payload.items() if v is not None}
        response = alice.client.post("/api/v1/connections", payload, format="json")
        details = assert_json_error(response, 400)["error_details"]
        assert any(line.startswith(f"{field}:") for line in details), details
        assert not Connection.objects.exists()

    def test_disabled_integration_is_refused(self, alice):
        make_integration(slug="retired", enabled=False)
        assert_json_error(create_connection(alice, integration="retired"), 400)
        assert not Connection.objects.exists()

    def test_credentials_missing_a_field_of_the_basic_scheme_are_refused(self, alice):
        make_integration(slug="bamboo", auth={"scheme": "basic"})
        response = create_connection(alice, integration="bamboo", credentials={"username": "u"})
        assert "credentials.password: This field is required." in assert_json_error(response, 400)["error_details"]
        assert not Connection.objects.exists()

    def test_malformed_json_body_is_400_json(self, alice, integration):
        response = alice.client.post("/api/v1/connections", '{"integration": "acme",', content_type="application/json")
        assert_json_error(response, 400)
        assert not Connection.objects.exists()

    def test_json_body_that_is_not_an_object_is_400_json(self, alice, integration):
        response = alice.client.post("/api/v1/connections", "[1, 2]", content_type="application/json")
        assert_json_error(response, 400)
        assert not Connection.objects.exists()

    def test_error_details_never_echo_the_submitted_credentials(self, alice, integration):
        response = create_connection(alice, credentials={"tokn": SECRET_TOKEN})
        assert_json_error(response, 400)
        assert SECRET_TOKEN not in response.content.decode()


@pytest.mark.django_db
class TestConnectionReadAndDelete:
    def test_list_is_newest_first(self, alice, integration):
        first, _ = make_connection(alice.organization, integration, end_user_id="a")
        second, _ = make_connection(alice.organization, integration, end_user_id="b")
        ids = [c["id"] for c in alice.client.get("/api/v1/connections").json()["results"]]
        assert ids == [second.pk, first.pk]

    def test_list_filters_by_end_user_id(self, alice, integration):
        make_connection(alice.organization, integration, end_user_id="a")
        wanted, _ = make_connection(alice.organization, integration, end_user_id="b")
        results = alice.client.get("/api/v1/connections", {"end_user_id": "b"}).json()["results"]
        assert [c["id"] for c in results] == [wanted.pk]

    def test_list_filters_by_integration(self, alice, integration):
        other = make_integration(slug="globex")
        make_connection(alice.organization, integration)
        wanted, _ = make_connection(alice.organization, other)
        results = alice.client.get("/api/v1/connections", {"integration": "globex"}).json()["results"]
        assert [c["id"] for c in results] == [wanted.pk]

    def test_delete_returns_204_and_removes_the_connection(self, alice, alice_connection):
        connection, _ = alice_connection
        response = alice.client.delete(f"/api/v1/connections/{connection.pk}")
        assert response.status_code == 204
        assert not Connection.objects.filter(pk=connection.pk).exists()
        assert_json_error(alice.client.get(f"/api/v1/connections/{connection.pk}"), 404)

    def test_deleting_a_connection_keeps_its_call_log(self, alice, alice_connection):
        connection, _ = alice_connection
        call = make_function_call(alice.organization, connection)
        alice.client.delete(f"/api/v1/connections/{connection.pk}")
        call.refresh_from_db()
        assert call.connection is None

    def test_non_numeric_connection_id_is_404(self, alice):
        assert_json_error(alice.client.get("/api/v1/connections/abc"), 404)


def make_calls(organization, count, **fields):
    """`count` calls, oldest first, one minute apart; created_at is set explicitly (auto_now_add ignores it)."""
    calls = [make_function_call(organization, **fields) for _ in range(count)]
    now = timezone.now()
    for age, call in enumerate(reversed(calls)):
        FunctionCall.objects.filter(pk=call.pk).update(created_at=now - timedelta(minutes=age))
    return calls


@pytest.mark.django_db
class TestFunctionCallLog:
    def test_list_is_newest_first(self, alice):
        calls = make_calls(alice.organization, 3)
        results = alice.client.get("/api/v1/function-calls").json()["results"]
        assert [c["id"] for c in results] == [c.pk for c in reversed(calls)]

    def test_detail_shows_the_call(self, alice, alice_connection):
        connection, _ = alice_connection
        call = make_function_call(alice.organization, connection, response_status=201)
        body = alice.client.get(f"/api/v1/function-calls/{call.pk}").json()
        assert body["id"] == call.pk
        assert body["connection"] == connection.pk
        assert body["integration"] == "acme"
        assert body["function"] == "acme-passthrough-request"
        assert body["response_status"] == 201

    @pytest.mark.parametrize("param, value, wanted_fields", [
        ("dialect", "merge", {"dialect": "merge"}),
        ("mode", "async", {"mode": "async"}),
        ("method", "post", {"method": "POST"}),
        ("status", "404", {"response_status": 404}),
    ])
    def test_list_filters_by_field(self, alice, param, value, wanted_fields):
        make_function_call(alice.organization)
        wanted = make_function_call(alice.organization, **wanted_fields)
        results = alice.client.get("/api/v1/function-calls", {param: value}).json()["results"]
        assert [c["id"] for c in results] == [wanted.pk]

    def test_list_filters_by_connection_integration_and_function(self, alice, alice_connection):
        connection, _ = alice_connection
        make_function_call(alice.organization)
        wanted = make_function_call(alice.organization, connection)
        for params in ({"connection": connection.pk}, {"integration": "acme"}, {"function": "acme-passthrough-request"}):
            results = alice.client.get("/api/v1/function-calls", params).json()["results"]
            assert [c["id"] for c in results] == [wanted.pk], params

    def test_list_filters_by_creation_window(self, alice):
        old, middle, new = make_calls(alice.organization, 3)
        middle_at = FunctionCall.objects.get(pk=middle.pk).created_at
        params = {"created_after": (middle_at - timedelta(seconds=30)).isoformat(),
                  "created_before": (middle_at + timedelta(seconds=30)).isoformat()}
        results = alice.client.get("/api/v1/function-calls", params).json()["results"]
        assert [c["id"] for c in results] == [middle.pk]

    @pytest.mark.parametrize("params", [
        {"status": "abc"},
        {"status": "-1"},
        {"connection": "abc"},
        {"connection": "99999999999999999999999"},
        {"status": "²"},
        {"created_after": "garbage"},
        {"created_before": "yesterday"},
        {"created_after": "2024-13-45T00:00:00Z"},
    ])
    def test_invalid_filter_value_is_400_json(self, alice, params):
        body = assert_json_error(alice.client.get("/api/v1/function-calls", params), 400)
        assert any(line.startswith(f"{next(iter(params))}:") for line in body["error_details"])

    def test_pages_follow_next_urls_to_the_end(self, alice):
        calls = make_calls(alice.organization, 5)
        seen, pages = [], 0
        url = "/api/v1/function-calls?page_size=2"
        while url:
            body = alice.client.get(url).json()
            seen += [c["id"] for c in body["results"]]
            pages += 1
            url = body["next"]
            if url:
                assert urlsplit(url).scheme == "http" and urlsplit(url).path == "/api/v1/function-calls"
        assert pages == 3
        assert seen == [c.pk for c in reversed(calls)]

    def test_next_is_null_on_the_last_page(self, alice):
        make_calls(alice.organization, 2)
        body = alice.client.get("/api/v1/function-calls", {"page_size": 2}).json()
        assert len(body["results"]) == 2
        assert body["next"] is None

    def test_pagination_keeps_the_filters(self, alice):
        make_calls(alice.organization, 3, dialect="merge")
        make_calls(alice.organization, 3, dialect="unified")
        first = alice.client.get("/api/v1/function-calls", {"dialect": "merge", "page_size": 2}).json()
        second = alice.client.get(first["next"]).json()
        assert {c["dialect"] for c in first["results"] + second["results"]} == {"merge"}
        assert len(first["results"] + second["results"]) == 3

    def test_garbage_cursor_is_refused_with_json_error(self, alice):
        make_calls(alice.organization, 1)
        response = alice.client.get("/api/v1/function-calls", {"cursor": "garbage"})
        assert 400 <= response.status_code < 500
        assert set(response.json()) == {"error", "error_details"}


@pytest.mark.django_db
class TestRouting:
    @pytest.mark.parametrize("path", [
        "/api/v1/integrations", "/api/v1/integrations/acme", "/api/v1/functions",
        "/api/v1/functions/acme-passthrough-request", "/api/v1/connections", "/api/v1/function-calls",
    ])
    @pytest.mark.parametrize("slash", ["", "/"])
    def test_get_works_with_and_without_trailing_slash(self, alice, integration, path, slash):
        assert alice.client.get(path + slash).status_code == 200

    @pytest.mark.parametrize("slash", ["", "/"])
    def test_connection_routes_work_with_and_without_trailing_slash(self, alice, integration, slash):
        created = alice.client.post(
            "/api/v1/connections" + slash,
            {"integration": "acme", "end_user_id": "u", "credentials": {"token": SECRET_TOKEN}}, format="json",
        )
        assert created.status_code == 201
        detail = f"/api/v1/connections/{created.json()['id']}" + slash
        assert alice.client.get(detail).status_code == 200
        assert alice.client.delete(detail).status_code == 204

    @pytest.mark.parametrize("path", ["/api/v1/integrations", "/api/v1/connections", "/api/v1/nope"])
    def test_routes_never_redirect(self, alice, integration, path):
        for variant in (path, path + "/"):
            assert not 300 <= alice.client.get(variant).status_code < 400
            assert not 300 <= alice.client.post(variant, {}, format="json").status_code < 400

    @pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/", "/api/v1/connections/1/extra"])
    def test_unknown_api_path_is_404_json(self, alice, path):
        assert_json_error(alice.client.get(path), 404)


@pytest.mark.django_db
class TestSecretsStayOut:
    def test_no_secret_in_any_api_response(self, alice, integration):
        integration.set_oauth_client_secret("client-SECRET-987")
        integration.save()
        api_key_secret = alice.key.split(".", 1)[1]
        created = create_connection(alice)
        token = created.json()["account_token"]
        assert SECRET_TOKEN not in created.content.decode()
        make_function_call(alice.organization, Connection.objects.get())
        paths = ["/api/v1/integrations", "/api/v1/integrations/acme", "/api/v1/functions",
                 "/api/v1/functions/acme-passthrough-request", "/api/v1/connections",
                 f"/api/v1/connections/{created.json()['id']}", "/api/v1/function-calls",
                 f"/api/v1/function-calls/{FunctionCall.objects.get().pk}"]
        for path in paths:
            text = alice.client.get(path).content.decode()
            for secret in (SECRET_TOKEN, token, api_key_secret, "client-SECRET-987"):
                assert secret not in text, (path, secret)

    def test_no_secret_in_log_output(self, alice, integration, caplog, settings):
        settings.DEBUG = True  # also log every SQL statement with its parameters
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger="django")  # Django's default logging config caps it at INFO
        created = create_connection(alice)
        alice.client.get("/api/v1/connections")
        alice.client.get(f"/api/v1/connections/{created.json()['id']}")
        create_connection(alice, credentials={"tokn": SECRET_TOKEN})
        logged = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
        assert "INSERT" in logged  # the SQL log was captured, so the check below means something
        for secret in (SECRET_TOKEN, created.json()["account_token"], alice.key.split(".", 1)[1]):
            assert secret not in logged

    def test_repr_and_str_of_an_integration_show_no_oauth_client_secret(self, integration):
        integration.set_oauth_client_secret("client-SECRET-987")
        integration.save()
        assert "client-SECRET-987" not in repr(integration) + str(integration)
        assert "client-SECRET-987" not in json.dumps(list(Integration.objects.values())[0], default=str)

    def test_repr_and_str_of_a_connection_show_no_secret(self, alice_connection):
        connection, token = alice_connection
        connection = Connection.objects.get(pk=connection.pk)
        for text in (repr(connection), str(connection)):
            assert "tok-SECRET" not in text and token not in text
