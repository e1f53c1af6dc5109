"""Validation of catalog documents' lists of named entries (integrations, their sync models)."""


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
