"""The connect flow over HTTP, point by point of ../shared/spec/connect.md.

The provider's token endpoint and the key forms' `verify` upstream are real servers on 127.0.0.1 (`LocalServer`);
the browser is Django's test client, whose cookie jar is the browser binding of `state`.
"""

import base64
import hashlib
import json
from datetime import timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from connections.models import ConnectSession, Connection, WebhookDelivery
from passthrough.models import FunctionCall
from tests.factories import make_connection, make_integration
from tests.network import LocalServer, reply

pytestmark = pytest.mark.usefixtures("network_guard")

APP = "https://app.alice.test"
ACCESS, REFRESH, SECRET = "at-FROM-PROVIDER-111", "rt-FROM-PROVIDER-222", "cs-CLIENT-SECRET-333"


class TokenEndpoint:
    """A provider's token endpoint: answers `body` (JSON unless a str) with `status`; records every request."""

    def __init__(self, status=200, body=None, headers=()):
        self.status, self.headers = status, list(headers)
        self.body = body if body is not None else {"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600,
                                                   "token_type": "Bearer"}

    def __call__(self, received):
        if isinstance(self.body, str):
            return reply(self.status, [("Content-Type", "application/x-www-form-urlencoded"), *self.headers], self.body.encode())
        return reply(self.status, [("Content-Type", "application/json"), *self.headers], json.dumps(self.body).encode())


@pytest.fixture
def provider():
    with LocalServer(TokenEndpoint()) as server:
        yield server


def oauth_integration(provider, slug="crmy", **auth):
    integration = make_integration(slug=slug, base_url="https://api.crmy.test/v1", categories=["crm"], auth={
        "scheme": "oauth2", "authorize_url": "https://login.crmy.test/oauth/authorize?prompt=consent",
        "token_url": f"{provider.url}/oauth/token", "client_id": "client-1", "client_secret": SECRET,
        "scopes": ["contacts.read", "offline_access"], **auth})
    return integration


def key_integration(slug="keyed", scheme="api_key", verify_url=None):
    auth = {"scheme": scheme, **({"name": "X-Api-Key"} if scheme == "api_key" else {})}
    if verify_url:
        auth["verify"] = {"method": "GET", "path": "/me"}
    return make_integration(slug=slug, base_url=verify_url or "https://api.keyed.test", auth=auth,
                            allowed_override_hosts=[])


def create_session(tenant, **body):
    response = tenant.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def page_path(session):
    return urlsplit(session["connect_url"]).path


def start_oauth(browser, session, slug="crmy"):
    """The browser opens the integration's page; returns the authorize redirect's query."""
    response = browser.get(f"{page_path(session)}/{slug}")
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}, response["Location"]


def callback(browser, **query):
    return browser.get("/connect/oauth/callback", query)


def round_trip(tenant, session_body=None, **answer):
    """Start the flow in a fresh browser and come back to our callback with the provider's `answer` (the state added).
    Returns (authorize query, callback response)."""
    browser = Client()
    query, _ = start_oauth(browser, create_session(tenant, **(session_body or {})))
    return query, callback(browser, state=query["state"], **answer)


def form(received):
    return dict(parse_qsl(received.body.decode()))


@pytest.fixture
def app_origin(alice):
    alice.organization.allowed_redirect_origins = [APP]
    alice.organization.save()
    return APP


# --- Sessions ------------------------------------------------------------------------------------------------------

def test_a_session_answers_token_connect_url_and_expiry_and_stores_only_a_hash(alice, provider):
    oauth_integration(provider)
    before = timezone.now()
    body = create_session(alice, expires_in_minutes=5)
    assert set(body) == {"token", "connect_url", "expires_at"}
    assert body["connect_url"] == f"http://testserver/connect/{body['token']}"
    assert body["expires_at"].endswith("Z")
    session = ConnectSession.objects.get()
    assert before + timedelta(minutes=5) <= session.expires_at <= timezone.now() + timedelta(minutes=5)
    assert body["token"] not in json.dumps(list(ConnectSession.objects.values()), default=str)


@pytest.mark.parametrize("body,problem", [
    ({"integrations": ["nope"]}, "integrations"),
    ({"expires_in_minutes": 0}, "expires_in_minutes"),
    ({"expires_in_minutes": 10081}, "expires_in_minutes"),
    ({"redirect_url": "https://evil.test/steal"}, "redirect_url"),
    ({"redirect_url": "javascript:alert(1)"}, "redirect_url"),
    ({"end_user_id": ""}, "end_user_id"),
    ({"connection_id": 10**30}, "connection_id"),
    ({"integrations": "crmy"}, "integrations"),
])
def test_bad_session_input_is_400(alice, provider, app_origin, body, problem):
    oauth_integration(provider)
    response = alice.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", **body}, format="json")
    assert response.status_code == 400
    assert any(line.startswith(problem) for line in response.json()["error_details"])
    assert not ConnectSession.objects.exists()


def test_a_disabled_integration_cannot_be_offered(alice, provider):
    integration = oauth_integration(provider)
    integration.enabled = False
    integration.save()
    response = alice.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", "integrations": ["crmy"]}, format="json")
    assert response.status_code == 400


def test_redirect_origins_come_from_the_organization_or_the_setting(alice, provider):
    oauth_integration(provider)
    response = alice.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", "redirect_url": f"{APP}/done"},
                                 format="json")
    assert response.status_code == 400
    with override_settings(CONNECT_ALLOWED_REDIRECT_ORIGINS=f"https://other.test, {APP}"):
        assert create_session(alice, redirect_url=f"{APP}/done?x=1")


def test_reconnecting_another_organizations_connection_is_404(alice, bob, provider):
    integration = oauth_integration(provider)
    connection, _ = make_connection(bob.organization, integration, credentials={"access_token": "x"})
    response = alice.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", "connection_id": connection.pk},
                                 format="json")
    assert response.status_code == 404


def test_sessions_need_an_api_key(provider):
    assert Client().post("/api/v1/connect/sessions", {"end_user_id": "ada"}).status_code == 401


# --- The hosted page -----------------------------------------------------------------------------------------------

def test_the_page_lists_the_offered_integrations_with_links(alice, provider):
    oauth_integration(provider)
    key_integration()
    session = create_session(alice)
    response = Client().get(page_path(session))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Crmy" in html and "Keyed" in html
    assert f'href="{page_path(session)}/crmy"' in html and f'href="{page_path(session)}/keyed"' in html
    assert "<script" not in html  # works without JavaScript
    assert "https://" not in html.replace("https://app", "")  # nothing loads from another host


def test_one_offered_integration_goes_straight_to_it(alice, provider):
    oauth_integration(provider)
    key_integration()
    session = create_session(alice, integrations=["keyed"])
    response = Client().get(page_path(session))
    assert (response.status_code, response["Location"]) == (302, f"{page_path(session)}/keyed")


def test_frame_ancestors_are_the_allowed_origins_or_none(alice, provider):
    oauth_integration(provider)
    key_integration()
    session = create_session(alice)
    assert "frame-ancestors 'none'" in Client().get(page_path(session))["Content-Security-Policy"]
    alice.organization.allowed_redirect_origins = [APP]
    alice.organization.save()
    response = Client().get(page_path(session))
    assert f"frame-ancestors {APP.lower()}" in response["Content-Security-Policy"]
    assert "X-Frame-Options" not in response


def test_an_unknown_link_is_a_404_page(db):
    response = Client().get("/connect/cs_nothing-here")
    assert response.status_code == 404
    assert "text/html" in response["Content-Type"] and "not valid" in response.content.decode()


def test_an_expired_session_is_410_when_time_has_moved_on(alice, provider, monkeypatch):
    oauth_integration(provider)
    session = create_session(alice, expires_in_minutes=30)
    later = timezone.now() + timedelta(minutes=31)
    monkeypatch.setattr(timezone, "now", lambda: later)
    for path in (page_path(session), f"{page_path(session)}/crmy"):
        response = Client().get(path)
        assert response.status_code == 410 and "expired" in response.content.decode()


def test_an_integration_not_offered_is_a_404_page(alice, provider):
    oauth_integration(provider)
    key_integration()
    session = create_session(alice, integrations=["keyed"])
    assert Client().get(f"{page_path(session)}/crmy").status_code == 404


# --- OAuth2 --------------------------------------------------------------------------------------------------------

def test_authorize_redirect_carries_pkce_state_scope_and_extra_params(alice, provider):
    oauth_integration(provider, authorize_params={"access_type": "offline"})
    query, location = start_oauth(Client(), create_session(alice))
    assert location.startswith("https://login.crmy.test/oauth/authorize?prompt=consent&")
    assert query["response_type"] == "code" and query["client_id"] == "client-1"
    assert query["redirect_uri"] == "http://testserver/connect/oauth/callback"
    assert query["scope"] == "contacts.read offline_access"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "=" not in query["code_challenge"]
    assert len(base64.urlsafe_b64decode(query["state"] + "==")) >= 16
    assert query["access_type"] == "offline"
    assert SECRET not in location


def test_pkce_false_sends_no_challenge(alice, provider):
    oauth_integration(provider, pkce=False)
    query, _ = start_oauth(Client(), create_session(alice))
    assert "code_challenge" not in query and "code_challenge_method" not in query


def test_the_code_is_exchanged_with_the_verifier_and_the_browser_goes_back_with_a_public_token(alice, provider, app_origin):
    oauth_integration(provider)
    query, response = round_trip(alice, {"redirect_url": f"{APP}/linked?tab=crm"}, code="the-code")
    assert response.status_code == 303
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{APP}/linked"
    back = dict(parse_qsl(location.query))
    assert back["tab"] == "crm" and back["public_token"].startswith("pt_")
    (token_request,) = provider.requests
    sent = form(token_request)
    assert sent == {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": query["redirect_uri"],
                    "code_verifier": sent["code_verifier"], "client_id": "client-1", "client_secret": SECRET}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(sent["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert challenge == query["code_challenge"]
    connection = Connection.objects.get()
    assert (connection.organization, connection.end_user_id, connection.status) == (alice.organization, "ada", "active")
    assert connection.credentials["access_token"] == ACCESS and connection.credentials["refresh_token"] == REFRESH
    assert ACCESS not in connection.credentials_ciphertext


def test_token_auth_basic_sends_the_client_secret_as_http_basic(alice, provider):
    oauth_integration(provider, token_auth="basic")
    round_trip(alice, code="c")
    (token_request,) = provider.requests
    assert token_request.header("Authorization") == "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode()
    assert "client_secret" not in form(token_request)


def test_a_form_encoded_token_answer_is_accepted(alice):
    with LocalServer(TokenEndpoint(body=f"access_token={ACCESS}&scope=repo&token_type=bearer")) as provider:
        oauth_integration(provider)
        _, response = round_trip(alice, code="c")
        assert response.status_code == 200
    assert Connection.objects.get().credentials == {"access_token": ACCESS}


def test_without_redirect_url_a_connected_page_carries_the_public_token(alice, provider):
    oauth_integration(provider)
    _, response = round_trip(alice, code="c")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-public-token="pt_' in html and "connect.success" in html.replace("&quot;", '"')


@pytest.mark.parametrize("tamper", ["other-state", "", None])
def test_a_tampered_state_is_refused_and_nothing_is_stored(alice, provider, tamper):
    oauth_integration(provider)
    browser = Client()
    query, _ = start_oauth(browser, create_session(alice))
    params = {"code": "c"} if tamper is None else {"code": "c", "state": tamper}
    response = callback(browser, **params)
    assert response.status_code == 400 and "text/html" in response["Content-Type"]
    assert not provider.requests and not Connection.objects.exists()


def test_a_callback_in_another_browser_is_refused(alice, provider):
    oauth_integration(provider)
    query, _ = start_oauth(Client(), create_session(alice))
    other = Client()
    other.cookies["connect_browser"] = "a-different-browser"
    assert callback(other, code="c", state=query["state"]).status_code == 400
    assert callback(Client(), code="c", state=query["state"]).status_code == 400
    assert not provider.requests and not Connection.objects.exists()


def test_a_state_is_single_use(alice, provider):
    oauth_integration(provider)
    browser = Client()
    query, _ = start_oauth(browser, create_session(alice))
    browser.cookies["connect_browser"] = browser.cookies["connect_browser"].value
    assert callback(browser, code="c", state=query["state"]).status_code == 200
    assert callback(browser, code="c", state=query["state"]).status_code == 400
    assert len(provider.requests) == 1


def test_a_state_older_than_ten_minutes_is_refused(alice, provider, monkeypatch):
    oauth_integration(provider)
    browser = Client()
    query, _ = start_oauth(browser, create_session(alice))
    later = timezone.now() + timedelta(minutes=11)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert callback(browser, code="c", state=query["state"]).status_code == 400
    assert not provider.requests


def test_a_denied_consent_ends_the_flow_with_the_error(alice, provider, app_origin):
    oauth_integration(provider)
    _, response = round_trip(alice, {"redirect_url": f"{APP}/linked"}, error="access_denied")
    assert response.status_code == 303
    back = dict(parse_qsl(urlsplit(response["Location"]).query))
    assert back["error"] == "access_denied" and back["error_description"]
    assert not provider.requests and not Connection.objects.exists()


@pytest.mark.parametrize("endpoint", [
    TokenEndpoint(400, {"error": "invalid_grant"}),
    TokenEndpoint(200, {"token_type": "Bearer"}),
    TokenEndpoint(302, {}, headers=[("Location", "http://127.0.0.1:1/steal")]),
])
def test_a_token_endpoint_refusal_is_token_exchange_failed(alice, app_origin, endpoint):
    with LocalServer(endpoint) as provider:
        oauth_integration(provider)
        _, response = round_trip(alice, {"redirect_url": f"{APP}/linked"}, code="c")
        assert len(provider.requests) == 1  # a redirect is not followed
    assert response.status_code == 303
    assert dict(parse_qsl(urlsplit(response["Location"]).query))["error"] == "token_exchange_failed"
    assert not Connection.objects.exists()


def test_a_used_session_is_410(alice, provider):
    oauth_integration(provider)
    browser = Client()
    session = create_session(alice)
    query, _ = start_oauth(browser, session)
    callback(browser, code="c", state=query["state"])
    assert browser.get(page_path(session)).status_code == 410
    assert browser.get(f"{page_path(session)}/crmy").status_code == 410


# --- Key forms -----------------------------------------------------------------------------------------------------

def verify_upstream(received):
    good = received.header("X-Api-Key") == "right-key"
    return reply(200 if good else 401, [("Content-Type", "application/json")], b'{"me": 1}' if good else b"{}")


@pytest.fixture
def verify_server():
    with LocalServer(verify_upstream) as server:
        yield server


def test_the_key_form_has_csrf_and_the_named_inputs(alice):
    for scheme, names in [("api_key", ["api_key"]), ("bearer", ["token"]), ("basic", ["username", "password"])]:
        key_integration(slug=scheme.replace("_", "-"), scheme=scheme)
        session = create_session(alice, integrations=[scheme.replace("_", "-")])
        html = Client().get(f"{page_path(session)}/{scheme.replace('_', '-')}").content.decode()
        assert 'method="post"' in html and 'name="csrfmiddlewaretoken"' in html
        assert all(f'name="{name}"' in html for name in names)


def test_a_missing_field_shows_the_form_again(alice):
    key_integration()
    session = create_session(alice)
    response = Client().post(f"{page_path(session)}/keyed", {"api_key": "  "})
    assert response.status_code == 400 and 'name="api_key"' in response.content.decode()
    assert not Connection.objects.exists()


def test_the_key_form_needs_its_csrf_token(alice):
    key_integration()
    session = create_session(alice)
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(f"{page_path(session)}/keyed", {"api_key": "k"})
    assert response.status_code == 403 and "This form has expired" in response.content.decode()
    assert not Connection.objects.exists()


def test_verify_refuses_a_wrong_key_then_accepts_the_right_one(alice, verify_server):
    key_integration(verify_url=verify_server.url)
    session = create_session(alice)
    browser = Client()
    refused = browser.post(f"{page_path(session)}/keyed", {"api_key": "wrong-key"})
    assert refused.status_code == 400 and "These credentials were refused" in refused.content.decode()
    assert "wrong-key" not in refused.content.decode()
    assert not Connection.objects.exists()
    accepted = browser.post(f"{page_path(session)}/keyed", {"api_key": "right-key"})
    assert accepted.status_code == 200 and 'data-public-token="pt_' in accepted.content.decode()
    assert Connection.objects.get().credentials == {"api_key": "right-key"}
    assert [r.header("X-Api-Key") for r in verify_server.requests] == ["wrong-key", "right-key"]
    logged = FunctionCall.objects.order_by("created_at", "pk")
    assert [(call.method, call.response_status, call.organization_id) for call in logged] == [
        ("GET", 401, alice.organization.pk), ("GET", 200, alice.organization.pk)]
    assert "wrong-key" not in json.dumps(list(logged.values()), default=str)  # redacted like every call


# --- The end of the flow, reconnect, webhook -----------------------------------------------------------------------

def complete_key_flow(tenant, key="right-key", **session_body):
    session = create_session(tenant, **session_body)
    response = Client().post(f"{page_path(session)}/keyed", {"api_key": key})
    if response.status_code == 303:
        return dict(parse_qsl(urlsplit(response["Location"]).query))["public_token"]
    return response.content.decode().split('data-public-token="')[1].split('"')[0]


def test_linked_webhook_carries_the_account_token(alice):
    alice.organization.webhook_url = "https://hooks.alice.test/merge"
    alice.organization.save()
    key_integration()
    public_token = complete_key_flow(alice)
    account_token = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()["account_token"]
    delivery = WebhookDelivery.objects.get(event="connection.linked")
    assert delivery.payload["data"]["account_token"] == account_token
    assert delivery.payload["data"]["end_user_id"] == "ada"


@pytest.mark.parametrize("verified", [False, True])
def test_reconnect_replaces_credentials_in_place_and_keeps_id_and_account_token(alice, verify_server, verified):
    alice.organization.webhook_url = "https://hooks.alice.test/merge"
    alice.organization.save()
    integration = key_integration(verify_url=verify_server.url if verified else None)
    connection, account_token = make_connection(alice.organization, integration, credentials={"api_key": "old-key"})
    Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_NEEDS_REAUTH, status_detail="refused")
    WebhookDelivery.objects.all().delete()
    public_token = complete_key_flow(alice, key="right-key", connection_id=connection.pk)
    connection.refresh_from_db()
    assert Connection.objects.count() == 1
    assert (connection.status, connection.status_detail) == ("active", "")
    assert connection.credentials == {"api_key": "right-key"}
    exchanged = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()
    assert (exchanged["connection_id"], exchanged["account_token"]) == (connection.pk, account_token)
    relinked = WebhookDelivery.objects.get(event="connection.linked")  # re-linked: announced again, same token
    assert relinked.payload["data"]["account_token"] == account_token


# --- Public token → account token ----------------------------------------------------------------------------------

def test_the_native_exchange_gives_a_working_account_token(alice, verify_server):
    key_integration(verify_url=verify_server.url)
    public_token = complete_key_flow(alice)
    response = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}")
    assert response.status_code == 200
    body = response.json()
    connection = Connection.objects.get()
    assert body == {"account_token": body["account_token"], "connection_id": connection.pk, "integration": "keyed",
                    "end_user_id": "ada"}
    assert Connection.objects.for_account_token(body["account_token"]).get() == connection
    assert alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json() == body  # repeatable


def test_the_merge_exchange_answers_merges_shape(alice, verify_server):
    key_integration(verify_url=verify_server.url)
    public_token = complete_key_flow(alice)
    response = alice.client.get(f"/merge/api/crm/v1/account-token/{public_token}")
    connection = Connection.objects.get()
    assert response.status_code == 200
    assert response.json() == {"account_token": connection.account_token(), "id": str(connection.pk),
                               "integration": {"name": "Keyed", "slug": "keyed", "categories": []}}


def test_another_organizations_public_token_is_404(alice, bob, verify_server):
    key_integration(verify_url=verify_server.url)
    public_token = complete_key_flow(alice)
    assert bob.client.get(f"/api/v1/connect/public-tokens/{public_token}").status_code == 404
    assert bob.client.get(f"/merge/api/crm/v1/account-token/{public_token}").status_code == 404


def test_a_public_token_expires_after_an_hour(alice, verify_server, monkeypatch):
    key_integration(verify_url=verify_server.url)
    public_token = complete_key_flow(alice)
    later = timezone.now() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").status_code == 404


# --- Merge SDK, unmodified -----------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_merge_sdk_link_token_create_and_account_token_retrieve(merge_sdk, alice, verify_server, live_server):
    key_integration(verify_url=verify_server.url)
    make_integration(slug="hub", base_url="https://api.hub.test", categories=["crm"], auth={"scheme": "bearer"})
    merge = merge_sdk(alice.key)
    link = merge.crm.link_token.create(end_user_email_address="ada@example.com", end_user_organization_name="Ada Inc",
                                       end_user_origin_id="ada", categories=["crm"], integration="keyed")
    assert link.integration_name == "Keyed"
    assert link.magic_link_url == f"{live_server.url}/connect/{link.link_token}"
    session = ConnectSession.objects.get()
    assert [i.slug for i in session.integrations.all()] == ["keyed"]
    assert (session.end_user_id, session.end_user_email) == ("ada", "ada@example.com")
    response = Client().post(f"/connect/{link.link_token}/keyed", {"api_key": "right-key"})
    public_token = response.content.decode().split('data-public-token="')[1].split('"')[0]
    account = merge.crm.account_token.retrieve(public_token)
    connection = Connection.objects.get()
    assert (account.account_token, account.id, account.integration.slug) == (connection.account_token(), str(connection.pk), "keyed")
    assert connection.end_user_organization_name == "Ada Inc"


@pytest.mark.django_db(transaction=True)
def test_merge_sdk_link_token_categories_narrow_the_offer(merge_sdk, alice, live_server):
    key_integration()
    make_integration(slug="hub", base_url="https://api.hub.test", categories=["crm"], auth={"scheme": "bearer"})
    link = merge_sdk(alice.key).crm.link_token.create(end_user_email_address="a@b.test", end_user_organization_name="A",
                                                      end_user_origin_id="ada", categories=["crm"])
    assert link.integration_name == "Hub"
    assert [i.slug for i in ConnectSession.objects.get().integrations.all()] == ["hub"]


# --- make run ------------------------------------------------------------------------------------------------------

def test_setup_demo_prints_a_working_connect_link(db):
    from connections import services
    from console.management.commands.setup_demo import Command
    from tests.servers import ROOT

    services.catalog_load(json.loads((ROOT / "catalog" / "demo.json").read_text()))
    printed = Command().run(base_url="http://testserver")
    response = Client().get(urlsplit(printed["connect_url"]).path)
    assert response.status_code == 200 and "Echo" in response.content.decode()


def test_an_oauth2_integration_without_an_oauth_app_says_so(alice):
    make_integration(slug="bare", auth={"scheme": "oauth2", "authorize_url": "https://login.bare.test/authorize",
                                        "token_url": "https://login.bare.test/token"})
    session = create_session(alice)
    response = Client().get(f"{page_path(session)}/bare")
    assert response.status_code == 400 and "no OAuth app configured" in response.content.decode()
