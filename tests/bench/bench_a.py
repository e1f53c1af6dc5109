"""Benchmark A: passthrough latency and throughput — direct vs our native passthrough vs nginx, side by side.

Runs are interleaved in rounds (the order rotates each round), so a burst of other load on this shared machine hits
every target alike; each figure is the median over rounds.
"""

import json
import statistics
from pathlib import Path

from tests.bench.loadgen import run_load
from tests.bench.procs import log, pids_cpu_seconds, tree_cpu_seconds
from tests.bench.servers import passthrough_request


class CpuMeter:
    """CPU seconds used during a run by: the proxy under test (process tree), the upstream (process tree) and the
    PostgreSQL backends connected to the bench database. CPU per request does not depend on how busy the shared
    machine is the way latency does, so it explains throughput ratios robustly."""

    def __init__(self, upstream_pid: int, db=None):
        self.upstream_pid, self.db = upstream_pid, db

    def pg_pids(self) -> list[int]:
        if self.db is None:
            return []
        rows = self.db.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                               "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchall()
        return [r[0] for r in rows]

    def snapshot(self, proxy_pid: int | None) -> dict:
        pg = self.pg_pids()
        return {"proxy": tree_cpu_seconds([proxy_pid]) if proxy_pid else 0.0,
                "upstream": tree_cpu_seconds([self.upstream_pid]),
                "pg": {pid: pids_cpu_seconds([pid]) for pid in pg}}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        pg = sum(v - before["pg"].get(pid, 0.0) for pid, v in after["pg"].items())
        return {"proxy": after["proxy"] - before["proxy"], "upstream": after["upstream"] - before["upstream"], "pg": pg}


class Target:
    def __init__(self, name: str, port: int, path: str, method="GET", body=None, headers=None, proxy_pid=None):
        self.name, self.port, self.path, self.method, self.body, self.headers = name, port, path, method, body, headers or {}
        self.proxy_pid = proxy_pid

    def load(self, client: str, concurrency: int, seconds: float, script_dir: Path, meter: CpuMeter | None = None) -> dict:
        before = meter.snapshot(self.proxy_pid) if meter else None
        result = run_load(client, self.port, self.path, method=self.method, body=self.body, headers=self.headers,
                          concurrency=concurrency, seconds=seconds, script_dir=script_dir)
        if meter:
            used = CpuMeter.delta(before, meter.snapshot(self.proxy_pid))
            n = max(1, result["requests"])
            result.update({f"cpu_{k}_ms": 1000 * v / n for k, v in used.items()})
        return result


def direct_target(port: int, upstream_path="/ping") -> Target:
    return Target("direct", port, upstream_path)


def nginx_target(port: int, upstream_path="/ping", pid=None) -> Target:
    return Target("nginx", port, upstream_path, proxy_pid=pid)


def ours_target(port: int, api_key: str, token: str, upstream_path="/ping", name="ours", pid=None) -> Target:
    body, headers = passthrough_request(api_key, token, upstream_path)
    return Target(name, port, "/api/v1/passthrough", "POST", body, headers, proxy_pid=pid)


def floor_target(port: int, upstream_path="/ping", pid=None) -> Target:
    """The floor proxy (tests/bench/floor.py): the same envelope as ours, forwarded by bare Django + urllib3."""
    body, headers = passthrough_request("", "", upstream_path)
    return Target("floor", port, "/api/v1/passthrough", "POST", body, headers, proxy_pid=pid)


def typed_target(port: int, api_key: str, token: str, resource="ping", pid=None) -> Target:
    """The typed function `bench-get-resource`: validation and request building, then the same `GET /ping`."""
    body = json.dumps({"resource": resource}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", "X-Account-Token": token}
    return Target("typed", port, "/api/v1/functions/bench-get-resource", "POST", body, headers, proxy_pid=pid)


def aggregate(runs: list[dict]) -> dict:
    out = {"rounds": len(runs), "requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs)}
    for key in ("p50", "p90", "p99", "p99.9", "mean", "rps", "cpu_proxy_ms", "cpu_upstream_ms", "cpu_pg_ms"):
        if all(key in r for r in runs):
            out[key] = statistics.median(r[key] for r in runs)
    out["rps_min"], out["rps_max"] = min(r["rps"] for r in runs), max(r["rps"] for r in runs)
    out["p50_min"], out["p50_max"] = min(r["p50"] for r in runs), max(r["p50"] for r in runs)
    return out


def interleaved(targets: list[Target], *, client: str, concurrencies, rounds: int, seconds: float, warmup: float,
                script_dir: Path, meter: CpuMeter | None = None) -> dict:
    """{concurrency: {target name: aggregate}}; every target runs once per round, order rotating."""
    results = {}
    for c in concurrencies:
        runs = {t.name: [] for t in targets}
        for t in targets:  # warm-up: connection pools, lazy imports, both gunicorn workers
            t.load(client, c, warmup, script_dir)
        for r in range(rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for t in order:
                result = t.load(client, c, seconds, script_dir, meter)
                runs[t.name].append(result)
                cpu = (f", CPU/req proxy {result['cpu_proxy_ms']:.3f} upstream {result['cpu_upstream_ms']:.3f} "
                       f"pg {result['cpu_pg_ms']:.3f} ms" if "cpu_proxy_ms" in result else "")
                log(f"A c={c} round {r + 1}/{rounds} {t.name:>10}: {result['requests']:6d} req, "
                    f"{result['rps']:8.1f} req/s, p50 {result['p50']:.3f} ms, p99 {result['p99']:.3f} ms, "
                    f"errors {result['errors']}{cpu}")
        results[c] = {name: aggregate(rs) for name, rs in runs.items()}
    return results


def ratios(results: dict, baseline="direct") -> dict:
    """Added latency and throughput ratio of every target against the baseline, per concurrency."""
    out = {}
    for c, by_target in results.items():
        base = by_target[baseline]
        out[c] = {name: {"added_p50": r["p50"] - base["p50"], "added_p99": r["p99"] - base["p99"],
                         "throughput_ratio": r["rps"] / base["rps"] if base["rps"] else float("nan")}
                  for name, r in by_target.items()}
    return out
