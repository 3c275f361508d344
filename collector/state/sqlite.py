"""The default state store: one embedded SQLite file in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from collector.diskfull import DiskFull, is_disk_full
from collector.state.base import Counts, is_set_namespace
from collector.state.runs import BLOOM_BITS, RunSets

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    source TEXT NOT NULL,
    dataset TEXT NOT NULL,
    what TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (source, dataset, what)
) WITHOUT ROWID;
"""

# SQLite caps the number of bound parameters per statement; look-ups go in slices below it.
_SLICE = 500


class SqliteStateStore:
    def __init__(self, path: str | Path, bloom_bits: int = BLOOM_BITS) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the service's threads, serialised by a lock: SQLite allows a
        # single writer anyway, and the service commits from one task at a time.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed checkpoint survives power loss, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            self._sets = RunSets(self._db, bloom_bits)

    def get(self, namespace: str, key: str) -> str | None:
        if is_set_namespace(namespace):
            return self.get_many(namespace, [key]).get(key)
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
        return None if row is None else str(row[0])

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        if is_set_namespace(namespace):
            with self._lock:
                return dict.fromkeys(self._sets.members(namespace, wanted), "")
        with self._lock:
            for start in range(0, len(wanted), _SLICE):
                part = wanted[start : start + _SLICE]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, value FROM kv WHERE namespace = ? AND key IN ({marks})",
                    (namespace, *part),
                )
                found.update((str(k), str(v)) for k, v in rows)
        return found

    def scan(self, namespace: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        if is_set_namespace(namespace):
            raise ValueError(f"{namespace} is a set: it cannot be scanned")
        # Keys are compared as text: every key in [prefix, prefix + U+10FFFF) starts with prefix.
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE namespace = ? AND key >= ? AND key < ? "
                "ORDER BY key",
                (namespace, prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return iter([(str(k), str(v)) for k, v in rows])

    def commit(self, puts: Mapping[str, Mapping[str, str]], counts: Counts | None = None) -> None:
        """Everything in one transaction, or nothing (a full disk: `DiskFull`, rolled back)."""
        with self._lock:
            try:
                applied = self._commit(puts, counts)
            except sqlite3.OperationalError as error:
                if is_disk_full(error):
                    raise DiskFull(self.path, error) from error
                raise
            for apply in applied:  # the sets' memory follows what is now on disk
                apply()

    def _commit(
        self, puts: Mapping[str, Mapping[str, str]], counts: Counts | None
    ) -> list[Callable[[], None]]:
        self._db.execute("BEGIN IMMEDIATE")
        applied = []
        try:
            for namespace, items in puts.items():
                if is_set_namespace(namespace):
                    applied.append(self._sets.stage(namespace, items.keys()))
                    continue
                self._db.executemany(
                    "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                    ((namespace, k, v) for k, v in items.items()),
                )
            if counts:
                self._db.executemany(
                    "INSERT INTO counts (source, dataset, what, n) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (source, dataset, what) DO UPDATE SET n = n + excluded.n",
                    ((s, d, w, n) for (s, d, w), n in counts.items() if n),
                )
            # Inside the try: in WAL mode the pages are written at COMMIT, so that is where a
            # full disk is met, and the transaction must not stay open after it.
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back by itself already (a full disk, an I/O error).
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return applied

    def delete(self, namespace: str, keys: Iterable[str]) -> None:
        if is_set_namespace(namespace):
            raise ValueError(f"{namespace} is a set: keys are never taken out of it")
        with self._lock:
            self._db.executemany(
                "DELETE FROM kv WHERE namespace = ? AND key = ?", ((namespace, k) for k in keys)
            )

    def counts(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT source, dataset, what, n FROM counts ORDER BY source, dataset, what"
            ).fetchall()
        return [(str(s), str(d), str(w), int(n)) for s, d, w, n in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
