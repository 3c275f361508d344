"""The `StateStore` protocol.

Everything the service remembers is a string value under a (namespace, key) pair, plus additive
counters. `commit` applies many puts and counter increments atomically: the writer uses it to
save, in one transaction, the output file lengths, the sources' cursors and the dedupe keys that
belong together, so a crash can never leave one without the others.

The protocol is synchronous (SQLite is, and processors are): the service calls it from a thread.
The backends implement it (collector/state/sqlite.py, collector/state/redis.py);
collector/state/open.py opens the one the config names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

# (source, dataset, what) -> increment; `what` is "written", "fetched" or a drop reason.
Counts = Mapping[tuple[str, str, str], int]

# Namespaces about this instance's own disk (committed file lengths): with a store shared by
# several instances (Redis) each instance keeps them apart; every other namespace is shared.
LOCAL_NAMESPACES = frozenset({"files", "files_replace"})
# A namespace named "set:..." is a set: membership is all it holds (every value reads back as
# ""), and it cannot be scanned or have keys deleted. The dedupe indexes are sets, which lets
# SQLite keep them as sorted runs instead of B-tree rows (collector/state/runs.py).
SET_PREFIX = "set:"


def is_set_namespace(namespace: str) -> bool:
    return namespace.startswith(SET_PREFIX)


class StateStore(Protocol):
    def get(self, namespace: str, key: str) -> str | None: ...

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        """The stored values of those keys that exist."""
        ...

    def scan(self, namespace: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        """Every (key, value) in a namespace whose key starts with `prefix`, in key order."""
        ...

    def commit(self, puts: Mapping[str, Mapping[str, str]], counts: Counts | None = None) -> None:
        """Apply all puts (namespace -> key -> value) and counter increments atomically."""
        ...

    def delete(self, namespace: str, keys: Iterable[str]) -> None: ...

    def counts(self) -> list[tuple[str, str, str, int]]:
        """All counters as (source, dataset, what, n)."""
        ...

    def close(self) -> None: ...
