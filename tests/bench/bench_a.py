"""Benchmark A: passthrough latency and throughput — direct vs every API surface of ours (native passthrough, typed
function, Merge, Unified, Integry), the embedded default (SQLite, no Redis), the floor proxy and nginx, side by side.

Runs are interleaved in rounds (the order rotates each round), so a burst of other load on this shared machine hits
every target alike; each figure is the median over rounds.
"""

import json
import statistics
from pathlib import Path

from tests.bench.loadgen import run_load
from tests.bench.procs import log, pids_cpu_seconds, tree_cpu_seconds
from tests.bench.servers import check_surface, integry_request, merge_request, passthrough_request, unified_request

# Row order of A's tables, and the API surfaces issue 13 sets targets for (each must add ≤ 2 ms p50 at concurrency 1
# and keep ≥ 50 % of the floor proxy's throughput at concurrency 8). `embedded` and `before` are reported, no target.
ROW_ORDER = ("direct", "floor", "ours", "before", "typed", "merge", "unified", "integry", "embedded", "before embedded",
             "nginx")
SURFACES = ("ours", "typed", "merge", "unified", "integry")
DESCRIPTIONS = {
    "direct": "`GET /ping` on the upstream itself",
    "floor": "the floor proxy (tests/bench/floor.py): `POST /api/v1/passthrough`, bare Django + urllib3",
    "ours": "native passthrough: `POST /api/v1/passthrough` `{\"method\":\"GET\",\"path\":\"/ping\"}`, "
            "`Authorization: Bearer <key>`, `X-Account-Token`",
    "before": "native passthrough of the older checkout (`--before`), same database and Redis",
    "typed": "typed function: `POST /api/v1/functions/bench-get-resource` `{\"resource\":\"ping\"}`",
    "merge": "Merge dialect: `POST /merge/api/crm/v1/passthrough` `{\"method\":\"GET\",\"path\":\"/ping\"}`, "
             "`Authorization: Bearer <key>`, `X-Account-Token`",
    "unified": "Unified dialect: `GET /unified/passthrough/<connection id>/ping`, `Authorization: <key>` (raw, as the "
               "Unified SDK sends it)",
    "integry": "Integry dialect: `POST /integry/functions/bench-passthrough-request/call/` "
               "`{\"method\":\"GET\",\"url\":\"/ping\"}`, `App-Key`, `User-ID: u1`, `Hash` (HMAC-SHA256)",
    "embedded": "the embedded default (`make run` settings: SQLite, no Redis, in-process job worker): native passthrough",
    "before embedded": "the embedded default of the older checkout (`--before`), same SQLite database",
    "nginx": "nginx reverse proxy: `GET /ping`",
}


def _json_field(field: str):
    """The upstream's status from a JSON answer's `field` (`network_code` is a string, as Integry sends it)."""
    return lambda content: int(json.loads(content)[field])


UPSTREAM_BODY_MARK = b'"bench-upstream"'  # tests/bench/upstream.py's body, passed through unchanged by Unified


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

    def snapshot(self, proxy_pid: int | None, pg: bool = True) -> dict:
        pg = self.pg_pids() if pg else []
        return {"proxy": tree_cpu_seconds([proxy_pid]) if proxy_pid else 0.0,
                "upstream": tree_cpu_seconds([self.upstream_pid]),
                "pg": {pid: pids_cpu_seconds([pid]) for pid in pg}}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        pg = sum(v - before["pg"].get(pid, 0.0) for pid, v in after["pg"].items())
        return {"proxy": after["proxy"] - before["proxy"], "upstream": after["upstream"] - before["upstream"], "pg": pg}


class Target:
    """One row of A: a request sent to a port. `upstream_status` reads the upstream's status from an answer (for the
    startup check); `uses_pg` False: the target has no PostgreSQL (embedded), its PostgreSQL CPU is not metered."""

    def __init__(self, name: str, port: int, path: str, method="GET", body=None, headers=None, proxy_pid=None,
                 upstream_status=None, uses_pg=True):
        self.name, self.port, self.path, self.method, self.body, self.headers = name, port, path, method, body, headers or {}
        self.proxy_pid, self.upstream_status, self.uses_pg = proxy_pid, upstream_status, uses_pg

    def check(self) -> None:
        """The target answers 200 with the upstream's 200, or RuntimeError with the answer."""
        check_surface(self.port, self.name, self.method, self.path, self.body, self.headers,
                      self.upstream_status or (lambda content: 200))
        log(f"{self.name}: {self.method} {self.path} answers 200 with the upstream's 200")

    def load(self, client: str, concurrency: int, seconds: float, script_dir: Path, meter: CpuMeter | None = None) -> dict:
        before = meter.snapshot(self.proxy_pid, self.uses_pg) if meter else None
        result = run_load(client, self.port, self.path, method=self.method, body=self.body, headers=self.headers,
                          concurrency=concurrency, seconds=seconds, script_dir=script_dir)
        if meter:
            used = CpuMeter.delta(before, meter.snapshot(self.proxy_pid, self.uses_pg))
            n = max(1, result["requests"])
            result.update({f"cpu_{k}_ms": 1000 * v / n for k, v in used.items()})
        return result


def direct_target(port: int, upstream_path="/ping") -> Target:
    return Target("direct", port, upstream_path)


def nginx_target(port: int, upstream_path="/ping", pid=None) -> Target:
    return Target("nginx", port, upstream_path, proxy_pid=pid)


def ours_target(port: int, api_key: str, token: str, upstream_path="/ping", name="ours", pid=None,
                uses_pg=True) -> Target:
    body, headers = passthrough_request(api_key, token, upstream_path)
    return Target(name, port, "/api/v1/passthrough", "POST", body, headers, proxy_pid=pid,
                  upstream_status=_json_field("status"), uses_pg=uses_pg)


def embedded_target(port: int, api_key: str, token: str, upstream_path="/ping", name="embedded", pid=None) -> Target:
    """The embedded default's native passthrough (its own SQLite database, API key and account token)."""
    return ours_target(port, api_key, token, upstream_path, name=name, pid=pid, uses_pg=False)


def floor_target(port: int, upstream_path="/ping", pid=None) -> Target:
    """The floor proxy (tests/bench/floor.py): the same envelope as ours, forwarded by bare Django + urllib3."""
    body, headers = passthrough_request("", "", upstream_path)
    return Target("floor", port, "/api/v1/passthrough", "POST", body, headers, proxy_pid=pid,
                  upstream_status=_json_field("status"))


def typed_target(port: int, api_key: str, token: str, resource="ping", pid=None) -> Target:
    """The typed function `bench-get-resource`: validation and request building, then the same `GET /ping`."""
    body = json.dumps({"resource": resource}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}", "X-Account-Token": token}
    return Target("typed", port, "/api/v1/functions/bench-get-resource", "POST", body, headers, proxy_pid=pid,
                  upstream_status=_json_field("network_code"))


def merge_target(port: int, api_key: str, token: str, upstream_path="/ping", pid=None) -> Target:
    method, path, body, headers = merge_request(api_key, token, upstream_path)
    return Target("merge", port, path, method, body, headers, proxy_pid=pid, upstream_status=_json_field("status"))


def unified_target(port: int, api_key: str, connection_id, upstream_path="/ping", pid=None) -> Target:
    """Unified answers with the upstream's own status and body: 200 and the upstream's body is the check."""
    method, path, body, headers = unified_request(api_key, connection_id, upstream_path)
    return Target("unified", port, path, method, body, headers, proxy_pid=pid,
                  upstream_status=lambda content: 200 if UPSTREAM_BODY_MARK in content else f"body {content[:200]!r}")


def integry_target(port: int, api_key: str, upstream_path="/ping", pid=None) -> Target:
    method, path, body, headers = integry_request(api_key, upstream_path)
    return Target("integry", port, path, method, body, headers, proxy_pid=pid,
                  upstream_status=_json_field("network_code"))


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


def ratios(results: dict, baseline="direct", floor="floor") -> dict:
    """Added latency and throughput ratio of every target against the baseline, per concurrency; with a floor proxy
    in the run, also each target's throughput as a share of the floor's (`throughput_vs_floor`)."""
    out = {}
    for c, by_target in results.items():
        base, low = by_target[baseline], by_target.get(floor)
        out[c] = {name: {"added_p50": r["p50"] - base["p50"], "added_p99": r["p99"] - base["p99"],
                         "throughput_ratio": r["rps"] / base["rps"] if base["rps"] else float("nan"),
                         **({"throughput_vs_floor": r["rps"] / low["rps"] if low["rps"] else float("nan")}
                            if low else {})}
                  for name, r in by_target.items()}
    return out
