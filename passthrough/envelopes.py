"""The Merge-style passthrough request envelope, shared by the native API, the Merge dialect and async passthrough.

`{method, path, base_url_override, data, multipart_form_data, headers, query, request_format, normalize_response}`
"""

import base64
import json
import secrets
import zlib
from dataclasses import dataclass

from django.conf import settings

from connections import client
from integration_platform.errors import InvalidInput, PayloadTooLarge
from passthrough.services import method_checked

REQUEST_FORMATS = {"JSON": "application/json", "XML": "application/xml", "MULTIPART": "multipart/form-data"}
MULTIPART_ENCODINGS = ("RAW", "BASE64", "GZIP_BASE64")
GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass
class Envelope:
    method: str
    path: str
    base_url_override: str | None
    headers: dict
    body: bytes | None
    query: list
    normalize_response: bool

    def target(self, integration) -> client.Target:
        if client.is_absolute_url(self.path):
            if self.base_url_override:
                raise InvalidInput("Invalid input.", ["path: An absolute URL cannot be combined with base_url_override."])
            return client.absolute_url_target(integration, self.path, self.query)
        return client.build_target(integration, self.path, self.query, base_url=self.base_url_override)

    def as_json(self) -> dict:
        """A storable form (async passthrough keeps the request until a worker sends it)."""
        return {"method": self.method, "path": self.path, "base_url_override": self.base_url_override,
                "headers": self.headers, "body": base64.b64encode(self.body).decode() if self.body is not None else None,
                "query": self.query, "normalize_response": self.normalize_response}

    @classmethod
    def from_json(cls, stored: dict) -> "Envelope":
        body = stored["body"]
        return cls(**{**stored, "body": base64.b64decode(body) if body is not None else None,
                      "query": [tuple(pair) for pair in stored["query"]]})


def parse(payload, *, data_must_be_string: bool) -> Envelope:
    """Validate a request envelope; raises InvalidInput listing every problem. `null` means absent."""
    if not isinstance(payload, dict):
        raise InvalidInput("Invalid input.", ["body: Must be a JSON object."])
    try:
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # JSON allows "\ud800"; no URL, header or body can carry it
        raise InvalidInput("Invalid input.", ["body: Contains an unpaired surrogate (invalid Unicode)."]) from None
    p = {k: v for k, v in payload.items() if v is not None}
    errors = []
    method = None
    try:
        method = method_checked(p.get("method"))
    except InvalidInput as exc:
        errors += exc.details
    path = p.get("path")
    if not isinstance(path, str) or not path:
        errors.append("path: This field is required (a non-empty string).")
    override = p.get("base_url_override")
    if override is not None and not isinstance(override, str):
        errors.append("base_url_override: Must be a string.")
    headers = p.get("headers", {})
    if not isinstance(headers, dict):
        errors.append("headers: Must be an object.")
    query = p.get("query", {})
    if not isinstance(query, dict):
        errors.append("query: Must be an object.")
    request_format = p.get("request_format")
    if request_format is not None and (not isinstance(request_format, str) or request_format not in REQUEST_FORMATS):
        errors.append(f"request_format: Must be one of {', '.join(REQUEST_FORMATS)}.")
    data = p.get("data")
    if data is not None and data_must_be_string and not isinstance(data, str):
        errors.append("data: Must be a string (serialize JSON, XML or multipart bodies into it).")
    errors += [f"{name}: NUL characters are not allowed." for name, value in (
        ("path", path), ("base_url_override", override), ("query", query)) if _has_nul(value)]
    if errors:
        raise InvalidInput("Invalid input.", errors)
    headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in headers.items()}
    body = _body(p, data, request_format, headers)
    return Envelope(method, path, override, headers, body, [(str(k), str(v)) for k, v in query.items()],
                    bool(p.get("normalize_response", False)))


def _has_nul(value) -> bool:
    """A NUL in a URL part reaches no valid resource, and PostgreSQL cannot store it (async requests are stored)."""
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, str) and "\x00" in value


def _has(headers, name):
    return any(k.lower() == name for k in headers)


def _body(p, data, request_format, headers) -> bytes | None:
    if request_format == "MULTIPART" and p.get("multipart_form_data") is not None:
        body, content_type = _multipart(p["multipart_form_data"])
        for name in [k for k in headers if k.lower() == "content-type"]:
            del headers[name]
        headers["Content-Type"] = content_type
        return body
    if data is None:
        return None
    if request_format == "MULTIPART" and not _has(headers, "content-type"):
        raise InvalidInput("Invalid input.", ["headers: A MULTIPART `data` string needs its Content-Type header (with the boundary)."])
    if not _has(headers, "content-type"):
        headers["Content-Type"] = REQUEST_FORMATS.get(request_format, "application/json")
    return data.encode() if isinstance(data, str) else json.dumps(data).encode()


def _multipart(items) -> tuple[bytes, str]:
    if not isinstance(items, list) or not items:
        raise InvalidInput("Invalid input.", ["multipart_form_data: Must be a non-empty list."])
    boundary = "----platform" + secrets.token_hex(12)
    parts = []
    # The body we build may not outgrow the request body limit, however well its parts were compressed.
    budget = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("data"), str):
            raise InvalidInput("Invalid input.", [f"multipart_form_data[{i}]: Needs string `name` and `data`."])
        content = _multipart_data(item, i, budget)
        if budget is not None:
            budget -= len(content)
        disposition = f'form-data; name="{_quoted(item["name"])}"'
        if item.get("file_name"):
            disposition += f'; filename="{_quoted(str(item["file_name"]))}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if item.get("content_type"):
            head += f"Content-Type: {item['content_type']}\r\n"
        parts.append(head.encode() + b"\r\n" + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _multipart_data(item, i, budget: int | None) -> bytes:
    encoding = item.get("encoding") or "RAW"
    if encoding not in MULTIPART_ENCODINGS:
        raise InvalidInput("Invalid input.", [f"multipart_form_data[{i}].encoding: Must be RAW, BASE64 or GZIP_BASE64."])
    if encoding == "RAW":
        return item["data"].encode()
    try:
        raw = base64.b64decode(item["data"], validate=True)
        return gunzip_capped(raw, budget) if encoding == "GZIP_BASE64" else raw
    except (ValueError, zlib.error, EOFError):  # ValueError: binascii.Error, or non-ASCII text
        raise InvalidInput("Invalid input.", [f"multipart_form_data[{i}].data: Not valid {encoding} data."]) from None


def gunzip_capped(data: bytes, limit: int | None) -> bytes:
    """gzip data (one member or several) decompressed in a stream that stops past `limit` bytes: a few KB that
    expand to gigabytes are refused (PayloadTooLarge) without ever being held in memory."""
    out, size = [], 0
    while True:
        decompressor = zlib.decompressobj(GZIP_WBITS)
        chunk = decompressor.decompress(data, (limit - size + 1) if limit is not None else 0)
        while True:
            size += len(chunk)
            if limit is not None and size > limit:
                raise PayloadTooLarge(f"A GZIP_BASE64 part expands past the request body limit of {limit} bytes.")
            out.append(chunk)
            if decompressor.eof or not decompressor.unconsumed_tail:
                break
            chunk = decompressor.decompress(decompressor.unconsumed_tail, (limit - size + 1) if limit is not None else 0)
        if not decompressor.eof:
            raise EOFError("gzip data ends before its end marker")
        data = decompressor.unused_data
        if not data:
            return b"".join(out)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
