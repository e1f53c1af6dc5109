"""Query census of one native passthrough request, in-process (Django test client against the bench database).

Run by run.py with the bench environment: `python -m tests.bench.census <api key> <account token>`.
Prints one JSON line: the SQL statements of one (warm) request and the time spent in them.
"""

import json
import os
import sys
import time


def main():
    api_key, account_token = sys.argv[1], sys.argv[2]
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

    for _ in range(3):  # warm: connections, caches, the API key's last_used_at write
        call()
    with CaptureQueriesContext(connection) as captured:
        t0 = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - t0) * 1000
    queries = [{"sql": q["sql"][:300], "ms": float(q["time"]) * 1000} for q in captured.captured_queries]
    # Same for the async enqueue path (the receipt insert), without a worker.
    with CaptureQueriesContext(connection) as captured_async:
        response = client.post("/api/v1/async-passthrough", data=body, content_type="application/json", **headers)
        assert response.status_code == 202, response.content
    async_queries = [{"sql": q["sql"][:300], "ms": float(q["time"]) * 1000} for q in captured_async.captured_queries]
    print(json.dumps({"request_ms": elapsed, "queries": queries, "async_enqueue_queries": async_queries,
                      "async_receipt": response.json()["async_passthrough_receipt_id"]}))


if __name__ == "__main__":
    main()
