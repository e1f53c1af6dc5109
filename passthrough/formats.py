"""How an upstream answer is represented in JSON, shared by the surfaces that wrap it (native, Merge, Integry)."""

import base64
import gzip
import json

from connections.client import UpstreamResponse

TEXT_TYPES = ("application/x-www-form-urlencoded", "application/javascript")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(mtype: str) -> bool:
    return mtype == "application/json" or mtype.endswith("+json")


def is_text_type(mtype: str) -> bool:
    return not mtype or mtype.startswith("text/") or "xml" in mtype or mtype in TEXT_TYPES or is_json_type(mtype)


def decoded_body(response: UpstreamResponse):
    """(kind, value): ("json", parsed), ("text", str), ("empty", None) or ("binary", bytes)."""
    if not response.body:
        return "empty", None
    mtype = media_type(response.header("Content-Type"))
    if is_json_type(mtype):
        try:
            return "json", json.loads(response.body)
        except ValueError:
            pass
    if is_text_type(mtype):
        try:
            return "text", response.body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "binary", response.body


def headers_dict(response: UpstreamResponse) -> dict:
    """Response headers as one string per name (repeats joined with ', ')."""
    joined = {}
    for name, value in response.headers:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def remote_response(method: str, path: str, response: UpstreamResponse, sent_headers: dict | None = None,
                    normalize: bool = False) -> dict:
    """The Merge-style wrapper (also the native passthrough answer): binary bodies as base64 of gzip bytes."""
    kind, value = decoded_body(response)
    response_type = "JSON"
    if kind == "binary":
        value, response_type = base64.b64encode(gzip.compress(value)).decode(), "BASE64_GZIP"
    if normalize:
        value = {"type": _json_type(value), "value": value}
    body = {"method": method, "path": path, "status": response.status, "response": value,
            "response_headers": headers_dict(response), "response_type": response_type}
    if sent_headers is not None:
        body["headers"] = sent_headers
    return body


def function_output(response: UpstreamResponse) -> dict:
    """The Integry-style answer `{network_code, output}`: binary bodies as plain base64."""
    kind, value = decoded_body(response)
    if kind == "binary":
        value = base64.b64encode(value).decode()
    return {"network_code": f"{response.status:03d}", "output": value}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]
