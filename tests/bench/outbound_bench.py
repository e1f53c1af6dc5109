"""The outbound request alone (issue 13, design item 4): what our client's transport costs against urllib3 used
directly, measured in one process against the benchmark's loopback upstream, interleaved in rounds.

    .venv/bin/python -m tests.bench.outbound_bench --port PORT [--calls N] [--rounds R]

Ways, each a keep-alive `GET /ping` whose whole body is read:
- `client`: what connections/client.py sends with (a prepared request through requests' transport adapter, body
  read with our deadline and size cap);
- `session`: a `requests.Session` (what the client used before);
- `urllib3`: a `urllib3.PoolManager` request, the floor proxy's way.
Prints one JSON line: CPU µs per call (process time) and wall p50 µs per way, medians over rounds.
"""

import argparse
import json
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
django.setup()

import requests  # noqa: E402  (after django.setup())
import urllib3  # noqa: E402

from connections import client  # noqa: E402


def ways(url: str) -> dict:
    session = requests.Session()
    session.trust_env = False
    pool = urllib3.PoolManager(maxsize=8)

    def via_client():
        client._send_once("GET", url, {}, None, client.TRUSTED, time.monotonic() + 10)

    def via_session():
        response = session.get(url, allow_redirects=False, timeout=10)
        response.content  # noqa: B018 - read the body, as the others do

    def via_urllib3():
        pool.request("GET", url, redirect=False, timeout=10).data  # noqa: B018

    return {"client": via_client, "session": via_session, "urllib3": via_urllib3}


def measure(port: int, calls: int = 2000, rounds: int = 5) -> dict:
    url = f"http://127.0.0.1:{port}/ping"
    runs = {name: [] for name in ways(url)}
    candidates = ways(url)
    for call in candidates.values():
        for _ in range(100):  # warm: connections open, code paths hot
            call()
    for round_number in range(rounds):
        order = list(candidates.items())
        order = order[round_number % len(order):] + order[:round_number % len(order)]
        for name, call in order:
            walls = []
            cpu0 = time.process_time()
            for _ in range(calls):
                w0 = time.perf_counter()
                call()
                walls.append(time.perf_counter() - w0)
            runs[name].append({"cpu_us": 1e6 * (time.process_time() - cpu0) / calls,
                               "p50_us": 1e6 * statistics.median(walls)})
    return {name: {key: statistics.median(run[key] for run in measured) for key in ("cpu_us", "p50_us")}
            for name, measured in runs.items()} | {"calls": calls, "rounds": rounds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="the loopback upstream (tests/bench/upstream.py)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.port, args.calls, args.rounds)))


if __name__ == "__main__":
    main()
