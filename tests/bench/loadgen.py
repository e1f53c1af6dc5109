"""Load generation on loopback: wrk (preferred, C, cheap on 2 cores) or a Python keep-alive client (fallback).

Both return the same dict: requests, seconds, rps, errors, and latency percentiles in milliseconds. Both keep one
persistent connection per concurrent client and run for a bounded duration.
"""

import http.client
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.bench.procs import HOST

PERCENTILES = (50, 90, 99, 99.9)


def _lua_string(value: str) -> str:
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    return f"[{'=' * level}[{value}]{'=' * level}]"


def wrk_script(path: Path, method: str, body: bytes | None, headers: dict) -> Path:
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body:
        lines.append(f"wrk.body = {_lua_string(body.decode())}")
    for name, value in headers.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    pct = ", ".join(f'"p{str(p).replace(".", "_")}":%f' for p in PERCENTILES)
    pct_args = ", ".join(f"latency:percentile({p}) / 1000" for p in PERCENTILES)
    lines.append(f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,'
    .. '"err_write":%d,"err_status":%d,"err_timeout":%d,"mean":%f,"max":%f,{pct}}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean / 1000, latency.max / 1000, {pct_args}))
end
""")
    path.write_text("\n".join(lines))
    return path


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(port: int, path: str, *, method="GET", body=None, headers=None, concurrency: int, seconds: float,
            script_dir: Path, threads: int | None = None) -> dict:
    script = wrk_script(Path(script_dir) / f"wrk-{port}-{method}.lua", method, body, headers or {})
    threads = threads or min(concurrency, 2)
    argv = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(script), f"http://{HOST}:{port}{path}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
    line = next((l for l in result.stdout.splitlines() if l.startswith("WRKJSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")
    raw = json.loads(line[len("WRKJSON "):])
    secs = raw["duration_us"] / 1e6
    errors = sum(v for k, v in raw.items() if k.startswith("err_"))
    out = {"requests": raw["requests"], "seconds": secs, "rps": raw["requests"] / secs if secs else 0.0,
           "errors": errors, "mean": raw["mean"], "max": raw["max"], "client": "wrk"}
    for p in PERCENTILES:
        out[f"p{p}"] = raw[f"p{str(p).replace('.', '_')}"]
    return out


def percentile(sorted_values, q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_python(port: int, path: str, *, method="GET", body=None, headers=None, concurrency: int, seconds: float,
               max_requests: int | None = None, **_ignored) -> dict:
    """Closed-loop keep-alive clients in threads, for `seconds` (and at most `max_requests` in all)."""
    latencies, errors, lock = [], [0], threading.Lock()
    stop_at = time.monotonic() + seconds
    budget = [max_requests if max_requests is not None else float("inf")]

    def client():
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        mine = []
        try:
            while time.monotonic() < stop_at:
                with lock:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    conn.request(method, path, body=body, headers=headers or {})
                    response = conn.getresponse()
                    response.read()
                    ok = 200 <= response.status < 400
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=10)
                mine.append((time.perf_counter() - t0) * 1000)
                if not ok:
                    with lock:
                        errors[0] += 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 30)
    secs = time.perf_counter() - started
    latencies.sort()
    out = {"requests": len(latencies), "seconds": secs, "rps": len(latencies) / secs if secs else 0.0,
           "errors": errors[0], "mean": sum(latencies) / len(latencies) if latencies else float("nan"),
           "max": latencies[-1] if latencies else float("nan"), "client": "python"}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(latencies, p)
    return out


def run_load(client: str, port: int, path: str, **kwargs) -> dict:
    if client == "wrk":
        return run_wrk(port, path, **kwargs)
    return run_python(port, path, **kwargs)
