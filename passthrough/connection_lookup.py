"""Finding the connection a native or Merge-style call is for, within the caller's organization."""

from django.db.models import OuterRef, Subquery

from connections import hot_cache
from connections.authentication import bearer_token
from connections.models import Connection, token_hash
from integration_platform.errors import InvalidInput, NotAuthenticated, NotFound
from integration_platform.validation import header_value, safe_id
from passthrough.services import passthrough_function_ids

ACCOUNT_TOKEN_HEADER = "X-Account-Token"


def account_token(request) -> str | None:
    """The X-Account-Token header, None when absent. A value no token can have (not printable ASCII) is an unknown
    token: 401, as any other."""
    try:
        return header_value(request, ACCOUNT_TOKEN_HEADER)
    except InvalidInput:
        raise NotAuthenticated("Invalid account token.") from None


def connection_by_account_token(organization, token: str | None) -> Connection:
    """Missing → 400; unknown or another organization's → 401 (indistinguishable)."""
    if not token:
        raise InvalidInput("Invalid input.", ["X-Account-Token: This header is required."])
    connection = hot_cache.connection((organization.pk, token_hash(token)), lambda: connection_of_token(organization, token))
    if connection is None:
        raise NotAuthenticated("Invalid account token.")
    return connection


def connection_of_token(organization, token: str) -> Connection | None:
    """With `passthrough_function_id`, which its call-log rows name."""
    try:
        # get(), not first(): a token names one connection, and first() would add an ORDER BY to every call.
        return (Connection.objects.for_account_token(token).select_related("integration")
                .annotate(passthrough_function_id=Subquery(passthrough_function_ids(OuterRef("integration_id"))[:1]))
                .get(organization=organization))
    except Connection.DoesNotExist:
        return None


def connection_by_id(organization, connection_id) -> Connection:
    pk = safe_id(connection_id)
    if pk is None:
        raise NotFound("Connection not found.")
    try:
        return Connection.objects.select_related("integration").get(organization=organization, pk=pk)
    except Connection.DoesNotExist:
        raise NotFound("Connection not found.") from None


def native_connection(request, payload) -> Connection:
    """`X-Account-Token` header, or `connection_id` in the body."""
    organization = request.user.organization
    token = account_token(request)
    if token or not isinstance(payload, dict) or payload.get("connection_id") is None:
        return connection_by_account_token(organization, token)
    return connection_by_id(organization, payload["connection_id"])


def caller_secrets(request) -> tuple[str, ...]:
    """Our API key and the account token of this call: secrets too, wherever a caller repeats them (redacted in logs)."""
    return tuple(s for s in (bearer_token(request), account_token(request)) if s)
