"""The chunk roller: what closes a chunk, what goes in it, and what a crash leaves behind."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import msgspec

from collector.logging import get_logger
from collector.sinks.lines import render
from collector.state.sqlite import SqliteStateStore
from collector.upload.chunks import ChunkRoller, git_blob_oid
from collector.upload.config import UploadConfig
from collector.upload.ledger import Ledger
from processors.records import Example
from tests.conftest import Clock


def example(
    i: int,
    *,
    split: str = "train",
    dataset: str = "local/advice",
    kind: str = "train",
    rewritten: bool = False,
    size: int = 0,
) -> Example:
    answer = f"Led the migration of service {i} to a managed queue" + "x" * size
    return msgspec.convert(
        {
            "messages": [
                {"role": "user", "content": f"Improve bullet {i}"},
                {"role": "assistant", "content": answer},
            ],
            "source": "inbox",
            "dataset": dataset,
            "record_id": str(i),
            "kind": kind,
            "rewritten": rewritten,
            "split": split,
        },
        Example,
    )


def roller(data_dir: Path, state: SqliteStateStore, clock: Clock | None = None, **limits: object):
    config = msgspec.convert(limits, UploadConfig)
    return ChunkRoller(data_dir, state, config, get_logger(), clock=clock or Clock())


async def checkpoint(chunks: ChunkRoller, state: SqliteStateStore) -> None:
    """What the pipeline's writer does: flush, commit the puts, then `committed`."""
    state.commit(await chunks.flush())
    await chunks.committed()


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_chunk_closes_at_max_records(tmp_path: Path, state: SqliteStateStore) -> None:
    chunks = roller(tmp_path, state, max_records=3)
    await chunks.open()
    chunks.write(render([example(i) for i in range(7)]))
    await checkpoint(chunks, state)
    pending = Ledger(state).entries("pending")
    assert [(e.path, e.records) for e in pending] == [
        ("data/train/local__advice-00001.jsonl", 3),
        ("data/train/local__advice-00002.jsonl", 3),
    ]
    first = tmp_path / "chunks" / "data" / "train" / "local__advice-00001.jsonl"
    assert lines(first) == [msgspec.to_builtins(example(i).training_line()) for i in range(3)]
    assert pending[0].oid == git_blob_oid(first)
    assert [(c.seq, c.records) for c in chunks.open_chunks()] == [(3, 1)]


async def test_a_chunk_closes_before_it_would_pass_max_bytes(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state, max_bytes=1000)
    await chunks.open()
    chunks.write(render([example(i, size=300) for i in range(5)]))  # ~400 bytes a line
    await checkpoint(chunks, state)
    pending = Ledger(state).entries("pending")
    assert [e.records for e in pending] == [2, 2]
    assert all(e.bytes <= 1000 for e in pending)
    # A single line larger than the limit still gets a chunk of its own.
    chunks.write(render([example(99, size=2000)]))
    await checkpoint(chunks, state)
    assert [e.records for e in Ledger(state).entries("pending")] == [2, 2, 1, 1]


async def test_a_chunk_older_than_max_age_closes_at_the_next_checkpoint(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    clock = Clock()
    chunks = roller(tmp_path, state, clock, max_age=60)
    await chunks.open()
    chunks.write(render([example(1)]))
    await checkpoint(chunks, state)
    assert chunks.mark_due() == 0 and chunks.pending_bytes == 0
    clock.now += 61
    assert chunks.mark_due() == 1
    assert chunks.pending_bytes > 0  # so the writer checkpoints even with no new line
    await checkpoint(chunks, state)
    assert [e.records for e in Ledger(state).entries("pending")] == [1]
    assert chunks.open_chunks() == []


async def test_age_survives_a_restart(tmp_path: Path, state: SqliteStateStore) -> None:
    clock = Clock()
    chunks = roller(tmp_path, state, clock, max_age=60)
    await chunks.open()
    chunks.write(render([example(1)]))
    await checkpoint(chunks, state)
    clock.now += 61
    again = roller(tmp_path, state, clock, max_age=60)
    await again.open()
    assert await again.close_now() == 1


async def test_only_training_lines_go_in_chunks_named_by_split_and_origin(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state)
    await chunks.open()
    chunks.write(
        render(
            [
                example(1),
                example(2, kind="pairs"),
                example(3, split="validation"),
                example(4, split="test", dataset="someone/bullets"),
                example(5, rewritten=True),
            ]
        )
    )
    await checkpoint(chunks, state)
    assert await chunks.close_now(everything=True) == 4
    pending = {e.path: e.records for e in Ledger(state).entries("pending")}
    assert pending == {
        "data/train/local__advice-00001.jsonl": 1,
        "data/validation/local__advice-00001.jsonl": 1,
        "data/test/someone__bullets-00001.jsonl": 1,
        "data/train/local__advice__rewritten-00001.jsonl": 1,
    }
    for path in pending:
        for line in lines(tmp_path / "chunks" / path):
            assert set(line) == {"messages"}
    assert not list((tmp_path / "chunks" / "open").rglob("*.jsonl"))


async def test_each_chunk_has_its_provenance_beside_it_line_for_line_without_internal_ids(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state, max_records=2)
    await chunks.open()
    credited = example(1)
    credited.meta = {
        "license": "CC-BY-SA-4.0",
        "url": "https://workplace.stackexchange.com/a/5228",
        "authors": [{"name": "Lukas Novak", "url": "https://workplace.stackexchange.com/users/1"}],
    }
    own = example(2)
    own.meta = {"license": "MIT", "url": "https://github.com/someone/resume"}
    rewritten = example(3, rewritten=True)
    rewritten.meta = {"license": "CC0-1.0", "rewrite_model": "some-model"}
    chunks.write(render([credited, own, example(4, kind="pairs"), rewritten]))
    await chunks.close_now(everything=True)
    data = {e.path for e in Ledger(state).entries("pending")}
    beside = {e.path for e in Ledger(state).entries("pending", folder="provenance")}
    assert beside == {"provenance/" + path.removeprefix("data/") for path in data}
    about = lines(tmp_path / "chunks" / "provenance/train/local__advice-00001.jsonl")
    assert len(about) == len(lines(tmp_path / "chunks" / "data/train/local__advice-00001.jsonl"))
    # Credit where the licence asks for it; no link to a record whose licence does not (it may
    # point at the person it is about), and never the collector's own ids.
    assert about[0]["license"] == "CC-BY-SA-4.0"
    assert about[0]["url"] == "https://workplace.stackexchange.com/a/5228"
    assert about[0]["authors"][0]["name"] == "Lukas Novak"
    assert "Lukas Novak" in about[0]["attribution"]
    nothing = {"task": "", "url": "", "authors": [], "attribution": "", "rewritten_by": ""}
    assert about[1] == {**nothing, "source": "inbox", "dataset": "local/advice", "license": "MIT"}
    rewritten_about = lines(
        tmp_path / "chunks" / "provenance/train/local__advice__rewritten-00001.jsonl"
    )
    assert rewritten_about == [
        {
            **nothing,
            "source": "inbox",
            "dataset": "local/advice",
            "license": "CC0-1.0",
            "rewritten_by": "some-model",
        }
    ]


async def test_origins_are_counted_per_source_and_dataset(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state)
    await chunks.open()
    other = example(3)
    other.source = "inbox-2"
    chunks.write(render([example(1), example(2), other]))
    await chunks.close_now(everything=True)
    (entry,) = Ledger(state).entries("pending")
    assert [(o.source, o.dataset, o.records) for o in entry.origins] == [
        ("inbox", "local/advice", 2),
        ("inbox-2", "local/advice", 1),
    ]


async def test_lines_after_the_last_checkpoint_are_cut_back_on_restart(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state)
    await chunks.open()
    chunks.write(render([example(1), example(2)]))
    await checkpoint(chunks, state)
    chunks.write(render([example(3)]))
    await chunks.flush()  # written and fsynced, but the checkpoint never commits: kill -9
    path = tmp_path / "chunks" / "open" / "train" / "local__advice-00001.jsonl"
    assert len(lines(path)) == 3
    again = roller(tmp_path, state)
    await again.open()
    assert len(lines(path)) == 2
    assert [c.records for c in again.open_chunks()] == [2]
    again.write(render([example(3)]))
    await again.close_now(everything=True)
    (entry,) = Ledger(state).entries("pending")
    assert entry.records == 3 and len(lines(tmp_path / "chunks" / entry.path)) == 3


async def test_a_close_interrupted_before_the_rename_is_finished_on_restart(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state, max_records=2)
    await chunks.open()
    chunks.write(render([example(1), example(2), example(3)]))
    state.commit(await chunks.flush())  # the checkpoint commits; the process dies before rename
    (closing,) = Ledger(state).entries("closing")
    assert (tmp_path / "chunks" / "open" / "train" / "local__advice-00001.jsonl").exists()
    again = roller(tmp_path, state, max_records=2)
    await again.open()
    (entry,) = Ledger(state).entries()
    assert entry.path == closing.path and entry.status == "pending"
    assert len(lines(tmp_path / "chunks" / entry.path)) == 2
    assert [(c.seq, c.records) for c in again.open_chunks()] == [(2, 1)]


async def test_a_close_interrupted_after_the_rename_is_finished_on_restart(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    chunks = roller(tmp_path, state, max_records=2)
    await chunks.open()
    chunks.write(render([example(1), example(2)]))
    state.commit(await chunks.flush())
    source = tmp_path / "chunks" / "open" / "train" / "local__advice-00001.jsonl"
    target = tmp_path / "chunks" / "data" / "train" / "local__advice-00001.jsonl"
    target.parent.mkdir(parents=True)
    os.replace(source, target)  # renamed; the ledger still says closing
    again = roller(tmp_path, state, max_records=2)
    await again.open()
    (entry,) = Ledger(state).entries()
    assert entry.status == "pending" and entry.oid == git_blob_oid(target)


async def test_sequence_numbers_are_never_reused(tmp_path: Path, state: SqliteStateStore) -> None:
    chunks = roller(tmp_path, state, max_records=1)
    await chunks.open()
    chunks.write(render([example(1)]))
    await checkpoint(chunks, state)
    again = roller(tmp_path, state, max_records=1)
    await again.open()
    again.write(render([example(2)]))
    await checkpoint(again, state)
    paths = [e.path for e in Ledger(state).entries()]
    assert paths == ["data/train/local__advice-00001.jsonl", "data/train/local__advice-00002.jsonl"]
    # A file on disk the state does not know (state removed by hand) is not overwritten either.
    stray = tmp_path / "chunks" / "data" / "train" / "local__advice-00007.jsonl"
    stray.write_text("{}\n")
    third = roller(tmp_path, state, max_records=1)
    await third.open()
    third.write(render([example(3)]))
    await checkpoint(third, state)
    assert Ledger(state).entries()[-1].path.endswith("-00008.jsonl")
    assert stray.read_text() == "{}\n"


async def test_an_empty_open_file_left_by_a_cut_back_is_removed_not_warned_about(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    import structlog

    chunks = roller(tmp_path, state)
    await chunks.open()
    chunks.write(render([example(1)]))
    await chunks.flush()  # written and fsynced, never committed: the process died (exit 75)
    path = tmp_path / "chunks" / "open" / "train" / "local__advice-00001.jsonl"
    assert path.stat().st_size > 0
    for start in range(2):  # the restart cuts it back and removes it; later starts find none
        with structlog.testing.capture_logs() as logs:
            await roller(tmp_path, state).open()
        events = [e["event"] for e in logs]
        assert ("chunk_stray_removed" in events) == (start == 0)
        assert "chunk_stray_file" not in events
        assert "output_shorter_than_committed" not in events
    assert not path.exists()
    again = roller(tmp_path, state, max_records=1)
    await again.open()
    again.write(render([example(2)]))
    await checkpoint(again, state)
    assert len(Ledger(state).entries()) == 1  # the next chunk is written and closed as usual


async def test_a_batch_fills_its_chunks_as_a_line_at_a_time_would(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    # The roller takes runs of lines (collector/upload/chunks.py `_write_group`); the rule is
    # still the line-at-a-time one, which this model states: a line that would pass
    # `max_bytes` goes to the next chunk, and a chunk closes once it reaches either limit.
    rng = random.Random(7)
    for round_ in range(40):
        max_records, max_bytes = rng.randint(1, 8), rng.randint(150, 900)
        batches = [
            [example(i, size=rng.choice([0, 0, 10, 100, 400])) for i in range(rng.randint(1, 20))]
            for _ in range(rng.randint(1, 4))
        ]
        closed, records, size = [], 0, 0
        for batch in batches:
            for line in render(batch):
                if records and size + len(line.line) > max_bytes:
                    closed, records, size = [*closed, records], 0, 0
                records, size = records + 1, size + len(line.line)
                if records >= max_records or size >= max_bytes:
                    closed, records, size = [*closed, records], 0, 0
        folder = tmp_path / str(round_)
        store = SqliteStateStore(folder / "state.sqlite3")
        chunks = roller(folder, store, max_records=max_records, max_bytes=max_bytes)
        await chunks.open()
        for batch in batches:
            chunks.write(render(batch))
            await checkpoint(chunks, store)
        assert [e.records for e in Ledger(store).entries("pending")] == closed, round_
        assert [c.records for c in chunks.open_chunks() if c.folder == "data"] == (
            [records] if records else []
        )
        store.close()
