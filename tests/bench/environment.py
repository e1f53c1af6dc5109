"""Tools, database, Redis and the platform fixtures (integration, API key, connection) for the benchmark."""

import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from tests.bench.procs import HOST, PY, ROOT, log, run_checked

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", f"postgresql://postgres@{HOST}:5432/postgres")
BENCH_DB = os.environ.get("BENCH_DB", "bench")
REDIS_HOST, REDIS_PORT = HOST, 6379
BROKER_DB, CACHE_DB = 13, 12


# --- Debian tools --------------------------------------------------------------------------------------------------

def ensure_debian_tools(names=("nginx", "wrk")) -> dict:
    """Install missing Debian packages (nginx, wrk) with apt-get, services not started. Returns {name: note}."""
    notes, missing = {}, [n for n in names if shutil.which(n) is None and not Path(f"/usr/sbin/{n}").exists()]
    for n in names:
        if n not in missing:
            notes[n] = "already installed"
    if not missing:
        return notes
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        for n in missing:
            notes[n] = "missing (not root or no apt-get)"
        return notes
    log(f"installing Debian packages: {' '.join(missing)} (apt-get; services are not started)")
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not policy.exists():  # keep the packaged nginx service from starting (it would bind 0.0.0.0:80)
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            created_policy = True
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env,
                                capture_output=True, text=True, timeout=900)
        for n in missing:
            ok = shutil.which(n) is not None or Path(f"/usr/sbin/{n}").exists()
            notes[n] = "installed by the bench (apt-get)" if ok else f"install failed: {result.stderr[-300:]}"
    finally:
        if created_policy:
            policy.unlink(missing_ok=True)
    return notes


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


# --- Environment for the platform's processes ----------------------------------------------------------------------

def database_url() -> str:
    return f"postgres://postgres@{HOST}:5432/{BENCH_DB}"


def platform_env(tmp: Path, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "integration_platform.settings",
        "DATABASE_URL": database_url(),
        "DRAMATIQ_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
        "CACHE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{CACHE_DB}",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "SERVE_ACCESS_LOG": "false",
        # Secrets of this run only (every process must share them to read the stored credentials); the lead's
        # var/local-secrets.env is neither read nor written.
        "LOCAL_SECRETS_FILE": str(tmp / "local-secrets.env"),
        "PYTHONUNBUFFERED": "1",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def embedded_env(env: dict, tmp: Path) -> dict:
    """The embedded default (`make run`): the settings' own defaults for storage, i.e. no CACHE_URL (database cache
    `dbcache://platform_cache`, rate limits in the database, no hot cache), no DRAMATIQ_BROKER_URL (StubBroker; `serve`
    runs a job worker and the scheduler inside each web process), and SQLite (WAL) — here a file of this run's temp
    dir instead of var/db.sqlite3. Secrets, log level and access log as `env` (the primary serve's)."""
    out = {k: v for k, v in env.items() if k not in ("CACHE_URL", "DRAMATIQ_BROKER_URL")}
    out["DATABASE_URL"] = f"sqlite:///{tmp / 'embedded.sqlite3'}"
    return out


def make_secrets(tmp: Path) -> dict:
    from cryptography.fernet import Fernet

    return {"SECRET_KEY": secrets.token_urlsafe(50), "PLATFORM_ENCRYPTION_KEYS": Fernet.generate_key().decode()}


# --- PostgreSQL and Redis ------------------------------------------------------------------------------------------

def recreate_database() -> None:
    """Drop and create the dedicated `bench` database (it holds nothing but benchmark rows)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    log(f"database {BENCH_DB} (re)created")


def bench_db():
    import psycopg

    return psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True, connect_timeout=10)


def redis_client(db: int):
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=10)


def flush_redis() -> None:
    """Empty the broker and cache databases this benchmark owns (13 and 12): no stale messages or counters."""
    for db in (BROKER_DB, CACHE_DB):
        redis_client(db).flushdb()


# --- Platform fixtures via the management commands ----------------------------------------------------------------

def manage_json(env: dict, *args, timeout: float = 300) -> dict:
    out = run_checked([PY, "manage.py", *args], env=env, timeout=timeout, what=f"manage.py {args[0]}")
    return json.loads(out.strip().splitlines()[-1])


def load_fixtures(env: dict, tmp: Path, upstream_url: str, label: str = "bench") -> dict:
    log(f"migrating the {label} database")
    run_checked([PY, "manage.py", "migrate", "--noinput"], env=env, timeout=600, what="migrate")
    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps({"integrations": [{
        "slug": "bench", "name": "Bench Upstream", "base_url": upstream_url, "auth": {"scheme": "bearer"},
        "description": "Loopback upstream of the benchmark.",
    }]}))
    loaded = manage_json(env, "load_catalog", str(catalog))
    key = manage_json(env, "create_api_key", "BenchOrg")
    connection = manage_json(env, "create_connection", "--org", "BenchOrg", "--integration", "bench", "--end-user", "u1",
                             "--credentials", json.dumps({"token": "x"}))
    # A typed function whose request is the passthrough target's own `GET /ping` (benchmark A's `typed` row).
    document = tmp / "bench-openapi.json"
    document.write_text(json.dumps({"openapi": "3.1.0", "info": {"title": "Bench", "version": "1"}, "paths": {
        "/{resource}": {"get": {"operationId": "getResource", "parameters": [
            {"name": "resource", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}}}}}}))
    manage_json(env, "import_openapi", "--integration", "bench", str(document))
    log(f"{label}: catalog loaded ({loaded}), API key {key['key_id']}, connection {connection['id']}")
    return {"api_key": key["key"], "key_id": key["key_id"], "account_token": connection["account_token"],
            "connection_id": connection["id"]}


# --- Machine facts -------------------------------------------------------------------------------------------------

def _cmd(argv) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"


def machine_facts() -> dict:
    facts = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("model name")), "n/a")
    except OSError:
        model = "n/a"
    facts["cpu"] = model
    try:
        mem_kb = int(next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")))
        facts["memory"] = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        facts["memory"] = "n/a"
    try:
        with bench_db() as conn:
            facts["postgres"] = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - informative only
        facts["postgres"] = f"n/a ({type(exc).__name__})"
    try:
        facts["redis"] = redis_client(0).info("server").get("redis_version", "n/a")
    except Exception as exc:  # noqa: BLE001
        facts["redis"] = f"n/a ({type(exc).__name__})"
    facts["nginx"] = _cmd([nginx_binary() or "nginx", "-v"]).replace("nginx version: ", "")
    facts["wrk"] = _cmd(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "n/a"
    import django
    import gunicorn
    import dramatiq

    facts["django"], facts["gunicorn"], facts["dramatiq"] = django.get_version(), gunicorn.__version__, dramatiq.__version__
    facts["git"] = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    facts["git_dirty"] = bool(dirty and dirty != "n/a")
    facts["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"
    facts["argv"] = " ".join([Path(sys.executable).name, *sys.argv])
    return facts


def pg_probe(n: int = 300) -> str:
    """Round-trip and commit latency of the database right now (the machine is shared: a health reading)."""
    import time

    def run(conn, sql):
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute(sql)
            xs.append((time.perf_counter() - t0) * 1000)
        xs.sort()
        return xs[len(xs) // 2], xs[int(len(xs) * 0.99)]

    try:
        with bench_db() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_probe (id int PRIMARY KEY, v timestamptz)")
            conn.execute("INSERT INTO bench_probe VALUES (1, now()) ON CONFLICT DO NOTHING")
            s50, s99 = run(conn, "SELECT 1")
            u50, u99 = run(conn, "UPDATE bench_probe SET v = now() WHERE id = 1")
            conn.execute("DROP TABLE bench_probe")
        return (f"SELECT 1 round trip p50 {s50:.3f} / p99 {s99:.3f} ms; autocommit single-row UPDATE "
                f"p50 {u50:.3f} / p99 {u99:.3f} ms")
    except Exception as exc:  # noqa: BLE001 - informative only
        return f"n/a ({type(exc).__name__})"
