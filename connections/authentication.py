"""API-key authentication shared by the native API and the vendor-compatible dialects."""

import hmac

from rest_framework import authentication, exceptions

from connections import hot_cache
from connections.models import ApiKey, token_hash
from integration_platform.errors import InvalidInput
from integration_platform.validation import header_value


class ApiCaller:
    """The authenticated principal of an API request: an organization acting through one API key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.organization = api_key.organization

    def __str__(self):
        return f"{self.organization} ({self.api_key.key_id})"


def api_key_from_secret(full_key: str) -> ApiKey | None:
    """The active key matching `full_key`, or None. Marks it used."""
    key_id, _, secret = full_key.partition(".")
    if not key_id.startswith(ApiKey.KEY_ID_PREFIX) or not secret:
        return None
    api_key = hot_cache.api_key(key_id, lambda: active_api_key(key_id))
    if api_key is None:
        return None
    if not hmac.compare_digest(api_key.key_hash, token_hash(full_key)):
        return None
    api_key.touch()
    return api_key


def active_api_key(key_id: str) -> ApiKey | None:
    try:
        # get(), not first(): key_id is unique, and first() would add an ORDER BY to every authenticated request.
        return ApiKey.objects.active().select_related("organization").get(key_id=key_id)
    except ApiKey.DoesNotExist:
        return None


def bearer_value(header: str) -> str:
    """The credential of an Authorization header, with one optional case-insensitive `Bearer ` scheme stripped."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header


def bearer_token(request) -> str:
    """The API key of a request's `Authorization` header; "" when absent, or not printable ASCII (no key is)."""
    try:
        return bearer_value(header_value(request, "Authorization") or "")
    except InvalidInput:
        return ""


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <api key>`."""

    def authenticate(self, request):
        if not request.headers.get("Authorization"):
            return None
        api_key = api_key_from_secret(bearer_token(request))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiCaller(api_key), api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
