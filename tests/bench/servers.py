"""The benchmark's servers, each on a free loopback port: upstream (gunicorn), nginx, our `serve`, the job worker."""

import hashlib
import hmac
import json
import os
from pathlib import Path

from tests.bench.procs import HOST, PY, Proc, Procs, free_port, http_request, log, wait_http

UPSTREAM_WORKERS, UPSTREAM_THREADS = 2, 8


def start_upstream(procs: Procs) -> tuple[Proc, int]:
    port = free_port()
    proc = procs.start("upstream", [
        PY, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--worker-class", "gthread",
        "--workers", UPSTREAM_WORKERS, "--threads", UPSTREAM_THREADS, "--keep-alive", "75", "--backlog", "2048",
        "--log-level", "warning", "tests.bench.upstream:app",
    ])
    wait_http(proc, port, "/ping", ok=lambda s: s == 200)
    return proc, port


NGINX_CONF = """\
worker_processes auto;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    upstream bench_upstream {{
        server {host}:{upstream_port};
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def start_nginx(procs: Procs, binary: str, tmp: Path, upstream_port: int) -> tuple[Proc, int]:
    port = free_port()
    prefix = tmp / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=prefix, host=HOST, port=port, upstream_port=upstream_port))
    proc = procs.start("nginx", [binary, "-p", prefix, "-c", conf, "-e", prefix / "nginx-error.log"])
    wait_http(proc, port, "/ping", ok=lambda s: s == 200)
    return proc, port


def start_floor(procs: Procs, upstream_port: int, *, workers: int, threads: int) -> tuple[Proc, int]:
    """The floor proxy (tests/bench/floor.py) under the same gunicorn settings as our `serve` (gthread, no access log)."""
    port = free_port()
    proc = procs.start("floor", [
        PY, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--worker-class", "gthread", "--workers", workers,
        "--threads", threads, "--timeout", "90", "--graceful-timeout", "30", "--log-level", "warning",
        "tests.bench.floor:app",
    ], env={**os.environ, "BENCH_FLOOR_UPSTREAM": f"http://{HOST}:{upstream_port}"})
    body, headers = passthrough_request("", "")
    wait_http(proc, port, "/ping", ok=lambda s: s == 404)  # up: an unknown path answers 404
    status, content = http_request(port, "POST", "/api/v1/passthrough", body, headers)
    if status != 200 or json.loads(content).get("status") != 200:
        raise RuntimeError(f"floor proxy answered {status}: {content[:300]!r}")
    return proc, port


def start_serve(procs: Procs, env: dict, *, workers: int, threads: int, access_log: bool, name="serve",
                whatif=(), db_sync_commit_off=False, cwd=None) -> tuple[Proc, int]:
    """Our `manage.py serve` (from the checkout `cwd`, default this one); `whatif` patches run it through
    tests/bench/whatif_serve.py (experiments only)."""
    port = free_port()
    env = {**env, "SERVE_WORKERS": str(workers), "SERVE_THREADS": str(threads),
           "SERVE_ACCESS_LOG": "true" if access_log else "false"}
    if db_sync_commit_off:  # a deployment setting: libpq `options`, via DATABASE_URL
        env["DATABASE_URL"] = env["DATABASE_URL"] + "?options=-c%20synchronous_commit%3Doff"
    if whatif:
        env["BENCH_WHATIF"] = ",".join(whatif)
        argv = [PY, "-m", "tests.bench.whatif_serve", "--bind", f"{HOST}:{port}"]
    else:
        argv = [PY, "manage.py", "serve", "--bind", f"{HOST}:{port}"]
    proc = procs.start(name, argv, env=env, **({"cwd": cwd} if cwd else {}))
    wait_http(proc, port, "/api/v1/integrations", timeout=90)  # 401 without a key: it answers
    return proc, port


def passthrough_request(api_key: str, account_token: str, path: str = "/ping") -> tuple[bytes, dict]:
    body = json.dumps({"method": "GET", "path": path}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", "X-Account-Token": account_token}
    return body, headers


# --- The API surfaces of issue 13, each calling the upstream's `GET <path>` (default /ping) -------------------------
# Each returns (method, request path, body, headers), the exact request benchmark A sends.

def merge_request(api_key: str, account_token: str, path: str = "/ping") -> tuple[str, str, bytes, dict]:
    """Merge dialect: `POST /merge/api/crm/v1/passthrough`, Bearer key and X-Account-Token."""
    body = json.dumps({"method": "GET", "path": path}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", "X-Account-Token": account_token}
    return "POST", "/merge/api/crm/v1/passthrough", body, headers


def unified_request(api_key: str, connection_id, path: str = "/ping") -> tuple[str, str, None, dict]:
    """Unified dialect: `GET /unified/passthrough/<connection id><path>`, the raw key as the SDK sends it."""
    return "GET", f"/unified/passthrough/{connection_id}{path}", None, {"Authorization": api_key}


INTEGRY_USER_ID = "u1"  # the end user of the bench connection (environment.load_fixtures: --end-user u1)


def integry_function_name(slug: str = "bench") -> str:
    """The integration's passthrough function (connections.models.Integration.passthrough_function_name)."""
    return f"{slug}-passthrough-request"


def integry_request(api_key: str, path: str = "/ping", user_id: str = INTEGRY_USER_ID,
                    slug: str = "bench") -> tuple[str, str, bytes, dict]:
    """Integry dialect: call the passthrough function, signed as the Integry SDK signs (App-Key = the key's id, the
    part before the first ".", Hash = hex HMAC-SHA256 of the User-ID under the full key)."""
    body = json.dumps({"method": "GET", "url": path}).encode()
    headers = {"Content-Type": "application/json", "App-Key": api_key.split(".", 1)[0], "User-ID": user_id,
               "Hash": hmac.new(api_key.encode(), user_id.encode(), hashlib.sha256).hexdigest()}
    return "POST", f"/integry/functions/{integry_function_name(slug)}/call/", body, headers


def check_surface(port: int, what: str, method: str, path: str, body: bytes | None, headers: dict,
                  upstream_status) -> bytes:
    """Fail loudly (with the answer) unless `method path` answers 200 and `upstream_status(content)` is 200, i.e. the
    call reached the upstream and the upstream said 200."""
    status, content = http_request(port, method, path, body, headers)
    if status != 200:
        raise RuntimeError(f"{what}: {method} {path} answered {status}: {content[:500]!r}")
    try:
        inner = upstream_status(content)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RuntimeError(f"{what}: {method} {path}: unexpected answer ({exc!r}): {content[:500]!r}") from None
    if inner != 200:
        raise RuntimeError(f"{what}: {method} {path} did not get the upstream's 200 (got {inner!r}): {content[:500]!r}")
    return content


def check_passthrough(port: int, api_key: str, account_token: str) -> dict:
    body, headers = passthrough_request(api_key, account_token)
    status, content = http_request(port, "POST", "/api/v1/passthrough", body, headers)
    if status != 200:
        raise RuntimeError(f"passthrough answered {status}: {content[:500]!r}")
    answer = json.loads(content)
    if answer.get("status") != 200:
        raise RuntimeError(f"passthrough reached the upstream but got: {answer}")
    return answer


def start_worker(procs: Procs, env: dict, processes: int, threads: int = 8) -> Proc:
    proc = procs.start(f"worker-p{processes}", [PY, "manage.py", "rundramatiq", "--processes", processes,
                                                "--threads", threads], env=env)
    log(f"job worker: {processes} process(es) x {threads} threads")
    return proc
