"""SQLite's set namespaces: sorted runs of fingerprints behind a Bloom filter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collector.state.runs import BLOCK, Bloom, DamagedRun, RunSets, _merge, fingerprints
from collector.state.sqlite import SqliteStateStore


def commit(sets: RunSets, db: sqlite3.Connection, namespace: str, keys: list[str]) -> None:
    db.execute("BEGIN IMMEDIATE")
    apply = sets.stage(namespace, keys)
    db.execute("COMMIT")
    apply()


def test_what_the_filter_lets_through_is_checked_against_the_runs(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    sets = RunSets(db, bloom_bits=64)  # so small that it answers "maybe" to nearly everything
    present = [f"in-{i}" for i in range(3000)]
    commit(sets, db, "set:x", present)
    absent = [f"out-{i}" for i in range(3000)]
    assert sets.bloom.maybe(fingerprints(absent)).mean() > 0.9
    assert sets.members("set:x", present + absent) == set(present)


def test_a_keys_bloom_bits_lie_in_one_cache_line_and_are_distinct() -> None:
    # One cache miss per key to add or ask it, not seven (runs.py `Bloom`); a filter smaller
    # than a line still gives each key its seven bits.
    for bits in (1 << 27, 1 << 12, 64):
        where, bit = Bloom(bits)._positions(fingerprints(f"key{i}" for i in range(2000)))
        assert (where.max(axis=1) // 64 == where.min(axis=1) // 64).all()
        assert all(len(set(zip(w, b, strict=True))) == 7 for w, b in zip(where, bit, strict=True))


def test_a_bloom_filter_never_forgets_and_rarely_says_maybe_to_a_new_key() -> None:
    bloom = Bloom(1 << 20)
    known = fingerprints(f"k{i}" for i in range(50_000))
    bloom.add(known)
    assert bloom.maybe(known).all()
    assert bloom.maybe(fingerprints(f"new{i}" for i in range(50_000))).mean() < 0.01


def test_runs_are_merged_so_there_are_few_of_them(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    sets = RunSets(db)
    for batch in range(300):
        commit(sets, db, "set:x", [f"{batch}-{i}" for i in range(100)])
    runs = sets.runs["set:x"]
    assert len(runs) <= 12
    assert sum(run.size for run in runs) == 30_000
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == len(runs)
    # Memory per run is its fences: one fingerprint per block.
    assert all(len(run.fences) == -(-run.size // BLOCK) for run in runs)
    assert sets.members("set:x", ["0-0", "150-50", "299-99", "300-0"]) == {
        "0-0",
        "150-50",
        "299-99",
    }


def test_a_store_sees_what_another_connection_added_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first, second = SqliteStateStore(path), SqliteStateStore(path)
    try:
        first.commit({"set:x": dict.fromkeys(["a", "b"], "")})
        assert second.get_many("set:x", ["a", "b", "c"]) == {"a": "", "b": ""}
        # The second store's commit merges the first one's run into a new one.
        second.commit({"set:x": dict.fromkeys(["c", "d"], "")})
        assert first.get_many("set:x", ["a", "b", "c", "d", "e"]) == dict.fromkeys("abcd", "")
        first.commit({"set:x": {"e": ""}})
        assert second.get_many("set:x", list("abcdef")) == dict.fromkeys("abcde", "")
    finally:
        first.close()
        second.close()


def test_fingerprints_are_stable_across_processes() -> None:
    # XXH3, not Python's salted hash(): a set written by one process is read by the next.
    assert int(fingerprints(["resume"])[0]) == 0x2C4F18DF09FB7C69


def test_a_merge_streams_sorted_runs_into_one_without_repeats() -> None:
    rng = np.random.default_rng(3)
    runs = [np.unique(rng.integers(0, 50_000, size, dtype=np.uint64)) for size in (10, 20_000, 7)]

    def chunked(run: np.ndarray) -> Iterator[np.ndarray]:
        return iter(np.array_split(run, max(1, len(run) // 999)))

    merged = np.concatenate(list(_merge([chunked(run) for run in runs])))
    assert np.array_equal(merged, np.unique(np.concatenate(runs)))


def damage(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()


def test_a_damaged_run_is_a_clear_error_when_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)
    store.commit({"set:x": dict.fromkeys(["a", "b"], "")})
    store.close()
    damage(path, "UPDATE run_blocks SET data = x'0102'")
    with pytest.raises(DamagedRun, match="run 1 holds something else than fingerprints"):
        SqliteStateStore(path)


def test_a_run_damaged_while_the_store_is_open_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)
    try:
        store.commit({"set:x": dict.fromkeys(["a", "b"], "")})
        damage(path, "DELETE FROM run_blocks")
        with pytest.raises(DamagedRun, match="run 1 holds 0 fingerprints, not 2"):
            store.get_many("set:x", ["a"])
    finally:
        store.close()
