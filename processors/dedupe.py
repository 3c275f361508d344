"""Deduplication: exact on normalised content, near-duplicate with MinHash LSH.

Both indexes live in the state store, so dedupe holds across restarts and across sources:

- `set:dedupe:exact`: blake2b of the normalised content (case, whitespace, punctuation and the
  anonymizer's tokens do not count) of every record written.
- `set:dedupe:near`: one key per LSH band of a record's MinHash signature. Two records that
  share a band are near-duplicates (Jaccard similarity of their shingles around the threshold
  or above); the bands and rows per band are datasketch's optimal choice for the threshold and
  the number of permutations. With `near_action = "group"` a near-duplicate joins the cluster
  of the record it resembles, so that index maps each band to its group key instead
  (`dedupe:near`).

Both sets are membership only (`set:` namespaces, see collector/state/base.py), which lets the
SQLite store keep them as sorted runs of fingerprints rather than B-tree rows.

The signatures and band keys are `processors/minhash.py`'s (numpy), imported only when near
dedupe is on: the worker processes, which set exact keys only, never load numpy.

Keys seen since the last checkpoint are held in memory and handed to the writer, which commits
them in the same transaction as the lines they belong to: after a crash the index and the
output agree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from processors.anonymize.spans import TOKEN_PATTERN
from processors.config import DedupeConfig
from processors.records import Example

if TYPE_CHECKING:
    from processors.minhash import MinHasher

_T = TypeVar("_T")
NAMESPACE = "set:dedupe:exact"
DUPLICATE = "duplicate_exact"  # the drop reason of a line whose exact key was seen
NEAR_NAMESPACE = "set:dedupe:near"
NEAR_GROUPS_NAMESPACE = "dedupe:near"  # band -> group key, for near_action = "group"
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# ASCII punctuation and control characters to spaces and letters to lower case, as a byte
# table: what `_NON_WORD` and casefold do to ASCII text, in one pass (bytes.translate is a table
# look-up where str.translate calls a dict).
_ASCII_FOLD = bytes(ord(chr(c).lower()) if chr(c).isalnum() else 32 for c in range(128)) + bytes(
    range(128, 256)
)


class KeyIndex(Protocol):
    def get_many(self, namespace: str, keys: Iterable[str]) -> Mapping[str, str]: ...


def normalise(text: str) -> str:
    """Case, whitespace, punctuation and PII tokens do not make two lines different."""
    return _normalised(text).decode()


def _normalised(text: str) -> bytes:
    """`normalise(text)` in UTF-8: what the exact key hashes, with no round trip through str."""
    if "[" in text:
        text = TOKEN_PATTERN.sub(" ", text)
    if text.isascii():  # the usual case: a translation table, no regex
        return b" ".join(text.encode().translate(_ASCII_FOLD).split())
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split()).encode()


def content_of(example: Example) -> str:
    return _content(example).decode()


def _content(example: Example) -> bytes:
    """`content_of(example)` in UTF-8."""
    # The system prompt carries context only: two equal bullets with another context are equal.
    messages = example.messages
    return b"\x1e".join([_normalised(m.content) for m in messages if m.role != "system"])


def exact_key(example: Example, content: str | None = None) -> str:
    """blake2b of the example's kind and `content_of` it (given, or computed here)."""
    body = _content(example) if content is None else content.encode()
    return hashlib.blake2b(example.kind.encode() + b"\x1f" + body, digest_size=16).hexdigest()


def own_group(example: Example) -> str:
    """The group an example's split follows unless near dedupe puts it in a cluster's: the one
    its formatter chose (all bullets of one resume, a rewrite and its pair), else its own exact
    key. The one home of the rule: the writer, and a worker process rendering ahead of it
    (collector/sinks/lines.py `prerender`), must place every line alike."""
    return example.group_key or example.dedupe_key


def set_exact_keys(examples: Iterable[Example]) -> None:
    """Each example's exact key, computed where the chain ran (a worker process, in parallel)
    rather than in the writer, the one serial stage, which takes a key it finds set."""
    for example in examples:
        example.dedupe_key = exact_key(example)


class Deduplicator:
    def __init__(self, config: DedupeConfig, index: KeyIndex) -> None:
        self.config = config
        self.index = index
        self.hasher: MinHasher | None = None
        if config.near:
            from processors.minhash import MinHasher

            self.hasher = MinHasher(config)
        self.grouping = config.near_action == "group"
        self.near_namespace = NEAR_GROUPS_NAMESPACE if self.grouping else NEAR_NAMESPACE
        self._pending: dict[str, str] = {}
        self._pending_near: dict[str, str] = {}

    def filter(self, examples: list[Example]) -> tuple[list[Example], list[tuple[Example, str]]]:
        """(kept, [(dropped, reason)]): kept examples get their dedupe and group keys."""
        dropped: list[tuple[Example, str]] = []
        contents: dict[int, str] = {}
        for example in examples:
            if not example.dedupe_key:  # unless set where the chain ran (`set_exact_keys`)
                content = contents[id(example)] = content_of(example)
                example.dedupe_key = exact_key(example, content)
        kept, seen = self.first_seen(examples, [e.dedupe_key for e in examples])
        dropped += [(example, DUPLICATE) for example in seen]
        if self.hasher is not None:
            texts = [contents[id(e)] if id(e) in contents else content_of(e) for e in kept]
            kept = self._near(kept, texts, dropped)
        for example in kept:
            example.group_key = own_group(example)
        return kept, dropped

    def first_seen(self, items: list[_T], keys: list[str]) -> tuple[list[_T], list[_T]]:
        """`items` (examples, or lines rendered in a worker) split by their exact `keys`:
        (new, seen). A key is new when neither written before (the index) nor met since the
        last checkpoint, earlier in `keys` included; the new ones become pending. Without
        exact dedupe (`exact = false`) every item is new."""
        if not self.config.exact:
            return list(items), []
        known = self.index.get_many(NAMESPACE, keys)
        pending = self._pending
        new: list[_T] = []
        seen: list[_T] = []
        for item, key in zip(items, keys, strict=True):
            if key in known or key in pending:
                seen.append(item)
            else:
                pending[key] = ""
                new.append(item)
        return new, seen

    def _near(
        self, examples: list[Example], contents: list[str], dropped: list[tuple[Example, str]]
    ) -> list[Example]:
        hasher = self.hasher
        assert hasher is not None
        if not examples:
            return examples
        flat, lengths = hasher.shingle_batch(contents)
        bands = hasher.band_key_batch(hasher.signatures_flat(flat, lengths))
        known = self.index.get_many(self.near_namespace, [k for keys in bands for k in keys])
        kept: list[Example] = []
        pending = self._pending_near
        for example, keys in zip(examples, bands, strict=True):
            if not self.grouping:
                if any(k in known or k in pending for k in keys):
                    dropped.append((example, "duplicate_near"))
                    continue
                example.group_key = own_group(example)
                pending.update(dict.fromkeys(keys, ""))
                kept.append(example)
                continue
            group = next(
                (known.get(k) or pending[k] for k in keys if k in known or k in pending), None
            )
            # A cluster found in the index wins; else a group the formatter chose (all bullets
            # of one resume, a rewrite and its pair) stays together.
            example.group_key = group or own_group(example)
            for key in keys:
                # A band keeps the group it was first given: one committed already is not
                # given another, as one still pending is not (else the groups would depend
                # on when the checkpoints fall).
                if key not in known:
                    pending.setdefault(key, example.group_key)
            kept.append(example)
        return kept

    def take_pending(self) -> dict[str, dict[str, str]]:
        """The keys to commit with the next checkpoint; they stay known until then."""
        pending = {NAMESPACE: dict(self._pending)}
        if self._pending_near:
            # Group keys go into a B-tree, which takes keys in order several times faster.
            near = self._pending_near
            pending[self.near_namespace] = dict(sorted(near.items())) if self.grouping else near
        return pending

    def committed(self) -> None:
        self._pending.clear()
        self._pending_near.clear()
