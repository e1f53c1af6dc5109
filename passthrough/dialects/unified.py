"""Unified.to-compatible passthrough under /unified/: see ../shared/spec/unified.md.

One route, `passthrough/{connection_id}/{path}`, where the call to us *is* the upstream call: its method, path, query,
headers and body go upstream (with the connection's credentials), and the upstream's status, headers and body come
back unchanged, so Unified's SDK (`unified-python-sdk`, unmodified) works against us. Anything else under /unified/
is a 404. Our own failures answer Unified's `{statusCode, error, message}` shape, built in `error_response` only.
"""

import json
import math
import re
from http.client import responses as REASON_PHRASES
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlsplit

from django.conf import settings
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpResponse
from django.urls import re_path
from django.utils.encoding import repercent_broken_unicode
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from connections import client, hot_cache
from connections.authentication import api_key_from_secret, bearer_token
from connections.models import Connection
from integration_platform.errors import (ConnectionUnusable, InvalidInput, NotAuthenticated, PlatformError,
                                         UpstreamTimeout, UpstreamUnreachable)
from passthrough import services
from passthrough.api.passthrough_views import sync_timeout
from passthrough.connection_lookup import connection_by_id
from passthrough.models import FunctionCall
from passthrough.retries import RETRY_HEADER, requested_retries

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DOMAIN_PARAMETER = "__domain"
# Never forwarded upstream (§4): our own credentials (the API key; an account token is ours too), cookies for our
# host, the encodings our outbound client negotiates itself, what proxies in front of us added, and the caller's
# retry request to us (X-Passthrough-Retries). Hop-by-hop headers (and those the caller's Connection header lists),
# Host and Content-Length are dropped by the client.
DROPPED_REQUEST_HEADERS = frozenset({"authorization", "x-account-token", "cookie", "accept-encoding", "forwarded",
                                     "x-real-ip", RETRY_HEADER.lower()})
# The WSGI server writes its own Date and Server; upstream copies would be sent twice.
DROPPED_RESPONSE_HEADERS = frozenset({"date", "server"})
# Upstream response headers that are not valid HTTP (a name that is not a token, control characters in a value)
# are not repeated to our caller: the WSGI server would refuse the whole response.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADER_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")
# Characters left as they are when re-encoding a decoded path segment (RFC 3986 pchar minus '%').
PATH_SAFE = "/:@!$&'()*+,;=~"


# --- Responses, and Unified's error shape (made in one place) ---------------------------------------------------------

class UpstreamHttpResponse(HttpResponse):
    """An HttpResponse that sends a repeated header (Set-Cookie, Link...) as separate lines.

    Django keeps one value per header name; the repeats wait in `repeated_headers`, and `items()`, which the WSGI
    handler sends, adds them back.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repeated_headers = []

    def add_header(self, name: str, value: str) -> None:
        if self.has_header(name):
            self.repeated_headers.append((name, value))
        else:
            self[name] = value

    def items(self):
        return [*super().items(), *self.repeated_headers]


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "Client Error" if status < 500 else "Server Error")


def unified_error(status: int, message: str) -> UpstreamHttpResponse:
    """`{"statusCode", "error", "message"}`, as Unified answers its own errors."""
    body = json.dumps({"statusCode": status, "error": reason_phrase(status), "message": message})
    return UpstreamHttpResponse(body, status=status, content_type="application/json")


def error_response(exc: PlatformError) -> UpstreamHttpResponse:
    """Every refusal and failure of ours. A broken connection is a 401 for Unified, a disabled one 403 for us."""
    status = exc.status
    if isinstance(exc, ConnectionUnusable):
        status = 401 if exc.connection_status == Connection.STATUS_NEEDS_REAUTH else 403
    details = [detail for detail in exc.details if detail != exc.message]
    message = f"{exc.message.rstrip('.')}: {'; '.join(details)}" if details else exc.message
    response = unified_error(status, message)
    if exc.retry_after:
        response["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


# --- The request: who, which connection, where to, what ---------------------------------------------------------------

def caller_key(request) -> tuple:
    """(organization, API key as sent). The SDK sends the key raw; docs and curl samples send `Bearer <key>`."""
    key = bearer_token(request)
    api_key = api_key_from_secret(key) if key else None
    if api_key is None:
        raise NotAuthenticated("Missing, invalid or revoked API key.")
    return api_key.organization, key


def django_decoded(raw_path: str) -> str:
    """A raw path decoded as Django decodes PATH_INFO (bytes that are not UTF-8 stay percent-encoded)."""
    return repercent_broken_unicode(unquote_to_bytes(raw_path)).decode()


def upstream_path(request, decoded: str) -> str:
    """What follows the connection id, percent-encoded as the caller sent it (so `%2F` stays `%2F`).

    The raw request target is known under gunicorn (`RAW_URI`) and some other servers (`REQUEST_URI`). It is used
    only if it decodes to the path Django routed; otherwise the decoded path is re-encoded segment by segment.
    """
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise InvalidInput("Invalid path.", ["path: '.' and '..' segments are not allowed."])
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or ""
    raw_path = raw.split("?", 1)[0] if raw.startswith("/") else urlsplit(raw).path
    prefix = request.path[: len(request.path) - len(decoded)]  # "/unified/passthrough/<id>/"
    slashes = prefix.count("/")
    parts = raw_path.split("/", slashes)
    if len(parts) == slashes + 1 and django_decoded("/".join(parts[:-1]) + "/") == prefix \
            and django_decoded(parts[-1]) == decoded:
        return parts[-1]
    return quote(decoded, safe=PATH_SAFE)


def query_pairs(request) -> list:
    """Our query string as (name, value) pairs: order and repeated names kept."""
    query = get_bytes_from_wsgi(request.META, "QUERY_STRING", "").decode("utf-8", "replace")
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=limit)
    except ValueError:
        raise InvalidInput("Invalid query.", [f"query: More than {limit} parameters."]) from None


def upstream_target(request, connection: Connection, path: str) -> client.Target:
    """The upstream URL: `path` below the base URL, whose host `__domain` may replace (§5); `__domain` is not sent."""
    pairs = query_pairs(request)
    domains = [value for name, value in pairs if name == DOMAIN_PARAMETER]
    if len(domains) > 1:
        raise InvalidInput("Invalid __domain.", ["__domain: Give it at most once."])
    integration = connection.integration
    base_url = client.domain_base_url(integration, domains[0]) if domains else None
    query = [(name, value) for name, value in pairs if name != DOMAIN_PARAMETER]
    return client.build_target(integration, upstream_path(request, path), query, base_url=base_url)


def forwarded_headers(request) -> dict:
    return {name: value for name, value in request.headers.items()
            if name.lower() not in DROPPED_REQUEST_HEADERS and not name.lower().startswith("x-forwarded-")}


# --- The response: the upstream's own ---------------------------------------------------------------------------------

def upstream_response(method: str, upstream: client.UpstreamResponse) -> UpstreamHttpResponse:
    """Upstream status, headers and body as they came. An error answer with no body gets a §7 body (same status):
    the SDK cannot build its SDKError from an empty one."""
    if not 100 <= upstream.status <= 599:
        raise UpstreamUnreachable(f"The upstream answered with an invalid HTTP status ({upstream.status}).")
    if upstream.status >= 400 and not upstream.body and method != "HEAD":
        response = unified_error(upstream.status, f"The upstream answered {upstream.status} with an empty body.")
        skipped = DROPPED_RESPONSE_HEADERS | {"content-type"}
    else:
        response = UpstreamHttpResponse(upstream.body, status=upstream.status)
        del response["Content-Type"]  # Django's default; the upstream's, if any, is copied below
        skipped = DROPPED_RESPONSE_HEADERS
    for name, value in upstream.headers:
        value = re.sub(r"[\r\n]+[ \t]*", " ", value)  # an obsolete folded value, unfolded
        if name.lower() not in skipped and HEADER_NAME.fullmatch(name) and HEADER_VALUE.fullmatch(value):
            response.add_header(name, value)
    return response


# --- The view ---------------------------------------------------------------------------------------------------------

UnifiedErrorBody = inline_serializer("UnifiedError", {
    "statusCode": serializers.IntegerField(), "error": serializers.CharField(), "message": serializers.CharField(),
})
PASSTHROUGH_SCHEMA = extend_schema(
    tags=["unified"],
    summary="Unified-compatible passthrough",
    description=(
        "Unified.to-compatible passthrough, for Unified's SDKs (`server_url=<this server>/unified`). The method, "
        "path, query, headers and body of this call are sent to the connection's API with its credentials added; "
        "the upstream status, headers and body come back unchanged. Authenticate with the API key, raw or as "
        "`Bearer <key>`. HEAD and OPTIONS are passed through as well. Errors of our own (never the upstream's) are "
        "`{statusCode, error, message}`; an upstream 4xx/5xx with an empty body also gets that shape, with the "
        "upstream's status."
    ),
    parameters=[
        OpenApiParameter("connection_id", OpenApiTypes.STR, OpenApiParameter.PATH,
                         description="The id of one of your connections."),
        OpenApiParameter("path", OpenApiTypes.STR, OpenApiParameter.PATH,
                         description="Relative to the integration's base URL; leading slashes are ignored and "
                                     "empty means the base URL. Percent-encoding is kept; '.' and '..' segments "
                                     "are refused."),
        OpenApiParameter(DOMAIN_PARAMETER, OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                         description="`host` or `host:port` replacing the base URL's host for this call; must be "
                                     "the base URL's host or one of the integration's allowed override hosts. "
                                     "Not forwarded."),
        OpenApiParameter("query", {"type": "object", "additionalProperties": {"type": "string"}},
                         OpenApiParameter.QUERY, required=False, style="form", explode=True,
                         description="Any other query parameters are forwarded upstream, in order, repeats kept."),
    ],
    request={"*/*": OpenApiTypes.BINARY},
    responses={
        (200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The upstream's answer, whatever its status."),
        **{status: OpenApiResponse(UnifiedErrorBody, description=description) for status, description in (
            (400, "Malformed request, refused `__domain` or path."),
            (401, "Missing or invalid API key, or the connection needs re-authorization."),
            (403, "The connection is disabled."),
            (404, "Unknown connection (or another organization's)."),
            (405, "Method not supported."),
            (408, "The upstream did not answer within the synchronous limit; use the async passthrough."),
            (413, "Request body too large."),
            (429, "Rate limited; see Retry-After."),
            (502, "The upstream could not be reached."),
        )},
    },
)


@hot_cache.checked_at_permit
class PassthroughView(APIView):
    """`/unified/passthrough/{connection_id}/{path}`, any of METHODS.

    DRF only describes this route in the OpenAPI schema: requests bypass its parsers, content negotiation and
    response headers (`Allow`, `Vary`), so bodies and headers pass through byte for byte.
    """

    def dispatch(self, request, connection_id, path):
        try:
            if request.method not in METHODS:
                response = unified_error(405, f"Method {request.method} is not supported.")
                response["Allow"] = ", ".join(METHODS)
                return response
            return getattr(self, request.method.lower())(request, connection_id, path)
        except PlatformError as exc:
            return error_response(exc)

    @PASSTHROUGH_SCHEMA
    def forward(self, request, connection_id, path):
        organization, key = caller_key(request)
        connection = connection_by_id(organization, connection_id)
        target = upstream_target(request, connection, path)
        body = request.body  # never parsed; its size was checked by LimitRequestBody (chunked bodies included)
        try:
            upstream = services.passthrough_execute_retrying(
                connection=connection, method=request.method, target=target, headers=forwarded_headers(request),
                body=body or None, dialect=FunctionCall.DIALECT_UNIFIED, extra_secrets=(key,),
                retries=requested_retries(request))
        except UpstreamTimeout as exc:
            raise sync_timeout(exc, request) from None
        return upstream_response(request.method, upstream)

    get = post = put = patch = delete = head = options = forward


@csrf_exempt
def not_found(request):
    """Unified's other APIs (connections, unified models, webhooks...) are not provided."""
    return unified_error(404, "Not found. Only /unified/passthrough/{connection_id}/{path} is provided here.")


urlpatterns = [
    re_path(r"^passthrough/(?P<connection_id>[^/]+)/(?P<path>[\s\S]*)\Z", PassthroughView.as_view(),
            name="unified-passthrough"),
    re_path(r"", not_found, name="unified-not-found"),
]
