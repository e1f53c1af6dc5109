"""What a catalog entry says about syncing: its `sync_models`, validated (for `load_catalog`) and parsed (for runs).

One entry per model, e.g.

    {"name": "contacts", "path": "/contacts", "records_field": "results", "id_field": "id",
     "updated_at_field": "updated_at", "modified_since": {"param": "updated_after", "format": "iso8601"},
     "pagination": {"style": "cursor", "param": "cursor", "next_field": "next_cursor",
                    "page_size_param": "limit", "page_size": 100},
     "frequency_seconds": 3600, "lookback_seconds": 0}

Only `name` and `path` are required. Dotted fields (`records_field`, `id_field`, `updated_at_field`, `next_field`)
walk into nested objects; `records_field: ""` means the answer itself is the list.
"""

import re
from dataclasses import dataclass

from integration_platform.validation import named_entries_problems

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
STYLES = ("cursor", "page", "offset", "link_header", "next_url", "none")
# The query parameter (or body field) each style cannot work without.
STYLE_REQUIRES = {"cursor": ("param", "next_field"), "page": ("param",), "offset": ("param",),
                  "link_header": (), "next_url": ("next_field",), "none": ()}
FORMATS = ("iso8601", "unix")
MODEL_FIELDS = {"name", "path", "records_field", "id_field", "updated_at_field", "modified_since", "pagination",
                "frequency_seconds", "lookback_seconds"}
PAGINATION_FIELDS = {"style", "param", "next_field", "page_size_param", "page_size", "start"}
DEFAULT_FREQUENCY_SECONDS = 86400
MAX_PAGE_SIZE = 10000


@dataclass(frozen=True)
class Pagination:
    style: str = "none"
    param: str = ""
    next_field: str = ""
    page_size_param: str = ""
    page_size: int = 100
    start: int = 1


@dataclass(frozen=True)
class ModifiedSince:
    param: str
    format: str = "iso8601"


@dataclass(frozen=True)
class SyncModelSpec:
    name: str
    path: str
    records_field: str = ""
    id_field: str = "id"
    updated_at_field: str = "updated_at"
    modified_since: ModifiedSince | None = None
    pagination: Pagination = Pagination()
    frequency_seconds: int | None = DEFAULT_FREQUENCY_SECONDS
    lookback_seconds: int = 0

    @classmethod
    def from_entry(cls, entry: dict) -> "SyncModelSpec":
        """A spec from an entry that `validate_sync_models` accepted."""
        since = entry.get("modified_since")
        pagination = entry.get("pagination") or {}
        return cls(
            name=entry["name"], path=entry["path"],
            records_field=entry.get("records_field", ""), id_field=entry.get("id_field", "id"),
            updated_at_field=entry.get("updated_at_field", "updated_at") or "",
            modified_since=ModifiedSince(since["param"], since.get("format", "iso8601")) if since else None,
            pagination=Pagination(**pagination),
            frequency_seconds=entry.get("frequency_seconds", DEFAULT_FREQUENCY_SECONDS),
            lookback_seconds=entry.get("lookback_seconds", 0),
        )


def _positive_int(value, minimum=1, maximum=None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            and (maximum is None or value <= maximum))


def _string(value, *, empty_ok=False) -> bool:
    return isinstance(value, str) and (empty_ok or value.strip() != "")


def _validate_pagination(pagination) -> list[str]:
    if not isinstance(pagination, dict):
        return ["pagination: Must be an object."]
    errors = [f"pagination.{key}: Unknown field." for key in sorted(set(pagination) - PAGINATION_FIELDS)]
    style = pagination.get("style")
    if style not in STYLES:
        return errors + [f"pagination.style: Must be one of {', '.join(STYLES)}."]
    for key in STYLE_REQUIRES[style]:
        if not _string(pagination.get(key)):
            errors.append(f"pagination.{key}: Required for style {style!r} (a non-empty string).")
    for key in ("param", "next_field", "page_size_param"):
        if key in pagination and not _string(pagination[key], empty_ok=True):
            errors.append(f"pagination.{key}: Must be a string.")
    if "page_size" in pagination and not _positive_int(pagination["page_size"], 1, MAX_PAGE_SIZE):
        errors.append(f"pagination.page_size: Must be an integer from 1 to {MAX_PAGE_SIZE}.")
    if "start" in pagination and not _positive_int(pagination["start"], 0):
        errors.append("pagination.start: Must be an integer ≥ 0.")
    return errors


def _validate_model(model) -> list[str]:
    if not isinstance(model, dict):
        return ["Must be an object."]
    errors = [f"{key}: Unknown field." for key in sorted(set(model) - MODEL_FIELDS)]
    if not (isinstance(model.get("name"), str) and NAME_RE.match(model["name"])):
        errors.append("name: Required; letters, digits, '_', '.', '-' (at most 100).")
    if not _string(model.get("path")):
        errors.append("path: Required; the path below the integration's base URL, e.g. '/contacts'.")
    for key in ("records_field", "id_field", "updated_at_field"):
        if key in model and not (_string(model[key], empty_ok=key != "id_field")
                                 or (key == "updated_at_field" and model[key] is None)):
            errors.append(f"{key}: Must be a {'non-empty ' if key == 'id_field' else ''}string (dotted path).")
    since = model.get("modified_since")
    if since is not None:
        if not isinstance(since, dict) or set(since) - {"param", "format"} or not _string(since.get("param")):
            errors.append('modified_since: Must be {"param": str, "format": "iso8601"|"unix"} or null.')
        elif since.get("format", "iso8601") not in FORMATS:
            errors.append(f"modified_since.format: Must be one of {', '.join(FORMATS)}.")
    if "pagination" in model:
        errors += _validate_pagination(model["pagination"])
    frequency = model.get("frequency_seconds", DEFAULT_FREQUENCY_SECONDS)
    if frequency is not None and not _positive_int(frequency, 1):
        errors.append("frequency_seconds: Must be a positive integer, or null for manual syncs only.")
    if not _positive_int(model.get("lookback_seconds", 0), 0):
        errors.append("lookback_seconds: Must be an integer ≥ 0.")
    return errors


def validate_sync_models(models) -> list[str]:
    """Every problem of a catalog entry's `sync_models`, as `sync_models[i] (name) field: message` lines."""
    if not isinstance(models, list):
        return ["sync_models: Must be a list."]
    return named_entries_problems(models, "sync_models", "name", _validate_model, "Duplicate model name.")


def sync_model_specs(integration) -> list["SyncModelSpec"]:
    """The integration's declared models, in catalog order. Entries that fail validation (an admin edit) are left out."""
    models = integration.sync_models if isinstance(integration.sync_models, list) else []
    specs, seen = [], set()
    for model in models:
        if _validate_model(model) or model["name"] in seen:
            continue
        seen.add(model["name"])
        specs.append(SyncModelSpec.from_entry(model))
    return specs


def sync_model_spec(integration, name: str) -> SyncModelSpec | None:
    return next((spec for spec in sync_model_specs(integration) if spec.name == name), None)
