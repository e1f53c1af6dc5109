"""Reading an OpenAPI 3.0/3.1 document into typed function definitions (the contract: spec/functions.md §1-2).

`load_document` parses and validates (openapi-spec-validator); `function_definitions` resolves `$ref`s (jsonref; a
cycle is cut to `{"type": "object"}`) and turns each operation into a `FunctionDefinition`. Nothing here writes.
"""

import json
import re
from dataclasses import dataclass, field

import jsonref
import yaml
from jsonschema_path import SchemaPath
from openapi_spec_validator.shortcuts import get_validator_cls
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing.exceptions import Unresolvable

from connections.models import Function
from integration_platform.errors import InvalidInput
from passthrough.services import METHODS as PASSTHROUGH_METHODS

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")  # document order of the spec
QUERY_METHODS = ("get", "head")
DESCRIPTION_LIMIT = 1024
# OpenAPI-only keywords with no JSON Schema meaning (or, like `example`, only noise for a validator).
OPENAPI_ONLY = frozenset({"nullable", "discriminator", "xml", "externalDocs", "example", "$ref"})
SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else",
                           "unevaluatedProperties", "unevaluatedItems", "additionalItems"})
# OpenAPI: these header parameters are ignored (the body and the auth scheme set them).
RESERVED_HEADERS = frozenset({"accept", "content-type", "authorization"})


class DocumentError(InvalidInput):
    """The document cannot be read or is not valid OpenAPI 3.0/3.1; the detail names the place (a JSON pointer)."""

    def __init__(self, problem: str):
        super().__init__("The OpenAPI document cannot be imported.", [problem])


@dataclass
class FunctionDefinition:
    tags: list
    operation_id: str
    base_name: str  # before the clash suffix
    type: str
    description: str
    parameters: dict
    output: dict | None
    operation: dict
    name: str = ""


@dataclass
class ReadDocument:
    definitions: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # [{"operation", "reason"}]


def json_pointer(path) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path) if path else "/"


def parse_document(text: str) -> dict:
    """JSON or YAML text → the document object."""
    try:
        document = yaml.safe_load(text)  # YAML 1.1 is a superset of the JSON documents use
    except yaml.YAMLError as exc:
        raise DocumentError(f"Not valid JSON or YAML: {exc}") from None
    if not isinstance(document, dict):
        raise DocumentError("The document is not a JSON or YAML object.")
    return json.loads(json.dumps(document, default=str))  # YAML dates etc. become strings; keys become strings


def load_document(text: str, base_uri: str = "", loader=None) -> dict:
    """Parse and validate a document; `loader(uri) -> dict` reads the other documents its `$ref`s name."""
    document = parse_document(text)
    version = str(document.get("openapi", ""))
    if not re.fullmatch(r"3\.[01]\.\d+(-.+)?", version):
        raise DocumentError(f"/openapi: {version or 'missing'!s} is not OpenAPI 3.0.x or 3.1.x.")
    # Our loader for every scheme: the validator's own would fetch with `requests`, past the outbound client.
    handlers = {scheme: loader for scheme in ("http", "https", "file", "<all_urls>")} if loader else {}
    try:
        get_validator_cls(document)(SchemaPath.from_dict(document, base_uri=base_uri, handlers=handlers)).validate()
    except OpenAPIValidationError as exc:
        raise DocumentError(f"{json_pointer(list(exc.absolute_path))}: {exc.message}") from None
    except Unresolvable as exc:
        raise DocumentError(f"Cannot resolve $ref {exc.ref!r}.") from None
    return document


def kebab(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", text)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def base_name(slug: str, method: str, path: str, operation: dict) -> str:
    if operation.get("operationId"):
        return f"{slug}-{kebab(str(operation['operationId']))}"
    words = "-".join([method, *path.replace("{", "").replace("}", "").split("/")]).lower()
    return f"{slug}-" + re.sub(r"[^a-z0-9]+", "-", words).strip("-")


def plain(value):
    """A JSON copy of a value that may hold jsonref proxies."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value.__subject__ if isinstance(value, jsonref.JsonRef) else value


def json_schema(node, ancestors=frozenset()):
    """An OpenAPI schema object as JSON Schema (2020-12): `nullable` becomes a `null` type, OpenAPI-only keywords go,
    and a schema that contains itself is cut to `{"type": "object"}` where it recurs."""
    target = node.__subject__ if isinstance(node, jsonref.JsonRef) else node
    if not isinstance(target, dict):
        return plain(target)  # boolean schemas
    if id(target) in ancestors:
        return {"type": "object"}
    ancestors = ancestors | {id(target)}
    schema = {}
    for key, value in target.items():
        if key in OPENAPI_ONLY or key.startswith("x-"):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            schema[key] = {name: json_schema(sub, ancestors) for name, sub in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            schema[key] = [json_schema(sub, ancestors) for sub in value]
        elif key in SCHEMA_VALUES:
            schema[key] = json_schema(value, ancestors)
        else:
            schema[key] = plain(value)
    for bound in ("Minimum", "Maximum"):  # 3.0's boolean exclusive bounds
        flag, limit = f"exclusive{bound}", bound.lower()
        if schema.get(flag) is True and limit in schema:
            schema[flag] = schema.pop(limit)
        elif schema.get(flag) is False:
            del schema[flag]
    if target.get("nullable") is True:
        kind = schema.get("type")
        if isinstance(kind, str):
            schema["type"] = [kind, "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
    return schema


def schema_object(node) -> dict:
    """`json_schema` as an object: the boolean schemas `true`/`false` become `{}` / `{"not": {}}`."""
    schema = json_schema(node)
    return schema if isinstance(schema, dict) else {} if schema else {"not": {}}


def json_media(content: dict):
    """The (media type, media object) to use: JSON first, then a form, then the first one listed."""
    types = list(content)
    for media_type in types:
        if media_type.split(";")[0].strip() == "application/json" or media_type.split(";")[0].endswith("+json"):
            return media_type, content[media_type]
    for media_type in types:
        if media_type.startswith("application/x-www-form-urlencoded"):
            return media_type, content[media_type]
    return (types[0], content[types[0]]) if types else (None, None)


def is_json(media_type) -> bool:
    base = (media_type or "").split(";")[0].strip()
    return base == "application/json" or base.endswith("+json")


def first_json_response(operation: dict):
    for status, response in (operation.get("responses") or {}).items():
        if str(status)[0] == "2" and isinstance(response, dict):
            media_type, media = json_media(response.get("content") or {})
            if is_json(media_type) and isinstance(media, dict) and "schema" in media:
                return json_schema(media["schema"])
    return None


def auth_header_names(integration) -> set:
    names = {"authorization"}
    if integration.auth_scheme == "api_key" and integration.auth_config.get("in", "header") == "header":
        names.add(str(integration.auth_config.get("name", "")).lower())
    return names


def merged_parameters(path_item: dict, operation: dict) -> list:
    """Path-level parameters, overridden by the operation's own of the same name and location."""
    merged = {}
    for parameter in [*(path_item.get("parameters") or []), *(operation.get("parameters") or [])]:
        merged[(parameter.get("name"), parameter.get("in"))] = parameter
    return list(merged.values())


class Unimportable(Exception):
    """This operation cannot be called through the platform; the message says why."""


def definition_for(integration, method: str, path: str, path_item: dict, operation: dict) -> FunctionDefinition:
    if method.upper() not in PASSTHROUGH_METHODS:
        raise Unimportable(f"{method.upper()} requests are not sent through the platform")
    properties, required, arguments = {}, [], {}
    skip_headers = auth_header_names(integration) | RESERVED_HEADERS
    for parameter in merged_parameters(path_item, operation):
        name, location = str(parameter.get("name")), parameter.get("in")
        if location == "cookie":
            raise Unimportable(f"cookie parameter {name!r} cannot be sent")
        if location == "header" and name.lower() in skip_headers:
            continue
        if name in properties:
            raise Unimportable(f"two parameters are named {name!r}")
        schema = schema_object(parameter.get("schema", {}))
        if "schema" not in parameter and parameter.get("content"):
            schema = schema_object(next(iter(parameter["content"].values())).get("schema", {}))
        if parameter.get("description") and "description" not in schema:
            schema["description"] = str(parameter["description"])
        properties[name] = schema
        arguments[name] = {"in": location, "name": name}
        if location == "path" or parameter.get("required"):
            required.append(name)
    missing = [name for name in re.findall(r"{([^}]+)}", path) if arguments.get(name, {}).get("in") != "path"]
    if missing:
        raise Unimportable(f"path parameter {missing[0]!r} is not described")
    body_media_type = None
    body = operation.get("requestBody")
    if isinstance(body, dict) and body.get("content"):
        body_media_type, media = json_media(body["content"])
        schema = schema_object((media or {}).get("schema", {}))
        body_properties = schema.get("properties")
        flattened = (is_json(body_media_type) and (schema.get("type") == "object" or "type" not in schema)
                     and isinstance(body_properties, dict) and not set(body_properties) & set(properties)
                     and not any(k in schema for k in SCHEMA_LISTS))
        if flattened:
            properties.update(body_properties)
            arguments.update({name: {"in": "body_property", "name": name} for name in body_properties})
            if body.get("required"):
                required += [name for name in schema.get("required", []) if name in body_properties]
        else:
            if "body" in properties:
                raise Unimportable("a parameter named 'body' collides with the request body")
            properties["body"] = schema
            arguments["body"] = {"in": "body", "name": "body"}
            if body.get("required"):
                required.append("body")
    parameters = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = list(dict.fromkeys(required))
    text = "\n\n".join(str(operation[k]).strip() for k in ("summary", "description") if operation.get(k))
    return FunctionDefinition(
        tags=[str(tag) for tag in operation.get("tags") or []],
        operation_id=str(operation.get("operationId") or ""),
        base_name=base_name(integration.slug, method, path, operation),
        type=Function.TYPE_QUERY if method in QUERY_METHODS else Function.TYPE_ACTION,
        description=text[:DESCRIPTION_LIMIT].strip(),
        parameters=parameters,
        output=first_json_response(operation),
        operation={"method": method.upper(), "path": path, "arguments": arguments, "body_media_type": body_media_type},
    )


def function_definitions(integration, document: dict, base_uri: str = "", loader=None) -> ReadDocument:
    """Every operation of the document as a function definition (named, clashes suffixed), or skipped with why."""
    try:
        resolved = jsonref.replace_refs(document, base_uri=base_uri, merge_props=True, lazy_load=False,
                                        **({"loader": loader} if loader else {}))
    except jsonref.JsonRefError as exc:
        why = "; ".join(exc.cause.details) if isinstance(exc.cause, InvalidInput) else exc.cause or exc.message
        raise DocumentError(f"{json_pointer(list(exc.path))}: cannot resolve $ref {exc.reference.get('$ref')!r}: "
                            f"{why}") from None
    read, taken = ReadDocument(), {integration.passthrough_function_name: 1}
    for path, path_item in (resolved.get("paths") or {}).items():
        for method in METHODS:
            operation = path_item.get(method)
            if not isinstance(operation, dict):
                continue
            key = operation.get("operationId") or f"{method.upper()} {path}"
            try:
                definition = definition_for(integration, method, path, path_item, operation)
            except Unimportable as exc:
                read.skipped.append({"operation": key, "reason": str(exc)})
                continue
            count = taken.get(definition.base_name, 0) + 1
            taken[definition.base_name] = count
            definition.name = definition.base_name if count == 1 else f"{definition.base_name}-{count}"
            read.definitions.append(definition)
    return read
