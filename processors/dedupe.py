"""Exact deduplication on normalised content, with its index in the state store.

Keys seen since the last checkpoint are held in memory and handed to the writer, which commits
them in the same transaction as the lines they belong to: after a crash the index and the
output agree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Protocol

from processors.config import DedupeConfig
from processors.records import Example

NAMESPACE = "dedupe:exact"
_TOKEN = re.compile(r"\[(?:EMAIL|PHONE|NAME|URL|ADDRESS)(?:_\d+)?\]")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


class KeyIndex(Protocol):
    def get_many(self, namespace: str, keys: Iterable[str]) -> Mapping[str, str]: ...


def normalise(text: str) -> str:
    """Case, whitespace, punctuation and PII tokens do not make two lines different."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _TOKEN.sub(" ", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def exact_key(example: Example) -> str:
    # The system prompt carries context only: two equal bullets with another context are equal.
    body = "\x1e".join(normalise(m.content) for m in example.messages if m.role != "system")
    return hashlib.blake2b(f"{example.kind}\x1f{body}".encode(), digest_size=16).hexdigest()


class Deduplicator:
    def __init__(self, config: DedupeConfig, index: KeyIndex) -> None:
        self.config = config
        self.index = index
        self._pending: dict[str, str] = {}

    def filter(self, examples: list[Example]) -> tuple[list[Example], list[tuple[Example, str]]]:
        """(kept, [(dropped, reason)]): kept examples get their dedupe and group keys."""
        if not self.config.exact:
            for example in examples:
                example.group_key = example.group_key or exact_key(example)
            return examples, []
        for example in examples:
            example.dedupe_key = exact_key(example)
        known = self.index.get_many(NAMESPACE, [e.dedupe_key for e in examples])
        kept: list[Example] = []
        dropped: list[tuple[Example, str]] = []
        for example in examples:
            key = example.dedupe_key
            if key in known or key in self._pending:
                dropped.append((example, "duplicate_exact"))
                continue
            self._pending[key] = "1"
            example.group_key = key
            kept.append(example)
        return kept, dropped

    def take_pending(self) -> dict[str, dict[str, str]]:
        """The keys to commit with the next checkpoint; they stay known until then."""
        return {NAMESPACE: dict(self._pending)}

    def committed(self) -> None:
        self._pending.clear()
