"""MinHash signatures and LSH band keys of many texts at once, for near dedupe
(`processors/dedupe.py`).

Signatures are datasketch's MinHash (scheme `affine32`, its permutations for the seed), computed
for a whole batch at once with numpy: shingle hashes of every record in one array, one
permutation product, one min-reduction per record. A test checks they equal
`datasketch.MinHash.update_batch` bit for bit.
"""

from __future__ import annotations

import numpy as np

from processors.config import DedupeConfig

_U32 = np.uint32
# MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations.
_FMIX = (_U32(16), _U32(0x85EBCA6B), _U32(13), _U32(0xC2B2AE35), _U32(16))
_SHINGLE_MIX = np.uint64(0x9E3779B97F4A7C15)
_BAND_MIX = np.uint64(0x100000001B3)
_CHUNK_SHINGLES = 2048
# Byte-polynomial hashing of words: an odd multiplier, so it has an inverse modulo 2**64.
_POLY = np.uint64(0x100000001B3)
_POLY_INVERSE = np.uint64(pow(int(_POLY), -1, 2**64))


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
