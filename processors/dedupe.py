"""Deduplication: exact on normalised content, near-duplicate with MinHash LSH.

Both indexes live in the state store, so dedupe holds across restarts and across sources:

- `dedupe:exact`: blake2b of the normalised content (case, whitespace, punctuation and the
  anonymizer's tokens do not count) -> the group key of the record that had it first.
- `dedupe:near`: one key per LSH band of a record's MinHash signature -> its group key. Two
  records that share a band are near-duplicates (Jaccard similarity of their shingles around
  the threshold or above); the bands and rows per band are datasketch's optimal choice for the
  threshold and the number of permutations.

Signatures are datasketch's MinHash (scheme `affine32`, its permutations for the seed), computed
for a whole batch at once with numpy: shingle hashes of every record in one array, one
permutation product, one min-reduction per record. A test checks they equal
`datasketch.MinHash.update_batch` bit for bit.

Keys seen since the last checkpoint are held in memory and handed to the writer, which commits
them in the same transaction as the lines they belong to: after a crash the index and the
output agree.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Iterable, Mapping
from typing import Protocol

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from processors.config import DedupeConfig
from processors.records import Example

NAMESPACE = "dedupe:exact"
NEAR_NAMESPACE = "dedupe:near"
_TOKEN = re.compile(r"\[(?:EMAIL|PHONE|NAME|URL|ADDRESS)(?:_\d+)?\]")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_U32 = np.uint32
# MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations.
_FMIX = (_U32(16), _U32(0x85EBCA6B), _U32(13), _U32(0xC2B2AE35), _U32(16))
_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_SHINGLES = 8192


class KeyIndex(Protocol):
    def get_many(self, namespace: str, keys: Iterable[str]) -> Mapping[str, str]: ...


def normalise(text: str) -> str:
    """Case, whitespace, punctuation and PII tokens do not make two lines different."""
    text = _TOKEN.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def content_of(example: Example) -> str:
    # The system prompt carries context only: two equal bullets with another context are equal.
    return "\x1e".join(normalise(m.content) for m in example.messages if m.role != "system")


def exact_key(example: Example) -> str:
    body = content_of(example)
    return hashlib.blake2b(f"{example.kind}\x1f{body}".encode(), digest_size=16).hexdigest()


def _fmix32(hv: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    mixed: np.ndarray = hv ^ (hv >> s3)
    return mixed


class MinHasher:
    """datasketch MinHash signatures for many texts at once."""

    def __init__(self, config: DedupeConfig, seed: int = 1) -> None:
        if not 0.0 < config.threshold < 1.0:
            raise ValueError("dedupe.threshold must be between 0 and 1")
        self.num_perm = config.num_perm
        self.shingle = config.shingle
        self.size = max(1, config.shingle_size)
        a, b = MinHash(config.num_perm, seed=seed, scheme="affine32").permutations
        self._a = np.asarray(a, dtype=_U32)
        self._b = np.asarray(b, dtype=_U32)
        self.bands, self.rows = _optimal_param(config.threshold, config.num_perm, 0.5, 0.5)

    def shingles(self, text: str) -> np.ndarray:
        """32-bit hashes of the text's word (or character) n-grams."""
        if self.shingle == "word":
            words = text.split()
            units = np.fromiter(
                (zlib.crc32(w.encode()) for w in words), dtype=np.uint64, count=len(words)
            )
        else:
            units = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        if len(units) == 0:
            return np.zeros(1, dtype=_U32)
        size = min(self.size, len(units))
        count = len(units) - size + 1
        acc = units[:count].copy()
        with np.errstate(over="ignore"):
            for offset in range(1, size):
                acc = acc * _SHINGLE_MIX + units[offset : offset + count]
        return ((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(_U32)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """One row of `num_perm` minimum hash values per shingle set."""
        if not shingle_sets:
            return np.zeros((0, self.num_perm), dtype=_U32)
        lengths = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64)
        flat = _fmix32(np.concatenate(shingle_sets).astype(_U32, copy=False))
        ends = np.cumsum(lengths)
        starts = ends - lengths
        out = np.empty((len(shingle_sets), self.num_perm), dtype=_U32)
        # Records go in chunks, so the (shingles x permutations) product stays small.
        i, count = 0, len(shingle_sets)
        while i < count:
            base = int(starts[i])
            j = max(i + 1, int(np.searchsorted(ends, base + _CHUNK_SHINGLES, side="right")))
            block = flat[base : int(ends[j - 1]), None] * self._a + self._b
            out[i:j] = np.minimum.reduceat(block, starts[i:j] - base, axis=0)
            i = j
        return out

    def band_keys(self, signature: np.ndarray) -> list[str]:
        rows, raw = self.rows, signature.tobytes()
        width = rows * 4  # bytes of one band
        return [
            f"{band:02d}"
            + hashlib.blake2b(raw[band * width : (band + 1) * width], digest_size=8).hexdigest()
            for band in range(self.bands)
        ]


class Deduplicator:
    def __init__(self, config: DedupeConfig, index: KeyIndex) -> None:
        self.config = config
        self.index = index
        self.hasher = MinHasher(config) if config.near else None
        self._pending: dict[str, str] = {}
        self._pending_near: dict[str, str] = {}

    def filter(self, examples: list[Example]) -> tuple[list[Example], list[tuple[Example, str]]]:
        """(kept, [(dropped, reason)]): kept examples get their dedupe and group keys."""
        dropped: list[tuple[Example, str]] = []
        for example in examples:
            example.dedupe_key = exact_key(example)
        kept = examples
        if self.config.exact:
            kept = []
            known = self.index.get_many(NAMESPACE, [e.dedupe_key for e in examples])
            for example in examples:
                key = example.dedupe_key
                if key in known or key in self._pending:
                    dropped.append((example, "duplicate_exact"))
                    continue
                self._pending[key] = key
                kept.append(example)
        if self.hasher is not None:
            kept = self._near(kept, dropped)
        for example in kept:
            example.group_key = example.group_key or example.dedupe_key
        return kept, dropped

    def _near(self, examples: list[Example], dropped: list[tuple[Example, str]]) -> list[Example]:
        hasher = self.hasher
        assert hasher is not None
        if not examples:
            return examples
        signatures = hasher.signatures([hasher.shingles(content_of(e)) for e in examples])
        bands = [hasher.band_keys(signature) for signature in signatures]
        known = self.index.get_many(NEAR_NAMESPACE, [k for keys in bands for k in keys])
        kept: list[Example] = []
        pending = self._pending_near
        for example, keys in zip(examples, bands, strict=True):
            group = next(
                (known.get(k) or pending[k] for k in keys if k in known or k in pending), None
            )
            if group is not None and self.config.near_action == "drop":
                dropped.append((example, "duplicate_near"))
                continue
            example.group_key = group or example.dedupe_key
            for key in keys:
                pending.setdefault(key, example.group_key)
            kept.append(example)
        return kept

    def take_pending(self) -> dict[str, dict[str, str]]:
        """The keys to commit with the next checkpoint; they stay known until then."""
        pending = {NAMESPACE: dict(self._pending)}
        if self._pending_near:
            pending[NEAR_NAMESPACE] = dict(self._pending_near)
        return pending

    def committed(self) -> None:
        self._pending.clear()
        self._pending_near.clear()
