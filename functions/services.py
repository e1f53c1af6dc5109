"""Typed functions: importing them from OpenAPI, validating arguments, building and executing the call.

Every call goes through passthrough's `passthrough_execute` (credentials, limiter, retries, SSRF guard, call log):
a typed function only decides which request to send. Contract: /work/shared/spec/functions.md.
"""

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import url2pathname

from django.db import transaction
from jsonschema import Draft202012Validator
from rank_bm25 import BM25Okapi

from connections import client, hot_cache
from connections.models import Connection, Function, Integration
from functions import openapi
from integration_platform.errors import InvalidInput, NotFound, PlatformError
from passthrough import services as passthrough
from passthrough.formats import function_output

INVALID_INPUT = "Invalid input."
PREDICT_LIMIT = 5
DOCUMENT_TIMEOUT_SECONDS = 30


# --- Import ---------------------------------------------------------------------------------------------------------

@dataclass
class ImportSummary:
    integration: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: list = field(default_factory=list)
    functions: list = field(default_factory=list)

    def as_json(self) -> dict:
        return {"integration": self.integration, "created": self.created, "updated": self.updated,
                "deleted": self.deleted, "skipped": self.skipped, "functions": self.functions}


def document_text(source: str) -> tuple[str, str]:
    """The text of a file path or http(s) URL, and the base URI its relative `$ref`s resolve against."""
    if re.match(r"https?://", source, re.IGNORECASE):
        try:
            response = client.get_operator_url(source, timeout=DOCUMENT_TIMEOUT_SECONDS)
        except PlatformError as exc:
            raise openapi.DocumentError(f"Cannot read {source}: {exc.message}") from None
        if response.status >= 400:
            raise openapi.DocumentError(f"Cannot read {source}: HTTP {response.status}.")
        return response.body.decode("utf-8", errors="replace"), source
    try:
        with open(source, encoding="utf-8") as document:
            return document.read(), Path(source).resolve().as_uri()
    except (OSError, UnicodeDecodeError) as exc:
        raise openapi.DocumentError(f"Cannot read {source}: {exc}") from None


def ref_loader(base_uri: str):
    """Reads the documents `$ref`s name, like SOURCE: http(s) through the outbound client; local files only for a
    document that is itself a local file (a fetched document must not read this machine's files)."""

    def load(uri: str) -> dict:
        uri = uri.split("#", 1)[0]
        if uri.startswith("file:"):
            if not base_uri.startswith("file:"):
                raise openapi.DocumentError(f"Cannot read {uri}: a fetched document cannot refer to local files.")
            text, _ = document_text(url2pathname(urlsplit(uri).path))
        else:
            text, _ = document_text(uri)
        return openapi.parse_document(text)

    return load


def openapi_import(*, integration_slug: str, text: str, base_uri: str = "", tags=(), operations=(),
                   prune: bool = False) -> ImportSummary:
    """Create or update the integration's typed functions from an OpenAPI document; all or nothing.

    `tags` / `operations` (operationIds) keep only matching operations (OR); `prune` deletes this integration's
    typed functions whose operation is no longer in the document. Raises DocumentError (nothing written).
    """
    integration = Integration.objects.filter(slug=integration_slug).first()
    if integration is None:
        raise openapi.DocumentError(f"Unknown integration {integration_slug!r}.")
    loader = ref_loader(base_uri)
    document = openapi.load_document(text, base_uri, loader)
    read = openapi.function_definitions(integration, document, base_uri, loader=loader)
    wanted = [d for d in read.definitions
              if (not tags and not operations) or set(d.tags) & set(tags) or d.operation_id in operations]
    taken = set(Function.objects.filter(name__in=[d.name for d in wanted]).exclude(integration=integration)
                .values_list("name", flat=True))
    if taken:
        raise openapi.DocumentError(f"Function names already used by another integration: {', '.join(sorted(taken))}.")
    summary = ImportSummary(integration.slug, skipped=read.skipped, functions=[d.name for d in wanted])
    with transaction.atomic():
        existing = set(Function.objects.filter(integration=integration).values_list("name", flat=True))
        for definition in wanted:
            Function.objects.update_or_create(name=definition.name, defaults={
                "integration": integration, "type": definition.type, "description": definition.description,
                "parameters": definition.parameters, "output": definition.output, "operation": definition.operation})
            if definition.name in existing:
                summary.updated += 1
            else:
                summary.created += 1
        if prune:
            in_document = {d.name for d in read.definitions}
            stale = (Function.objects.filter(integration=integration).exclude(type=Function.TYPE_PASSTHROUGH)
                     .exclude(name__in=in_document))
            summary.deleted = stale.count()
            stale.delete()  # their call-log rows stay, without a function
    return summary


# --- Arguments ------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def validator_for(function: Function) -> Draft202012Validator:
    return _validator(json.dumps(function.parameters, sort_keys=True))


def violation_lines(error) -> list[str]:
    """One `<argument path>: <message>` line per violation; `required` and unknown arguments said plainly."""
    where = ".".join(str(part) for part in error.absolute_path)
    prefix = f"{where}." if where else ""
    if error.validator == "required":
        return [f"{prefix}{name}: This parameter is required." for name in error.validator_value
                if isinstance(error.instance, dict) and name not in error.instance]
    if error.validator == "additionalProperties" and error.validator_value is False and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        patterns = error.schema.get("patternProperties", {})
        return [f"{prefix}{name}: Unknown argument." for name in error.instance
                if name not in known and not any(re.search(p, name) for p in patterns)]
    return [f"{where or 'arguments'}: {error.message}"]


def validated_arguments(function: Function, arguments) -> dict:
    """The arguments without nulls (null means absent), or InvalidInput listing every violation."""
    if not isinstance(arguments, dict):
        raise InvalidInput(INVALID_INPUT, ["arguments: Must be a JSON object of function arguments."])
    arguments = {name: value for name, value in arguments.items() if value is not None}
    errors = sorted(validator_for(function).iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))
    details = list(dict.fromkeys(line for error in errors for line in violation_lines(error)))
    try:
        json.dumps(arguments, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # JSON allows "\ud800"; no URL, header or body can carry it
        details.append("arguments: Contain an unpaired surrogate (invalid Unicode).")
    if details:
        raise InvalidInput(INVALID_INPUT, details)
    return arguments


# --- Building the request -------------------------------------------------------------------------------------------

@dataclass
class BuiltRequest:
    method: str
    path: str
    query: list
    headers: dict
    body: bytes | None


def wire_text(value) -> str:
    """A scalar as OpenAPI serializes it: booleans `true`/`false`, numbers as JSON, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def path_segment(name: str, value) -> str:
    """One path parameter as exactly one segment: every reserved character encoded; `.`/`..`/empty refused."""
    text = wire_text(value)
    if text in ("", ".", ".."):
        raise InvalidInput(INVALID_INPUT, [f"{name}: {text!r} is not allowed as a path parameter."])
    return quote(text, safe="")


def query_pairs(name: str, value) -> list:
    """OpenAPI's default query style, `form` with `explode`: arrays repeat the key, objects give one key each."""
    if isinstance(value, list):
        return [(name, wire_text(item)) for item in value]
    if isinstance(value, dict):
        return [(key, wire_text(item)) for key, item in value.items()]
    return [(name, wire_text(value))]


def request_for(function: Function, arguments: dict) -> BuiltRequest:
    """The upstream request of a typed function for validated arguments."""
    operation = function.operation
    locations = operation["arguments"]
    path = re.sub(r"{([^}]+)}", lambda m: path_segment(m.group(1), arguments[m.group(1)]), operation["path"])
    query, headers, body_properties, body = [], {}, {}, None
    for name, value in arguments.items():
        where = locations[name]
        if where["in"] == "query":
            query += query_pairs(where["name"], value)
        elif where["in"] == "header":
            headers[where["name"]] = wire_text(value)
        elif where["in"] == "body_property":
            body_properties[where["name"]] = value
        elif where["in"] == "body":
            body = value
    if body_properties:
        body = body_properties
    media_type = operation.get("body_media_type")
    payload = None
    if body is not None:
        if media_type and media_type.startswith("application/x-www-form-urlencoded") and isinstance(body, dict):
            payload = urlencode([pair for key, item in body.items() for pair in query_pairs(key, item)]).encode()
        elif isinstance(body, str) and not openapi.is_json(media_type):
            payload = body.encode()
        else:
            payload, media_type = json.dumps(body).encode(), media_type or "application/json"
        headers["Content-Type"] = media_type
    return BuiltRequest(operation["method"], path, query, headers, payload)


# --- Calling --------------------------------------------------------------------------------------------------------

def function_call(*, function: Function, connection: Connection, arguments, dialect: str, extra_secrets=(),
                  retries: int = 0) -> dict:
    """Call any function (typed or passthrough) for a connection; returns `{network_code, output}`.

    Invalid arguments raise InvalidInput before anything is sent or logged.
    """
    if function.type == Function.TYPE_PASSTHROUGH:
        return passthrough.function_call_execute(connection=connection, arguments=arguments, dialect=dialect,
                                                 extra_secrets=extra_secrets, retries=retries)
    built = request_for(function, validated_arguments(function, arguments))
    target = client.build_target(connection.integration, built.path, built.query)
    response = passthrough.passthrough_execute_retrying(
        connection=connection, method=built.method, target=target, headers=built.headers, body=built.body,
        dialect=dialect, extra_secrets=extra_secrets, retries=retries, function_id=function.pk)
    return function_output(response)


# --- Finding functions ----------------------------------------------------------------------------------------------

def callable_functions():
    return Function.objects.callable().select_related("integration")


def callable_function(name: str) -> Function:
    """An enabled function of an enabled integration, or NotFound."""
    function = (hot_cache.function(name, lambda: callable_functions().filter(name=name).first())
                if "\x00" not in name else None)  # a URL's %00 names nothing (and PostgreSQL refuses NUL in a query)
    if function is None:
        raise NotFound("Function not found.")
    return function


# Words that say nothing about which function is meant ("post *a* message *to* my channel").
STOP_WORDS = frozenset("a an and are as at be by can for from i in into is it me my of on or our please the this to "
                       "we with you your".split())


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", openapi.kebab(text).replace("-", " ")) if w not in STOP_WORDS]


def functions_predicted(prompt: str, candidates) -> list[Function]:
    """The functions whose name and description best match the prompt (BM25), best first; none when nothing matches."""
    candidates = list(candidates)
    query = words(prompt or "")
    if not candidates or not query:
        return []
    corpus = [words(f"{f.name} {f.integration.name} {f.description}") for f in candidates]
    scores = BM25Okapi(corpus).get_scores(query)
    # BM25's idf is 0 or below for a word in most documents; any shared word still counts as a match.
    ranked = sorted(((score, i) for i, score in enumerate(scores) if set(query) & set(corpus[i])),
                    key=lambda pair: (-pair[0], candidates[pair[1]].name))
    return [candidates[i] for _, i in ranked[:PREDICT_LIMIT]]


# --- The Integry schema rule ----------------------------------------------------------------------------------------

INTEGRY_TYPES = ("string", "number", "boolean", "null", "object", "array")


def integry_schema(node):
    """A JSON schema as the Integry SDK accepts it: every node one `type` of INTEGRY_TYPES (spec/integry.md §3)."""
    if not isinstance(node, dict):
        return {"type": "string"}
    schema = {key: value for key, value in node.items() if key not in openapi.SCHEMA_LISTS and key != "type"}
    schema["type"] = integry_type(node)
    if isinstance(node.get("properties"), dict):
        schema["properties"] = {name: integry_schema(sub) for name, sub in node["properties"].items()}
    if "items" in node:
        schema["items"] = integry_schema(node["items"])
    if schema["type"] != "object":
        schema.pop("properties", None)
    if schema["type"] != "array":
        schema.pop("items", None)
    for key in ("additionalProperties", "patternProperties", "not", "$defs", "definitions", "prefixItems"):
        schema.pop(key, None)
    return schema


def integry_type(node: dict) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        for branch in node.get("anyOf") or node.get("oneOf") or node.get("allOf") or []:
            if isinstance(branch, dict) and integry_type(branch) != "null":
                return integry_type(branch)
        kind = "object" if "properties" in node else "array" if "items" in node else "string"
    return "number" if kind == "integer" else kind if kind in INTEGRY_TYPES else "string"
