"""Agent tools over MCP: `POST /mcp`, Streamable HTTP, stateless, answered with plain JSON (spec/functions.md §4).

Why a Django view with the official SDK's types (`mcp_types`) and not the SDK's ASGI server: `serve` is gunicorn
with threaded WSGI workers. The SDK's Streamable HTTP server is an ASGI (Starlette) app whose session manager needs a
task group running for the app's whole life (ASGI lifespan), which a WSGI worker does not have; mounting it would mean
an event loop per request through a bridge, or an ASGI worker class for every request of the platform (the passthrough
hot path included). The stateless, JSON-response mode of the protocol needs neither: each POST carries one JSON-RPC
message and gets one JSON answer, so any process answers any request. The SDK's pydantic models parse the requests
and build the results, so the wire shapes are the SDK's own; the official client is the test.

Supported: the 2025-11-25 `initialize` handshake (and its older revisions), `ping`, `tools/list`, `tools/call`.
Anything else (the 2026-07-28 `server/discover` probe included, after which the client falls back to `initialize`)
is answered at once with JSON-RPC error -32601.
"""

import json
from urllib.parse import urlsplit

import mcp_types as types
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.http.request import validate_host
from django.views.decorators.csrf import csrf_exempt
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError

from connections.authentication import api_key_from_secret, bearer_token
from connections.models import Connection
from functions import services
from integration_platform.errors import InvalidInput, NotAuthenticated, PlatformError, native_body
from passthrough.connection_lookup import account_token, caller_secrets, connection_by_account_token
from passthrough.models import FunctionCall
from passthrough.retries import requested_retries

SERVER_INFO = types.Implementation(name="integration-platform", version="1")
INSTRUCTIONS = "Each tool calls one function of the connected account's integration; results carry the upstream's " \
               "HTTP status as network_code and its answer as output."


class RpcError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def dumped(model) -> dict:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def rpc_error(request_id, code: int, message: str, status: int = 200) -> JsonResponse:
    error = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
    return JsonResponse(dumped(error), status=status)


def origin_allowed(request) -> bool:
    """DNS-rebinding protection: a browser's Origin must name one of our ALLOWED_HOSTS (the Host itself Django checks)."""
    origin = request.headers.get("Origin")
    if not origin:
        return True
    host = urlsplit(origin).hostname or ""
    return validate_host(f"[{host}]" if ":" in host else host, settings.ALLOWED_HOSTS)


def authenticated_connection(request) -> Connection:
    """`Authorization: Bearer <API key>` and `X-Account-Token`: the connection whose functions are the tools."""
    api_key = api_key_from_secret(bearer_token(request))
    if api_key is None:
        raise NotAuthenticated("Invalid or missing API key.")
    try:
        return connection_by_account_token(api_key.organization, account_token(request))
    except InvalidInput:
        raise NotAuthenticated("Invalid or missing account token.") from None


def tools_of(connection: Connection):
    return services.callable_functions().filter(integration_id=connection.integration_id)


def tool_list(connection: Connection, params) -> dict:
    # No outputSchema: clients reject a result that does not match a declared one, and upstreams drift from documents.
    tools = [types.Tool(name=f.name, description=f.description, input_schema=f.parameters)
             for f in tools_of(connection)]
    return dumped(types.ListToolsResult(tools=tools))


def tool_result(payload, is_error: bool) -> dict:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    result = types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                  structured_content=None if isinstance(payload, str) else payload,
                                  is_error=is_error)
    return dumped(result)


def tool_call(connection: Connection, params, request) -> dict:
    try:
        call = types.CallToolRequestParams.model_validate(params or {})
    except ValidationError:
        raise RpcError(types.INVALID_PARAMS, "tools/call needs a tool name and an arguments object.") from None
    function = tools_of(connection).filter(name=call.name).first() if "\x00" not in call.name else None
    if function is None:
        raise RpcError(types.INVALID_PARAMS, f"Unknown tool: {call.name}")
    try:
        output = services.function_call(function=function, connection=connection, arguments=call.arguments or {},
                                        dialect=FunctionCall.DIALECT_MCP, extra_secrets=caller_secrets(request),
                                        retries=requested_retries(request))
    except PlatformError as exc:
        lines = [exc.message, *exc.details]
        if exc.retry_after:
            lines.append(f"Retry after {exc.retry_after} seconds.")
        return tool_result("\n".join(lines), is_error=True)
    return tool_result(output, is_error=int(output["network_code"]) >= 400)


def initialize(connection: Connection, params, request) -> dict:
    asked = (params or {}).get("protocolVersion")
    version = asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
    capabilities = types.ServerCapabilities(tools=types.ToolsCapability(list_changed=False))
    return dumped(types.InitializeResult(protocol_version=version, capabilities=capabilities,
                                         server_info=SERVER_INFO, instructions=INSTRUCTIONS))


METHODS = {
    "initialize": initialize,
    "ping": lambda connection, params, request: {},
    "tools/list": lambda connection, params, request: tool_list(connection, params),
    "tools/call": tool_call,
}


@csrf_exempt
def mcp_endpoint(request):
    if request.method != "POST":
        # Stateless: no server-initiated stream (GET) and no session to end (DELETE).
        response = JsonResponse(native_body(f'Method "{request.method}" not allowed.'), status=405)
        response["Allow"] = "POST"
        return response
    if not origin_allowed(request):
        return JsonResponse(native_body("Origin not allowed."), status=403)
    try:
        connection = authenticated_connection(request)
    except NotAuthenticated as exc:
        response = JsonResponse(native_body(exc.message), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="mcp"'
        return response
    try:
        message = json.loads(request.body)
    except RequestDataTooBig:
        return JsonResponse(native_body("The request body is too large."), status=413)
    except (ValueError, RecursionError):
        return rpc_error(None, types.PARSE_ERROR, "Parse error: the body is not JSON.", status=400)
    if isinstance(message, dict) and "id" not in message and isinstance(message.get("method"), str):
        return HttpResponse(status=202)  # a notification (e.g. notifications/initialized): nothing to answer
    try:
        rpc = types.JSONRPCRequest.model_validate(message)
    except ValidationError:
        if isinstance(message, dict) and ("result" in message or "error" in message):
            return HttpResponse(status=202)  # a response to a server request; we send none
        return rpc_error(None, types.INVALID_REQUEST, "Invalid request: one JSON-RPC request object expected.",
                         status=400)
    handler = METHODS.get(rpc.method)
    if handler is None:
        return rpc_error(rpc.id, types.METHOD_NOT_FOUND, f"Method not found: {rpc.method}")
    try:
        result = handler(connection, rpc.params, request)
    except RpcError as exc:
        return rpc_error(rpc.id, exc.code, exc.message)
    except PlatformError as exc:  # e.g. an invalid X-Passthrough-Retries header
        return rpc_error(rpc.id, types.INVALID_PARAMS, "; ".join([exc.message, *exc.details]))
    return JsonResponse(dumped(types.JSONRPCResponse(jsonrpc="2.0", id=rpc.id, result=result)))
