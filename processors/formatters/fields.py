"""Field look-up by configured name: case-insensitive, dotted paths into nested objects."""

from __future__ import annotations

from typing import Any


def get_field(payload: Any, path: str) -> Any:
    """The value at `path` ("Experience.0.title" or "resume_str"), or None when absent."""
    current = payload
    for part in path.split("."):
        if isinstance(current, dict):
            if part in current:
                current = current[part]
                continue
            lowered = part.casefold()
            for key, value in current.items():
                if isinstance(key, str) and key.casefold() == lowered:
                    current = value
                    break
            else:
                return None
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def get_text(payload: Any, path: str) -> str:
    """The value at `path` as stripped text ("" when absent or not a scalar)."""
    value = get_field(payload, path)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""
