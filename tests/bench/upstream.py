"""The benchmark's upstream: a minimal, fast WSGI app (served by gunicorn on loopback).

Every path answers 200 with a small JSON body, so direct calls, nginx and our passthrough all hit the same code.
"""

BODY = b'{"ok": true, "service": "bench-upstream"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    # Drain any request body so keep-alive connections stay in sync.
    length = environ.get("CONTENT_LENGTH")
    if length:
        environ["wsgi.input"].read(int(length))
    start_response("200 OK", HEADERS)
    return [BODY]
