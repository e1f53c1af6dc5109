"""The platform's one error hierarchy, and its mapping to the native API's `{error, error_details}` shape.

Services raise these; each API surface (native, Merge, Unified, Integry) turns them into its own HTTP shape in
one place. `transient` says whether repeating the same call later may succeed: connections/retry_policy.py reads it.
"""

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response


class PlatformError(Exception):
    status = 400
    transient = False

    def __init__(self, message: str, details: list[str] | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.retry_after = retry_after


class InvalidInput(PlatformError):
    """Bad parameters, refused host, unusable connection: nothing was sent upstream."""


class ConnectionUnusable(InvalidInput):
    """The connection exists but cannot make calls (needs re-authorization, or disabled)."""

    def __init__(self, message, connection_status):
        super().__init__(message, [message])
        self.connection_status = connection_status


class NotAuthenticated(PlatformError):
    status = 401


class NotFound(PlatformError):
    status = 404


class PayloadTooLarge(PlatformError):
    status = 413


class RateLimited(PlatformError):
    status = 429
    transient = True


class SharedStoreUnavailable(PlatformError):
    """The shared store (the Redis of CACHE_URL, which holds the rate limits) cannot be reached: nothing was sent."""

    status = 503
    transient = True


class UpstreamUnreachable(PlatformError):
    """DNS, connect, TLS or protocol failure: nothing was delivered upstream."""

    status = 502
    transient = True


class UpstreamAnswerUnusable(UpstreamUnreachable):
    """The request was delivered, but its answer cannot be used (cut off, too large, a refused redirect).

    Not safe to repeat blindly: the upstream may have acted on it."""

    transient = False


class UpstreamTimeout(PlatformError):
    """The upstream did not answer within the time budget of this call."""

    status = 408
    transient = True


def store_outage(exc) -> PlatformError | None:
    """A Redis error of the shared store met outside the limiter (e.g. by the cache) as the same 503, not a 500."""
    from connections import shared_store  # connections builds on this module

    return shared_store.unavailable(exc) if isinstance(exc, shared_store.STORE_ERRORS) else None


def native_body(message, details=()):
    return {"error": message, "error_details": list(details)}


def _flatten(detail, prefix=""):
    if isinstance(detail, dict):
        return [line for key, value in detail.items() for line in _flatten(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)]
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def native_exception_handler(exc, context):
    """DRF exception handler for the native API: every error is JSON `{error, error_details}`."""
    headers = {}
    exc = store_outage(exc) or exc
    if isinstance(exc, PlatformError):
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        return Response(native_body(exc.message, exc.details), status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, drf.ValidationError):
        return Response(native_body("Invalid input.", _flatten(exc.detail)), status=400)
    if isinstance(exc, drf.APIException):
        if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        return Response(native_body(str(exc.detail)), status=exc.status_code, headers=headers)
    return None


def json_not_found(request, exception=None):
    return JsonResponse(native_body("Not found."), status=404)


def json_server_error(request):
    return JsonResponse(native_body("Internal server error."), status=500)
