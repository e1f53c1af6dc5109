"""The operator's admin: every page renders with realistic data, and no secret is ever rendered back."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from connections import services
from connections.models import ApiKey, Connection, Function, Integration, Organization
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_function_call, make_integration

CONNECTION_SECRET = "tok-SECRET-123456"
CLIENT_SECRET = "client-SECRET-987"
MODELS = [Organization, ApiKey, Integration, Function, Connection, FunctionCall]


class World:
    """Two tenants with keys, an OAuth integration with a client secret, a connection each, and logged calls."""

    def __init__(self, alice, bob, integration):
        integration.set_oauth_client_secret(CLIENT_SECRET)
        integration.save()
        self.connection, self.account_token = make_connection(alice.organization, integration, credentials={"token": CONNECTION_SECRET})
        bobs_connection, bobs_token = make_connection(bob.organization, integration, credentials={"token": "bob-SECRET-4242"})
        make_function_call(alice.organization, self.connection, method="POST", request_body='{"name": "Ada"}')
        make_function_call(bob.organization, bobs_connection, response_status=None, error="Upstream timed out.")
        self.secrets = [CONNECTION_SECRET, "bob-SECRET-4242", CLIENT_SECRET, self.account_token, bobs_token,
                        alice.key.split(".", 1)[1], bob.key.split(".", 1)[1]]

    def object_of(self, model):
        return model.objects.order_by("pk").first()


@pytest.fixture
def world(alice, bob, integration):
    return World(alice, bob, integration)


def admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_no_secret(html, secrets):
    for secret in secrets:
        assert secret not in html, secret


def message_texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def secret_shown_once(response, client, pattern):
    """The secret on the page answering an add; never in a message, a cookie or a cache."""
    html = response.content.decode()
    [secret] = re.findall(rf'<pre id="secret-shown-once"[^>]*>({pattern})</pre>', html)
    assert not any(secret in text for text in message_texts(response))
    assert not any(secret in morsel.value for morsel in client.cookies.values())
    assert "no-store" in response["Cache-Control"]
    return secret


@pytest.mark.django_db
class TestPagesRender:
    @pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
    def test_changelist_renders_without_secrets(self, admin_client, world, model):
        response = admin_client.get(admin_url(model, "changelist"))
        assert response.status_code == 200
        assert_no_secret(response.content.decode(), world.secrets)

    @pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
    def test_change_page_renders_without_secrets(self, admin_client, world, model):
        response = admin_client.get(admin_url(model, "change", world.object_of(model).pk))
        assert response.status_code == 200
        assert_no_secret(response.content.decode(), world.secrets)

    @pytest.mark.parametrize("model", [Organization, ApiKey, Integration, Connection], ids=lambda m: m.__name__)
    def test_add_page_renders(self, admin_client, world, model):
        assert admin_client.get(admin_url(model, "add")).status_code == 200

    def test_changelist_search_renders(self, admin_client, world):
        for model in MODELS:
            assert admin_client.get(admin_url(model, "changelist"), {"q": "acme"}).status_code == 200

    def test_function_calls_cannot_be_added_or_edited(self, admin_client, world):
        call = world.object_of(FunctionCall)
        assert admin_client.get(admin_url(FunctionCall, "add")).status_code == 403
        response = admin_client.post(admin_url(FunctionCall, "change", call.pk), {"method": "DELETE"})
        assert response.status_code == 403
        call.refresh_from_db()
        assert call.method == "POST"


@pytest.mark.django_db
class TestApiKeyAdmin:
    def add_key(self, admin_client, organization):
        return admin_client.post(admin_url(ApiKey, "add"), {"organization": organization.pk, "name": "ci"}, follow=True)

    def shown_key(self, response, admin_client):
        return secret_shown_once(response, admin_client, r"ak_[0-9a-f]+\.[^<\s]+")

    def test_adding_a_key_shows_it_once_on_the_page_not_in_a_message(self, admin_client, alice):
        response = self.add_key(admin_client, alice.organization)
        assert response.status_code == 200
        key = self.shown_key(response, admin_client)
        api_key = ApiKey.objects.get(key_id=key.split(".")[0])
        assert api_key.organization == alice.organization
        assert api_key.name == "ci"

    def test_key_shown_by_the_admin_authenticates_against_the_api(self, admin_client, alice):
        key = self.shown_key(self.add_key(admin_client, alice.organization), admin_client)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert client.get("/api/v1/integrations").status_code == 200

    def test_added_key_is_not_shown_again_on_its_change_page(self, admin_client, alice):
        key = self.shown_key(self.add_key(admin_client, alice.organization), admin_client)
        api_key = ApiKey.objects.get(key_id=key.split(".")[0])
        html = admin_client.get(admin_url(ApiKey, "change", api_key.pk)).content.decode()
        assert api_key.key_id in html
        assert key.split(".", 1)[1] not in html

    def test_confirmation_names_the_added_key_by_its_key_id(self, admin_client, alice):
        response = self.add_key(admin_client, alice.organization)
        key_id = self.shown_key(response, admin_client).split(".")[0]
        assert f"The API key {key_id} was added successfully." in response.content.decode()

    def test_adding_a_key_creates_exactly_one_row(self, admin_client, alice):
        before = ApiKey.objects.count()
        self.add_key(admin_client, alice.organization)
        assert ApiKey.objects.count() == before + 1

    def test_revoke_action_revokes_the_selected_keys_only(self, admin_client, alice, bob):
        response = admin_client.post(admin_url(ApiKey, "changelist"),
                                     {"action": "revoke", "_selected_action": [alice.api_key.pk]}, follow=True)
        assert response.status_code == 200
        alice.api_key.refresh_from_db()
        bob.api_key.refresh_from_db()
        assert alice.api_key.revoked_at is not None
        assert bob.api_key.revoked_at is None
        assert "Revoked 1 key(s)." in message_texts(response)

    def test_revoked_key_is_refused_by_the_api(self, admin_client, alice):
        admin_client.post(admin_url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [alice.api_key.pk]})
        assert alice.client.get("/api/v1/integrations").status_code == 401


def connection_form(connection, **changes):
    data = {
        "organization": connection.organization_id,
        "integration": connection.integration_id,
        "end_user_id": connection.end_user_id,
        "label": connection.label,
        "end_user_email": connection.end_user_email,
        "end_user_organization_name": connection.end_user_organization_name,
        "status": connection.status,
        "status_detail": connection.status_detail,
        "new_credentials": "",
    }
    return {**data, **changes}


@pytest.mark.django_db
class TestConnectionAdmin:
    def test_change_form_does_not_render_the_stored_credentials(self, admin_client, alice_connection):
        connection, _ = alice_connection
        html = admin_client.get(admin_url(Connection, "change", connection.pk)).content.decode()
        assert 'name="new_credentials"' in html
        assert "tok-SECRET-123456" not in html
        assert connection.credentials_ciphertext not in html

    def test_saving_with_empty_new_credentials_keeps_the_old_ones(self, admin_client, alice_connection):
        connection, _ = alice_connection
        response = admin_client.post(admin_url(Connection, "change", connection.pk), connection_form(connection, label="Renamed"))
        assert response.status_code == 302
        connection = Connection.objects.get(pk=connection.pk)
        assert connection.label == "Renamed"
        assert connection.credentials == {"token": "tok-SECRET-123456"}

    def test_saving_with_new_credentials_replaces_them_encrypted(self, admin_client, alice_connection):
        connection, _ = alice_connection
        form = connection_form(connection, new_credentials='{"token": "tok-NEW-777777"}')
        assert admin_client.post(admin_url(Connection, "change", connection.pk), form).status_code == 302
        row = Connection.objects.values("credentials_ciphertext").get(pk=connection.pk)
        assert "tok-NEW-777777" not in row["credentials_ciphertext"]
        assert Connection.objects.get(pk=connection.pk).credentials == {"token": "tok-NEW-777777"}

    def test_new_credentials_missing_a_scheme_field_are_rejected(self, admin_client, alice_connection):
        connection, _ = alice_connection
        form = connection_form(connection, new_credentials='{"access_token": "x"}')
        response = admin_client.post(admin_url(Connection, "change", connection.pk), form)
        assert response.status_code == 200
        assert "credentials.token: This field is required." in response.content.decode()
        assert Connection.objects.get(pk=connection.pk).credentials == {"token": "tok-SECRET-123456"}

    def test_rejected_new_credentials_are_not_rendered_back(self, admin_client, alice_connection):
        connection, _ = alice_connection
        form = connection_form(connection, new_credentials='{"access_token": "tok-TYPO-555555"}')
        response = admin_client.post(admin_url(Connection, "change", connection.pk), form)
        assert response.status_code == 200
        assert "tok-TYPO-555555" not in response.content.decode()

    def test_moving_to_an_integration_of_another_scheme_requires_fitting_credentials(self, admin_client, alice_connection):
        connection, _ = alice_connection
        basic = make_integration(slug="bamboo", auth={"scheme": "basic"})
        response = admin_client.post(admin_url(Connection, "change", connection.pk), connection_form(connection, integration=basic.pk))
        assert response.status_code == 200
        assert "credentials.username: This field is required." in response.content.decode()
        assert Connection.objects.get(pk=connection.pk).integration_id == connection.integration_id

    def test_moving_to_another_integration_with_fitting_credentials_is_saved(self, admin_client, alice_connection):
        connection, _ = alice_connection
        basic = make_integration(slug="bamboo", auth={"scheme": "basic"})
        form = connection_form(connection, integration=basic.pk, new_credentials='{"username": "u", "password": "p-SECRET-1"}')
        assert admin_client.post(admin_url(Connection, "change", connection.pk), form).status_code == 302
        connection = Connection.objects.get(pk=connection.pk)
        assert connection.integration == basic
        assert connection.credentials == {"username": "u", "password": "p-SECRET-1"}

    def test_change_keeps_the_account_token(self, admin_client, alice_connection):
        connection, token = alice_connection
        admin_client.post(admin_url(Connection, "change", connection.pk), connection_form(connection, label="x"))
        assert services.connection_for_account_token(connection.organization, token).pk == connection.pk

    def test_adding_a_connection_shows_its_account_token_once(self, admin_client, alice, integration):
        form = {"organization": alice.organization.pk, "integration": integration.pk, "end_user_id": "u-9",
                "status": "active", "new_credentials": '{"token": "tok-ADMIN-888888"}'}
        response = admin_client.post(admin_url(Connection, "add"), form, follow=True)
        assert response.status_code == 200
        token = secret_shown_once(response, admin_client, r"at_[^<\s]+")
        connection = services.connection_for_account_token(alice.organization, token)
        assert connection.end_user_id == "u-9"
        assert connection.credentials == {"token": "tok-ADMIN-888888"}

    def test_adding_a_connection_without_credentials_is_rejected(self, admin_client, alice, integration):
        form = {"organization": alice.organization.pk, "integration": integration.pk, "end_user_id": "u-9", "status": "active"}
        response = admin_client.post(admin_url(Connection, "add"), form)
        assert response.status_code == 200
        assert not Connection.objects.exists()


SYNC_MODEL_ROW = {"name": "", "path": "", "records_field": "", "id_field": "id", "updated_at_field": "updated_at",
                  "pagination_style": "none", "pagination_param": "", "pagination_next_field": "",
                  "pagination_page_size_param": "", "pagination_page_size": "", "pagination_start": "",
                  "modified_since_param": "", "modified_since_format": "iso8601", "frequency_seconds": "86400",
                  "lookback_seconds": "0"}


def sync_model_rows(*rows: dict, initial: int = 0) -> dict:
    """The Integration form's sync-model rows as posted: each row's changes over an empty row's cells (the first
    `initial` rows are the integration's stored models)."""
    data = {"sync_models-TOTAL_FORMS": str(len(rows)), "sync_models-INITIAL_FORMS": str(initial)}
    for i, row in enumerate(rows):
        data.update({f"sync_models-{i}-{key}": value for key, value in {**SYNC_MODEL_ROW, **row}.items()})
    return data


def integration_form(**changes):
    data = {
        "slug": "globex", "name": "Globex", "description": "", "base_url": "https://api.globex.test",
        "auth_scheme": "bearer", "auth_config": "{}", "categories": "[]", "rate_limits": "[]", "pause": "connection",
        "allowed_override_hosts": "[]", **sync_model_rows(), "docs_url": "", "logo_url": "", "enabled": "on",
        "oauth_client_secret": "",
        "functions-TOTAL_FORMS": "0", "functions-INITIAL_FORMS": "0",
        "functions-MIN_NUM_FORMS": "0", "functions-MAX_NUM_FORMS": "1000",
    }
    return {**data, **changes}


@pytest.mark.django_db
class TestIntegrationAdmin:
    def test_valid_integration_is_saved_with_its_passthrough_function(self, admin_client):
        response = admin_client.post(admin_url(Integration, "add"),
                                     integration_form(rate_limits='[{"requests": 10, "per_seconds": 1}]'))
        assert response.status_code == 302
        integration = Integration.objects.get(slug="globex")
        assert integration.rate_limits == [{"requests": 10, "per_seconds": 1}]
        assert integration.functions.get().name == "globex-passthrough-request"

    def test_emptied_optional_json_fields_are_saved_as_empty(self, admin_client):
        form = integration_form(auth_config="", categories="", rate_limits="", allowed_override_hosts="")
        assert admin_client.post(admin_url(Integration, "add"), form).status_code == 302
        integration = Integration.objects.get(slug="globex")
        assert integration.auth_config == {}
        assert integration.rate_limits == integration.categories == integration.allowed_override_hosts == []

    @pytest.mark.parametrize("rate_limits", [
        '{"requests": 10}',
        '[{"requests": 0, "per_seconds": 1}]',
        '[{"requests": 10}]',
        '[{"requests": "10", "per_seconds": 1}]',
        '[{"requests": true, "per_seconds": 1}]',
        '[{"requests": 10, "per_seconds": 1, "per": "planet"}]',
        '["10/s"]',
    ])
    def test_bad_rate_limits_are_rejected(self, admin_client, rate_limits):
        response = admin_client.post(admin_url(Integration, "add"), integration_form(rate_limits=rate_limits))
        assert response.status_code == 200
        assert "rate_limits" in response.content.decode()
        assert not Integration.objects.filter(slug="globex").exists()

    @pytest.mark.parametrize("changes, error", [
        ({"base_url": "ftp://files.globex.test"}, "base_url"),
        ({"auth_scheme": "oauth2"}, "auth.authorize_url"),
        ({"auth_scheme": "api_key", "auth_config": '{"name": "X-Key", "in": "cookie"}'}, "auth.in"),
        ({"auth_config": "[1]"}, "auth_config: Must be a JSON object."),
        ({"auth_config": '{"scheme": "bearer"}', "auth_scheme": "oauth2"}, "auth.authorize_url"),
        ({"allowed_override_hosts": '["not a host"]'}, "allowed_override_hosts[0]"),
        ({"categories": '"crm"'}, "categories: Must be a list of strings."),
    ])
    def test_other_bad_catalog_fields_are_rejected(self, admin_client, changes, error):
        response = admin_client.post(admin_url(Integration, "add"), integration_form(**changes))
        assert response.status_code == 200
        assert error in response.content.decode()
        assert not Integration.objects.filter(slug="globex").exists()

    def test_client_secret_typed_into_auth_config_is_rejected(self, admin_client):
        form = integration_form(auth_scheme="oauth2", auth_config=(
            '{"authorize_url": "https://globex.test/authorize", "token_url": "https://globex.test/token",'
            f' "client_secret": "{CLIENT_SECRET}"}}'))
        response = admin_client.post(admin_url(Integration, "add"), form)
        assert response.status_code == 200
        assert "auth_config.client_secret" in response.content.decode()
        assert not Integration.objects.filter(slug="globex").exists()

    def test_oauth_client_secret_is_stored_encrypted_and_never_rendered(self, admin_client):
        form = integration_form(auth_scheme="oauth2", oauth_client_secret=CLIENT_SECRET, auth_config=(
            '{"authorize_url": "https://globex.test/authorize", "token_url": "https://globex.test/token"}'))
        assert admin_client.post(admin_url(Integration, "add"), form).status_code == 302
        integration = Integration.objects.get(slug="globex")
        assert CLIENT_SECRET not in integration.oauth_client_secret_ciphertext
        assert integration.oauth_client_secret() == CLIENT_SECRET
        html = admin_client.get(admin_url(Integration, "change", integration.pk)).content.decode()
        assert CLIENT_SECRET not in html
        assert integration.oauth_client_secret_ciphertext not in html


def test_every_model_with_secrets_is_registered():
    from django.contrib import admin

    assert all(admin.site.is_registered(model) for model in MODELS)
