"""Syncing benchmark: 100,000 records, 100 per page, into PostgreSQL database `bench_sync` (dropped and recreated),
with Redis as in a scale-out deployment: db 10 the cache and shared rate limiter, db 11 the broker (both flushed).

Three runs of one model through the real engine (`services.sync_now`, as `manage.py sync` does), against a fast
local upstream served by gunicorn on loopback (cursor pagination, `updated_after` filter):

1. full sync (empty database)          → records/s (target ≥ 5,000/s)
2. incremental, nothing changed        → 1 upstream request, duration_s < 1 s
3. incremental after 1,000 changes     → 1,000 updated

    .venv/bin/python -m tests.bench.sync_bench [--records 100000] [--page-size 100] [--json out.json]

Prints a Markdown table and, with --json, writes the figures. `run()` returns them for tests/bench/run.py.
"""

import argparse
import json
import os
import resource
import sys
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "bench_sync"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
# Other benchmarks: `bench` with Redis 13/12, `bench_ratelimit` with 9/8.
REDIS_URL = "redis://127.0.0.1:6379"
BROKER_DB, CACHE_DB = 11, 10


# --- The upstream (gunicorn tests.bench.sync_bench:upstream_app, one process) ------------------------------------------

def _record_json(index: int, updated_at: float, version: int) -> bytes:
    moment = datetime.fromtimestamp(updated_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"id": f"r{index:07d}", "name": f"Contact {index} v{version}",
                       "email": f"contact{index}@example.test", "company": f"Company {index % 997}",
                       "tags": ["bench", f"t{index % 13}"], "updated_at": moment}).encode()


class Catalog:
    """The upstream's records, pre-rendered as JSON bytes; `touch` changes some of them now."""

    def __init__(self, count: int):
        self.updated_at = [1_600_000_000.0] * count
        self.version = [0] * count
        self.rendered = [_record_json(i, self.updated_at[i], 0) for i in range(count)]

    def touch(self, count: int) -> None:
        now = time.time()
        step = max(1, len(self.rendered) // count)
        for index in range(0, step * count, step):
            self.updated_at[index] = now
            self.version[index] += 1
            self.rendered[index] = _record_json(index, now, self.version[index])

    def page(self, start: int, size: int, since: float | None) -> tuple[list, int | None]:
        if since is None:
            end = min(start + size, len(self.rendered))
            return self.rendered[start:end], end if end < len(self.rendered) else None
        matching = [i for i in range(start, len(self.rendered)) if self.updated_at[i] >= since]
        chosen = matching[:size]
        more = len(matching) > size
        return [self.rendered[i] for i in chosen], chosen[-1] + 1 if more else None


_catalog = None


def upstream_app(environ, start_response):
    global _catalog
    if _catalog is None:
        _catalog = Catalog(int(os.environ.get("SYNC_BENCH_RECORDS", "100000")))
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if environ.get("PATH_INFO") == "/_touch":
        _catalog.touch(int(query["count"]))
        start_response("204 No Content", [])
        return [b""]
    since = query.get("updated_after")
    since = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() if since else None
    records, following = _catalog.page(int(query.get("cursor") or 0), int(query.get("limit") or 100), since)
    body = b'{"results": [' + b",".join(records) + b'], "next_cursor": ' + (
        f'"{following}"'.encode() if following is not None else b"null") + b"}"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# --- The benchmark -----------------------------------------------------------------------------------------------------

def _fresh_stores() -> None:
    """Drop and create `bench_sync`; empty this benchmark's Redis databases (stale limiter state would skew it)."""
    import psycopg
    import redis

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    for db in (BROKER_DB, CACHE_DB):
        redis.Redis.from_url(f"{REDIS_URL}/{db}", socket_timeout=10).flushdb()


def _setup_django() -> None:
    os.environ.update(DATABASE_URL=DATABASE_URL, CACHE_URL=f"{REDIS_URL}/{CACHE_DB}",
                      DRAMATIQ_BROKER_URL=f"{REDIS_URL}/{BROKER_DB}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_sync(sync_now, connection, **options) -> dict:
    """One run's figures, with the CPU seconds this process spent on it: steadier than duration_s on a shared
    machine, where other processes take turns on the same cores."""
    cpu = _cpu_s()
    run = sync_now(connection, "contacts", **options)
    cpu = _cpu_s() - cpu
    stored = run.added + run.updated + run.unchanged
    return {"status": run.status, "full": run.full, "added": run.added, "updated": run.updated,
            "unchanged": run.unchanged, "deleted": run.deleted, "pages": run.pages, "requests": run.requests,
            "duration_s": run.duration_s, "records_per_s": round(stored / run.duration_s) if run.duration_s else None,
            "cpu_s": round(cpu, 3), "error": run.error or None}


def run(records: int = 100_000, page_size: int = 100, changes: int = 1000) -> dict:
    """Run the three syncs; returns their figures (the process must not have set up Django yet)."""
    import urllib.request

    from tests.servers import gunicorn

    _fresh_stores()
    _setup_django()
    from connections import services as connection_services
    from syncing import services
    from syncing.models import Record
    from tests.factories import make_integration

    env = {**os.environ, "SYNC_BENCH_RECORDS": str(records)}
    with gunicorn("tests.bench.sync_bench:upstream_app", "--workers", "1", env=env, threads=4) as url:
        urllib.request.urlopen(f"{url}/contacts?limit=1", timeout=120).read()  # builds the records before timing
        model = {"name": "contacts", "path": "/contacts", "records_field": "results",
                 "modified_since": {"param": "updated_after", "format": "iso8601"},
                 "pagination": {"style": "cursor", "param": "cursor", "next_field": "next_cursor",
                                "page_size_param": "limit", "page_size": page_size},
                 "frequency_seconds": None}
        make_integration(slug="bench-upstream", base_url=url, sync_models=[model])
        api_key, _ = connection_services.api_key_create("bench")
        connection, _ = connection_services.connection_create(
            organization=api_key.organization, integration_slug="bench-upstream", end_user_id="bench",
            credentials={"token": "bench-token"})
        results = {"records": records, "page_size": page_size}
        results["full"] = _timed_sync(services.sync_now, connection, full=True)
        results["stored"] = Record.objects.filter(connection=connection).count()
        results["incremental_unchanged"] = _timed_sync(services.sync_now, connection)
        urllib.request.urlopen(urllib.request.Request(f"{url}/_touch?count={changes}", method="POST"), timeout=60)
        results["incremental_changed"] = _timed_sync(services.sync_now, connection)
        results["changes"] = changes
    return results


def markdown(results: dict) -> str:
    rows = [("Full sync", results["full"]), ("Incremental, nothing changed", results["incremental_unchanged"]),
            (f"Incremental, {results['changes']:,} changed", results["incremental_changed"])]
    lines = [f"### Syncing: {results['records']:,} records, {results['page_size']} per page, PostgreSQL",
             "", "| run | status | requests | added | updated | unchanged | duration_s | records/s | CPU s (syncing process) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, f in rows:
        lines.append(f"| {label} | {f['status']} | {f['requests']:,} | {f['added']:,} | {f['updated']:,} | "
                     f"{f['unchanged']:,} | {f['duration_s']} | {f['records_per_s'] or '—'} | {f.get('cpu_s', '—')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.records, args.page_size, args.changes)
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
