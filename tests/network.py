"""Loopback-only test networking: a guard that makes any non-loopback traffic fail the test, a recording local
server, and helpers for calling the outbound client. Fixtures using them are in conftest.py."""

import ipaddress
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connections import client
from tests.factories import make_integration

TOKEN = "tok-SECRET-123456"

REAL_GETADDRINFO = socket.getaddrinfo
REAL_CONNECT = socket.socket.connect
REAL_CONNECT_EX = socket.socket.connect_ex


def _ip(text):
    try:
        return ipaddress.ip_address(str(text).split("%", 1)[0])
    except ValueError:
        return None


class NetworkGuard:
    """Fake DNS for test names, and a tripwire on every connect: only loopback addresses are really connected to.

    `resolve(name, [ips], [ips]...)` answers lookups of `name` in turn (the last answer repeats). A connect to a
    non-loopback address raises AssertionError (a guard bug fails the test loudly), unless the address is a declared
    `decoy`: then it is recorded and refused locally (ConnectionRefusedError), still without sending anything.
    """

    def __init__(self):
        self.names = {}
        self.lookups = []
        self.connects = []
        self.decoys = set()

    def resolve(self, name, *answers):
        self.names[name.lower()] = [list(a) for a in answers]

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if _ip(name) is not None:
            return REAL_GETADDRINFO(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        key = name.lower().rstrip(".")
        if key not in self.names:
            raise AssertionError(f"the code under test tried to resolve {name!r} through real DNS")
        self.lookups.append(key)
        answers = self.names[key]
        ips = answers.pop(0) if len(answers) > 1 else answers[0]
        port = int(port or 0)
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0)) if ":" in ip
                else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port)) for ip in ips]

    def check_connect(self, sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        ip = _ip(address[0])
        self.connects.append((str(ip), address[1]))
        if ip is not None and ip.is_loopback:
            return
        if str(ip) in self.decoys:
            raise ConnectionRefusedError(f"decoy {ip}: refused locally by the test, nothing sent")
        raise AssertionError(f"the code under test tried to connect to non-loopback address {address!r}")

    def connected_to(self, port):
        return [c for c in self.connects if c[1] == port]

    def remote_connects(self):
        """Connect attempts to non-loopback addresses (the database and cache clients only use loopback)."""
        return [c for c in self.connects if not (_ip(c[0]) and _ip(c[0]).is_loopback)]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    method: str
    path: str
    headers: list
    body: bytes

    def values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        values = self.values(name)
        return values[0] if values else None


def reply(status=200, headers=(), body=b""):
    return status, list(headers), body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _serve(self):
        outer = self.server.outer
        length = int(self.headers.get("Content-Length") or 0)
        received = Received(self.command, self.path, list(self.headers.items()), self.rfile.read(length) if length else b"")
        outer.requests.append(received)
        answer = outer.app(received)
        if callable(answer):  # the app writes the answer itself (slow drip)
            self.close_connection = True
            answer(self)
            return
        status, headers, body = answer
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class LocalServer:
    """An HTTP/1.1 server thread on 127.0.0.1 that records every request and counts every TCP connection.

    `app(received) -> (status, [(name, value)...], body)` or a callable taking the request handler (writes itself).
    """

    def __init__(self, app=None):
        self.app = app or (lambda received: reply(200, [("Content-Type", "application/json")], b'{"ok": true}'))
        self.requests = []
        self.connections = 0

    def __enter__(self):
        outer = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):
                outer.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), _Handler)
        self.server.outer = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


def passthrough(tenant, token, **body):
    """The native passthrough API: POST /api/v1/passthrough for the connection holding `token`."""
    return tenant.client.post("/api/v1/passthrough", body, format="json", HTTP_X_ACCOUNT_TOKEN=token)


def local_integration(server_url, slug="local", auth=None, **extra):
    return make_integration(slug=slug, base_url=server_url, auth=auth, **extra)


def send(connection, method="GET", path="", headers=None, body=None, query=(), timeout=5.0, base_url=None):
    target = client.build_target(connection.integration, path, query, base_url=base_url)
    return client.send(connection, method, target, headers, body, timeout=timeout)



def install_network_guard(monkeypatch) -> "NetworkGuard":
    """Fake DNS for test names; fail on real DNS or any connect to a non-loopback address."""
    guard = NetworkGuard()
    guard.resolve("localhost", ["127.0.0.1"])  # never ask the system resolver, even for localhost

    def connect(sock, address):
        guard.check_connect(sock, address)
        return REAL_CONNECT(sock, address)

    def connect_ex(sock, address):
        guard.check_connect(sock, address)
        return REAL_CONNECT_EX(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guard.getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return guard
