"""The connect flow against a real OAuth2 authorization server (django-oauth-toolkit, tests/oauth_provider/).

The end user's browser at the provider is a `requests` session that signs in and answers the consent form; at our
side it is Django's test client. The provider enforces PKCE S256, exact redirect URIs, single-use codes, client
authentication and refresh tokens: each is shown refusing what it must refuse.
"""

import html
import re
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from django.test import Client

from connections import crypto, oauth2
from connections.models import ConnectSession, Connection
from tests.factories import make_integration
from tests.oauth_provider import PASSWORD, USERNAME

CALLBACK = "http://testserver/connect/oauth/callback"
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


@pytest.fixture
def provider_integration(oauth_provider):
    return make_integration(slug="provider", base_url=f"{oauth_provider.url}/api", auth=oauth_provider.catalog_auth())


def provider_browser(provider) -> requests.Session:
    """A browser signed in at the provider."""
    browser = requests.Session()
    browser.trust_env = False
    login = browser.get(f"{provider.url}/accounts/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    signed_in = browser.post(f"{provider.url}/accounts/login/", timeout=30, allow_redirects=False, data={
        "csrfmiddlewaretoken": csrf, "username": USERNAME, "password": PASSWORD, "next": "/o/applications/"},
        headers={"Referer": f"{provider.url}/accounts/login/"})
    assert signed_in.status_code == 302, signed_in.text
    return browser


def consent(provider, authorize_url: str, allow=True) -> dict:
    """Answer the provider's consent page; returns the query of its redirect back to us."""
    browser = provider_browser(provider)
    page = browser.get(authorize_url, timeout=30)
    assert page.status_code == 200, page.text
    fields = {name: html.unescape(value) for name, value in HIDDEN_INPUT.findall(page.text)}
    fields["csrfmiddlewaretoken"] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    if allow:
        fields["allow"] = "Authorize"
    answer = browser.post(f"{provider.url}/o/authorize/", data=fields, allow_redirects=False, timeout=30,
                          headers={"Referer": authorize_url})
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return dict(parse_qsl(location.query))


def start(alice, browser):
    session = alice.client.post("/api/v1/connect/sessions", {"end_user_id": "ada", "integrations": ["provider"]},
                                format="json").json()
    response = browser.get(f"{urlsplit(session['connect_url']).path}/provider")
    assert response.status_code == 302
    return response["Location"]


def sign_in(alice, provider):
    """The whole flow; returns (public token, the provider's redirect query)."""
    browser = Client()
    back = consent(provider, start(alice, browser))
    response = browser.get("/connect/oauth/callback", back)
    assert response.status_code == 200, response.content
    return response.content.decode().split('data-public-token="')[1].split('"')[0], back


def who_am_i(alice, account_token):
    response = alice.client.post("/api/v1/passthrough", {"method": "GET", "path": "/me"}, format="json",
                                 HTTP_X_ACCOUNT_TOKEN=account_token)
    assert response.status_code == 200, response.content
    return response.json()


def test_signing_in_at_a_real_provider_gives_a_working_connection(alice, oauth_provider, provider_integration):
    public_token, _ = sign_in(alice, oauth_provider)
    account_token = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()["account_token"]
    answer = who_am_i(alice, account_token)
    assert (answer["status"], answer["response"]) == (200, {"username": USERNAME})


def test_the_real_provider_refreshes_the_token_and_rotates_the_refresh_token(alice, oauth_provider, provider_integration):
    public_token, _ = sign_in(alice, oauth_provider)
    account_token = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()["account_token"]
    connection = Connection.objects.get()
    first = connection.credentials
    connection.credentials = {**first, "expires_at": int(time.time()) - 5}
    connection.save()
    assert who_am_i(alice, account_token)["status"] == 200
    refreshed = Connection.objects.get().credentials
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert refreshed["expires_at"] > time.time() + 3000


def test_a_denied_consent_comes_back_as_access_denied(alice, oauth_provider, provider_integration):
    browser = Client()
    back = consent(oauth_provider, start(alice, browser), allow=False)
    assert back["error"] == "access_denied"
    response = browser.get("/connect/oauth/callback", back)
    assert response.status_code == 400 and "connect.error" in response.content.decode().replace("&quot;", '"')
    assert not Connection.objects.exists()


# --- What the provider refuses -------------------------------------------------------------------------------------

def fresh_code(alice, provider):
    """A code the provider issued for our session, and the session's PKCE verifier (our callback not called)."""
    back = consent(provider, start(alice, Client()))
    verifier = crypto.decrypt_text(ConnectSession.objects.latest("created_at").oauth_verifier_ciphertext)
    return back["code"], verifier


def test_a_code_is_single_use(alice, oauth_provider, provider_integration):
    code, verifier = fresh_code(alice, oauth_provider)
    assert oauth2.exchange_code(provider_integration, code=code, redirect_uri=CALLBACK, code_verifier=verifier)
    with pytest.raises(oauth2.TokenRequestRefused):
        oauth2.exchange_code(provider_integration, code=code, redirect_uri=CALLBACK, code_verifier=verifier)


def test_the_provider_refuses_a_wrong_pkce_verifier(alice, oauth_provider, provider_integration):
    code, verifier = fresh_code(alice, oauth_provider)
    with pytest.raises(oauth2.TokenRequestRefused):
        oauth2.exchange_code(provider_integration, code=code, redirect_uri=CALLBACK, code_verifier=verifier[::-1])


def test_the_provider_refuses_another_redirect_uri(alice, oauth_provider, provider_integration):
    code, verifier = fresh_code(alice, oauth_provider)
    with pytest.raises(oauth2.TokenRequestRefused):
        oauth2.exchange_code(provider_integration, code=code, redirect_uri="http://testserver/elsewhere",
                             code_verifier=verifier)


def test_the_provider_refuses_a_wrong_client_secret(alice, oauth_provider, provider_integration):
    code, verifier = fresh_code(alice, oauth_provider)
    provider_integration.set_oauth_client_secret("not-the-secret")
    with pytest.raises(oauth2.TokenRequestRefused):
        oauth2.exchange_code(provider_integration, code=code, redirect_uri=CALLBACK, code_verifier=verifier)


def test_http_basic_client_authentication_works_too(alice, oauth_provider, provider_integration):
    provider_integration.auth_config = {**provider_integration.auth_config, "token_auth": "basic"}
    provider_integration.save()
    code, verifier = fresh_code(alice, oauth_provider)
    assert oauth2.exchange_code(provider_integration, code=code, redirect_uri=CALLBACK, code_verifier=verifier)
