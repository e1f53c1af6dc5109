"""Finding the connection a native or Merge-style call is for, within the caller's organization."""

from django.db.models import OuterRef, Subquery

from connections import hot_cache
from connections.authentication import bearer_token
from connections.models import Connection, token_hash
from integration_platform.errors import InvalidInput, NotAuthenticated, NotFound
from integration_platform.validation import header_value, safe_id
from passthrough.services import passthrough_function_ids

ACCOUNT_TOKEN_HEADER = "X-Account-Token"
# Annotates a connection with the id of its integration's passthrough function, which its call-log rows name.
PASSTHROUGH_FUNCTION_ID = Subquery(passthrough_function_ids(OuterRef("integration_id"))[:1])


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
    connection = hot_cache.connection(("token", organization.pk, token_hash(token)),
                                      lambda: callable_connection(organization, Connection.objects.for_account_token(token)))
    if connection is None:
        raise NotAuthenticated("Invalid account token.")
    return connection


def callable_connection(organization, connections) -> Connection | None:
    """The organization's one connection of `connections`, with its integration and `passthrough_function_id`, or
    None."""
    try:
        # get(), not first(): a token or an id names one connection, and first() would add an ORDER BY to every call.
        return (connections.select_related("integration")
                .annotate(passthrough_function_id=PASSTHROUGH_FUNCTION_ID)
                .get(organization=organization))
    except Connection.DoesNotExist:
        return None


def connection_by_id(organization, connection_id) -> Connection:
    pk = safe_id(connection_id)
    connection = None if pk is None else hot_cache.connection(
        ("id", organization.pk, pk), lambda: callable_connection(organization, Connection.objects.filter(pk=pk)))
    if connection is None:
        raise NotFound("Connection not found.")
    return connection


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
