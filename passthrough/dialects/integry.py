"""Integry-compatible dialect: see ../shared/spec/integry.md.

Integry's Python SDK (integry 0.0.20) POSTs everything below `/integry/`, signs each call with
`Hash = HMAC-SHA256(App-Secret, User-ID)`, never follows redirects and only treats 200 as success. So: every
route is POST-only, with or without its trailing slash and with any run of slashes between segments (`call_sync`
sends `/integry//functions/...`); errors are always JSON, `{error, error_details}` for 400, `{detail}` otherwise.
"""

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from datetime import timezone as dt_timezone
from functools import wraps

from django.db.models import Prefetch
from django.http import JsonResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from connections import hot_cache
from connections.authentication import active_api_key
from connections.crypto import DecryptionError
from connections.models import Connection, Integration, Organization
from integration_platform.errors import (
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PlatformError,
)

PAGE_SIZE = 50
CALL_REFUSED = "Could not call the function due to invalid input. Please see `error_details` for further information."
AUTH_FAILED = "Invalid App-Key, User-ID or Hash."
KEY_WITHOUT_SECRET = "This API key cannot verify Integry requests (it predates them); create a new API key."
KEY_ID = re.compile(rb"[A-Za-z0-9_-]{1,40}")
CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


# --- Errors: the one place where platform errors become Integry's shapes --------------------------------------------

def error_response(exc: PlatformError) -> JsonResponse:
    if exc.status == 400:
        body = {"error": exc.message, "error_details": list(exc.details) or [exc.message]}
    else:
        body = {"detail": exc.message}
    response = JsonResponse(body, status=exc.status)
    if exc.retry_after:
        response["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


@csrf_exempt
def not_found(request, **kwargs):
    return JsonResponse({"detail": "Not found."}, status=404)


# --- Authentication -------------------------------------------------------------------------------------------------

@dataclass
class Caller:
    """An Integry request verified for one end user of one organization."""

    organization: Organization
    user_id: str
    secrets: tuple  # the Hash and the API key: redacted from the call log


def _header(request, name) -> bytes:
    # WSGI hands header bytes over as latin-1 text; the HMAC is over the bytes the client sent.
    value = request.headers.get(name, "").strip()
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def authenticate(request) -> Caller:
    """Verify `App-Key`, `User-ID` and `Hash`; every failure is the same 401."""
    app_key, user_id, given = _header(request, "App-Key"), _header(request, "User-ID"), _header(request, "Hash")
    # PostgreSQL text cannot hold NUL: such values could never match, and must not reach a query.
    if not (KEY_ID.fullmatch(app_key) and user_id and given) or CONTROL.search(user_id):
        raise NotAuthenticated(AUTH_FAILED)
    key_id = app_key.decode("latin-1")
    api_key = hot_cache.api_key(key_id, lambda: active_api_key(key_id))
    if api_key is None:
        raise NotAuthenticated(AUTH_FAILED)
    if not api_key.key_ciphertext:
        raise NotAuthenticated(KEY_WITHOUT_SECRET)
    try:
        secret = api_key.secret()
    except DecryptionError:
        raise NotAuthenticated(KEY_WITHOUT_SECRET) from None
    expected = hmac.new(secret.encode(), user_id, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, given.lower()):
        raise NotAuthenticated(AUTH_FAILED)
    api_key.touch()
    try:
        user = user_id.decode("utf-8")
    except UnicodeDecodeError:
        raise NotAuthenticated(AUTH_FAILED) from None
    return Caller(api_key.organization, user, (given.decode("latin-1"), secret))


# --- Request plumbing -----------------------------------------------------------------------------------------------

def request_body(request) -> dict:
    """The JSON object sent, `{}` for an empty body; any Content-Type."""
    raw = request.body  # its size was checked by LimitRequestBody
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise InvalidInput("Invalid input.", ["body: Must be a JSON object."])
    return body


def integry_endpoint(view):
    """POST only, no CSRF; authenticate, parse the body, run `view(request, caller, body, **kwargs)` → 200 JSON."""

    @csrf_exempt
    @wraps(view)
    def endpoint(request, **kwargs):
        if request.method != "POST":
            response = JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
            response["Allow"] = "POST"
            return response
        try:
            caller = authenticate(request)
            return JsonResponse(view(request, caller, request_body(request), **kwargs))
        except PlatformError as exc:
            return error_response(exc)

    return endpoint


def is_true(value) -> bool:
    return str(value).lower() in ("true", "1")


# --- Pagination: opaque keyset cursors, `null` after the last page --------------------------------------------------

def _encode_cursor(kind: str, after: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{after}".encode()).decode().rstrip("=")


def _decode_cursor(kind: str, cursor) -> str | None:
    """The key to continue after, or None for the first page."""
    if cursor in (None, ""):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode() if isinstance(cursor, str) else ""
    except (binascii.Error, ValueError):
        text = ""
    prefix, _, after = text.partition(":")
    if prefix != kind or not after or "\x00" in after:
        raise InvalidInput("Invalid input.", ["_cursor: Invalid cursor."])
    return after


def page(queryset, key: str, kind: str, request, body) -> tuple[list, str | None]:
    """One page of `queryset` ordered by `key`, and the cursor of the next page (None on the last)."""
    after = _decode_cursor(kind, body.get("_cursor") or request.GET.get("_cursor"))
    if after is not None:
        queryset = queryset.filter(**{f"{key}__gt": after})
    rows = list(queryset.order_by(key)[: PAGE_SIZE + 1])
    if len(rows) <= PAGE_SIZE:
        return rows, None
    rows = rows[:PAGE_SIZE]
    return rows, _encode_cursor(kind, getattr(rows[-1], key))


def connected_integration_ids(caller: Caller):
    return (Connection.objects.filter(organization=caller.organization, end_user_id=caller.user_id,
                                      status=Connection.STATUS_ACTIVE).values("integration_id"))


# --- Apps -----------------------------------------------------------------------------------------------------------

def apps(caller: Caller):
    accounts = Connection.objects.filter(organization=caller.organization, end_user_id=caller.user_id,
                                         status=Connection.STATUS_ACTIVE).order_by("id")
    return Integration.objects.filter(enabled=True).prefetch_related(
        Prefetch("connections", queryset=accounts, to_attr="user_accounts"))


def app_json(integration: Integration) -> dict:
    return {
        "id": integration.id,
        "name": integration.slug,
        "title": integration.name,
        "icon_url": integration.logo_url,
        "docs_url": integration.docs_url,
        "login_url": "",
        "allow_multiple_connected_accounts": True,
        "connected_accounts": [connected_account_json(account) for account in integration.user_accounts],
    }


def connected_account_json(connection: Connection) -> dict:
    return {"id": connection.pk, "display_name": connection.label or connection.end_user_id,
            "modified_at": connection.updated_at.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


@integry_endpoint
def apps_list(request, caller, body):
    found = apps(caller)
    if is_true(request.GET.get("connected_only")):
        found = found.filter(id__in=connected_integration_ids(caller))
    rows, cursor = page(found, "slug", "apps", request, body)
    return {"apps": [app_json(integration) for integration in rows], "_cursor": cursor}


@integry_endpoint
def app_get(request, caller, body, name):
    integration = apps(caller).filter(slug__iexact=name).first()
    if integration is None:
        raise NotFound("App not found")
    return app_json(integration)


NAME = r"(?P<name>[^/\x00]+)"  # a NUL can name nothing (and PostgreSQL refuses it in a query)

urlpatterns = [
    re_path(r"^apps/+list/*$", apps_list, name="integry-apps-list"),
    re_path(rf"^apps/+{NAME}/+get/*$", app_get, name="integry-app-get"),
    re_path(r"", not_found),
]
