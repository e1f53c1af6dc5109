"""The connect flow: sessions, OAuth2 sign-in, key forms, the end of the flow, public-token exchange.

Wire contract: ../shared/spec/connect.md. The views (connect_views.py, the native API and the Merge dialect) parse
and render; everything that decides or stores is here.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connections import client, crypto, lifecycle, oauth2
from connections.models import ConnectSession, Connection, Integration, token_hash
from integration_platform.errors import InvalidInput, NotFound, PlatformError

SESSION_MINUTES_DEFAULT, SESSION_MINUTES_MAX = 30, 10080
STATE_LIFETIME = timedelta(minutes=10)
PUBLIC_TOKEN_LIFETIME = timedelta(hours=1)
KEY_FORM_SCHEMES = ("api_key", "basic", "bearer")


class PageError(Exception):
    """The page cannot go on: shown as an HTML page with this status (404 unknown, 410 expired or used, 400)."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class FlowFailed(Exception):
    """The flow ended with an error the developer's app is told about (`error`, `error_description`)."""

    def __init__(self, session: ConnectSession, error: str, description: str):
        super().__init__(description)
        self.session, self.error, self.description = session, error, description


class CredentialsRefused(Exception):
    """A key form's credentials are missing, or the integration's `verify` request was refused: show the form again."""


@dataclass
class Completed:
    session: ConnectSession
    public_token: str


# --- Sessions ------------------------------------------------------------------------------------------------------

def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_origin(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/") and not (
        parts.query or parts.fragment or "@" in parts.netloc)


def allowed_origins(organization) -> list[str]:
    configured = [o.strip() for o in settings.CONNECT_ALLOWED_REDIRECT_ORIGINS.split(",") if o.strip()]
    return [origin.rstrip("/").lower() for origin in [*organization.allowed_redirect_origins, *configured]]


def redirect_url_problems(organization, redirect_url: str) -> list[str]:
    """Where a flow may end: only an allowed origin of the organization (no open redirect)."""
    if not redirect_url:
        return []
    parts = urlsplit(redirect_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["redirect_url: Must be an absolute http(s) URL."]
    if origin_of(redirect_url) not in allowed_origins(organization):
        return [f"redirect_url: The origin {origin_of(redirect_url)} is not an allowed redirect origin."]
    return []


def session_create(organization, *, end_user_id, end_user_email="", end_user_organization_name="", integrations=None,
                   categories=None, redirect_url="", connection_id=None, expires_in_minutes=None):
    """Open a connect session; returns (session, token). The token is shown once (it is the page's URL)."""
    errors = []
    if not isinstance(end_user_id, str) or not end_user_id.strip():
        errors.append("end_user_id: This field is required.")
    minutes = SESSION_MINUTES_DEFAULT if expires_in_minutes is None else expires_in_minutes
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= SESSION_MINUTES_MAX:
        errors.append(f"expires_in_minutes: Must be an integer from 1 to {SESSION_MINUTES_MAX}.")
    errors += redirect_url_problems(organization, redirect_url)
    offered = Integration.objects.filter(enabled=True)
    if integrations:
        known = {i.slug: i for i in offered.filter(slug__in=integrations)}
        errors += [f"integrations: Unknown or disabled integration {slug!r}." for slug in integrations if slug not in known]
        offered = offered.filter(slug__in=integrations)
    if errors:
        raise InvalidInput("Invalid input.", errors)
    if categories and not integrations:  # an integration named explicitly is offered whatever its categories
        offered = [i for i in offered if set(i.categories) & set(categories)]
    connection = None
    if connection_id is not None:
        connection = Connection.objects.filter(organization=organization, pk=connection_id).first()
        if connection is None:
            raise NotFound("Unknown connection.")
        offered = [connection.integration]
    token = ConnectSession.TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        session = ConnectSession.objects.create(
            organization=organization, token_hash=token_hash(token), end_user_id=end_user_id.strip(),
            end_user_email=end_user_email or "", end_user_organization_name=end_user_organization_name or "",
            redirect_url=redirect_url or "", connection=connection,
            expires_at=timezone.now() + timedelta(minutes=minutes))
        session.integrations.set(offered)
    return session, token


def session_open(token: str) -> ConnectSession:
    """The session a page URL names, if it can still be used; PageError 404 (unknown) or 410 (expired, used)."""
    session = ConnectSession.objects.select_related("organization").filter(token_hash=token_hash(token)).first()
    if session is None:
        raise PageError(404, "Link not found", "This connect link is not valid. Ask the app that sent you for a new one.")
    ensure_open(session)
    return session


def ensure_open(session: ConnectSession) -> None:
    if session.state != "open":
        what = "was already used" if session.state == "used" else "has expired"
        raise PageError(410, "Link no longer valid", f"This connect link {what}. Ask the app that sent you for a new one.")


def offered_integration(session: ConnectSession, slug: str) -> Integration:
    integration = session.integrations.filter(slug=slug, enabled=True).first()
    if integration is None:
        raise PageError(404, "Integration not found", "This integration is not offered on this connect link.")
    return integration


# --- OAuth2 --------------------------------------------------------------------------------------------------------

def oauth_start(session: ConnectSession, integration: Integration, redirect_uri: str) -> tuple[str, str]:
    """Begin sign-in at the provider; returns (authorize URL, browser binding for the cookie)."""
    if not integration.auth_config.get("client_id"):
        raise PageError(400, f"{integration.name} is not available yet",
                        f"{integration.name} has no OAuth app configured on this platform yet. Ask the app that sent you.")
    state, browser = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = oauth2.pkce_pair()
    session.oauth_state_hash, session.oauth_browser_hash = token_hash(state), token_hash(browser)
    session.oauth_verifier_ciphertext = crypto.encrypt_text(verifier)
    session.oauth_integration, session.oauth_started_at = integration, timezone.now()
    session.save(update_fields=["oauth_state_hash", "oauth_browser_hash", "oauth_verifier_ciphertext",
                                "oauth_integration", "oauth_started_at"])
    return oauth2.authorize_url(integration, redirect_uri=redirect_uri, state=state, code_challenge=challenge), browser


def oauth_finish(*, state: str, browser: str, code: str, error: str, redirect_uri: str) -> Completed:
    """The provider sent the browser back. PageError for a bad state; FlowFailed for a refusal; else Completed."""
    session = _claim_state(state, browser)
    integration = session.oauth_integration
    if error:
        raise FlowFailed(session, error[:100], "The sign-in was not completed at the provider.")
    if not code:
        raise PageError(400, "Sign-in failed", "The provider sent no authorization code.")
    try:
        credentials = oauth2.exchange_code(integration, code=code, redirect_uri=redirect_uri,
                                           code_verifier=crypto.decrypt_text(session.oauth_verifier_ciphertext))
    except (oauth2.TokenRequestRefused, PlatformError):
        raise FlowFailed(session, "token_exchange_failed", f"{integration.name} did not accept the sign-in.") from None
    return complete(session, integration, credentials)


def _claim_state(state: str, browser: str) -> ConnectSession:
    """Single use: the state is cleared here whatever happens next."""
    refused = PageError(400, "Sign-in could not be verified",
                        "This sign-in link is unknown, expired or was opened in another browser. Start again from the app.")
    if not state:
        raise refused
    with transaction.atomic():
        session = (ConnectSession.objects.select_for_update(of=("self",)).select_related("organization", "oauth_integration")
                   .filter(oauth_state_hash=token_hash(state)).first())
        if session is None:
            raise refused
        bound_here = bool(browser) and secrets.compare_digest(session.oauth_browser_hash, token_hash(browser))
        fresh = session.oauth_started_at + STATE_LIFETIME > timezone.now()
        session.oauth_state_hash = session.oauth_browser_hash = ""
        session.save(update_fields=["oauth_state_hash", "oauth_browser_hash"])
    if not (bound_here and fresh):
        raise refused
    ensure_open(session)
    return session


# --- Key forms -----------------------------------------------------------------------------------------------------

KEY_FORM_FIELDS = {"api_key": ("api_key",), "bearer": ("token",), "basic": ("username", "password")}
VERIFY_TIMEOUT = 10
# Who writes `verify` calls to the call log: `recorder(exchange, probe)`, registered by passthrough (which owns the
# log) in its AppConfig.ready(), so that connections/ need not import it.
VERIFY_CALL_RECORDERS: list = []


def key_form_submit(session: ConnectSession, integration: Integration, data) -> Completed:
    """Credentials typed into the form: checked with the integration's `verify` request, then the flow completes."""
    fields = KEY_FORM_FIELDS[integration.auth_scheme]
    credentials = {name: (data.get(name) or "").strip() for name in fields}
    if not all(credentials.values()):
        raise CredentialsRefused("Please fill in every field.")
    verify = integration.auth_config.get("verify")
    if verify:
        _verify(session, integration, credentials, verify)
    return complete(session, integration, credentials)


def _verify(session, integration, credentials, verify: dict) -> None:
    # Never saved: it carries the typed credentials to the client (a reconnected one may be `needs_reauth` right now).
    probe = Connection(pk=session.connection_id, organization=session.organization, integration=integration)
    probe.credentials = credentials
    target = client.build_target(integration, verify.get("path", "/"))
    exchange = client.send(probe, verify.get("method", "GET"), target, {"Accept": "application/json"},
                           timeout=VERIFY_TIMEOUT)
    for record in VERIFY_CALL_RECORDERS:
        record(exchange, probe)
    if exchange.error is not None:
        raise CredentialsRefused(f"{integration.name} could not be reached to check these credentials. Try again.")
    if exchange.response.status in (401, 403):
        raise CredentialsRefused(f"These credentials were refused by {integration.name}. Check them and try again.")


# --- The end of the flow -------------------------------------------------------------------------------------------

def complete(session: ConnectSession, integration: Integration, credentials: dict) -> Completed:
    """Store the credentials (new connection, or the reconnected one in place), end the session, issue a public token."""
    public_token = ConnectSession.PUBLIC_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        locked = ConnectSession.objects.select_for_update().get(pk=session.pk)
        ensure_open(locked)
        connection = locked.connection
        if connection is None:
            connection = Connection(organization=session.organization, integration=integration, end_user_id=session.end_user_id)
            account_token, event = connection.issue_account_token(), lifecycle.LINKED
        else:
            account_token, event = connection.account_token(), lifecycle.RELINKED
        connection.end_user_email = session.end_user_email or connection.end_user_email
        connection.end_user_organization_name = session.end_user_organization_name or connection.end_user_organization_name
        connection.credentials = credentials
        connection.status, connection.status_detail = Connection.STATUS_ACTIVE, ""
        connection.save()
        locked.connection, locked.completed_at = connection, timezone.now()
        locked.public_token_hash = token_hash(public_token)
        locked.public_token_expires_at = locked.completed_at + PUBLIC_TOKEN_LIFETIME
        locked.save(update_fields=["connection", "completed_at", "public_token_hash", "public_token_expires_at"])
        lifecycle.announce(event, connection, account_token=account_token)
    return Completed(locked, public_token)


def redirect_with(url: str, params: dict) -> str:
    """`url` with `params` added to its query (its own query kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


# --- Public token → account token ----------------------------------------------------------------------------------

def public_token_exchange(organization, public_token: str) -> ConnectSession:
    """The completed session of this organization holding the public token (valid 1 h, repeatable); else NotFound."""
    session = (ConnectSession.objects.select_related("connection__integration")
               .filter(organization=organization, public_token_hash=token_hash(public_token or ""),
                       public_token_expires_at__gt=timezone.now(), connection__isnull=False).first())
    if not public_token or session is None:
        raise NotFound("Not found.")
    return session
