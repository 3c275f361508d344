"""Output file names: `{owner}__{dataset}` with the suffixes of the file-naming rules.

Remote names are sanitised: no path separators, no `..`, nothing but a safe file name.
"""

from __future__ import annotations

import re
from functools import lru_cache

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_part(text: str) -> str:
    cleaned = _UNSAFE.sub("-", text).strip(".-_")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned or "unnamed"


@lru_cache(maxsize=4096)
def output_name(source: str, dataset: str) -> str:
    """`owner/dataset` -> `owner__dataset`; a dataset without an owner is owned by its source."""
    owner, _, name = dataset.rpartition("/")
    owner = owner or source
    return f"{safe_part(owner)}__{safe_part(name)}"
