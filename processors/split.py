"""Deterministic train/validation/test assignment from a hash of the record's group key.

The same group key always lands in the same split, whatever else is added later, and a
near-duplicate cluster shares one group key, so no near-copy of a test record is in train.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from processors.config import SplitConfig
from processors.records import Split


def assign_split(group_key: str, config: SplitConfig) -> Split:
    salted, train, validation = _bounds(config)
    hasher = salted.copy()  # the digest of `{seed}\x1f{group_key}`, at half the cost of a new one
    hasher.update(group_key.encode())
    point = int.from_bytes(hasher.digest(), "big") / 2**64
    if point < train:
        return "train"
    if point < validation:
        return "validation"
    return "test"


@lru_cache(maxsize=16)
def _bounds(config: SplitConfig) -> tuple[hashlib.blake2b, float, float]:
    """blake2b's state after the seed, and the upper bounds of train and validation, once per
    config: every line written asks."""
    total = config.train + config.validation + config.test
    if total <= 0 or min(config.train, config.validation, config.test) < 0:
        raise ValueError("split proportions must be non-negative with a positive sum")
    return (
        hashlib.blake2b(f"{config.seed}\x1f".encode(), digest_size=8),
        config.train / total,
        (config.train + config.validation) / total,
    )
