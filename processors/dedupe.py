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
from collections.abc import Iterable, Mapping
from typing import Protocol

import numpy as np

from processors.anonymize.spans import TOKEN_PATTERN
from processors.config import DedupeConfig
from processors.records import Example

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
_U32 = np.uint32
# MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations.
_FMIX = (_U32(16), _U32(0x85EBCA6B), _U32(13), _U32(0xC2B2AE35), _U32(16))
_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_BAND_MIX = np.uint64(0x100000001B3)
_CHUNK_SHINGLES = 2048
# Byte-polynomial hashing of words: an odd multiplier, so it has an inverse modulo 2**64.
_POLY = np.uint64(0x100000001B3)
_POLY_INVERSE = np.uint64(pow(int(_POLY), -1, 2**64))


class KeyIndex(Protocol):
    def get_many(self, namespace: str, keys: Iterable[str]) -> Mapping[str, str]: ...


def normalise(text: str) -> str:
    """Case, whitespace, punctuation and PII tokens do not make two lines different."""
    if "[" in text:
        text = TOKEN_PATTERN.sub(" ", text)
    if text.isascii():  # the usual case: a translation table, no regex
        return b" ".join(text.encode().translate(_ASCII_FOLD).split()).decode()
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def content_of(example: Example) -> str:
    # The system prompt carries context only: two equal bullets with another context are equal.
    return "\x1e".join(normalise(m.content) for m in example.messages if m.role != "system")


def exact_key(example: Example, content: str | None = None) -> str:
    body = content_of(example) if content is None else content
    return hashlib.blake2b(f"{example.kind}\x1f{body}".encode(), digest_size=16).hexdigest()


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
        self.sample = max(1, config.sample)
        # Imported here, where near dedupe is configured: datasketch imports scipy, a second
        # of CPU at every start of the service and of its workers' forkserver for nothing
        # when only exact dedupe is on (the default).
        from datasketch import MinHash
        from datasketch.lsh import _optimal_param

        a, b = MinHash(config.num_perm, seed=seed, scheme="affine32").permutations
        self._a = np.asarray(a, dtype=_U32)
        self._b = np.asarray(b, dtype=_U32)
        self.bands, self.rows = _optimal_param(config.threshold, config.num_perm, 0.5, 0.5)
        self._block = np.zeros((0, self.num_perm), dtype=_U32)
        self._band_prefixes = [f"{band:02d}" for band in range(self.bands)]
        self._pow = np.zeros(0, dtype=np.uint64)
        self._inv = np.zeros(0, dtype=np.uint64)

    def shingles(self, text: str) -> np.ndarray:
        """32-bit hashes of one normalised text's word (or character) n-grams."""
        flat, _ = self.shingle_batch([text])
        return flat

    def shingle_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of many normalised texts at once: (all hashes, count per text).

        The texts are joined into one byte array; a polynomial hash over bytes gives every word
        (or every k bytes) its hash from prefix sums, and k consecutive word hashes make a
        shingle. All of it is numpy: no Python loop per word. A text with fewer than k units
        is one shingle of all of them; an empty text is the shingle 0.
        """
        count = len(texts)
        data = np.frombuffer("\n".join(texts).encode("utf-8"), dtype=np.uint8)
        n = len(data)
        if n == 0:
            return np.zeros(count, dtype=_U32), np.ones(count, dtype=np.int64)
        powers, inverse = self._powers(n + 1)
        record = np.cumsum(data == 10)  # the text each byte belongs to
        with np.errstate(over="ignore"):
            prefix = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum(data.astype(np.uint64) * powers[:n], out=prefix[1:])
            if self.shingle == "word":
                sep = (data == 32) | (data == 10) | (data == 0x1E)
                word = ~sep
                starts = np.flatnonzero(word & np.concatenate(([True], sep[:-1])))
                ends = np.flatnonzero(word & np.concatenate((sep[1:], [True]))) + 1
                units = (prefix[ends] - prefix[starts]) * inverse[starts]
                owner = record[starts]
            else:
                units = data.astype(np.uint64)
                owner = record
                keep = data != 10
                units, owner = units[keep], owner[keep]
            size = self.size
            valid = len(units) - size + 1
            if valid > 0:
                acc = units[:valid].copy()
                for offset in range(1, size):
                    acc = acc * _SHINGLE_MIX + units[offset : offset + valid]
                same = owner[:valid] == owner[size - 1 : size - 1 + valid]
                hashes, ids = acc[same], owner[:valid][same]
            else:
                hashes, ids = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=owner.dtype)
            lengths = np.bincount(ids, minlength=count).astype(np.int64)
            short = np.flatnonzero(lengths == 0)
            if len(short):  # texts with fewer than k units: one shingle of all their units
                extra = np.zeros(len(short), dtype=np.uint64)
                for slot, text_index in enumerate(short):
                    mine = units[owner == text_index]
                    value = np.uint64(0)
                    for unit in mine:
                        value = value * _SHINGLE_MIX + unit
                    extra[slot] = value
                hashes = np.concatenate((hashes, extra))
                ids = np.concatenate((ids, short))
                order = np.argsort(ids, kind="stable")
                hashes = hashes[order]
                lengths[short] = 1
        folded = ((hashes ^ (hashes >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(_U32)
        if self.sample > 1:
            folded, lengths = self._sampled(folded, lengths)
        return folded, lengths

    def _sampled(self, hashes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One shingle in `sample`, by hash; a text left with none keeps all of its own."""
        owner = np.repeat(np.arange(len(lengths)), lengths)
        keep = (hashes % np.uint32(self.sample)) == 0
        kept_lengths = np.bincount(owner[keep], minlength=len(lengths)).astype(np.int64)
        empty = kept_lengths == 0
        if empty.any():
            keep |= empty[owner]
            kept_lengths = np.bincount(owner[keep], minlength=len(lengths)).astype(np.int64)
        return hashes[keep], kept_lengths

    def _powers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """_POLY**i and its inverse modulo 2**64, for i < size (grown on demand, kept)."""
        if len(self._pow) < size:
            grow = max(size, 2 * len(self._pow), 1 << 16)
            one = np.ones(1, dtype=np.uint64)
            with np.errstate(over="ignore"):
                steps = np.full(grow - 1, _POLY, dtype=np.uint64)
                self._pow = np.concatenate((one, np.cumprod(steps)))
                steps[:] = _POLY_INVERSE
                self._inv = np.concatenate((one, np.cumprod(steps)))
        return self._pow, self._inv

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """One row of `num_perm` minimum hash values per shingle set."""
        if not shingle_sets:
            return np.zeros((0, self.num_perm), dtype=_U32)
        lengths = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64)
        return self.signatures_flat(np.concatenate(shingle_sets), lengths)

    def signatures_flat(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Signatures of consecutive runs of `flat` (each at least one hash long)."""
        count = len(lengths)
        mixed = _fmix32(flat.astype(_U32, copy=False))
        ends = np.cumsum(lengths)
        starts = ends - lengths
        out = np.empty((count, self.num_perm), dtype=_U32)
        # Records go in chunks, so the (shingles x permutations) product stays in cache.
        i = 0
        while i < count:
            base = int(starts[i])
            j = max(i + 1, int(np.searchsorted(ends, base + _CHUNK_SHINGLES, side="right")))
            size = int(ends[j - 1]) - base
            if len(self._block) < size:
                self._block = np.empty((max(size, _CHUNK_SHINGLES), self.num_perm), dtype=_U32)
            block = self._block[:size]
            np.multiply(mixed[base : base + size, None], self._a, out=block)
            np.add(block, self._b, out=block)
            out[i:j] = np.minimum.reduceat(block, starts[i:j] - base, axis=0)
            i = j
        return out

    def band_key_batch(self, signatures: np.ndarray) -> list[list[str]]:
        """LSH band keys per signature: the band number and a 64-bit hash of its rows."""
        bands, rows = self.bands, self.rows
        block = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
        block = block.astype(np.uint64)
        with np.errstate(over="ignore"):
            acc = np.zeros(block.shape[:2], dtype=np.uint64)
            for row in range(rows):
                acc = (acc ^ block[:, :, row]) * _BAND_MIX
            acc ^= acc >> np.uint64(29)
        # One hex string for the whole batch (big-endian: the digits read as the number),
        # cut into 16-digit keys.
        digits = acc.astype(">u8").tobytes().hex()
        prefixes = self._band_prefixes
        return [
            [
                prefixes[band] + digits[start + 16 * band : start + 16 * band + 16]
                for band in range(bands)
            ]
            for start in range(0, len(digits), 16 * bands)
        ]


class Deduplicator:
    def __init__(self, config: DedupeConfig, index: KeyIndex) -> None:
        self.config = config
        self.index = index
        self.hasher = MinHasher(config) if config.near else None
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
        kept = examples
        if self.config.exact:
            kept = []
            keys = [e.dedupe_key for e in examples]
            for example, new in zip(examples, self.first_seen(keys), strict=True):
                if new:
                    kept.append(example)
                else:
                    dropped.append((example, DUPLICATE))
        if self.hasher is not None:
            texts = [contents[id(e)] if id(e) in contents else content_of(e) for e in kept]
            kept = self._near(kept, texts, dropped)
        for example in kept:
            example.group_key = own_group(example)
        return kept, dropped

    def first_seen(self, keys: list[str]) -> list[bool]:
        """For each exact key, whether it is new: neither written before (the index) nor met
        since the last checkpoint, earlier in `keys` included. The new ones become pending.
        Without exact dedupe (`exact = false`) every key is new."""
        if not self.config.exact:
            return [True] * len(keys)
        known = self.index.get_many(NAMESPACE, keys)
        pending = self._pending
        out: list[bool] = []
        for key in keys:
            new = key not in known and key not in pending
            if new:
                pending[key] = ""
            out.append(new)
        return out

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
