"""Validation of catalog entries: the same rules for `load_catalog` files and admin edits."""

import re
from urllib.parse import urlsplit

from connections.auth_schemes import AUTH_SCHEMES

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
HOST_RE = re.compile(r"^(\*\.)?[a-z0-9.:\[\]-]+$")
ENTRY_FIELDS = {"slug", "name", "description", "base_url", "auth", "rate_limits", "pause", "allowed_override_hosts",
                "categories", "docs_url", "logo_url", "enabled", "sync_models"}
# Rules of entry fields that belong to a higher app (syncing's `sync_models`), registered in its AppConfig.ready().
ENTRY_FIELD_VALIDATORS: dict = {}


def register_entry_field(name: str, validator) -> None:
    """`validator(value) -> [problem, ...]` checks the entry's `name` field (absent: an empty list)."""
    ENTRY_FIELD_VALIDATORS[name] = validator


def validate_base_url(value) -> list[str]:
    if not isinstance(value, str):
        return ["base_url: Must be a string."]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return ["base_url: Must be an http(s) URL without query or fragment."]
    return []


def validate_auth(auth) -> list[str]:
    if not isinstance(auth, dict):
        return ["auth: Must be an object with a scheme."]
    scheme = AUTH_SCHEMES.get(auth["scheme"]) if isinstance(auth.get("scheme"), str) else None
    if scheme is None:
        return [f"auth.scheme: Must be one of {', '.join(AUTH_SCHEMES)}."]
    return scheme.validate_config(auth)


def _is_number(value, types) -> bool:
    # JSON true/false are Python bools, which are ints.
    return isinstance(value, types) and not isinstance(value, bool)


def validate_rate_limits(windows) -> list[str]:
    if not isinstance(windows, list):
        return ["rate_limits: Must be a list."]
    errors = []
    for i, window in enumerate(windows):
        ok = (
            isinstance(window, dict)
            and _is_number(window.get("requests"), int) and window["requests"] > 0
            and _is_number(window.get("per_seconds"), (int, float)) and window["per_seconds"] > 0
            and window.get("per", "integration") in ("integration", "connection")
        )
        if not ok:
            errors.append(f'rate_limits[{i}]: Must be {{"requests": positive int, "per_seconds": positive number, "per"?: "integration"|"connection"}}.')
    return errors


def validate_pause(value) -> list[str]:
    if value in ("connection", "integration"):
        return []
    return ['pause: Must be "connection" (an upstream rate-limit signal pauses only the connection that received it; '
            'the default) or "integration" (it pauses every connection: an app-wide upstream quota).']


def validate_hosts(hosts) -> list[str]:
    if not isinstance(hosts, list):
        return ["allowed_override_hosts: Must be a list of host names."]
    return [f"allowed_override_hosts[{i}]: {host!r} is not a host name." for i, host in enumerate(hosts)
            if not isinstance(host, str) or not HOST_RE.match(host.lower())]


def validate_string_list(name, value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [f"{name}: Must be a list of strings."]
    return []


def validate_entry(entry) -> list[str]:
    """Every problem of one catalog entry, as `field: message` lines."""
    if not isinstance(entry, dict):
        return ["Must be an object."]
    errors = [f"{key}: Unknown field." for key in sorted(set(entry) - ENTRY_FIELDS)]
    for key in ("slug", "name", "base_url", "auth"):
        if key not in entry:
            errors.append(f"{key}: This field is required.")
    if "slug" in entry and not (isinstance(entry["slug"], str) and SLUG_RE.match(entry["slug"])):
        errors.append("slug: Use lower-case letters, digits and hyphens.")
    if "name" in entry and not (isinstance(entry["name"], str) and entry["name"].strip()):
        errors.append("name: Must be a non-empty string.")
    if "base_url" in entry:
        errors += validate_base_url(entry["base_url"])
    if "auth" in entry:
        errors += validate_auth(entry["auth"])
    errors += validate_rate_limits(entry.get("rate_limits", []))
    errors += validate_pause(entry.get("pause", "connection"))
    errors += validate_hosts(entry.get("allowed_override_hosts", []))
    errors += validate_string_list("categories", entry.get("categories", []))
    if not isinstance(entry.get("enabled", True), bool):
        errors.append("enabled: Must be true or false.")
    for name, validator in ENTRY_FIELD_VALIDATORS.items():
        errors += validator(entry.get(name, []))
    return errors
