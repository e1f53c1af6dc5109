"""Rate-limit benchmark (issue 6): does the shared limiter use an upstream's whole budget without one upstream 429?

A local upstream enforces a strict sliding window (default 50 requests per 5 s: at most N arrivals in ANY span of W
seconds, the strictest reading of a limit, spec/limits.md) and counts what it served and what it refused with 429.
Against it, for several windows:

- two `manage.py serve` processes (gunicorn, 2 workers × 4 threads each) sharing the limiter in Redis (cache db 8);
- async passthrough jobs (background): a backlog larger than the run can drain, run by a real `rundramatiq` worker
  (2 processes × 8 threads) on Redis (broker db 9);
- sync passthrough (interactive), alternating between the two servers; a call we refuse (429) is sent again after
  its Retry-After until it goes out.

Two phases, one after the other: **flat-out** (the issue's scenario: background flat out, interactive as 8 closed
loops, each calling again as soon as it is answered) and **mixed** (background flat out, interactive calls arriving
at random at half the limit, as from many users). Reported per phase: utilization = served ÷ (limit × windows) over
the measured windows (after a warm-up window), upstream 429s, p50/p99 wait of interactive requests and calls.
Targets (flat-out): ≥ 95 %, 0, ≤ one window. PostgreSQL database `bench_ratelimit` (dropped and recreated), Redis
dbs 9 and 8 (flushed): nothing shared with the other benchmarks.

    .venv/bin/python -m tests.bench.ratelimit_bench [--limit 50 --window 5 --windows 12 --interactive-clients 8
        --interactive-rate 5 --phases flat-out,mixed --json out.json]
"""

import argparse
import http.client
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import deque
from itertools import count
from urllib.parse import parse_qsl
from pathlib import Path

from tests.bench import environment
from tests.bench.loadgen import percentile
from tests.bench.procs import HOST, PY, Procs, free_port, http_request, log, run_checked, wait_http
from tests.bench.servers import start_serve, start_worker

DATABASE = "bench_ratelimit"
BROKER_DB, CACHE_DB = 9, 8
INTERACTIVE_PATH, BACKGROUND_PATH = "/interactive", "/background"


# --- The upstream: a strict sliding window (gunicorn tests.bench.ratelimit_bench:upstream_app, one process) -----------

class SlidingWindow:
    """At most `limit` requests served in any span of `window` seconds; refused ones do not count."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.served = deque()  # monotonic arrival times of served requests, within the last window
        self.events = []  # (wall time, status, kind, call id) of every request
        self.lock = threading.Lock()

    def arrive(self, kind: str, call: str) -> tuple[int, float]:
        """(status, seconds until a request would be served again)."""
        with self.lock:
            now = time.monotonic()
            while self.served and self.served[0] <= now - self.window:
                self.served.popleft()
            if len(self.served) < self.limit:
                self.served.append(now)
                status, wait = 200, 0.0
            else:
                status, wait = 429, self.served[0] + self.window - now
            self.events.append((time.time(), status, kind, call))
        return status, wait


_window = None


def upstream_app(environ, start_response):
    global _window
    if _window is None:
        _window = SlidingWindow(int(os.environ["RL_BENCH_LIMIT"]), float(os.environ["RL_BENCH_WINDOW"]))
    path = environ.get("PATH_INFO", "")
    if path == "/_events":
        body = json.dumps({"events": _window.events}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/ping":
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]
    kind = "interactive" if path.startswith(INTERACTIVE_PATH) else "background" if path.startswith(BACKGROUND_PATH) else "other"
    call = dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("call", "")
    status, wait = _window.arrive(kind, call)
    if status == 429:
        body = b'{"error": "rate limit exceeded"}'
        start_response("429 Too Many Requests", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                                 ("Retry-After", str(max(1, math.ceil(wait))))])
        return [body]
    body = b'{"ok": true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def start_upstream(procs: Procs, env: dict, limit: int, window: float):
    port = free_port()
    proc = procs.start("ratelimit-upstream", [
        PY, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--worker-class", "gthread", "--workers", "1",
        "--threads", "16", "--keep-alive", "75", "--log-level", "warning", "tests.bench.ratelimit_bench:upstream_app",
    ], env={**env, "RL_BENCH_LIMIT": str(limit), "RL_BENCH_WINDOW": str(window)})
    wait_http(proc, port, "/ping", ok=lambda s: s == 200)
    return proc, port


def upstream_events(port: int) -> list:
    status, body = http_request(port, "GET", "/_events", timeout=30)
    if status != 200:
        raise RuntimeError(f"upstream /_events answered {status}")
    return json.loads(body)["events"]


# --- Setup ---------------------------------------------------------------------------------------------------------

def fresh_stores() -> None:
    import psycopg

    with psycopg.connect(environment.PG_ADMIN_URL, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    for db in (BROKER_DB, CACHE_DB):
        environment.redis_client(db).flushdb()
    log(f"database {DATABASE} (re)created, Redis dbs {BROKER_DB} and {CACHE_DB} flushed")


def platform_env(tmp: Path) -> dict:
    env = environment.platform_env(tmp, **environment.make_secrets(tmp))
    env.update({"DATABASE_URL": f"postgres://postgres@{HOST}:5432/{DATABASE}",
                "DRAMATIQ_BROKER_URL": f"redis://{environment.REDIS_HOST}:{environment.REDIS_PORT}/{BROKER_DB}",
                "CACHE_URL": f"redis://{environment.REDIS_HOST}:{environment.REDIS_PORT}/{CACHE_DB}"})
    return env


def load_fixtures(env: dict, tmp: Path, upstream_url: str, limit: int, window: float) -> dict:
    run_checked([PY, "manage.py", "migrate", "--noinput"], env=env, timeout=600, what="migrate")
    catalog = tmp / "ratelimit-catalog.json"
    catalog.write_text(json.dumps({"integrations": [{
        "slug": "limited", "name": "Limited Upstream", "base_url": upstream_url, "auth": {"scheme": "bearer"},
        "rate_limits": [{"requests": limit, "per_seconds": window}],
    }]}))
    environment.manage_json(env, "load_catalog", str(catalog))
    key = environment.manage_json(env, "create_api_key", "RateLimitBench")
    connection = environment.manage_json(env, "create_connection", "--org", "RateLimitBench", "--integration", "limited",
                                         "--end-user", "u1", "--credentials", json.dumps({"token": "x"}))
    return {"api_key": key["key"], "account_token": connection["account_token"]}


def api_headers(fixtures) -> dict:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {fixtures['api_key']}",
            "X-Account-Token": fixtures["account_token"]}


def enqueue_background(port: int, fixtures: dict, jobs: int, threads: int = 8) -> float:
    """POST `jobs` async passthroughs (8 clients); returns the seconds it took."""
    body = json.dumps({"method": "GET", "path": BACKGROUND_PATH}).encode()
    headers, left, lock, failures = api_headers(fixtures), [jobs], threading.Lock(), []

    def client():
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            conn.request("POST", "/api/v1/async-passthrough", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                failures.append(response.status)
        conn.close()

    started = time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    if failures:
        raise RuntimeError(f"{len(failures)} async passthrough POSTs failed: {failures[:5]}")
    return time.monotonic() - started


# --- Interactive load ------------------------------------------------------------------------------------------------

class InteractiveLoad:
    """Sync passthrough calls, each sent again after our 429's Retry-After until it is served; its wait is from
    when it was due to the answer. `rate` > 0: calls arrive at random (Poisson, open loop) at that many per second,
    as from many independent users; `rate` 0: `clients` closed loops, each sending its next call as soon as the last
    is answered."""

    def __init__(self, name: str, ports: list[int], fixtures: dict, *, rate: float, clients: int, seed: int = 6):
        self.name, self.ports, self.rate, self.clients = name, ports, rate, clients
        self.headers = api_headers(fixtures)
        self.calls = []  # (call id, due, answered, sends, upstream status)
        self.sends = []  # (call id, sent, answered, status: 200 or our 429) of each send
        self.ids = count()
        self.our_429s = 0
        self.errors = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.turn = 0
        self.random = random.Random(seed)
        self.threads = []

    def start(self):
        if self.rate > 0:
            self.threads = [threading.Thread(target=self._arrivals, daemon=True)]
        else:
            self.threads = [threading.Thread(target=self._closed_loop, daemon=True) for _ in range(self.clients)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def _arrivals(self):
        due = time.time()
        calls = []
        while not self.stop.is_set():
            due += self.random.expovariate(self.rate)
            if self.stop.wait(max(0.0, due - time.time())):
                break
            call = threading.Thread(target=self._call, args=(due,), daemon=True)
            call.start()
            calls.append(call)
        for call in calls:
            call.join(timeout=120)

    def _closed_loop(self):
        while not self.stop.is_set():
            self._call(time.time())

    def _call(self, due: float):
        call = f"{self.name}-{next(self.ids)}"
        body = json.dumps({"method": "GET", "path": f"{INTERACTIVE_PATH}?call={call}"}).encode()
        sends = 0
        while True:
            with self.lock:
                port = self.ports[self.turn % len(self.ports)]
                self.turn += 1
            sends += 1
            conn = http.client.HTTPConnection(HOST, port, timeout=90)
            sent = time.time()
            try:
                conn.request("POST", "/api/v1/passthrough", body=body, headers=self.headers)
                response = conn.getresponse()
                content = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(repr(exc))
                return
            finally:
                conn.close()
            with self.lock:
                self.sends.append((call, sent, time.time(), response.status))
            if response.status == 429:
                with self.lock:
                    self.our_429s += 1
                if self.stop.wait(float(response.getheader("Retry-After") or 1)):
                    return
                continue
            with self.lock:
                if response.status == 200:
                    self.calls.append((call, due, time.time(), sends, json.loads(content).get("status")))
                else:
                    self.errors.append(f"HTTP {response.status}: {content[:200]!r}")
            return


# --- The run -----------------------------------------------------------------------------------------------------------

def counted(events, since: float, until: float, status=None, kind=None) -> int:
    return sum(1 for t, s, k, _ in events if since <= t < until and (status is None or s == status)
               and (kind is None or k == kind))


def most_in_any_window(events, window: float) -> int:
    served = sorted(t for t, s, *_ in events if s == 200)
    most, first = 0, 0
    for last, t in enumerate(served):
        while t - served[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def refused_early_by(events, limit: int, window: float) -> list[float]:
    """For each upstream 429: how much sooner than a window after the limit-th served request before it it arrived
    (seconds), i.e. by how much our sends were bunched up on their way (or our own window was too loose)."""
    served, early = [], []
    for t, status, *_ in sorted(events):
        if status == 200:
            served.append(t)
        elif len(served) >= limit:
            early.append(served[-limit] + window - t)
    return early


def dist(values) -> dict:
    values = sorted(values)
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": values[-1]}


def utilization(events, since: float, windows: int, limit: int, window: float, phases: int = 20) -> float:
    """Served ÷ (limit × windows) over `windows` consecutive windows, averaged over `phases` starting points spread
    across one window: a single count depends on where the span starts against the bursts a saturated sliding window
    makes (e.g. 11 or 12 bursts in 12 windows); the average does not."""
    counts = [counted(events, since + i * window / phases, since + i * window / phases + windows * window, status=200)
              for i in range(phases)]
    return sum(counts) / phases / (limit * windows)


PHASES = {
    "flat-out": "everything flat out: background, and interactive closed loops (a client calls again as soon as it is "
                "answered)",
    "mixed": "background flat out, interactive calls arriving at random (open loop) at half the limit",
}


def run_phase(name, ports, fixtures, *, rate: float, clients: int, window: float, windows: int) -> dict:
    """Load for a warm-up window, `windows` measured windows and one more (for the phase-averaged count)."""
    load = InteractiveLoad(name, ports, fixtures, rate=rate, clients=clients)
    load.start()
    measured_from = time.time() + window
    measured_until = measured_from + windows * window
    log(f"rate limits, {name}: {PHASES[name]} ({f'{rate:g} calls/s' if rate else f'{clients} clients'}); "
        f"{windows} windows of {window:g} s measured after a warm-up window")
    time.sleep(max(0.0, measured_until + window - time.time()))
    load.finish()
    return {"name": name, "load": PHASES[name], "interactive_rate": rate, "interactive_clients": clients,
            "from": measured_from, "until": measured_until, "calls": load.calls, "sends": load.sends,
            "our_429s": load.our_429s, "errors": load.errors}


def phase_figures(phase: dict, events, limit: int, window: float, windows: int) -> dict:
    since, until = phase["from"], phase["until"]
    calls = [c for c in phase.pop("calls") if since <= c[1] < until]
    errors = phase.pop("errors")
    went_out = {call: t for t, status, kind, call in events if status == 200 and kind == "interactive"}
    # A request's own wait: until it reached the upstream or until our 429 came back.
    sends = [(went_out[call] if status == 200 and call in went_out else answered) - sent
             for call, sent, answered, status in phase.pop("sends") if since <= sent < until]
    span_events = [e for e in events if since <= e[0] < until + window]
    early = refused_early_by(events, limit, window)
    return {
        **phase, "windows": windows,
        "served": counted(events, since, until, status=200), "capacity": limit * windows,
        "utilization": utilization(events, since, windows, limit, window),
        "served_interactive": counted(events, since, until, status=200, kind="interactive"),
        "served_background": counted(events, since, until, status=200, kind="background"),
        "upstream_429": counted(events, since, until + window, status=429),
        "most_in_any_window": most_in_any_window(span_events, window),
        "refused_early_by_ms": dist([1000 * e for e in early]),
        "interactive_calls": len(calls),
        "interactive_wait_s": dist([went_out[call] - due for call, due, *_ in calls if call in went_out]),
        "interactive_answered_s": dist([answered - due for _, due, answered, _, _ in calls]),
        "interactive_request_wait_s": dist(sends),
        "interactive_requests": len(sends),
        "interactive_sends_max": max((n for _, _, _, n, _ in calls), default=0),
        "interactive_refused_calls": sum(1 for _, _, _, n, _ in calls if n > 1),
        "interactive_upstream_statuses": sorted({status for *_, status in calls}),
        "client_errors": errors[:10], "client_error_count": len(errors),
    }


def run(tmp: Path, *, limit: int = 50, window: float = 5.0, windows: int = 12,
        interactive_rate: float | None = None, interactive_clients: int = 8, phases=("flat-out", "mixed"),
        serve_workers: int = 2, serve_threads: int = 4, worker_processes: int = 2, worker_threads: int = 8) -> dict:
    """Set up, run the phases one after the other against the same upstream and limiter, measure; returns the
    figures. Every process started here is stopped before it returns (logs in `tmp`)."""
    procs = Procs(tmp)
    try:
        return _run(procs, tmp, limit=limit, window=window, windows=windows,
                    rate=interactive_rate if interactive_rate is not None else 0.5 * limit / window,
                    interactive_clients=interactive_clients, phases=phases, serve_workers=serve_workers,
                    serve_threads=serve_threads, worker_processes=worker_processes, worker_threads=worker_threads)
    finally:
        procs.stop_all()


def _run(procs, tmp, *, limit, window, windows, rate, interactive_clients, phases, serve_workers, serve_threads,
         worker_processes, worker_threads) -> dict:
    fresh_stores()
    env = platform_env(tmp)
    upstream, up_port = start_upstream(procs, env, limit, window)
    fixtures = load_fixtures(env, tmp, f"http://{HOST}:{up_port}", limit, window)
    serves = [start_serve(procs, env, workers=serve_workers, threads=serve_threads, access_log=False, name=f"serve-rl-{i}")
              for i in (1, 2)]
    ports = [port for _, port in serves]
    jobs = math.ceil(limit * (len(phases) * (windows + 2) + 4) * 1.2)
    log(f"rate limits: enqueueing {jobs} async passthroughs (the background backlog), no worker running yet")
    enqueue_s = enqueue_background(ports[0], fixtures, jobs)
    worker = start_worker(procs, env, worker_processes, worker_threads)
    runs = []
    try:
        deadline = time.monotonic() + 120
        while not counted(upstream_events(up_port), 0, math.inf, kind="background"):
            if time.monotonic() > deadline or not worker.alive():
                raise RuntimeError(f"the worker sent nothing upstream:\n{worker.tail()}")
            time.sleep(0.2)
        for name in phases:
            runs.append(run_phase(name, ports, fixtures, rate=rate if name == "mixed" else 0,
                                  clients=interactive_clients if name == "flat-out" else 0, window=window,
                                  windows=windows))
    finally:
        procs.stop(worker)
    events = upstream_events(up_port)
    (tmp / "ratelimit-events.json").write_text(json.dumps(events))
    result = {
        "limit": limit, "window_s": window, "windows": windows,
        "serve": f"2 × `manage.py serve` ({serve_workers} workers × {serve_threads} threads each)",
        "worker": f"1 × `rundramatiq` ({worker_processes} processes × {worker_threads} threads)",
        "background_jobs": jobs, "enqueue_s": enqueue_s,
        "upstream_429": counted(events, 0, math.inf, status=429),
        "served_total": counted(events, 0, math.inf, status=200),
        "most_in_any_window": most_in_any_window(events, window),
        "refused_early_by_ms": dist([1000 * e for e in refused_early_by(events, limit, window)]),
        "phases": [phase_figures(phase, events, limit, window, windows) for phase in runs],
    }
    for p in result["phases"]:
        log(f"rate limits, {p['name']}: utilization {100 * p['utilization']:.1f} % ({p['served']} served in the "
            f"{windows} windows); upstream 429s {p['upstream_429']}; interactive wait p50 "
            f"{p['interactive_wait_s']['p50']:.3f} s, p99 {p['interactive_wait_s']['p99']:.3f} s "
            f"({p['interactive_calls']} calls)")
    return result


def targets(r: dict) -> list[tuple[str, str, bool]]:
    """The issue's targets, on the flat-out phase (its scenario); the mixed phase is shown, not judged."""
    p = next((p for p in r["phases"] if p["name"] == "flat-out"), None)
    if p is None:
        return []
    request, call = p["interactive_request_wait_s"]["p99"], p["interactive_wait_s"]["p99"]
    return [
        (f"Rate limits: utilization ≥ 95 % ({r['limit']} per {r['window_s']:g} s, all flat out, {r['windows']} windows)",
         f"{100 * p['utilization']:.1f} %", p["utilization"] >= 0.95),
        ("Rate limits: upstream 429s = 0 (whole run, both phases)", str(r["upstream_429"]), r["upstream_429"] == 0),
        (f"Rate limits: interactive p99 wait ≤ one window ({r['window_s']:g} s), all flat out — per request (until "
         "sent upstream, or until our 429)", f"{request:.2f} s", not math.isnan(request) and request <= r["window_s"]),
        (f"Rate limits: interactive p99 wait ≤ one window ({r['window_s']:g} s), all flat out — per call (until sent "
         "upstream, sent again after each of our 429s)", f"{call:.2f} s", not math.isnan(call) and call <= r["window_s"]),
    ]


def _wait(d) -> str:
    return f"{d['p50']:.3f} / {d['p99']:.3f} / {d['max']:.3f}"


def markdown(r: dict, *, with_targets: bool = True) -> str:
    """The section for RESULTS.md (whose own Targets table lists ours: `with_targets=False` there)."""
    lines = [
        f"## Rate limits (issue 6): {r['limit']} requests per {r['window_s']:g} s, strictly enforced upstream", "",
        *(["| target | measured | verdict |", "| --- | --- | --- |",
           *(f"| {name} | {measured} | {'**met**' if ok else '**NOT met**'} |" for name, measured, ok in targets(r)),
           ""] if with_targets else []),
        "| phase | utilization | served: interactive + background | upstream 429s | interactive requests | request wait "
        "p50 / p99 / max s | interactive calls | call wait p50 / p99 / max s | calls refused by us at least once | most "
        "sends of a call |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for p in r["phases"]:
        lines.append(
            f"| {p['name']} | {100 * p['utilization']:.1f} % | {p['served']} of {p['capacity']}: "
            f"{p['served_interactive']} + {p['served_background']} | {p['upstream_429']} | {p['interactive_requests']} | "
            f"{_wait(p['interactive_request_wait_s'])} | {p['interactive_calls']} | {_wait(p['interactive_wait_s'])} | "
            f"{p['interactive_refused_calls']} | {p['interactive_sends_max']} |")
    lines += [""] + [f"- **{p['name']}**: {p['load']}"
                     + (f" ({p['interactive_clients']} clients)." if p["interactive_clients"] else
                        f" ({p['interactive_rate']:g} calls/s).") for p in r["phases"]]
    lines += [
        f"- Upstream: `tests/bench/ratelimit_bench.py` `upstream_app` under gunicorn (1 process): at most {r['limit']} "
        f"requests served in any span of {r['window_s']:g} s (a sliding log, the strictest reading of a limit), 429 "
        "with Retry-After otherwise. The catalog declares the same limit. Most served in any "
        f"{r['window_s']:g} s span over the whole run: {r['most_in_any_window']}; upstream 429s: {r['upstream_429']}"
        + (f" (they arrived early by p50 {r['refused_early_by_ms']['p50']:.1f} / max "
           f"{r['refused_early_by_ms']['max']:.1f} ms)" if r["upstream_429"] else "") + ".",
        f"- Ours: {r['serve']} on one Redis (cache and limiter, db {CACHE_DB}), {r['worker']} on the Redis broker "
        f"(db {BROKER_DB}), PostgreSQL `{DATABASE}`. Background: {r['background_jobs']} async passthroughs queued "
        "before the worker starts, more than the run can send. Interactive: `POST /api/v1/passthrough` alternating "
        "between the two servers; a call we refuse (429) is sent again after its Retry-After.",
        "- Request wait: one sync passthrough request, from when it was sent to when it reached the upstream (the "
        "upstream logs each call's id) or our 429 came back — the limiter's wait (at most "
        "RATE_LIMIT_INTERACTIVE_MAX_WAIT = 1 s) plus our overhead. Call wait: from when the call was due until it "
        "reached the upstream, including the Retry-After pauses after our 429s.",
        f"- Phases run one after the other, each a warm-up window then {r['windows']} measured windows. Utilization = "
        "served ÷ (limit × windows), counted by the upstream and averaged over 20 starting points across a window "
        "(a saturated sliding window sends in bursts, so one count depends on where it starts).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--window", type=float, default=5.0)
    p.add_argument("--windows", type=int, default=12, help="measured windows per phase")
    p.add_argument("--interactive-rate", type=float, help="calls/s in the mixed phase (default: half the limit)")
    p.add_argument("--interactive-clients", type=int, default=8, help="closed loops in the flat-out phase")
    p.add_argument("--phases", default="flat-out,mixed")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--keep-tmp", action="store_true")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ip-bench-ratelimit-"))
    tmp.chmod(0o755)
    ok = False
    try:
        result = run(tmp, limit=args.limit, window=args.window, windows=args.windows,
                     interactive_rate=args.interactive_rate, interactive_clients=args.interactive_clients,
                     phases=[x.strip() for x in args.phases.split(",") if x.strip()])
        print(markdown(result))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        ok = True
    finally:
        if ok and not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
