"""Secrets never reach a log line: a structlog processor that redacts them, whatever code logs.

It runs last before the renderer, on every field of every event (nested dicts and lists too, and
the text of any other object, exceptions and tracebacks included), and on the standard library's
log records (aiohttp, huggingface_hub...), which `collector.logging` routes through it. Redacted:

- the values of the environment variables a config names (every `*_env` field: `token_env`,
  `key_env`, `api_key_env`, `password_env`...) and of the usual token variables
  (`COMMON_SECRET_ENV`), wherever they appear, also percent-encoded;
- fields named like secrets (`authorization`, `token`, `password`, `api_key`, `cookie`...);
- `Authorization: Bearer ...` headers written out in text, `Bearer`/`Basic` credentials;
- URL query parameters that carry keys (`key=`, `access_token=`, `token=`, `api_key=`...);
- credentials in URLs (`https://user:password@host`, `redis://:password@host`);
- known token shapes: GitHub (`ghp_`, `gho_`, `ghs_`, `github_pat_`), Hugging Face (`hf_`),
  OpenAI-style (`sk-`), Slack (`xox?-`), AWS access key ids.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

import msgspec

REDACTED = "[REDACTED]"
COMMON_SECRET_ENV = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_TOKEN",
    "KAGGLE_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "STACKEXCHANGE_KEY",
    "STACK_EXCHANGE_KEY",
    "REDIS_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
)
# Shorter values are not redacted as free text: "1", "yes" or "dev" would blank out half a log.
MIN_SECRET_LENGTH = 6

SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "proxy_authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "private_key",
    }
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "Authorization: Bearer x", "'authorization': 'token x'", "Authorization=Basic x"
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(?:bearer|token|basic|digest)\s+)?[^\s'\",;}]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # scheme://user:password@host and scheme://:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]*:[^\s/@'\"]*@"), r"\1" + REDACTED + "@"),
    # ?key=..., &access_token=...
    (
        re.compile(
            r"(?i)([?&;](?:key|api_key|apikey|access_token|token|auth|client_secret|"
            r"password|sig|signature)=)[^&#\s'\"]+"
        ),
        r"\1" + REDACTED,
    ),
    # token shapes
    (
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,}"
            r"|sk-[A-Za-z0-9_-]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})"
        ),
        REDACTED,
    ),
]


def secret_env_names(config: Any) -> set[str]:
    """The environment variables named by every `*_env` field of a config, at any depth."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, msgspec.Struct):
            for name in value.__struct_fields__:
                item = getattr(value, name)
                if name.endswith("_env") and isinstance(item, str) and item:
                    found.add(item)
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(config)
    return found


class SecretRedactor:
    """The structlog processor; `watch_env` adds variables whose values it must hide."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ if environ is not None else os.environ
        self._names: set[str] = set()
        self._values: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.watch_env(COMMON_SECRET_ENV)

    def watch_env(self, names: Iterable[str]) -> None:
        with self._lock:
            self._names.update(names)
            values: set[str] = set()
            for name in self._names:
                value = self.environ.get(name, "").strip()
                if len(value) >= MIN_SECRET_LENGTH:
                    values.update({value, quote(value, safe=""), quote(value)})
            ordered = sorted(values, key=len, reverse=True)  # the longest match wins
            self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, value: str) -> str:
        if self._values is not None:
            value = self._values.sub(REDACTED, value)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any, key: str = "") -> Any:
        if key.lower() in SECRET_FIELDS and value not in (None, "", b""):
            return REDACTED
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return self.text(str(value))  # exceptions, URLs, paths, Structs: as their text

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, item in list(event_dict.items()):
            event_dict[key] = self.value(item, key)
        return event_dict


# One per process, like the logging configuration it belongs to.
REDACTOR = SecretRedactor()


def watch_secret_env(names: Iterable[str]) -> None:
    REDACTOR.watch_env(names)
