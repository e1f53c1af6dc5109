"""Validation helpers used everywhere: database ids, request header values, catalog lists of named entries."""

import re

from integration_platform.errors import InvalidInput

MAX_ID = 2**63 - 1  # BigAutoField: a larger number overflows the database integer (SQLite raises OverflowError)


def safe_id(value) -> int | None:
    """`value` as a database id, or None: ASCII digits only (str.isdigit() also takes "²" and "٣", which int()
    refuses), no sign or space, at most MAX_ID. An int is taken as is (a bool is not an id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= MAX_ID else None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,19}", value):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


def header_value(request, name: str, pattern: str | None = None, expected: str = "Must be printable ASCII.") -> str | None:
    """The value of a request header we read, stripped; None when absent (or empty, without a `pattern`).

    WSGI hands header bytes over as latin-1 text, so any byte may arrive. A value that is not printable ASCII, or
    does not match `pattern` (a regular expression, whole value), raises InvalidInput `"<name>: <expected>"`.
    """
    value = request.headers.get(name)
    if value is None or (pattern is None and not value.strip()):
        return None
    value = value.strip()
    if not (value.isascii() and value.isprintable()) or (pattern is not None and not re.fullmatch(pattern, value)):
        raise InvalidInput("Invalid header.", [f"{name}: {expected}"])
    return value



def named_entries_problems(entries: list, prefix: str, key: str, validate, duplicate: str) -> list[str]:
    """Every problem of each entry, as `prefix[i] (name) field: message` lines, and each repeated name.

    `validate(entry)` returns an entry's problems as `field: message` lines; `key` names the entry's unique name field.
    """
    errors, seen = [], set()
    for i, entry in enumerate(entries):
        name = entry.get(key) if isinstance(entry, dict) and isinstance(entry.get(key), str) else None
        label = f"{prefix}[{i}]" + (f" ({name})" if name is not None else "")
        errors += [f"{label} {problem}" for problem in validate(entry)]
        if name is not None and name in seen:
            errors.append(f"{label} {key}: {duplicate}")
        seen.add(name)
    return errors
