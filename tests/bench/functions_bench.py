"""What a typed function adds before the passthrough service runs: argument validation (jsonschema) and request
building (path encoding, query serialization, body, the upstream target), measured in-process on unsaved rows.

    .venv/bin/python -m tests.bench.functions_bench [--calls N]

Part of `make bench` (a note in RESULTS.md); the end-to-end row is benchmark A's `typed` target.
"""

import argparse
import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_platform.settings")
django.setup()

from connections import client  # noqa: E402  (after django.setup())
from connections.models import Function, Integration  # noqa: E402
from functions import services  # noqa: E402

INTEGRATION = Integration(id=1, slug="bench", base_url="http://127.0.0.1:9/api", auth_scheme="bearer")
FUNCTION = Function(id=1, integration=INTEGRATION, name="bench-create-contact", type=Function.TYPE_ACTION,
                    description="Create a contact", operation={
                        "method": "POST", "path": "/lists/{listId}/contacts", "body_media_type": "application/json",
                        "arguments": {"listId": {"in": "path", "name": "listId"},
                                      "notify": {"in": "query", "name": "notify"},
                                      "tags": {"in": "query", "name": "tags"},
                                      "name": {"in": "body_property", "name": "name"},
                                      "email": {"in": "body_property", "name": "email"},
                                      "address": {"in": "body_property", "name": "address"}}},
                    parameters={"type": "object", "additionalProperties": False, "required": ["listId", "name"],
                                "properties": {
                                    "listId": {"type": "string"}, "notify": {"type": "boolean"},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "name": {"type": "string", "minLength": 1}, "email": {"type": "string"},
                                    "address": {"type": "object", "properties": {
                                        "city": {"type": "string"}, "zip": {"type": ["string", "null"]}}}}})
ARGUMENTS = {"listId": "sales/2026", "notify": True, "tags": ["vip", "eu"], "name": "Ada Lovelace",
             "email": "ada@example.test", "address": {"city": "London", "zip": None}}


def one_call() -> None:
    built = services.request_for(FUNCTION, services.validated_arguments(FUNCTION, ARGUMENTS))
    client.build_target(INTEGRATION, built.path, built.query)


def measure(calls: int) -> dict:
    for _ in range(200):  # warm-up: the validator cache, imports
        one_call()
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        one_call()
        timings.append(time.perf_counter() - started)
    timings.sort()
    return {"calls": calls, "p50_us": 1e6 * statistics.median(timings),
            "p99_us": 1e6 * timings[int(0.99 * (len(timings) - 1))]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    result = measure(parser.parse_args(argv).calls)
    print(f"typed function, validation + request building: p50 {result['p50_us']:.1f} µs, "
          f"p99 {result['p99_us']:.1f} µs over {result['calls']} calls")
    return result


if __name__ == "__main__":
    main()
