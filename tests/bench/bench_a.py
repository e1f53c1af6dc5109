"""Benchmark A: passthrough latency and throughput — direct vs our native passthrough vs nginx, side by side.

Runs are interleaved in rounds (the order rotates each round), so a burst of other load on this shared machine hits
every target alike; each figure is the median over rounds.
"""

import statistics
from pathlib import Path

from tests.bench.loadgen import run_load
from tests.bench.procs import log
from tests.bench.servers import passthrough_request


class Target:
    def __init__(self, name: str, port: int, path: str, method="GET", body=None, headers=None):
        self.name, self.port, self.path, self.method, self.body, self.headers = name, port, path, method, body, headers or {}

    def load(self, client: str, concurrency: int, seconds: float, script_dir: Path) -> dict:
        return run_load(client, self.port, self.path, method=self.method, body=self.body, headers=self.headers,
                        concurrency=concurrency, seconds=seconds, script_dir=script_dir)


def direct_target(port: int, upstream_path="/ping") -> Target:
    return Target("direct", port, upstream_path)


def nginx_target(port: int, upstream_path="/ping") -> Target:
    return Target("nginx", port, upstream_path)


def ours_target(port: int, api_key: str, token: str, upstream_path="/ping", name="ours") -> Target:
    body, headers = passthrough_request(api_key, token, upstream_path)
    return Target(name, port, "/api/v1/passthrough", "POST", body, headers)


def aggregate(runs: list[dict]) -> dict:
    out = {"rounds": len(runs), "requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs)}
    for key in ("p50", "p90", "p99", "p99.9", "mean", "rps"):
        out[key] = statistics.median(r[key] for r in runs)
    out["rps_min"], out["rps_max"] = min(r["rps"] for r in runs), max(r["rps"] for r in runs)
    out["p50_min"], out["p50_max"] = min(r["p50"] for r in runs), max(r["p50"] for r in runs)
    return out


def interleaved(targets: list[Target], *, client: str, concurrencies, rounds: int, seconds: float, warmup: float,
                script_dir: Path) -> dict:
    """{concurrency: {target name: aggregate}}; every target runs once per round, order rotating."""
    results = {}
    for c in concurrencies:
        runs = {t.name: [] for t in targets}
        for t in targets:  # warm-up: connection pools, lazy imports, both gunicorn workers
            t.load(client, c, warmup, script_dir)
        for r in range(rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for t in order:
                result = t.load(client, c, seconds, script_dir)
                runs[t.name].append(result)
                log(f"A c={c} round {r + 1}/{rounds} {t.name:>10}: {result['requests']:6d} req, "
                    f"{result['rps']:8.1f} req/s, p50 {result['p50']:.3f} ms, p99 {result['p99']:.3f} ms, "
                    f"errors {result['errors']}")
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
