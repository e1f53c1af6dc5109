"""The official `mcp` client (streamable_http_client + ClientSession) against a real `manage.py serve` process.

The server runs on its own SQLite file (both legs): its catalog's `echo` integration points at the server's own
/echo/ upstream, which answers with what it received, and its typed functions come from catalog/echo-openapi.yaml.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.servers import ROOT, free_port, wait_for_port

TOKEN = "tok-SECRET-123456"


def manage(env, *args) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@contextmanager
def serve_platform(tmp_path):
    """A migrated, loaded platform served by `manage.py serve`; yields (url, api keys by org, account token)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DRAMATIQ_BROKER_URL", "CACHE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'mcp.sqlite3'}"
    env["FUNCTION_CALL_LOG_MODE"] = "sync"  # the tests read the call log right after a call
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"integrations": [
        {"slug": "echo", "name": "Local Echo", "base_url": f"http://127.0.0.1:{port}/echo", "auth": {"scheme": "bearer"}},
        {"slug": "other", "name": "Other", "base_url": f"http://127.0.0.1:{port}/echo", "auth": {"scheme": "bearer"},
         "rate_limits": [{"requests": 1, "per_seconds": 3600}]},
    ]}))
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "load_catalog", str(catalog))
    manage(env, "import_openapi", "--integration", "echo", str(ROOT / "catalog" / "echo-openapi.yaml"))
    keys = {org: json.loads(manage(env, "create_api_key", org))["key"] for org in ("alice", "bob")}
    token = json.loads(manage(env, "create_connection", "--org", "alice", "--integration", "echo", "--end-user", "u1",
                              "--credentials", json.dumps({"token": TOKEN})))["account_token"]
    other_token = json.loads(manage(env, "create_connection", "--org", "alice", "--integration", "other", "--end-user",
                                    "u1", "--credentials", json.dumps({"token": TOKEN})))["account_token"]
    keys["other-token"] = other_token
    process = subprocess.Popen([sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                "--threads", "4"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, timeout=90)
        yield f"http://127.0.0.1:{port}", keys, token
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with serve_platform(tmp_path_factory.mktemp("mcp")) as served:
        yield served


def run_session(url, headers, steps):
    """Open the official client on /mcp with `headers`, initialize, run `steps(session)`; returns its result."""

    async def main():
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(f"{url}/mcp", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    initialized = await session.initialize()
                    return initialized, await steps(session)

    return asyncio.run(main())


def alice_headers(platform):
    url, keys, token = platform
    return {"Authorization": f"Bearer {keys['alice']}", "X-Account-Token": token}


def test_initialize_and_list_tools(platform):
    async def steps(session):
        return await session.list_tools()

    initialized, listed = run_session(platform[0], alice_headers(platform), steps)
    assert initialized.server_info.name == "integration-platform"
    assert initialized.capabilities.tools is not None
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"echo-passthrough-request", "echo-list-contacts", "echo-create-contact",
                          "echo-get-contact", "echo-delete-contact", "echo-post-message"}
    create = tools["echo-create-contact"]
    assert create.input_schema["required"] == ["name"]
    assert create.input_schema["properties"]["email"]["format"] == "email"
    assert create.output_schema is None
    assert set(tools["echo-passthrough-request"].input_schema["properties"]) == {"method", "url", "body", "headers", "query"}


def test_call_tool_runs_the_function_upstream_with_credentials(platform):
    async def steps(session):
        return await session.call_tool("echo-post-message", {"channel": "sales", "text": "hello",
                                                             "thread": None, "X-Request-Priority": "high"})

    _, result = run_session(platform[0], alice_headers(platform), steps)
    assert result.is_error is False
    assert result.structured_content["network_code"] == "200"
    received = result.structured_content["output"]
    assert received["method"] == "POST"
    assert received["path"] == "/channels/sales/messages"
    assert json.loads(received["body"]) == {"text": "hello"}
    assert received["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert received["headers"]["X-Request-Priority"] == "high"
    assert "X-Account-Token" not in received["headers"]
    assert json.loads(result.content[0].text) == result.structured_content
    url, keys, _ = platform
    [logged] = [row for row in httpx2.get(f"{url}/api/v1/function-calls", timeout=60,
                                          headers={"Authorization": f"Bearer {keys['alice']}"}).json()["results"]
                if row["function"] == "echo-post-message"]
    assert logged["dialect"] == "mcp"
    assert logged["url"].endswith("/echo/channels/sales/messages")


def test_invalid_arguments_are_a_tool_error_and_nothing_is_sent(platform):
    async def steps(session):
        return await session.call_tool("echo-list-contacts", {"limit": "ten", "archived": True, "colour": "red"})

    _, result = run_session(platform[0], alice_headers(platform), steps)
    assert result.is_error is True
    text = result.content[0].text
    assert "limit: 'ten' is not of type 'integer'" in text
    assert "colour: Unknown argument." in text


def test_unknown_tool_is_an_error(platform):
    async def steps(session):
        try:
            return await session.call_tool("other-passthrough-request", {"method": "GET", "url": "/x"})
        except MCPError as exc:
            return exc

    _, outcome = run_session(platform[0], alice_headers(platform), steps)
    assert isinstance(outcome, MCPError) or outcome.is_error


@pytest.mark.parametrize("who", ["no key", "wrong key", "no account token", "bob's key"])
def test_missing_or_foreign_credentials_are_401_before_any_rpc(platform, who):
    url, keys, token = platform
    headers = {"no key": {"X-Account-Token": token},
               "wrong key": {"Authorization": "Bearer ak_0000.nope", "X-Account-Token": token},
               "no account token": {"Authorization": f"Bearer {keys['alice']}"},
               "bob's key": {"Authorization": f"Bearer {keys['bob']}", "X-Account-Token": token}}[who]
    answer = httpx2.post(f"{url}/mcp", headers={**headers, "Accept": "application/json, text/event-stream"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=60)
    assert answer.status_code == 401
    assert answer.json()["error"]


def test_unknown_method_is_answered_at_once_with_32601(platform):
    answer = httpx2.post(f"{platform[0]}/mcp", headers=alice_headers(platform),
                         json={"jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {}}, timeout=60)
    assert answer.status_code == 200
    assert answer.json() == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "Method not found: server/discover"}}


@pytest.mark.parametrize("body, status, code", [
    (b"not json", 400, -32700),
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', 400, -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}', 200, -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope", "arguments": {}}}', 200, -32602),
])
def test_bad_messages_get_json_rpc_errors(platform, body, status, code):
    answer = httpx2.post(f"{platform[0]}/mcp", content=body, timeout=60,
                         headers={**alice_headers(platform), "Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


def test_stateless_no_stream_no_session_and_foreign_origins_refused(platform):
    url, headers = platform[0], alice_headers(platform)
    assert httpx2.get(f"{url}/mcp", headers=headers, timeout=60).status_code == 405
    assert httpx2.delete(f"{url}/mcp", headers=headers, timeout=60).status_code == 405
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert httpx2.post(f"{url}/mcp", json=ping, headers={**headers, "Origin": "http://evil.test"}, timeout=60).status_code == 403
    answer = httpx2.post(f"{url}/mcp", json=ping, headers={**headers, "Origin": "http://localhost:3000"}, timeout=60)
    assert answer.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_upstream_error_status_is_a_tool_error(platform):
    url = platform[0]

    async def steps(session):
        # Our own API on the base URL's host, with the injected token as its key: the upstream answers 401.
        return await session.call_tool("echo-passthrough-request", {"method": "GET", "url": f"{url}/api/v1/integrations"})

    _, result = run_session(url, alice_headers(platform), steps)
    assert result.is_error is True
    assert result.structured_content["network_code"] == "401"


def test_rate_limited_call_is_a_tool_error_with_retry_after(platform):
    url, keys, _ = platform
    headers = {"Authorization": f"Bearer {keys['alice']}", "X-Account-Token": keys["other-token"]}

    async def steps(session):
        call = {"method": "GET", "url": "/contacts"}
        return [await session.call_tool("other-passthrough-request", call) for _ in range(2)]

    _, (first, second) = run_session(url, headers, steps)
    assert first.is_error is False
    assert second.is_error is True
    assert re.search(r"Retry after \d+ seconds", second.content[0].text)


def test_the_sdk_client_in_auto_mode_falls_back_from_discover_to_initialize(platform):
    from mcp import Client

    async def main():
        async with httpx2.AsyncClient(headers=alice_headers(platform), timeout=60) as http:
            async with Client(streamable_http_client(f"{platform[0]}/mcp", http_client=http)) as client:
                listed = await client.list_tools()
                result = await client.call_tool("echo-get-contact", {"contactId": "c-1"})
                return client.protocol_version, listed, result

    version, listed, result = asyncio.run(main())
    assert version == "2025-11-25"
    assert "echo-get-contact" in {tool.name for tool in listed.tools}
    assert result.structured_content["output"]["path"] == "/contacts/c-1"
