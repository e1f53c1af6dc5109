"""The oauth2 auth scheme's whole lifecycle: the authorize URL (PKCE S256), the code exchange and the refresh.

Token requests go through the outbound client's one send path: the token URL is the operator's (trusted as
configured), redirects are never followed (a redirect would re-send the code or refresh token and the client
secret to wherever it points), the answer is capped at TOKEN_ANSWER_MAX_BYTES, and nothing is written to the call
log. The client secret goes in the form body or, when the catalog entry's auth says `"token_auth": "basic"`, as
HTTP Basic; the same style for code exchange and refresh.
"""

import base64
import hashlib
import json
import logging
import secrets
import time
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction

from connections import client, hot_cache, lifecycle
from connections.models import Connection, Integration
from integration_platform.errors import ConnectionUnusable, UpstreamAnswerUnusable, UpstreamTimeout, UpstreamUnreachable

log = logging.getLogger(__name__)

TOKEN_ANSWER_MAX_BYTES = 256 * 1024


class TokenRequestRefused(Exception):
    """The token endpoint answered, but gave no access token (bad code, revoked refresh token, client refused)."""

    def __init__(self, status: int, error: str = ""):
        super().__init__(f"HTTP {status}" + (f": {error}" if error else ""))
        self.status, self.error = status, error


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge): 43 characters of randomness and its base64url SHA-256, unpadded."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def uses_pkce(integration: Integration) -> bool:
    return integration.auth_config.get("pkce", True) is not False


def authorize_url(integration: Integration, *, redirect_uri: str, state: str, code_challenge: str) -> str:
    """The provider's authorize URL with our query; its own query (if any) is kept."""
    config = integration.auth_config
    params = {"response_type": "code", "client_id": config.get("client_id", ""), "redirect_uri": redirect_uri}
    if config.get("scopes"):
        params["scope"] = " ".join(config["scopes"])
    params["state"] = state
    if uses_pkce(integration):
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    params.update({str(k): str(v) for k, v in (config.get("authorize_params") or {}).items()})
    parts = urlsplit(config["authorize_url"])
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def exchange_code(integration: Integration, *, code: str, redirect_uri: str, code_verifier: str) -> dict:
    """Trade an authorization code for the connection's oauth2 credentials."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if uses_pkce(integration):
        form["code_verifier"] = code_verifier
    return credentials_from_answer(_token_request(integration, form))


def refresh(integration: Integration, credentials: dict) -> dict:
    """New credentials from the refresh token; the old refresh token is kept unless the provider rotates it."""
    answer = _token_request(integration, {"grant_type": "refresh_token", "refresh_token": credentials["refresh_token"]})
    refreshed = {**credentials, **credentials_from_answer(answer)}
    if "expires_in" not in answer:
        refreshed.pop("expires_at", None)
    return refreshed


def credentials_from_answer(answer: dict) -> dict:
    credentials = {"access_token": answer["access_token"]}
    if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
        credentials["refresh_token"] = answer["refresh_token"]
    try:
        credentials["expires_at"] = int(time.time() + float(answer["expires_in"]))
    except (KeyError, TypeError, ValueError):
        pass
    return credentials


def _token_request(integration: Integration, form: dict) -> dict:
    """POST the form to the token URL; the parsed answer with an access token, or TokenRequestRefused.

    UpstreamUnreachable when the endpoint could not answer (worth trying again later), UpstreamAnswerUnusable when its
    answer could not be read."""
    config = integration.auth_config
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    client_id, client_secret = config.get("client_id", ""), integration.oauth_client_secret()
    if config.get("token_auth") == "basic":
        pair = f"{client_id}:{client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    elif client_id:
        form = {**form, "client_id": client_id, "client_secret": client_secret}
    try:
        response = client.send_trusted("POST", config["token_url"], headers, urlencode(form).encode(),
                                       timeout=settings.OUTBOUND_CONNECT_TIMEOUT, max_bytes=TOKEN_ANSWER_MAX_BYTES)
    except UpstreamAnswerUnusable as exc:  # e.g. larger than the cap: a broken endpoint, not a refusal
        raise UpstreamAnswerUnusable(f"The OAuth2 token endpoint's answer could not be used: {exc.message}") from None
    except (UpstreamUnreachable, UpstreamTimeout):
        raise UpstreamUnreachable("The OAuth2 token endpoint could not be reached.") from None
    if response.status >= 500 or response.status == 429:
        raise UpstreamUnreachable(f"The OAuth2 token endpoint failed (HTTP {response.status}); try again later.")
    answer = _parse_answer(response)
    if response.status != 200 or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        # A redirect lands here too: it is not followed, and it is no token.
        raise TokenRequestRefused(response.status, str(answer.get("error", ""))[:100])
    return answer


def _parse_answer(response) -> dict:
    """JSON, or form-encoded (GitHub's default) answers."""
    text = response.body.decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = dict(parse_qsl(text))
    return answer if isinstance(answer, dict) else {}


# --- Refresh before use --------------------------------------------------------------------------------------------

def _expires_soon(credentials: dict) -> bool:
    expires_at = credentials.get("expires_at")
    if expires_at in (None, ""):
        return False
    if isinstance(expires_at, str):
        try:
            expires_at = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return True
    return float(expires_at) - settings.OAUTH_REFRESH_MARGIN_SECONDS <= time.time()


def fresh_credentials(connection: Connection) -> dict:
    """The connection's credentials, with the access token refreshed first when it is (nearly) expired.

    Concurrent callers refresh once: the row is locked, re-read, and only refreshed if still stale. A refused refresh
    marks the connection `needs_reauth` (and announces it); an unreachable token endpoint changes nothing.
    """
    credentials = connection.credentials
    if not _expires_soon(credentials):
        return credentials
    try:
        with transaction.atomic():
            locked = Connection.objects.select_for_update(of=("self",)).select_related("integration").get(pk=connection.pk)
            credentials = locked.credentials
            if _expires_soon(credentials):
                credentials = _refresh_stored(locked, credentials)
    except ConnectionUnusable as exc:
        # Recorded only now: the transaction above was rolled back by this very exception.
        if getattr(exc, "reauth_reason", None) is not None:
            Connection.objects.filter(pk=connection.pk).update(status=Connection.STATUS_NEEDS_REAUTH,
                                                               status_detail=exc.reauth_reason[:500])
            hot_cache.bump()
            connection.status = Connection.STATUS_NEEDS_REAUTH
            lifecycle.announce(lifecycle.NEEDS_REAUTH, connection)
        raise
    connection.credentials_ciphertext = locked.credentials_ciphertext
    return credentials


def _refresh_stored(connection: Connection, credentials: dict) -> dict:
    if not credentials.get("refresh_token"):
        _needs_reauth(connection, "The access token expired and there is no refresh token.")
    try:
        refreshed = refresh(connection.integration, credentials)
    except TokenRequestRefused as exc:
        _needs_reauth(connection, f"The OAuth2 token refresh was refused (HTTP {exc.status}).")
    connection.credentials = refreshed
    connection.save(update_fields=["credentials_ciphertext", "updated_at"])
    log.info("Refreshed OAuth2 token of connection %s.", connection.pk)
    return refreshed


def _needs_reauth(connection: Connection, why: str):
    """Raise ConnectionUnusable; `fresh_credentials` records the status once the refresh transaction is rolled back."""
    exc = ConnectionUnusable(f"Connection {connection.pk} needs re-authorization: {why}", Connection.STATUS_NEEDS_REAUTH)
    exc.reauth_reason = why
    raise exc
