"""Set namespaces in SQLite: sorted runs of 64-bit fingerprints, a Bloom filter in front.

A dedupe index is a set of random hashes that only grows. Kept as rows of a B-tree, every
checkpoint inserts its keys at random places: once the tree is bigger than a checkpoint, each
key dirties a page of its own, which the WAL writes and the checkpointer copies again. At a
million records with near-dup dedupe (six keys each) that was most of the time a record took.

Here a checkpoint's keys become one new *run*: their fingerprints, sorted, in block rows,
written in the same transaction as everything else the checkpoint commits. When the newest run
is at least half the size of the one before it the two are merged (in numpy, in that same
transaction, streaming: a merge holds a few chunks of each run, never a whole run), so a set of
n keys is O(log n) runs and each key is rewritten O(log n) times, in sequential writes.

A look-up first asks a Bloom filter of fixed size (`BLOOM_BITS`), built from the runs when the
store opens: most keys a dedupe index is asked about are new, and those the filter rules out
cost no read at all. For the rest, each run keeps every `BLOCK`-th fingerprint in memory (its
fences), so a probe reads one block row of the run. Memory is the filter plus the fences:
it does not grow with the set, except the fences (one fingerprint per `BLOCK`).

What a set holds is membership only: a key's value is always "" and a set cannot be scanned.
Fingerprints are 64-bit XXH3 hashes (stable across processes and machines, unlike Python's
salted `hash`): two different keys share one with a chance of about n/2**64 per look-up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import xxhash

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    size INTEGER NOT NULL
);
-- A run's fingerprints in blocks, one row each, row id = run id << 32 | block number: a probe
-- is one row look-up, and a new run is appended after every row there is.
CREATE TABLE IF NOT EXISTS run_blocks (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"""
BLOCK = 256  # fingerprints per block row (2 KiB, inside one page)
CHUNK_BLOCKS = 64  # blocks read at a time while loading or merging runs (128 KiB)
BLOOM_BITS = 1 << 27  # 16 MiB, 13 bits per key at 10M keys: 0.35% false positives
_HASHES = 7
_LINE_BITS = 512  # a 64-byte cache line
_U64 = np.dtype("<u8")


def fingerprints(keys: Iterable[str]) -> np.ndarray:
    """64-bit fingerprints of keys (XXH3), in the order given."""
    digest = xxhash.xxh3_64_intdigest
    return np.fromiter((digest(key.encode()) for key in keys), dtype=_U64)


class DamagedRun(sqlite3.DatabaseError):
    """A run of a set namespace cannot be read back as it was written."""


@dataclass
class Run:
    id: int
    size: int
    fences: np.ndarray  # fingerprint at the start of every block


class Bloom:
    """A blocked Bloom filter: the bits of a key all lie in one 64-byte line of the filter (a
    cache line), chosen by its fingerprint's high half. Spread over the whole 16 MiB, a key's
    seven bits were seven cache misses, which made updating and asking it most of what a
    checkpoint's dedupe keys cost; a line per key costs one, and a few more false "maybe"s
    (0.35% at 10M keys rather than 0.2%). It lives in memory only, built from the runs."""

    def __init__(self, bits: int = BLOOM_BITS) -> None:
        if bits & (bits - 1):
            raise ValueError("the Bloom filter's size must be a power of two")
        line = min(bits, _LINE_BITS)
        self.lines = np.uint64(bits // line - 1)  # a mask: the lines are a power of two
        self.line_shift = np.uint64(line.bit_length() - 1)
        self.in_line = np.uint64(line - 1)
        # np.zeros maps zeroed pages lazily: a small set touches few of them.
        self.bytes = np.zeros(bits // 8, dtype=np.uint8)

    def _positions(self, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The line from the high half, the bits in it by double hashing the low half: the step
        # is odd, so a key's `_HASHES` bits are distinct in a line of any power of two above it.
        line = ((fps >> np.uint64(32)) & self.lines) << self.line_shift
        first = fps & self.in_line
        step = ((fps >> np.uint64(16)) & self.in_line) | np.uint64(1)
        spread: np.ndarray = first[:, None] + step[:, None] * np.arange(_HASHES, dtype=np.uint64)
        spread &= self.in_line
        spread |= line[:, None]
        return (spread >> np.uint64(3)).astype(np.intp), (
            np.uint8(1) << (spread & np.uint64(7)).astype(np.uint8)
        )

    def add(self, fps: np.ndarray) -> None:
        if len(fps):
            where, bit = self._positions(fps)
            np.bitwise_or.at(self.bytes, where.ravel(), bit.ravel())

    def maybe(self, fps: np.ndarray) -> np.ndarray:
        """True where the fingerprint may be in the set; False where it is surely not."""
        if not len(fps):
            return np.zeros(0, dtype=bool)
        where, bit = self._positions(fps)
        found: np.ndarray = ((self.bytes[where] & bit) != 0).all(axis=1)
        return found


class RunSets:
    """The set namespaces of one SQLite connection. The caller holds the connection's lock."""

    def __init__(self, db: sqlite3.Connection, bloom_bits: int = BLOOM_BITS) -> None:
        self.db = db
        self.bloom_bits = bloom_bits
        db.executescript(SCHEMA)
        self._load()

    def _load(self) -> None:
        """Fences and filter from the runs on disk (at open, and after another writer)."""
        self.bloom = Bloom(self.bloom_bits)
        self.runs: dict[str, list[Run]] = {}
        rows = self.db.execute("SELECT id, namespace, size FROM runs ORDER BY id").fetchall()
        for run_id, namespace, size in rows:
            fences, count = [], 0
            for chunk in self._chunks(int(run_id)):
                self.bloom.add(chunk)
                fences.append(chunk[::BLOCK].copy())  # a view would keep the chunk
                count += len(chunk)
            if count != size:
                raise DamagedRun(f"run {run_id} holds {count} fingerprints, not {size}")
            self.runs.setdefault(str(namespace), []).append(
                Run(int(run_id), int(size), np.concatenate(fences) if fences else _EMPTY)
            )
        self.version = self._data_version()

    def _data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def _fresh(self) -> None:
        # Another connection (another process on the same file) committed since: its runs
        # are not in memory yet.
        if self._data_version() != self.version:
            self._load()

    def _chunks(self, run_id: int) -> Iterator[np.ndarray]:
        """A run's fingerprints in order, `CHUNK_BLOCKS` blocks at a time: reading or merging
        a run never holds all of it."""
        start, end = run_id << 32, (run_id + 1) << 32
        while True:
            rows = self.db.execute(
                "SELECT id, data FROM run_blocks WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (start, end, CHUNK_BLOCKS),
            ).fetchall()
            if not rows:
                return
            raw = b"".join(row[1] for row in rows)
            if len(raw) % 8:
                raise DamagedRun(f"run {run_id} holds something else than fingerprints")
            yield np.frombuffer(raw, dtype=_U64)
            start = int(rows[-1][0]) + 1

    def _read_block(self, run_id: int, block: int) -> np.ndarray:
        row = self.db.execute(
            "SELECT data FROM run_blocks WHERE id = ?", (run_id << 32 | block,)
        ).fetchone()
        if row is None or not isinstance(row[0], bytes) or len(row[0]) % 8:
            # Never written so by this module: the file was damaged or edited by hand.
            raise DamagedRun(f"block {block} of run {run_id} is missing or not fingerprints")
        return np.frombuffer(row[0], dtype=_U64)

    # -- reading ------------------------------------------------------------------------------
    def members(self, namespace: str, keys: list[str]) -> set[str]:
        self._fresh()
        runs = self.runs.get(namespace)
        if not runs or not keys:
            return set()
        fps = fingerprints(keys)
        maybe = np.flatnonzero(self.bloom.maybe(fps))
        if not len(maybe):
            return set()
        wanted = fps[maybe]
        hit = np.zeros(len(wanted), dtype=bool)
        for run in reversed(runs):  # newest first: a re-posted item is usually recent
            open_ = np.flatnonzero(~hit)
            if not len(open_):
                break
            hit[open_] |= self._in_run(run, wanted[open_])
        return {keys[int(i)] for i in maybe[hit]}

    def _in_run(self, run: Run, fps: np.ndarray) -> np.ndarray:
        found = np.zeros(len(fps), dtype=bool)
        blocks = np.searchsorted(run.fences, fps, side="right") - 1
        for block in np.unique(blocks[blocks >= 0]):
            mine = np.flatnonzero(blocks == block)
            data = self._read_block(run.id, int(block))
            at = np.searchsorted(data, fps[mine])
            inside = at < len(data)
            found[mine[inside]] = data[at[inside]] == fps[mine[inside]]
        return found

    # -- writing ------------------------------------------------------------------------------
    def stage(self, namespace: str, keys: Iterable[str]) -> Callable[[], None]:
        """Write the keys as a new run (merging runs as it goes) inside the caller's open
        transaction; the returned function updates memory once that transaction commits."""
        self._fresh()
        fps = _unique(fingerprints(keys))
        if not len(fps):
            return lambda: None
        runs = list(self.runs.get(namespace, []))
        # The new keys take the newest runs with them while those are at most twice as big as
        # what is merged so far: run sizes grow geometrically, so there are O(log n) of them.
        merged: list[Run] = []
        total = len(fps)
        while runs and runs[-1].size <= 2 * total:
            merged.append(runs.pop())
            total += merged[-1].size
        sources = [iter([fps]), *(self._chunks(run.id) for run in merged)]
        runs.append(self._write_run(namespace, _merge(sources)))
        for old in merged:
            self.db.execute("DELETE FROM runs WHERE id = ?", (old.id,))
            self.db.execute(
                "DELETE FROM run_blocks WHERE id >= ? AND id < ?",
                (old.id << 32, (old.id + 1) << 32),
            )

        def apply() -> None:
            # `version` stays: our own commit does not change data_version, and reading it
            # again here could take in another writer's commit whose runs were never loaded.
            self.runs[namespace] = runs
            self.bloom.add(fps)

        return apply

    def _write_run(self, namespace: str, chunks: Iterator[np.ndarray]) -> Run:
        cursor = self.db.execute("INSERT INTO runs (namespace, size) VALUES (?, 0)", (namespace,))
        run_id = cursor.lastrowid
        assert run_id is not None
        size = 0
        fences: list[np.ndarray] = []

        def write(ready: np.ndarray) -> None:
            """Block rows for `ready`, which starts on a block boundary."""
            nonlocal size
            raw, step, first = ready.tobytes(), BLOCK * 8, size // BLOCK
            self.db.executemany(
                "INSERT INTO run_blocks (id, data) VALUES (?, ?)",
                (
                    (run_id << 32 | (first + n), raw[at : at + step])
                    for n, at in enumerate(range(0, len(raw), step))
                ),
            )
            size += len(ready)
            fences.append(ready[::BLOCK].copy())  # a view would keep the chunk

        rest = _EMPTY
        for chunk in chunks:
            rest = np.concatenate((rest, chunk)) if len(rest) else chunk
            whole = len(rest) // BLOCK * BLOCK
            if whole:
                write(rest[:whole])
                rest = rest[whole:]
        if len(rest):  # the last, partial block
            write(rest)
        self.db.execute("UPDATE runs SET size = ? WHERE id = ?", (size, run_id))
        return Run(run_id, size, np.concatenate(fences) if fences else _EMPTY)


_EMPTY = np.zeros(0, dtype=_U64)


def _merge(sources: list[Iterator[np.ndarray]]) -> Iterator[np.ndarray]:
    """Sorted runs of fingerprints merged into one, without repeats, a chunk at a time."""
    heads: list[tuple[np.ndarray, Iterator[np.ndarray]]] = []
    for source in sources:
        head = _next_chunk(source)
        if head is not None:
            heads.append((head, source))
    while heads:
        # Everything up to the smallest of the heads' last values is final: what comes later
        # from any run is bigger.
        bound = min(head[-1] for head, _ in heads)
        taken, live = [], []
        for head, source in heads:
            cut = int(np.searchsorted(head, bound, side="right"))
            taken.append(head[:cut])
            left = head[cut:] if cut < len(head) else _next_chunk(source)
            if left is not None:
                live.append((left, source))
        heads = live
        yield _unique(np.concatenate(taken))


def _unique(fps: np.ndarray) -> np.ndarray:
    """`np.unique` of fingerprints: sorted, then each kept where it differs from the one before.
    numpy 2's `unique` hashes first, at fifty times the cost of sorting what `_merge` gives it,
    runs already sorted (a stable sort merges them in one pass)."""
    ordered = np.sort(fps, kind="stable")
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _next_chunk(source: Iterator[np.ndarray]) -> np.ndarray | None:
    for chunk in source:
        if len(chunk):
            return chunk
    return None
