"""The inbox source on its own: cursors per file, growing files, bad input counted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from collector.logging import get_logger
from collector.sources import inbox as inbox_module
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import InboxSourceConfig
from collector.sources.inbox import InboxSource


async def collect(source: InboxSource, cursors: dict[str, str]) -> list[SourceBatch]:
    return [batch async for batch in source.fetch(cursors)]


def make_source(path: Path, **options: object) -> InboxSource:
    config = InboxSourceConfig(name="box", path=str(path), **options)  # type: ignore[arg-type]
    return InboxSource(config, SourceContext(data_dir=path.parent, log=get_logger()))


def age(path: Path) -> None:
    """Make a file look settled (written more than a second ago)."""
    old = time.time() - 10
    os.utime(path, (old, old))


async def test_cursor_per_file_resumes_where_the_last_pass_stopped(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text("".join(json.dumps({"n": i}) + "\n" for i in range(5)))
    source = make_source(inbox, batch_size=2)
    batches = await collect(source, {})
    assert [len(b.records) for b in batches] == [2, 2, 1]
    cursor = batches[-1].cursors["a.jsonl"]
    assert cursor == str((inbox / "a.jsonl").stat().st_size)
    with (inbox / "a.jsonl").open("a") as handle:
        handle.write(json.dumps({"n": 5}) + "\n")
    again = await collect(source, {"a.jsonl": cursor})
    assert [r.payload for b in again for r in b.records] == [{"n": 5}]


async def test_an_unfinished_last_line_waits_until_the_file_settles(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}')
    source = make_source(inbox)
    first = await collect(source, {})
    assert [r.payload for b in first for r in b.records] == [{"n": 1}]
    age(path)
    second = await collect(source, first[-1].cursors)
    assert [r.payload for b in second for r in b.records] == [{"n": 2}]


async def test_a_json_file_is_read_item_by_item_and_once(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "list.json"
    path.write_text(json.dumps([{"n": i} for i in range(3)] + ["not an object"]))
    age(path)
    source = make_source(inbox, batch_size=2)
    batches = await collect(source, {})
    assert [r.payload["n"] for b in batches for r in b.records] == [0, 1, 2]
    assert [d.reason for b in batches for d in b.drops] == ["not_an_object"]
    assert await collect(source, batches[-1].cursors) == []


async def test_a_big_json_file_is_decoded_once_however_many_batches_it_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "list.json"
    path.write_text(json.dumps([{"n": i} for i in range(50)]))
    age(path)
    decoded: list[int] = []
    real = inbox_module.msgspec.json.decode

    def counting(data: bytes) -> object:
        decoded.append(len(data))
        return real(data)

    monkeypatch.setattr(inbox_module.msgspec.json, "decode", counting)
    batches = await collect(make_source(inbox, batch_size=7), {})
    assert [r.payload["n"] for b in batches for r in b.records] == list(range(50))
    assert len(batches) == 8
    assert decoded == [path.stat().st_size]


async def test_a_json_file_replaced_mid_pass_is_read_anew(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "list.json"
    path.write_text(json.dumps([{"n": i} for i in range(4)]))
    age(path)
    source = make_source(inbox, batch_size=2)
    first = await collect_first(source)
    path.write_text(json.dumps([{"n": i} for i in range(10, 16)]))
    age(path)
    rest = await collect(source, first.cursors)
    assert [r.payload["n"] for r in first.records] == [0, 1]
    assert [r.payload["n"] for b in rest for r in b.records] == [12, 13, 14, 15]


async def collect_first(source: InboxSource) -> SourceBatch:
    async for batch in source.fetch({}):
        return batch
    raise AssertionError("no batch")


async def test_a_csv_row_may_span_lines_and_the_cursor_sits_between_rows(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "t.csv"
    path.write_text('original,improved\n"two\nlines","done"\n"x","y"\n')
    source = make_source(inbox, batch_size=1)
    batches = await collect(source, {})
    payloads = [r.payload for b in batches for r in b.records]
    assert payloads == [
        {"original": "two\nlines", "improved": "done"},
        {"original": "x", "improved": "y"},
    ]
    resumed = await collect(source, batches[0].cursors)
    assert [r.payload for b in resumed for r in b.records] == [{"original": "x", "improved": "y"}]


async def test_an_unreadable_file_is_counted_once_and_the_others_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.jsonl").write_text('{"n": 1}\n')
    locked = inbox / "locked.jsonl"
    locked.write_text('{"n": 2}\n')
    real_open = Path.open

    def guarded_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "locked.jsonl":  # root reads any file: simulate EACCES
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", guarded_open)
    source = make_source(inbox)
    batches = await collect(source, {})
    assert [r.payload for b in batches for r in b.records] == [{"n": 1}]
    drops = [d for b in batches for d in b.drops]
    assert [(d.reason, d.detail) for d in drops] == [("file_unreadable", "Permission denied")]
    cursors = {k: v for b in batches for k, v in b.cursors.items()}
    again = await collect(source, cursors)
    assert [d for b in again for d in b.drops] == []  # the same failure is not counted twice


async def test_a_transient_read_error_keeps_the_position_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "a.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\n')
    source = make_source(inbox)
    first = await collect(source, {})
    cursors = {k: v for b in first for k, v in b.cursors.items()}
    with path.open("a") as handle:
        handle.write('{"n": 3}\n')
    real_open = Path.open

    def failing_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "a.jsonl":
            raise OSError(5, "Input/output error", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", failing_open)
    failed = await collect(source, cursors)
    assert [d.reason for b in failed for d in b.drops] == ["file_unreadable"]
    cursors.update({k: v for b in failed for k, v in b.cursors.items()})
    monkeypatch.setattr(Path, "open", real_open)
    again = await collect(source, cursors)
    assert [r.payload for b in again for r in b.records] == [{"n": 3}]  # not 1 and 2 again


async def test_a_csv_cell_holding_a_whole_resume_is_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    resume = "Led the platform team. " * 20_000  # ~460 KiB, above csv's default limit
    (inbox / "resumes.csv").write_text(f'Category,Resume\nData Science,"{resume}"\n')
    batches = await collect(make_source(inbox), {})
    assert [len(r.payload["Resume"]) for b in batches for r in b.records] == [len(resume)]
