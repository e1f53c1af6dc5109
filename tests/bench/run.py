"""`make bench`: benchmarks A (every API surface — native passthrough, typed function, Merge, Unified, Integry — and
the embedded default, vs direct, the floor proxy and nginx), B (async passthrough), syncing
(tests/bench/sync_bench.py, database `bench_sync`, Redis dbs 11/10) and rate limits (tests/bench/ratelimit_bench.py,
database `bench_ratelimit`, Redis dbs 9/8), → RESULTS.md.

Everything runs on 127.0.0.1 on free ports: an upstream (gunicorn), nginx, our `manage.py serve`, the Dramatiq
worker, PostgreSQL database `bench` (dropped and recreated), Redis dbs 13 (broker) and 12 (cache), flushed; and a
second `serve` with the embedded default's settings (SQLite file in the temp dir, no Redis) for A's `embedded` row. Every
process started here is stopped at the end, also on failure or Ctrl-C. Loops are bounded in count and time.

    .venv/bin/python -m tests.bench.run --help
"""

import argparse
import datetime
import json
import shutil
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from tests.bench import bench_a, bench_b, environment, functions_bench, outbound_bench, profiling, report
from tests.bench.loadgen import have_wrk, run_load
from tests.bench.procs import PY, Procs, log, run_checked
from tests.bench.servers import check_passthrough, start_floor, start_nginx, start_serve, start_upstream, UPSTREAM_THREADS, UPSTREAM_WORKERS

HERE = Path(__file__).resolve().parent


VARIANT_FLAGS = {
    "log": "access log on",
    "nofsync": "DB sessions with synchronous_commit=off (DATABASE_URL option)",
    "asynclog": "what-if patch: call-log INSERT with synchronous_commit off",
}


def parse_variant(text: str) -> dict:
    """`WORKERSxTHREADS[:flag...]`, flags from VARIANT_FLAGS (access log off unless `log`)."""
    spec, *flags = [t.strip() for t in text.split(":")]
    unknown = set(flags) - set(VARIANT_FLAGS)
    if unknown:
        raise SystemExit(f"unknown serve variant flags {sorted(unknown)} in {text!r}; known: {sorted(VARIANT_FLAGS)}")
    workers, _, threads = spec.partition("x")
    extras = [VARIANT_FLAGS[f] for f in flags if f != "log"]
    label = f"{int(workers)} × {int(threads)}, access log {'on' if 'log' in flags else 'off'}"
    return {"workers": int(workers), "threads": int(threads), "access_log": "log" in flags,
            "whatif": [f for f in flags if f == "asynclog"], "db_sync_commit_off": "nofsync" in flags,
            "label": label + "".join(f"; {e}" for e in extras)}


def serve_kwargs(v: dict) -> dict:
    return {k: v[k] for k in ("workers", "threads", "access_log", "whatif", "db_sync_commit_off")}


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--client", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator for A (auto: wrk if installed, else the Python keep-alive client)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per concurrency (A)")
    p.add_argument("--seconds", type=float, default=5, help="seconds per target per round (A)")
    p.add_argument("--warmup", type=float, default=1, help="warm-up seconds per target per concurrency (A)")
    p.add_argument("--serve", default="2x8", help="primary serve setting, WORKERSxTHREADS[:flag...] (default 2x8, log off)")
    p.add_argument("--variants", default="2x8:log,4x4,2x8:nofsync",
                   help="other serve settings to try, comma-separated ('' for none); flags: "
                        + ", ".join(f"{k} ({v})" for k, v in VARIANT_FLAGS.items()))
    p.add_argument("--variant-rounds", type=int, default=2)
    p.add_argument("--slow-delay-ms", type=int, default=20, help="extra A table with a slower upstream (0: skip)")
    p.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                   help="py-spy profile of serve (auto: when an A target is missed)")
    p.add_argument("--profile-seconds", type=int, default=10)
    p.add_argument("--b-requests", type=int, default=1000)
    p.add_argument("--b-sparse", type=int, default=15, help="extra B requests sent 1 at a time with idle gaps (0: skip)")
    p.add_argument("--b-sparse-gap", type=float, default=2.0)
    p.add_argument("--b-fast-poll-ms", default="1000",
                   help="rerun the sparse phase with dramatiq_worker_timeout set to each of these ms values ('' to skip)")
    p.add_argument("--b-throughput-jobs", type=int, default=1000)
    p.add_argument("--skip-a", action="store_true")
    p.add_argument("--skip-b", action="store_true")
    p.add_argument("--skip-sync", action="store_true", help="skip the syncing benchmark (tests/bench/sync_bench.py)")
    p.add_argument("--skip-ratelimit", action="store_true",
                   help="skip the rate-limit benchmark (tests/bench/ratelimit_bench.py)")
    p.add_argument("--before", metavar="COMMIT",
                   help="also serve COMMIT's code (git archive into the temp dir; same database, so no migration may "
                        "differ) as target `before`, interleaved with ours in part A")
    p.add_argument("--only", choices=["a", "b", "sync", "ratelimit"],
                   help="run only this part (e.g. `--only a --variants '' --slow-delay-ms 0`: part A alone, ~3 min)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, configs, raw profiles)")
    args = p.parse_args(argv)
    if args.only:
        for part in ("a", "b", "sync", "ratelimit"):
            setattr(args, f"skip_{part}", part != args.only)
    return args


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def profile_serve(args, serve_proc, ours, client, tmp) -> dict:
    spy, how = profiling.py_spy(install=True)
    out = {"py_spy": f"`{spy}` ({how})" if spy else how, "sections": []}
    if not spy:
        out["note"] = "py-spy unavailable: no profile."
        return out
    plans = [("Python CPU profile at concurrency 8 (`--gil`: only samples of the thread holding the GIL, i.e. "
              "where the interpreter's time goes)", 8, False, True),
             ("Wall-clock profile at concurrency 1 (`--idle`: includes waiting on PostgreSQL, Redis and the upstream)",
              1, True, False)]
    for title, c, idle, gil in plans:
        raw = tmp / f"pyspy-c{c}.txt"
        load = threading.Thread(target=lambda: ours.load(client, c, args.profile_seconds + 4, tmp), daemon=True)
        load.start()
        time.sleep(1.5)
        log(f"py-spy: recording serve (pid {serve_proc.pid} + workers) for {args.profile_seconds} s at c={c}")
        profiling.record(spy, serve_proc.pid, raw, args.profile_seconds, idle=idle, gil=gil)
        load.join(timeout=args.profile_seconds + 60)
        out["sections"].append({"title": title, "summary": profiling.summarize(raw)})
    out["note"] = ("Sampled at 200 Hz over the gunicorn master and its workers (`py-spy record --subprocesses`), "
                   "while wrk drove `POST /api/v1/passthrough`; shares are of samples inside gunicorn's "
                   "`handle_request` and nest (a parent includes its children).")
    return out


def checkout(commit: str, tmp: Path) -> Path:
    """COMMIT's tree, exported (not a git worktree: the repository is left as it is)."""
    where = tmp / f"before-{commit}"
    where.mkdir()
    run_checked(["git", "archive", "--format=tar", "-o", tmp / f"before-{commit}.tar", commit], what="git archive")
    run_checked(["tar", "-x", "-f", tmp / f"before-{commit}.tar", "-C", where], what="tar")
    return where


def sync_benchmark(env, tmp) -> dict:
    """tests/bench/sync_bench.py in a child process (it sets up Django for its own database); its figures."""
    out = tmp / "sync.json"
    log("sync: 100,000 records, 100 per page, into PostgreSQL bench_sync (full, incremental unchanged, 1,000 changed)")
    run_checked([PY, "-m", "tests.bench.sync_bench", "--json", out], env=env, timeout=1800, what="sync benchmark")
    return json.loads(out.read_text())


def census(env, fixtures) -> dict:
    out = run_checked([PY, "-m", "tests.bench.census", fixtures["api_key"], fixtures["account_token"]], env=env,
                      timeout=120, what="query census")
    return json.loads(out.strip().splitlines()[-1])


def census_notes(c: dict) -> list[str]:
    sql = [q["sql"] for q in c["queries"]]
    writes = [s for s in sql if s.split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    selects = [s for s in sql if s.split()[0].upper() == "SELECT"]
    return [f"A native passthrough request runs {len(sql)} SQL statements ({len(selects)} SELECT, {len(writes)} writes: "
            + "; ".join(w.split(" SET ")[0].split(" (")[0][:70] for w in writes) + ") — see the census table."]


def main(argv=None) -> int:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="ip-bench-"))
    tmp.chmod(0o755)
    log(f"temp dir {tmp}")
    procs = Procs(tmp)
    data = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "notes": [], "errors": [],
            "command": shlex.join([".venv/bin/python", "-m", "tests.bench.run", *(argv if argv is not None else sys.argv[1:])])}
    ok = False
    meter_db = None
    try:
        tools = environment.ensure_debian_tools()
        client = args.client if args.client != "auto" else ("wrk" if have_wrk() else "python")
        if client == "wrk" and not have_wrk():
            raise SystemExit("wrk requested but not installed")
        data["tools"] = ", ".join(f"{k}: {v}" for k, v in tools.items()) + f"; load generator: {client}"

        environment.recreate_database()
        environment.flush_redis()
        data["machine"] = environment.machine_facts()
        data["pg_probe_start"] = environment.pg_probe()
        log(f"PostgreSQL now: {data['pg_probe_start']}")
        env = environment.platform_env(tmp, **environment.make_secrets(tmp))

        upstream, up_port = start_upstream(procs)
        fixtures = environment.load_fixtures(env, tmp, f"http://127.0.0.1:{up_port}")
        nginx_bin = environment.nginx_binary()
        nginx_port = nginx_pid = None
        if nginx_bin:
            nginx_proc, nginx_port = start_nginx(procs, nginx_bin, tmp, up_port)
            nginx_pid = nginx_proc.pid
        else:
            data["notes"].append("nginx is not installed: the nginx reference column is missing.")

        primary = parse_variant(args.serve)
        serve, serve_port = start_serve(procs, env, **serve_kwargs(primary))
        check_passthrough(serve_port, fixtures["api_key"], fixtures["account_token"])
        log("passthrough answers 200 with the upstream's 200")

        meter_db = environment.bench_db()
        meter = bench_a.CpuMeter(upstream.pid, meter_db)
        direct = bench_a.direct_target(up_port)
        key, token = fixtures["api_key"], fixtures["account_token"]
        ours = bench_a.ours_target(serve_port, key, token, pid=serve.pid)
        # Every API surface of the primary serve, each making the same upstream call (`GET /ping`).
        surfaces = [bench_a.typed_target(serve_port, key, token, pid=serve.pid),
                    bench_a.merge_target(serve_port, key, token, pid=serve.pid),
                    bench_a.unified_target(serve_port, key, fixtures["connection_id"], pid=serve.pid),
                    bench_a.integry_target(serve_port, key, pid=serve.pid)]
        for t in surfaces:
            t.check()
        floor_proc, floor_port = start_floor(procs, up_port, workers=primary["workers"], threads=primary["threads"])
        floor = bench_a.floor_target(floor_port, pid=floor_proc.pid)
        before, before_dir = [], None
        if args.before:
            before_dir = checkout(args.before, tmp)
            before_proc, before_port = start_serve(procs, env, name="serve-before", cwd=before_dir,
                                                   **serve_kwargs(primary))
            check_passthrough(before_port, key, token)
            data["before_commit"] = args.before
            before = [bench_a.ours_target(before_port, key, token, name="before", pid=before_proc.pid)]
        embedded, emb_procs = [], []
        if not args.skip_a:
            # The embedded default (`make run`): its own SQLite database and fixtures, no Redis; same upstream, same
            # gunicorn workers × threads and access-log setting as the primary serve.
            emb_env = environment.embedded_env(env, tmp)
            emb_fixtures = environment.load_fixtures(emb_env, tmp, f"http://127.0.0.1:{up_port}", label="embedded")
            emb_serve = {"workers": primary["workers"], "threads": primary["threads"], "access_log": primary["access_log"]}
            emb_proc, emb_port = start_serve(procs, emb_env, name="serve-embedded", **emb_serve)
            emb_procs.append(emb_proc)
            embedded = [bench_a.embedded_target(emb_port, emb_fixtures["api_key"], emb_fixtures["account_token"],
                                                pid=emb_proc.pid)]
            if before_dir:  # the older checkout on the same SQLite file: the embedded default's before and after
                emb_proc, emb_port = start_serve(procs, emb_env, name="serve-before-embedded", cwd=before_dir, **emb_serve)
                emb_procs.append(emb_proc)
                embedded.append(bench_a.embedded_target(emb_port, emb_fixtures["api_key"], emb_fixtures["account_token"],
                                                        name="before embedded", pid=emb_proc.pid))
            for target in embedded:
                target.check()
        targets = ([direct, floor, ours, *before, *surfaces, *embedded]
                   + ([bench_a.nginx_target(nginx_port, pid=nginx_pid)] if nginx_port else []))
        a = None
        if not args.skip_a:
            a = {"setup": {"upstream": f"{UPSTREAM_WORKERS} workers × {UPSTREAM_THREADS} threads",
                           "serve": primary["label"],
                           "nginx": "nginx -p <tmp>, daemon off, worker_processes auto, listen 127.0.0.1, access_log off, "
                                    "upstream keepalive 32, proxy_http_version 1.1",
                           "client": ("wrk 4 (`-t min(c,2) -c c`, keep-alive, Lua script for the POST body; "
                                      "latency percentiles from wrk's histogram)") if client == "wrk"
                                     else "Python http.client, one persistent connection per thread",
                           "rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup}}
            a["setup"]["floor"] = (f"bare Django + pooled urllib3 (tests/bench/floor.py) under gunicorn "
                                   f"{primary['workers']} × {primary['threads']} gthread, access log off")
            a["setup"]["embedded"] = (f"a second `manage.py serve` with the `make run` defaults for storage: SQLite "
                                      f"(WAL) file in the temp dir, no CACHE_URL (database cache, rate limits in the "
                                      f"database, no hot cache), no DRAMATIQ_BROKER_URL (in-process job worker and "
                                      f"scheduler in each web process); {primary['label']}; its own migrated database, "
                                      f"API key and connection, the same upstream")
            a["setup"]["targets"] = {t.name: bench_a.DESCRIPTIONS.get(t.name, t.name) for t in targets}
            log(f"A: {' / '.join(t.name for t in targets)} at concurrency 1 and 8")
            a["results"] = bench_a.interleaved(targets, client=client, concurrencies=(1, 8), rounds=args.rounds,
                                               seconds=args.seconds, warmup=args.warmup, script_dir=tmp, meter=meter)
            a["ratios"] = bench_a.ratios(a["results"])
            for emb_proc in emb_procs:  # their in-process job workers and schedulers: not left running beside B...
                procs.stop(emb_proc)
            typed_in_process = functions_bench.measure(20000)
            data["notes"].append(f"Typed function (`typed` row: `POST /api/v1/functions/bench-get-resource`, the same "
                                 f"`GET /ping` upstream): validation + request building alone, in-process, p50 "
                                 f"{typed_in_process['p50_us']:.0f} µs (tests/bench/functions_bench.py).")
            outbound = outbound_bench.measure(up_port)
            data["notes"].append(
                "The outbound request alone (tests/bench/outbound_bench.py: in-process, keep-alive `GET /ping` to the "
                "same upstream, body read; CPU per call / p50 wall, medians of 5 interleaved rounds): our client's "
                "transport (a prepared request through requests' adapter, our deadline and size cap) "
                f"{outbound['client']['cpu_us']:.0f} / {outbound['client']['p50_us']:.0f} µs; a `requests.Session` "
                f"(before) {outbound['session']['cpu_us']:.0f} / {outbound['session']['p50_us']:.0f} µs; urllib3 used "
                f"directly {outbound['urllib3']['cpu_us']:.0f} / {outbound['urllib3']['p50_us']:.0f} µs.")
            data["a"] = a
            try:
                a["census"] = census(env, fixtures)
                data["notes"] += census_notes(a["census"])
            except Exception as exc:  # noqa: BLE001 - optional section
                data["errors"].append(f"query census failed: {exc}")
            missed = (a["ratios"][1]["ours"]["added_p50"] > 2.0 or a["ratios"][8]["ours"]["throughput_ratio"] < 0.40
                      or any(a["ratios"][1][n]["added_p50"] > 2.0 or a["ratios"][8][n].get("throughput_vs_floor", 1) < 0.50
                             for n in bench_a.SURFACES if n in a["ratios"][1] and n in a["ratios"][8]))
            if args.profile == "always" or (args.profile == "auto" and missed):
                try:
                    a["profile"] = profile_serve(args, serve, ours, client, tmp)
                except Exception as exc:  # noqa: BLE001 - optional section
                    data["errors"].append(f"profiling failed: {exc}")
            if args.slow_delay_ms:
                path = f"/delay/{args.slow_delay_ms}"
                slow = [bench_a.direct_target(up_port, path), bench_a.floor_target(floor_port, path, pid=floor_proc.pid),
                        bench_a.ours_target(serve_port, fixtures["api_key"], fixtures["account_token"], path, pid=serve.pid)]
                if nginx_port:
                    slow.append(bench_a.nginx_target(nginx_port, path, pid=nginx_pid))
                log(f"A: slow upstream ({args.slow_delay_ms} ms) at concurrency 1 and 8")
                res = bench_a.interleaved(slow, client=client, concurrencies=(1, 8), rounds=2, seconds=args.seconds,
                                          warmup=args.warmup, script_dir=tmp, meter=meter)
                a["slow"] = {"delay_ms": args.slow_delay_ms, "rounds": 2, "results": res, "ratios": bench_a.ratios(res)}

        if not args.skip_b:
            direct_p50 = a["results"][1]["direct"]["p50"] if a else None
            if direct_p50 is None:
                direct_p50 = run_load(client, up_port, "/ping", concurrency=1, seconds=3, script_dir=tmp)["p50"]
            b = bench_b.run(procs, env, serve_port, fixtures["api_key"], fixtures["account_token"],
                            requests=args.b_requests, sparse=args.b_sparse, sparse_gap=args.b_sparse_gap,
                            throughput_jobs=args.b_throughput_jobs,
                            fast_poll_ms=[int(x) for x in args.b_fast_poll_ms.split(",") if x.strip()])
            b["direct_p50"] = direct_p50
            b["sparse_overhead_p50"] = (b["sparse"]["server_total"]["p50"] - direct_p50) if b.get("sparse") else None
            b["overhead_p50"] = b["latency"]["server_total"]["p50"] - direct_p50
            data["b"] = b

        # --- Syncing (issue #8): a child process with its own database `bench_sync` and Redis dbs 11/10 ---
        if not args.skip_sync:
            try:
                data["sync"] = sync_benchmark(env, tmp)
            except Exception as exc:  # noqa: BLE001 - reported; the other sections stand
                data["errors"].append(f"sync benchmark failed: {exc}")
        # --- end of syncing ---

        # --- Rate limits (issue 6): its own processes, database `bench_ratelimit` and Redis dbs 9/8 ---
        if not args.skip_ratelimit:
            from tests.bench import ratelimit_bench

            try:
                data["ratelimit"] = ratelimit_bench.run(tmp)
            except Exception as exc:  # noqa: BLE001 - reported; the other sections stand
                data["errors"].append(f"rate-limit benchmark failed: {exc}")
        # --- end of rate limits ---

        data["pg_probe_mid"] = environment.pg_probe()
        if a is not None and args.variants.strip():
            # Each variant runs interleaved with direct calls AND the primary serve (kept running), so every
            # comparison is made in the same rounds, under the same load of this shared machine.
            a["variants"], a["variants_rounds"] = [], args.variant_rounds
            for text in [v.strip() for v in args.variants.split(",") if v.strip()]:
                v = parse_variant(text)
                log(f"A variant: serve {v['label']}")
                try:
                    vproc, vport = start_serve(procs, env, name=f"serve-{text.replace(':', '-')}", **serve_kwargs(v))
                    check_passthrough(vport, fixtures["api_key"], fixtures["account_token"])
                    vt = [direct, ours, bench_a.ours_target(vport, fixtures["api_key"], fixtures["account_token"],
                                                            name="variant", pid=vproc.pid)]
                    res = bench_a.interleaved(vt, client=client, concurrencies=(1, 8), rounds=args.variant_rounds,
                                              seconds=args.seconds, warmup=args.warmup, script_dir=tmp, meter=meter)
                    a["variants"].append({"label": v["label"], "results": res, "ratios": bench_a.ratios(res)})
                    procs.stop(vproc)
                except Exception as exc:  # noqa: BLE001 - optional section
                    data["errors"].append(f"variant {text} failed: {exc}")

        data["pg_probe_end"] = environment.pg_probe()
        if a is not None and "cpu_proxy_ms" in a["results"][8]["ours"]:
            o, n, d = a["results"][8]["ours"], a["results"][8].get("nginx"), a["results"][8]["direct"]
            total = o["cpu_proxy_ms"] + o["cpu_upstream_ms"] + o["cpu_pg_ms"]
            data["notes"].append(
                f"Throughput is bounded by CPU: at concurrency 8 our serve spends {o['cpu_proxy_ms']:.2f} ms of CPU per "
                f"request, PostgreSQL {o['cpu_pg_ms']:.2f} ms and the upstream {o['cpu_upstream_ms']:.2f} ms "
                f"({total:.2f} ms in all, i.e. at most ~{2000 / total:.0f} req/s on 2 cores), against "
                + (f"{n['cpu_proxy_ms']:.3f} ms for nginx and " if n and 'cpu_proxy_ms' in n else "")
                + f"{d['cpu_upstream_ms']:.3f} ms for the upstream alone. 40 % of direct would need about "
                f"{2000 / (0.4 * d['rps']):.2f} ms of CPU per request for everything (proxy + upstream + database).")
        data["notes"] += [
            "Latency is measured by the client on loopback, so it includes the client's own cost equally for every "
            "target; `added` figures subtract the direct figure of the same run, which removes it.",
            "Direct and nginx send `GET /ping`; ours sends the passthrough envelope (`POST`, ~40-byte JSON body, two "
            "auth headers) and answers with the passthrough envelope (upstream status, headers and body as JSON).",
            "Our passthrough writes a function-call log row per call (by design: the call log), so each request is at "
            "least one INSERT; nginx and direct write nothing.",
            "All processes share 2 cores: at concurrency 8 the upstream, the proxy under test and wrk compete for "
            "CPU, which is why direct and nginx are CPU-bound too.",
        ]
        if data.get("b"):
            data["notes"].append(
                "B's sequential phase keeps the worker busy (the next job is enqueued as soon as the last is seen "
                "finished), so Dramatiq's consumer rarely idles; the sparse phase shows latency after idle gaps, when "
                "the Redis consumer backs off polling up to `dramatiq_worker_timeout` (our default 50 ms, "
                "DRAMATIQ_WORKER_TIMEOUT_MS; Dramatiq's own is 1000 ms, the `=1000` row).")
        ok = True
    except BaseException as exc:  # noqa: BLE001 - reported, then re-raised after teardown
        data["errors"].append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        raise
    finally:
        log("tearing down")
        procs.stop_all()
        try:
            meter_db.close()
        except Exception:  # noqa: BLE001 - not opened, or already gone
            pass
        data["elapsed_min"] = (time.monotonic() - started) / 60
        data["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "n/a"
        if "machine" in data:
            target = args.out if ok else tmp / "RESULTS.partial.md"
            try:
                report.write(target, data)
                (tmp / "results.json").write_text(json.dumps(data, default=str, indent=1))
                log(f"wrote {target}")
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        if ok and not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs and raw data kept in {tmp}")
    for name, measured, met in report.targets(data):
        log(f"target {name}: {measured} → {'no target' if met is None else 'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
