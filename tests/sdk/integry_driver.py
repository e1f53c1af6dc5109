"""Drive Integry's unmodified Python SDK (integry 0.0.20, Python >= 3.12) against our server.

Run by tests/test_integry_sdk.py in a separate Python 3.12 environment:

    python integry_driver.py <server URL>  < {"app_key": ..., "app_secret": ..., "steps": [[op, {kwargs}], ...]}

Prints one JSON list: per step, what the SDK returned, or `{"raised": "<exception class>", "message", "errors"}`.
"""

import asyncio
import json
import sys

from integry import Integry
from integry.utils.pydantic import get_pydantic_model_from_json_schema

MAX_ITEMS = 10_000  # the SDK loops forever on a last page whose cursor is "": stop and report instead


async def collect(paginator) -> list[str]:
    names = []
    async for item in paginator:
        names.append(item.name)
        if len(names) > MAX_ITEMS:
            raise RuntimeError("pagination did not end")
    return names


def function_json(function) -> dict:
    # What an agent framework would do with it: the schema as given, and a pydantic model built from it.
    get_pydantic_model_from_json_schema(function.get_json_schema()["parameters"])
    return {"name": function.name, "description": function.description, "schema": function.get_json_schema()}


def call_json(result) -> dict:
    return {"class": type(result).__name__, "network_code": result.network_code, "output": result.output}


async def run(integry: Integry, op: str, kwargs: dict):
    if op == "functions.list":
        return await collect(integry.functions.list(**kwargs))
    if op == "functions.list_page":
        page = await integry.functions.list(**kwargs)
        return {"names": [f.name for f in page.functions], "cursor": page.cursor}
    if op == "functions.get":
        return function_json(await integry.functions.get(**kwargs))
    if op == "functions.predict":
        return [f.name for f in await integry.functions.predict(**kwargs)]
    if op == "functions.call":
        return call_json(await integry.functions.call(**kwargs))
    if op == "functions.call_sync":
        return call_json(integry.functions.call_sync(**kwargs))
    if op == "apps.list":
        return await collect(integry.apps.list(**kwargs))
    if op == "apps.list_page":
        page = await integry.apps.list(**kwargs)
        return {"names": [a.name for a in page.apps], "cursor": page.cursor}
    if op == "apps.get":
        return (await integry.apps.get(**kwargs)).model_dump(mode="json")
    if op == "apps.is_connected":
        return await integry.apps.is_connected(**kwargs)
    raise ValueError(f"unknown op {op!r}")


async def main(server: str, spec: dict) -> list:
    results = []
    async with Integry(app_key=spec["app_key"], app_secret=spec["app_secret"]) as integry:
        integry.base_url = f"{server}/integry"  # the SDK hard-codes https://api.integry.io
        for op, kwargs in spec["steps"]:
            try:
                results.append(await run(integry, op, kwargs))
            except Exception as exc:  # report what the SDK raised; the test asserts on it
                errors = getattr(exc, "errors", None)
                results.append({"raised": f"{type(exc).__module__}.{type(exc).__name__}", "message": str(exc),
                                "errors": errors if isinstance(errors, list) else None})
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.load(sys.stdin)))))
