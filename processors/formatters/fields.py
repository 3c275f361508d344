"""Field look-up by configured name: case-insensitive, dotted paths into nested objects."""

from __future__ import annotations

from typing import Any


def get_field(payload: Any, path: str) -> Any:
    """The value at `path` ("Experience.0.title" or "resume_str"), or None when absent."""
    if "." not in path and isinstance(payload, dict):  # one key of an object: the usual case
        return payload[path] if path in payload else _folded(payload, path)
    current = payload
    for part in path.split("."):
        if isinstance(current, dict):
            if part in current:
                current = current[part]
                continue
            current = _folded(current, part)
            if current is None:
                return None
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _folded(obj: dict[Any, Any], part: str) -> Any:
    """The value of the first key of `obj` equal to `part` but for case, or None."""
    lowered = part.casefold()
    for key, value in obj.items():
        if isinstance(key, str) and key.casefold() == lowered:
            return value
    return None


def get_text(payload: Any, path: str) -> str:
    """The value at `path` as stripped text ("" when absent or not a scalar)."""
    if "." not in path and isinstance(payload, dict):  # get_field's first case, without a call
        value = payload[path] if path in payload else _folded(payload, path)
    else:
        value = get_field(payload, path)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""
