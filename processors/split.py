"""Deterministic train/validation/test assignment from a hash of the record's group key.

The same group key always lands in the same split, whatever else is added later, and a
near-duplicate cluster shares one group key, so no near-copy of a test record is in train.
"""

from __future__ import annotations

import hashlib

from processors.config import SplitConfig
from processors.records import Split


def assign_split(group_key: str, config: SplitConfig) -> Split:
    digest = hashlib.blake2b(f"{config.seed}\x1f{group_key}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64
    total = config.train + config.validation + config.test
    if total <= 0 or min(config.train, config.validation, config.test) < 0:
        raise ValueError("split proportions must be non-negative with a positive sum")
    if point < config.train / total:
        return "train"
    if point < (config.train + config.validation) / total:
        return "validation"
    return "test"
