"""Additions to the OpenAPI schema, in drf-spectacular postprocessing hooks: the error answers every surface can give
(views describe their success answers), in the surface's own shape, and the Integry dialect's routes (plain Django
views, which drf-spectacular cannot see). schemathesis (tests/test_schemathesis.py) checks that every status we answer
is documented.
"""

NATIVE_ERROR = {"type": "object", "required": ["error", "error_details"],
                "properties": {"error": {"type": "string"},
                               "error_details": {"type": "array", "items": {"type": "string"}}}}
MERGE_ERROR = {"$ref": "#/components/schemas/MergeError"}

# Every operation: bad input, authentication, unknown object, body over MAX_REQUEST_BODY_BYTES.
COMMON = {400: "Invalid input.", 401: "Missing, invalid or revoked API key (or account token).",
          404: "Not found (or another organization's).", 413: "The request body is larger than MAX_REQUEST_BODY_BYTES."}
# Operations that call the upstream (sync passthrough and function calls).
UPSTREAM = {408: "The upstream did not answer within the synchronous limit; use async passthrough.",
            429: "Rate limit reached; nothing was sent. See Retry-After.",
            502: "The upstream could not be reached, or its answer could not be used."}
# Retrieving an async result: the retrieval limit, and a failed request.
ASYNC_RESULT = {429: "Results of one receipt may be fetched once every ASYNC_RESULT_POLL_INTERVAL_SECONDS; see "
                     "Retry-After.",
                500: "The async passthrough request failed (its error in the body)."}


def _added_errors(path: str, method: str) -> dict:
    errors = dict(COMMON)
    if "async-passthrough/{" in path:
        errors.update(ASYNC_RESULT)
    elif method == "post" and ("passthrough" in path or "{name}" in path) and "async" not in path:
        errors.update(UPSTREAM)
    return errors


def document_error_responses(result, generator, request, public):
    for path, operations in result.get("paths", {}).items():
        if path.startswith("/api/v1/"):
            shape = NATIVE_ERROR
        elif path.startswith("/merge/"):
            shape = MERGE_ERROR
        else:  # Unified documents its own errors
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status, description in _added_errors(path, method).items():
                responses.setdefault(str(status), {"description": description,
                                                   "content": {"application/json": {"schema": shape}}})
    return result


INTEGRY_ERROR = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
INTEGRY_REFUSED = {"type": "object", "required": ["error", "error_details"],
                   "properties": {"error": {"type": "string"},
                                  "error_details": {"type": "array", "items": {"type": "string"}}}}
INTEGRY_HEADERS = [
    {"name": "App-Key", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Your API key's public key id."},
    {"name": "User-ID", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The end user's id."},
    {"name": "Hash", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Lowercase hex HMAC-SHA256 of User-ID, keyed with the full API key."},
]
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
# (path, summary, path and query parameters, whether it calls the upstream)
INTEGRY_ROUTES = [
    ("/integry/functions/list/", "List functions", ["app", "type", "connected_only", "include", "_cursor"], False),
    ("/integry/functions/predict/", "Predict functions (always none)", [], False),
    ("/integry/functions/{name}/get/", "Get a function", [NAME, "include"], False),
    ("/integry/functions/{name}/call/", "Call a function",
     [NAME, "connected_account_id", "allow_workspace_connected_accounts", "integration_id"], True),
    ("/integry/apps/list/", "List apps", ["connected_only", "_cursor"], False),
    ("/integry/apps/{name}/get/", "Get an app", [NAME], False),
]


def _integry_operation(path: str, summary: str, parameters: list, upstream: bool) -> dict:
    def error(schema, description):
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    responses = {"200": error({"type": "object"}, "Success."),
                 "400": error(INTEGRY_REFUSED, "Invalid input; not executed."),
                 "401": error(INTEGRY_ERROR, "Invalid App-Key, User-ID or Hash."),
                 "404": error(INTEGRY_ERROR, "Unknown function or app."),
                 "405": error(INTEGRY_ERROR, "Only POST is allowed."),
                 "413": error(INTEGRY_ERROR, "The request body is larger than MAX_REQUEST_BODY_BYTES.")}
    if upstream:
        responses.update({str(status): error(INTEGRY_ERROR, description) for status, description in UPSTREAM.items()})
    return {"post": {
        "operationId": "integry_" + path.strip("/").replace("/", "_").replace("{name}", "name")[len("integry_"):],
        "summary": summary, "tags": ["integry"], "security": [],
        "parameters": INTEGRY_HEADERS + [p if isinstance(p, dict) else
                                         {"name": p, "in": "query", "required": False, "schema": {"type": "string"}}
                                         for p in parameters],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": responses,
    }}


def document_integry_routes(result, generator, request, public):
    """The Integry dialect (../shared/spec/integry.md): every route is a POST with the App-Key/User-ID/Hash headers."""
    for path, summary, parameters, upstream in INTEGRY_ROUTES:
        result.setdefault("paths", {})[path] = _integry_operation(path, summary, parameters, upstream)
    return result
