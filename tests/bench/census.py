"""In-process census of one native passthrough request (Django test client, bench database, real upstream).

Run by run.py with the bench environment: `python -m tests.bench.census <api key> <account token>`.
Prints one JSON line with:
- the SQL statements of one warm request (and of one async enqueue);
- a CPU and wall-time breakdown per component, without a profiler: the components are wrapped with timers
  (thread CPU time and wall time, inclusive, per request), then N requests run through the full middleware stack.
"""

import json
import os
import sys
import time
from collections import defaultdict

# (label, module, attribute path): wrapped in place; nested components are included in their parents.
COMPONENTS = [
    ("whole request (test client → response)", "django.test.client", "Client.post"),
    ("  Django's middleware stack and DRF (all but the view's post)", "rest_framework.views", "APIView.dispatch"),
    ("  the view's post", "passthrough.api.passthrough_views", "PassthroughView.post"),
    ("API key authentication (hot cache, HMAC)", "connections.authentication", "api_key_from_secret"),
    ("connection lookup by account token (hot cache)", "passthrough.connection_lookup", "connection_by_account_token"),
    ("envelope parse", "passthrough.envelopes", "parse"),
    ("passthrough_execute (send + log)", "passthrough.services", "passthrough_execute"),
    ("  client.send (outbound call, all of it)", "connections.client", "send"),
    ("    rate-limit permit (one Redis script: cache generation + permit)", "connections.ratelimit", "Permit.take"),
    ("    rate-limit observe", "connections.ratelimit", "Permit.observe"),
    ("    transport adapter send (HTTP to upstream, until headers)", "requests.adapters", "HTTPAdapter.send"),
    ("    body read", "connections.client", "_read_body"),
    ("    Connection.touch (UPDATE last_used_at, at most once a minute)", "connections.models", "Connection.touch"),
    ("  function_call_row (the log row, redacted)", "passthrough.services", "function_call_row"),
    ("    Redactor() construction", "passthrough.redaction", "Redactor.__init__"),
    ("remote_response (answer envelope)", "passthrough.api.passthrough_views", "remote_response"),
    ("SQL statements sent and answered (all of them, without the ORM's query building)", "django.db.backends.utils",
     "CursorWrapper._execute"),
]


def wrap(totals, label, module_name, path):
    import importlib

    module = importlib.import_module(module_name)
    owner, _, name = path.rpartition(".")
    target = getattr(module, owner) if owner else module
    original = getattr(target, name)

    def timed(*args, **kwargs):
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            entry = totals[label]
            entry[0] += time.thread_time() - c0
            entry[1] += time.perf_counter() - w0
            entry[2] += 1

    setattr(target, name, timed)
    return lambda: setattr(target, name, original)


def main():
    api_key, account_token = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}", "HTTP_X_ACCOUNT_TOKEN": account_token}
    body = json.dumps({"method": "GET", "path": "/ping"})

    def call():
        response = client.post("/api/v1/passthrough", data=body, content_type="application/json", **headers)
        assert response.status_code == 200, response.content
        return response

    for _ in range(20):  # warm: connections, caches, the API key's last_used_at write
        call()
    with CaptureQueriesContext(connection) as captured:
        call()
    queries = [{"sql": q["sql"][:300], "ms": float(q["time"]) * 1000} for q in captured.captured_queries]

    totals = defaultdict(lambda: [0.0, 0.0, 0])
    undo = []
    for label, module_name, path in COMPONENTS:
        try:
            undo.append(wrap(totals, label, module_name, path))
        except (ImportError, AttributeError):
            pass
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            call()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        for u in reversed(undo):
            u()
    breakdown = []
    for label, _, _ in COMPONENTS:
        if label in totals:
            c, w, k = totals[label]
            breakdown.append({"label": label, "cpu_ms": 1000 * c / n, "wall_ms": 1000 * w / n, "calls": k / n})

    with CaptureQueriesContext(connection) as captured_async:
        response = client.post("/api/v1/async-passthrough", data=body, content_type="application/json", **headers)
        assert response.status_code == 202, response.content
    async_queries = [{"sql": q["sql"][:300], "ms": float(q["time"]) * 1000} for q in captured_async.captured_queries]
    print(json.dumps({"requests": n, "cpu_ms_per_request": 1000 * cpu / n, "wall_ms_per_request": 1000 * wall / n,
                      "queries": queries, "breakdown": breakdown, "async_enqueue_queries": async_queries}))


if __name__ == "__main__":
    main()
