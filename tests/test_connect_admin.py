"""The operator's side of the connect flow: sessions (tokens never shown), links made by hand, redirect origins,
OAuth app settings."""

import pytest
from django.test import Client

from connections.models import ConnectSession, Connection, Integration, Organization
from tests.factories import make_connection, make_integration
from tests.test_admin import admin_url, secret_shown_once, sync_model_rows


def shown_link(response, client):
    """The connect link on the page answering the add or the action: shown once, never in a message or cookie."""
    return secret_shown_once(response, client, r"https?://\S+/connect/cs_[^<\s]+").rsplit("/connect/", 1)[1]


@pytest.fixture
def oauth_integration(db):
    return make_integration(slug="crmy", auth={"scheme": "oauth2", "authorize_url": "https://login.crmy.test/a",
                                               "token_url": "https://login.crmy.test/t", "client_id": "c-1"})


def test_a_connect_link_made_in_the_admin_is_shown_once_and_works(admin_client, alice, oauth_integration):
    response = admin_client.post(admin_url(ConnectSession, "add"), {
        "organization": alice.organization.pk, "end_user_id": "ada", "end_user_email": "", "end_user_organization_name": "",
        "integrations": [oauth_integration.pk], "redirect_url": "", "expires_in_minutes": 60})
    assert response.status_code == 200
    token = shown_link(response, admin_client)
    session = ConnectSession.objects.get()
    assert [i.slug for i in session.integrations.all()] == ["crmy"]
    assert Client().get(f"/connect/{token}/crmy").status_code == 302
    for page in (admin_url(ConnectSession, "changelist"), admin_url(ConnectSession, "change", session.pk)):
        html = admin_client.get(page).content.decode()
        assert token not in html and "open" in html


def test_a_connect_link_to_a_refused_origin_is_not_made(admin_client, alice, oauth_integration):
    response = admin_client.post(admin_url(ConnectSession, "add"), {
        "organization": alice.organization.pk, "end_user_id": "ada", "redirect_url": "https://evil.test/x",
        "expires_in_minutes": 60})
    assert response.status_code == 200 and "not an allowed redirect origin" in response.content.decode()
    assert not ConnectSession.objects.exists()


def test_allowed_redirect_origins_are_origins(admin_client, alice):
    url = admin_url(Organization, "change", alice.organization.pk)
    form = {"name": "alice", "webhook_url": ""}
    assert admin_client.post(url, {**form, "allowed_redirect_origins": '["https://app.test/path"]'}).status_code == 200
    assert admin_client.post(url, {**form, "allowed_redirect_origins": '["HTTPS://App.test:8443/"]'}).status_code == 302
    assert Organization.objects.get(pk=alice.organization.pk).allowed_redirect_origins == ["https://app.test:8443"]


def test_oauth_app_settings_are_edited_as_fields(admin_client, oauth_integration):
    url = admin_url(Integration, "change", oauth_integration.pk)
    form = {"slug": "crmy", "name": "Crmy", "description": "", "base_url": oauth_integration.base_url,
            "auth_scheme": "oauth2", "auth_config": '{"authorize_url": "https://login.crmy.test/a", '
                                                    '"token_url": "https://login.crmy.test/t", "client_id": "c-1"}',
            "categories": "[]", "rate_limits": "[]", "pause": "connection", "allowed_override_hosts": "[]", **sync_model_rows(),
            "docs_url": "", "logo_url": "", "enabled": "on", "oauth_client_id": "c-2", "oauth_scopes": "read write",
            "oauth_authorize_params": '{"prompt": "consent"}', "oauth_token_auth": "basic",
            "oauth_client_secret": "NEW-SECRET-1", "functions-TOTAL_FORMS": "0", "functions-INITIAL_FORMS": "0"}
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    oauth_integration.refresh_from_db()
    assert oauth_integration.auth_config == {
        "authorize_url": "https://login.crmy.test/a", "token_url": "https://login.crmy.test/t", "client_id": "c-2",
        "scopes": ["read", "write"], "authorize_params": {"prompt": "consent"}, "token_auth": "basic", "pkce": False}
    assert oauth_integration.oauth_client_secret() == "NEW-SECRET-1"
    assert "NEW-SECRET-1" not in admin_client.get(url).content.decode()


def test_the_reconnect_link_action_makes_a_session_for_the_connection(admin_client, alice, oauth_integration):
    connection, _ = make_connection(alice.organization, oauth_integration, credentials={"access_token": "x"})
    response = admin_client.post(admin_url(Connection, "changelist"),
                                 {"action": "reconnect_link", "_selected_action": [connection.pk]})
    token = shown_link(response, admin_client)
    assert ConnectSession.objects.get().connection == connection
    assert Client().get(f"/connect/{token}").status_code == 302  # straight to the connection's integration
