"""Benchmark B: async passthrough — enqueue → result-available latency and job throughput, with a Redis broker.

Timing comes from the database row, not the API (retrieval is limited to once per 10 s per receipt):
`finished_at - created_at` is the server-side latency, `claimed_at - created_at` the queue wait (commit, broker,
pickup) and `finished_at - claimed_at` the execution (upstream call and bookkeeping). The API GET is used once at
the end, to confirm a 200.
"""

import http.client
import json
import statistics
import threading
import time

from tests.bench.environment import BROKER_DB, bench_db, flush_redis, redis_client
from tests.bench.loadgen import percentile
from tests.bench.procs import HOST, http_request, log, tree_cpu_seconds
from tests.bench.servers import passthrough_request, start_worker

TABLE = "passthrough_asyncpassthroughrequest"


class AsyncClient:
    def __init__(self, port: int, api_key: str, token: str):
        self.port = port
        self.body, self.headers = passthrough_request(api_key, token)
        self.api_key = api_key
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)

    def enqueue(self) -> str:
        for attempt in range(2):
            try:
                self.conn.request("POST", "/api/v1/async-passthrough", body=self.body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
                if attempt:
                    raise
        if response.status != 202:
            raise RuntimeError(f"async passthrough answered {response.status}: {data[:300]!r}")
        return json.loads(data)["async_passthrough_receipt_id"]

    def close(self):
        self.conn.close()


def wait_finished(db, receipt_id: str, timeout: float, poll: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.execute(f"SELECT finished_at IS NOT NULL FROM {TABLE} WHERE id = %s", (receipt_id,)).fetchone()
        if row and row[0]:
            return True
        time.sleep(poll)
    return False


def row_timings(db, ids: list[str]) -> list[dict]:
    rows = db.execute(f"""
        SELECT status, EXTRACT(EPOCH FROM finished_at - created_at) * 1000,
               EXTRACT(EPOCH FROM claimed_at - created_at) * 1000, EXTRACT(EPOCH FROM finished_at - claimed_at) * 1000
        FROM {TABLE} WHERE id = ANY(%s::uuid[])""", (ids,)).fetchall()
    return [{"status": s, "total": float(t) if t is not None else None, "queue": float(q) if q is not None else None,
             "exec": float(e) if e is not None else None} for s, t, q, e in rows]


def dist(values) -> dict:
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "mean": float("nan"), "max": float("nan")}
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "mean": statistics.fmean(values), "max": values[-1]}


def upstream_durations(db, since) -> dict:
    rows = db.execute("SELECT duration_ms FROM passthrough_functioncall WHERE mode = 'async' AND started_at >= %s",
                      (since,)).fetchall()
    return dist([float(r[0]) for r in rows])


def warm_up(client: AsyncClient, db, jobs: int = 20, first_timeout: float = 90) -> None:
    """Wait for the worker to come up (first job), then warm every worker thread's connections."""
    if not wait_finished(db, client.enqueue(), first_timeout):
        raise RuntimeError("the job worker did not finish a first async passthrough in time")
    for _ in range(jobs):
        wait_finished(db, client.enqueue(), 30)


def sequential_latency(client: AsyncClient, db, n: int, *, gap: float = 0.0, per_job_timeout: float = 30,
                       budget: float = 900, label: str = "latency") -> dict:
    """n requests one at a time: POST, poll the row until finished, (sleep `gap`), next. Bounded by `budget` s."""
    since = db.execute("SELECT now()").fetchone()[0]
    ids, client_ms, timeouts = [], [], 0
    stop_at = time.monotonic() + budget
    for i in range(n):
        if time.monotonic() > stop_at:
            log(f"B {label}: time budget reached after {i} requests")
            break
        t0 = time.perf_counter()
        receipt = client.enqueue()
        ok = wait_finished(db, receipt, per_job_timeout)
        client_ms.append((time.perf_counter() - t0) * 1000)
        ids.append(receipt)
        timeouts += not ok
        if (i + 1) % 100 == 0:
            log(f"B {label}: {i + 1}/{n} done")
        if gap:
            time.sleep(gap)
    timings = row_timings(db, ids)
    return {
        "requests": len(ids), "timeouts": timeouts,
        "statuses": {s: sum(1 for t in timings if t["status"] == s) for s in {t["status"] for t in timings}},
        "server_total": dist(t["total"] for t in timings),
        "queue_wait": dist(t["queue"] for t in timings),
        "execution": dist(t["exec"] for t in timings),
        "client_observed": dist(client_ms),
        "upstream_duration_ms": upstream_durations(db, since),
        "last_receipt": ids[-1] if ids else None,
        "gap_s": gap,
    }


def confirm_via_api(port: int, api_key: str, receipt_id: str) -> dict:
    status, content = http_request(port, "GET", f"/api/v1/async-passthrough/{receipt_id}",
                                   headers={"Authorization": f"Bearer {api_key}"})
    try:
        answer = json.loads(content)
    except ValueError:
        answer = {"raw": content[:200].decode(errors="replace")}
    return {"http_status": status, "upstream_status": answer.get("status") if isinstance(answer, dict) else None}


def enqueue_many(port: int, api_key: str, token: str, n: int, threads: int = 8, budget: float = 300) -> tuple[list[str], float]:
    ids, lock, counter = [], threading.Lock(), [n]
    stop_at = time.monotonic() + budget
    errors = []

    def run():
        client = AsyncClient(port, api_key, token)
        try:
            while time.monotonic() < stop_at:
                with lock:
                    if counter[0] <= 0:
                        return
                    counter[0] -= 1
                receipt = client.enqueue()
                with lock:
                    ids.append(receipt)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    t0 = time.perf_counter()
    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=budget + 30)
    if errors:
        raise RuntimeError(f"enqueueing failed: {errors[0]!r}")
    return ids, time.perf_counter() - t0


def sweep(env) -> dict:
    """Run the platform's async sweeper once, re-enqueueing every pending row now."""
    from tests.bench.procs import PY, run_checked

    code = ("import json; from passthrough.async_passthrough import async_passthrough_sweep as s; "
            "print(json.dumps(s()))")
    out = run_checked([PY, "manage.py", "shell", "-c", code], env={**env, "ASYNC_PASSTHROUGH_REQUEUE_AFTER_SECONDS": "0"},
                      timeout=120, what="async sweep")
    return json.loads(out.strip().splitlines()[-1])


def queue_length(queue: str = "async_passthrough") -> int:
    """Messages waiting in the Dramatiq Redis queue (dramatiq's key layout: `dramatiq:<queue>` is a list)."""
    return int(redis_client(BROKER_DB).llen(f"dramatiq:{queue}"))


def drain_throughput(procs, env, port: int, api_key: str, token: str, db, *, processes: int, threads: int, jobs: int,
                     budget: float = 600) -> dict:
    """Fill the queue with `jobs` while no worker runs, then start one with `processes` and time the drain:
    jobs / (last finished_at - first claimed_at)."""
    pending = db.execute(f"SELECT count(*) FROM {TABLE} WHERE status IN ('pending', 'running')").fetchone()[0]
    if pending:
        log(f"B throughput: {pending} unfinished rows from earlier phases (they will be drained too)")
    ids, enqueue_s = enqueue_many(port, api_key, token, jobs)
    queued = queue_length()
    log(f"B throughput p={processes}: enqueued {len(ids)} jobs in {enqueue_s:.1f} s ({len(ids) / enqueue_s:.0f}/s); "
        f"{queued} messages in the Redis queue")
    requeued = None
    if queued < len(ids):
        # Seen once on this shared machine: the queue emptied by something else between enqueue and worker start.
        # The platform's own repair path puts them back: the sweeper re-enqueues pending rows.
        log(f"B throughput p={processes}: WARNING {len(ids) - queued} broker messages missing; running the sweeper")
        requeued = sweep(env)
        queued = queue_length()
        log(f"B throughput p={processes}: sweeper {requeued}; {queued} messages queued now")
    worker = start_worker(procs, env, processes, threads)
    try:
        # Worker CPU per job: measured from the first claim on (the worker's start-up imports are not counted).
        deadline = time.monotonic() + budget
        cpu_start = claimed_start = None
        while time.monotonic() < deadline and worker.alive():
            claimed_start = db.execute(f"SELECT count(*) FROM {TABLE} WHERE id = ANY(%s::uuid[]) AND claimed_at IS NOT NULL",
                                       (ids,)).fetchone()[0]
            if claimed_start:
                cpu_start = tree_cpu_seconds([worker.pid])
                break
            time.sleep(0.01)
        done, last_progress, progress_at = 0, -1, time.monotonic()
        while time.monotonic() < deadline:
            done = db.execute(f"SELECT count(*) FROM {TABLE} WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL",
                              (ids,)).fetchone()[0]
            if done >= len(ids):
                break
            if not worker.alive():
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            if done != last_progress:
                last_progress, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > 60 and queue_length() == 0:
                log(f"B throughput p={processes}: no progress for 60 s and the queue is empty; giving up")
                break
            time.sleep(0.2)
        cpu_used = tree_cpu_seconds([worker.pid]) - cpu_start if cpu_start is not None else None
        first, last, ok, failed = db.execute(f"""
            SELECT min(claimed_at), max(finished_at), count(*) FILTER (WHERE status = 'done'),
                   count(*) FILTER (WHERE status = 'failed')
            FROM {TABLE} WHERE id = ANY(%s::uuid[])""", (ids,)).fetchone()
    finally:
        procs.stop(worker)
    seconds = (last - first).total_seconds() if first and last else float("nan")
    result = {"processes": processes, "threads": threads, "jobs": len(ids), "queued_in_redis": queued,
              "requeued_by_sweeper": requeued,
              "finished": done, "done": ok,
              "failed": failed, "drain_s": seconds, "jobs_per_s": done / seconds if seconds else float("nan"),
              "enqueue_per_s": len(ids) / enqueue_s,
              "worker_cpu_ms_per_job": (1000 * cpu_used / max(1, done - claimed_start)) if cpu_used is not None else None}
    log(f"B throughput p={processes}: {done}/{len(ids)} finished in {seconds:.2f} s → {result['jobs_per_s']:.1f} jobs/s")
    return result


def run(procs, env, port: int, api_key: str, token: str, *, requests: int, sparse: int, sparse_gap: float,
        throughput_jobs: int, fast_poll_ms: list[int]) -> dict:
    flush_redis()
    out = {}
    with bench_db() as db:
        client = AsyncClient(port, api_key, token)
        worker = start_worker(procs, env, 1, 8)
        try:
            warm_up(client, db)
            log(f"B: {requests} sequential async passthroughs (1 worker process x 8 threads)")
            out["latency"] = sequential_latency(client, db, requests)
            out["api_confirm"] = confirm_via_api(port, api_key, out["latency"]["last_receipt"])
            if sparse:
                log(f"B: {sparse} sparse requests, {sparse_gap} s apart (idle worker)")
                out["sparse"] = sequential_latency(client, db, sparse, gap=sparse_gap, label="sparse")
        finally:
            procs.stop(worker)
        out["sparse_fast_poll"] = []
        for ms in (fast_poll_ms or []) if sparse else []:
            # Same sparse traffic, with the consumer's idle poll capped (dramatiq reads this env var at import).
            worker = start_worker(procs, {**env, "dramatiq_worker_timeout": str(ms)}, 1, 8)
            try:
                warm_up(client, db, jobs=5)
                log(f"B: sparse again with dramatiq_worker_timeout={ms}")
                phase = sequential_latency(client, db, sparse, gap=sparse_gap, label=f"sparse-{ms}ms")
                phase["worker_timeout_ms"] = ms
                out["sparse_fast_poll"].append(phase)
            finally:
                procs.stop(worker)
        client.close()
        out["throughput"] = []
        for processes in (1, 2):
            out["throughput"].append(drain_throughput(procs, env, port, api_key, token, db, processes=processes,
                                                      threads=8, jobs=throughput_jobs))
    return out
