"""The one outbound HTTP client: the only code that talks to third-party APIs.

It builds the upstream URL (base URL or an allowed override), injects the connection's credentials (its auth
scheme refreshes OAuth2 tokens first), guards user-chosen hosts against SSRF at connect time, follows redirects hop
by hop through the same guard, enforces timeouts and an overall deadline, and returns an `Exchange` that says
exactly what was sent and received, for the function-call log.

Calls refused before anything is sent raise `InvalidInput` (or a subclass). Calls that were sent return an
`Exchange` whose `error` is set when the upstream could not be reached or did not answer in time.
"""

import math
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from socket import timeout as SocketTimeout
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from connections import ratelimit
from connections.addresses import AddressRefused, check_address, ip_literal, normalize_host, resolve_checked
from connections.models import Connection, Integration
from integration_platform.errors import (
    ConnectionUnusable,
    InvalidInput,
    RateLimited,
    UpstreamAnswerUnusable,
    UpstreamTimeout,
    UpstreamUnreachable,
)

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10


# --- Connect-time address guard ------------------------------------------------------------------------------------

class _GuardedConnectionMixin:
    """Resolve once, check every address, connect to a checked address: no DNS-rebinding gap."""

    allow_private = False

    def _new_conn(self):
        try:
            addresses = resolve_checked(self._dns_host, self.port, self.allow_private)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        last_error = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address, socket_options=self.socket_options
                )
            except SocketTimeout as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


def _guarded_adapter(allow_private: bool) -> HTTPAdapter:
    def pool(base_pool, base_connection):
        connection_class = type(f"Guarded{base_connection.__name__}", (_GuardedConnectionMixin, base_connection),
                                {"allow_private": allow_private})
        return type(f"Guarded{base_pool.__name__}", (base_pool,), {"ConnectionCls": connection_class})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": pool(HTTPConnectionPool, HTTPConnection),
                "https": pool(HTTPSConnectionPool, HTTPSConnection),
            }

    return GuardedAdapter(pool_connections=32, pool_maxsize=64, max_retries=0)


# A pool per trust level, so a connection opened under one policy is never reused under a weaker one.
TRUSTED, PUBLIC_ONLY, PRIVATE_ALLOWED = "trusted", "public-only", "private-allowed"


# Requests go straight to a transport adapter (requests' urllib3 pools), not through a `requests.Session`: a session's
# environment lookups, cookie jar, hooks and redirect bookkeeping cost more per call than the adapter's send, and we
# need none of them (no proxies or .netrc from the environment, no cookies kept between tenants, redirects are ours).
ADAPTERS = {
    TRUSTED: HTTPAdapter(pool_connections=32, pool_maxsize=64, max_retries=0),
    PUBLIC_ONLY: _guarded_adapter(allow_private=False),
    PRIVATE_ALLOWED: _guarded_adapter(allow_private=True),
}
DEFAULT_HEADERS = requests.utils.default_headers()  # User-Agent, Accept-Encoding, Accept, Connection: as requests sends


def _prepared(method: str, url: str, headers: dict, body) -> requests.PreparedRequest:
    merged = requests.structures.CaseInsensitiveDict(DEFAULT_HEADERS)
    merged.update(headers)
    request = requests.PreparedRequest()
    request.prepare(method=method, url=url, headers=merged, data=body)
    return request


# --- Targets: where a call goes ------------------------------------------------------------------------------------

@dataclass
class Target:
    """An upstream URL and the trust that applies to it. `query` is a list of pairs (order and repeats kept)."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: list = field(default_factory=list)
    policy: str = TRUSTED

    @property
    def netloc(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    def url(self) -> str:
        return urlunsplit((self.scheme, self.netloc, self.path, urlencode(self.query, doseq=False), ""))


def _split_url(url: str):
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise InvalidInput("Invalid URL.", [f"url: {url!r} is not a valid URL."]) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("Invalid URL.", [f"url: {url!r} must be an absolute http(s) URL."])
    if "@" in parts.netloc:
        raise InvalidInput("Invalid URL.", ["url: User info in URLs is not allowed."])
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("Invalid URL.", [f"url: {url!r} has an invalid port."]) from None
    return parts, normalize_host(parts.hostname or ""), port


def _default_port(scheme, port):
    return port or (443 if scheme == "https" else 80)


def _origin(parts, host, port) -> tuple:
    """(scheme, host, port) of a URL's parts (or a Target): what "same origin" compares."""
    return parts.scheme, host, _default_port(parts.scheme, port)


def _join_path(base_path: str, path: str) -> str:
    """Base path + relative path with exactly one slash; the path's own percent-encoding is kept."""
    segments = path.split("/")
    # Percent-encoded dots count: requests turns %2e back into "." on the wire, and servers resolve the result.
    if any(unquote(segment) in (".", "..") for segment in segments):
        raise InvalidInput("Invalid path.", ["path: '.' and '..' segments are not allowed."])
    relative = quote(path.lstrip("/"), safe="/%:@!$&'()*+,;=-._~")
    base = base_path.rstrip("/")
    return f"{base}/{relative}" if relative else (base_path or "/")


def _split_path_query(path: str):
    path = path.split("#", 1)[0]
    path, _, query = path.partition("?")
    return path, parse_qsl(query, keep_blank_values=True)


def _host_allowed(integration: Integration, host: str, base_host: str) -> bool:
    if host == base_host:
        return True
    for entry in integration.allowed_override_hosts:
        entry = entry.lower().rstrip(".").strip("[]")  # an IPv6 literal may be listed in brackets
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1):
            return True
    return False


def _ensure_host_allowed(integration: Integration, host: str, base_host: str) -> None:
    if not _host_allowed(integration, host, base_host):
        raise InvalidInput("Host not allowed.", [f"host: {host!r} is not an allowed host for {integration.slug}."])


def _override_policy(integration: Integration, host: str) -> str:
    """Trust for a user-chosen host that passed the allowlist: literal IPs are checked now, names at connect time."""
    ip = ip_literal(host)
    allowed_literally = host in {h.lower().strip("[]") for h in integration.allowed_override_hosts}
    allow_private = settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES or (ip is not None and allowed_literally)
    if ip is not None:
        check_address(ip, allow_private)
    return PRIVATE_ALLOWED if allow_private else PUBLIC_ONLY


def build_target(integration: Integration, path: str = "", query=(), *, base_url: str | None = None) -> Target:
    """The upstream target for `path` (may carry a query string) below the integration's base URL or an override.

    `base_url` replaces the base URL for this call (Merge `base_url_override`, Unified `__domain`, an absolute
    Integry `url`): its host must be allowed for the integration, and it is guarded unless it is the base URL's own
    scheme, host and port.
    """
    base_parts, base_host, base_port = _split_url(integration.base_url)
    if base_url is None:
        parts, host, port, policy = base_parts, base_host, base_port, TRUSTED
    else:
        parts, host, port = _split_url(base_url)
        _ensure_host_allowed(integration, host, base_host)
        policy = TRUSTED if _origin(parts, host, port) == _origin(base_parts, base_host, base_port) else (
            _override_policy(integration, host))
    relative, path_query = _split_path_query(path)
    base_query = parse_qsl(parts.query, keep_blank_values=True)
    return Target(parts.scheme, host, port, _join_path(parts.path, relative), base_query + path_query + list(query), policy)


def is_absolute_url(url: str) -> bool:
    # Any `scheme://` is absolute (then refused unless http or https), never a path below the base URL.
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url) is not None


def absolute_url_target(integration: Integration, url: str, query=()) -> Target:
    """A target from an absolute URL (its host must be allowed) or, failing that, a path relative to the base URL."""
    if not is_absolute_url(url):
        return build_target(integration, url, query)
    parts, _, _ = _split_url(url)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return build_target(integration, urlunsplit(("", "", parts.path, parts.query, "")), query, base_url=origin)


def domain_base_url(integration: Integration, domain: str) -> str:
    """The base URL with its host (and port) replaced by a Unified-style `__domain` value: `host` or `host:port`."""
    if (not domain or any(c in domain for c in "/@?#\\") or "://" in domain
            or any(c.isspace() or not c.isprintable() for c in domain)):
        raise InvalidInput("Invalid __domain.", ["__domain: Must be a host name or host:port."])
    parts = urlsplit(integration.base_url)
    try:
        probe = urlsplit(f"//{domain}")  # raises ValueError for e.g. an unclosed IPv6 bracket
        probe.port
    except ValueError:
        raise InvalidInput("Invalid __domain.", ["__domain: Invalid port."]) from None
    if not probe.hostname:
        raise InvalidInput("Invalid __domain.", ["__domain: Must be a host name or host:port."])
    return urlunsplit((parts.scheme, domain, parts.path, "", ""))


# --- Credentials ---------------------------------------------------------------------------------------------------

def ensure_usable(connection: Connection) -> None:
    if connection.status == Connection.STATUS_NEEDS_REAUTH:
        raise ConnectionUnusable(f"Connection {connection.pk} needs re-authorization.", connection.status)
    if connection.status == Connection.STATUS_DISABLED:
        raise ConnectionUnusable(f"Connection {connection.pk} is disabled.", connection.status)
    if not connection.integration.enabled:
        raise ConnectionUnusable(f"Integration {connection.integration.slug} is disabled.", Connection.STATUS_DISABLED)


# --- Sending -------------------------------------------------------------------------------------------------------

@dataclass
class UpstreamResponse:
    status: int
    headers: list  # (name, value) pairs as received, hop-by-hop and framing headers removed
    body: bytes

    def header(self, name: str, default=None):
        return next((v for k, v in self.headers if k.lower() == name.lower()), default)


@dataclass
class Exchange:
    """What was sent and what came back (or why nothing came back), for the caller and the call log."""

    method: str
    url: str
    request_headers: dict
    request_body: bytes | None
    started_at: datetime
    duration_ms: int = 0
    response: UpstreamResponse | None = None
    error: Exception | None = None
    secret_values: list = field(default_factory=list)


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # Latin-1 text without line breaks or control characters


def clean_request_headers(headers: dict) -> dict:
    """Caller headers minus hop-by-hop, Host and Content-Length (recomputed); values stringified.

    A name or value HTTP cannot carry is refused (InvalidInput) rather than failing, or being split, on the wire."""
    connection_listed = {h.strip().lower() for k, v in headers.items() if k.lower() == "connection" for h in str(v).split(",")}
    cleaned = {str(k): str(v) for k, v in headers.items()
               if k.lower() not in HOP_BY_HOP | {"host", "content-length"} | connection_listed}
    invalid = [k for k, v in cleaned.items() if not HEADER_NAME.fullmatch(k) or not HEADER_VALUE.fullmatch(v)]
    if invalid:
        raise InvalidInput("Invalid header.", [f"headers: {k!r} needs a token name and a Latin-1 value without line "
                                               "breaks." for k in invalid])
    return cleaned


def send(connection: Connection, method: str, target: Target, headers: dict | None = None, body: bytes | None = None,
         *, timeout: float, priority: str = ratelimit.INTERACTIVE, permit_wait: float = math.inf) -> Exchange:
    """Send one call for `connection` within `timeout` seconds overall. See the module docstring for the contract.

    Every request it sends first takes a rate-limit permit of `priority` ("interactive" or "background"; a
    background call waits for it at most `permit_wait` s too); a call refused a permit before anything was sent
    raises RateLimited (background: ratelimit.PermitDelayed)."""
    ensure_usable(connection)
    integration = connection.integration
    scheme = integration.scheme
    credentials = scheme.fresh_credentials(connection)
    deadline = time.monotonic() + timeout
    sent_headers = clean_request_headers(headers or {})
    query = list(target.query)
    scheme.inject(sent_headers, query, credentials, integration.auth_config)
    target = Target(target.scheme, target.host, target.port, target.path, query, target.policy)
    exchange = Exchange(method.upper(), target.url(), dict(sent_headers), body, datetime.now(dt_timezone.utc),
                        secret_values=scheme.secret_values(credentials))
    started = time.monotonic()
    try:
        exchange.response = _send_following_redirects(exchange, target, sent_headers, integration, credentials, deadline,
                                                       ratelimit.Permit(connection, priority, permit_wait))
    except (UpstreamTimeout, UpstreamUnreachable) as exc:
        exchange.error = exc
    exchange.duration_ms = int((time.monotonic() - started) * 1000)
    connection.touch()
    return exchange


def _send_following_redirects(exchange, target, headers, integration, credentials, deadline, permit):
    """Follow redirects hop by hop. A refusal on the first hop is a 400 (nothing sent); on a later hop, the call
    was executed, so it becomes an upstream error.

    A hop must go to the integration's base host or one of its allowed override hosts (then through the address
    guard, unless it stays on the same origin); the credentials go only to the origin (scheme, host and port) they
    were injected for."""
    method, url, body = exchange.method, target.url(), exchange.request_body
    policy = target.policy
    credentialed_origin = _origin(target, target.host, target.port)
    base_host = _split_url(integration.base_url)[1]
    for hop in range(MAX_REDIRECTS + 1):
        exchange.url = url
        try:
            response = _send_once(method, url, headers, body, policy, deadline, permit)
        except AddressRefused as exc:
            if hop == 0:
                raise
            raise UpstreamAnswerUnusable(f"Upstream redirected to a refused address: {'; '.join(exc.details)}") from None
        except RateLimited as exc:
            if hop == 0:
                raise
            raise UpstreamAnswerUnusable(f"No rate-limit permit to follow the upstream's redirect: {exc.message}") from None
        location = response.header("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return response
        try:
            here = _origin(*_split_url(url))
            url = urljoin(url, location)
            parts, host, port = _split_url(url)
            _ensure_host_allowed(integration, host, base_host)
            origin = _origin(parts, host, port)
            policy = policy if origin == here else _redirect_policy(host)
        except InvalidInput as exc:
            raise UpstreamAnswerUnusable(f"Upstream redirected to a refused location: {'; '.join(exc.details) or exc}") from None
        except ValueError:
            raise UpstreamAnswerUnusable("Upstream redirected to a refused location: not a valid URL.") from None
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if origin != credentialed_origin:
            headers = _without_credentials(headers, integration, credentials)
    raise UpstreamAnswerUnusable(f"Upstream redirected more than {MAX_REDIRECTS} times.")


def _without_credentials(headers, integration, credentials):
    """The headers minus those the integration's auth scheme injects (for a hop to another origin)."""
    probe = {}
    integration.scheme.inject(probe, [], credentials, integration.auth_config)
    return {k: v for k, v in headers.items() if k not in probe}


def _redirect_policy(host: str) -> str:
    ip = ip_literal(host)
    if ip is not None:
        check_address(ip, settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES)
    return PRIVATE_ALLOWED if settings.PASSTHROUGH_ALLOW_PRIVATE_OVERRIDES else PUBLIC_ONLY


def send_trusted(method: str, url: str, headers: dict, body: bytes | None, *, timeout: float, max_bytes: int) -> UpstreamResponse:
    """One request to a URL the operator configured (an OAuth2 token URL): no credentials injected, no rate-limit
    permit, redirects not followed (a 3xx is returned as is), the answer capped at `max_bytes`."""
    _split_url(url)
    return _send_once(method, url, headers, body, TRUSTED, time.monotonic() + timeout, max_bytes=max_bytes)


def _send_once(method, url, headers, body, policy, deadline, permit=None, max_bytes=None) -> UpstreamResponse:
    if permit is not None:
        deadline = permit.take(deadline)  # last step before the request leaves: the upstream sees no added burst
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UpstreamTimeout("The upstream did not answer in time.")
    try:
        response = ADAPTERS[policy].send(_prepared(method, url, headers, body), stream=True, proxies={},
                                         timeout=(min(settings.OUTBOUND_CONNECT_TIMEOUT, remaining), remaining))
        if permit is not None:
            permit.settle()  # answered: the request reached the upstream by now
    except requests.exceptions.ConnectTimeout:
        raise UpstreamUnreachable("Could not connect to the upstream in time.") from None
    except requests.exceptions.ReadTimeout:
        raise UpstreamTimeout("The upstream did not answer in time.") from None
    except requests.exceptions.RequestException as exc:
        raise UpstreamUnreachable(f"The upstream could not be reached ({type(exc).__name__}).") from None
    except ValueError as exc:  # e.g. a URL requests cannot prepare
        raise UpstreamAnswerUnusable(f"The upstream answer could not be processed ({type(exc).__name__}).") from None
    if permit is not None:
        permit.observe(response.status_code, response.headers)
    with response:
        return UpstreamResponse(response.status_code, _response_headers(response),
                                _read_body(response, deadline, max_bytes or settings.OUTBOUND_MAX_RESPONSE_BYTES))


def _read_body(response, deadline, max_bytes) -> bytes:
    chunks, size = [], 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout("The upstream did not finish its answer in time.")
            sock = getattr(response.raw.connection, "sock", None)
            if sock is not None:
                sock.settimeout(remaining)
            # read1: one receive at most (read/stream would wait for a full chunk, so a slow drip outlasts the deadline).
            chunk = response.raw.read1(64 * 1024, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise UpstreamAnswerUnusable(f"The upstream response is larger than {max_bytes} bytes.")
            chunks.append(chunk)
    except (SocketTimeout, requests.exceptions.ReadTimeout) as exc:
        raise UpstreamTimeout("The upstream did not finish its answer in time.") from exc
    except Exception as exc:
        if isinstance(exc, (UpstreamTimeout, UpstreamUnreachable)):
            raise
        if "timed out" in str(exc).lower():
            raise UpstreamTimeout("The upstream did not finish its answer in time.") from None
        raise UpstreamAnswerUnusable(f"The upstream answer was cut off ({type(exc).__name__}).") from None
    return b"".join(chunks)


def _response_headers(response) -> list:
    # The body is handed on decoded, so its encoding and length headers no longer apply.
    headers = list(response.raw.headers.iteritems())
    listed = {name.strip().lower() for k, v in headers if k.lower() == "connection" for name in v.split(",")}
    dropped = HOP_BY_HOP | {"content-encoding", "content-length"} | listed
    return [(k, v) for k, v in headers if k.lower() not in dropped]


def post_to_user_url(url: str, body: bytes, headers: dict, *, timeout: float, allow_private: bool) -> UpstreamResponse:
    """POST to a URL a tenant chose (webhooks): the address guard applies, redirects are not followed."""
    _, host, _ = _split_url(url)
    ip = ip_literal(host)
    if ip is not None:
        check_address(ip, allow_private)
    policy = PRIVATE_ALLOWED if allow_private else PUBLIC_ONLY
    return _send_once("POST", url, headers, body, policy, time.monotonic() + timeout)


def get_operator_url(url: str, *, timeout: float) -> UpstreamResponse:
    """GET a URL an operator chose (an OpenAPI document to import): private addresses allowed, no redirects."""
    _split_url(url)
    return _send_once("GET", url, {"Accept": "application/json, application/yaml;q=0.9, */*;q=0.8"}, None,
                      PRIVATE_ALLOWED, time.monotonic() + timeout)
