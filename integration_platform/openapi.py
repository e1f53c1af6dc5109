"""The error answers of every operation, added to the OpenAPI schema in one place (a drf-spectacular postprocessing
hook): views describe their success answers, and the errors every surface can give are documented here, in the
surface's own shape. schemathesis (tests/test_schemathesis.py) checks that every status we answer is documented.
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
