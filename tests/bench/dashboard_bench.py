"""Dashboard benchmark: the operator dashboard over 1,000,000 call-log rows on PostgreSQL.

Fills database `test_console` (migrated, its call log emptied) with one INSERT ... SELECT over generate_series: 5
integrations, 50 connections, every outcome class, durations 5-2,000 ms, spread evenly over the last --days days
(30: the default retention). Rolls them up per minute (as the scheduler does), then renders the dashboard view (as a
logged-in operator) --runs times and prints each time and the median. Redis db 6 is the cache (rate-limit usage is read from it).

    .venv/bin/python -m tests.bench.dashboard_bench [--rows 1000000] [--days 30] [--runs 5]
"""

import argparse
import os
import statistics
import sys
import time

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test_console"
CACHE_URL = "redis://127.0.0.1:6379/6"

FILL = """
INSERT INTO passthrough_functioncall (organization_id, connection_id, integration_id, function_id, dialect, mode,
    method, url, request_headers, request_body, request_body_truncated, request_size, response_status,
    response_headers, response_body, response_body_truncated, response_size, duration_ms, error, started_at, created_at)
SELECT %(organization)s, (%(connections)s::bigint[])[1 + g %% 50], (%(integrations)s::bigint[])[1 + g %% 5], NULL,
    'native', 'sync', 'GET', 'https://api.example.test/v1/items/' || g, '{}', '', false, 0,
    (ARRAY[200, 200, 200, 200, 200, 200, 201, 404, 429, 500, 502, NULL])[1 + g %% 12], '{}', '', false, 0,
    5 + (g::bigint * 7919) %% 1996, CASE WHEN g %% 12 = 11 THEN 'Upstream unreachable.' ELSE '' END,
    now() - make_interval(secs => g * %(spread)s), now() - make_interval(secs => g * %(spread)s)
FROM generate_series(1, %(rows)s) AS g
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    os.environ.update(DATABASE_URL=DATABASE_URL, CACHE_URL=CACHE_URL)
    os.environ.pop("DRAMATIQ_BROKER_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection as db
    from django.test import Client
    from django.urls import reverse

    from passthrough.models import FunctionCall
    from tests.factories import make_connection, make_integration, organization

    call_command("migrate", verbosity=0)
    FunctionCall.objects.all().delete()
    org = organization("bench")
    integrations = [make_integration(slug=f"bench-{i}", rate_limits=[{"requests": 100, "per_seconds": 1}]) for i in range(5)]
    connections = [make_connection(org, integrations[i % 5], end_user_id=f"bench-user-{i}")[0] for i in range(50)]
    started = time.monotonic()
    with db.cursor() as cursor:
        cursor.execute(FILL, {"organization": org.pk, "connections": [c.pk for c in connections],
                              "integrations": [i.pk for i in integrations], "rows": args.rows,
                              "spread": args.days * 86400 / args.rows})
        cursor.execute("ANALYZE passthrough_functioncall")
    print(f"filled {args.rows:,} rows over {args.days:g} days in {time.monotonic() - started:.1f} s")

    from console import rollup
    from console.models import CallMinute

    CallMinute.objects.all().delete()
    started = time.monotonic()
    written = rollup.roll_up()
    print(f"first roll-up (the scheduler's job; each later one covers a minute): {written:,} minute rows in "
          f"{time.monotonic() - started:.1f} s")

    client = Client()
    user = get_user_model().objects.filter(username="bench-admin").first() or get_user_model().objects.create_superuser(
        "bench-admin", "bench@example.test", password=None)
    client.force_login(user)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        response = client.get(reverse("console-dashboard"))
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    print("dashboard view: " + ", ".join(f"{t * 1000:.0f} ms" for t in times)
          + f"; median {statistics.median(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
