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
    prefix, train, validation = _bounds(config)
    digest = hashlib.blake2b(prefix + group_key.encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64
    if point < train:
        return "train"
    if point < validation:
        return "validation"
    return "test"


@lru_cache(maxsize=16)
def _bounds(config: SplitConfig) -> tuple[bytes, float, float]:
    """The hashed prefix and the upper bounds of train and validation, once per config: the
    writer asks for every line it writes."""
    total = config.train + config.validation + config.test
    if total <= 0 or min(config.train, config.validation, config.test) < 0:
        raise ValueError("split proportions must be non-negative with a positive sum")
    return (
        f"{config.seed}\x1f".encode(),
        config.train / total,
        (config.train + config.validation) / total,
    )
