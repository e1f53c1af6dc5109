"""The benchmark's upstream: a minimal, fast WSGI app (served by gunicorn on loopback).

Every path answers 200 with a small JSON body, so direct calls, nginx and our passthrough all hit the same code.
`/delay/<ms>` answers after sleeping that long (at most 1 s): a stand-in for a real third-party API's latency.
"""

import time

BODY = b'{"ok": true, "service": "bench-upstream"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    # Drain any request body so keep-alive connections stay in sync.
    length = environ.get("CONTENT_LENGTH")
    if length:
        environ["wsgi.input"].read(int(length))
    path = environ.get("PATH_INFO", "")
    if path.startswith("/delay/"):
        try:
            time.sleep(min(1000, max(0, int(path[len("/delay/"):]))) / 1000)
        except ValueError:
            pass
    start_response("200 OK", HEADERS)
    return [BODY]
