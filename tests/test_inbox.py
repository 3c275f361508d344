"""The inbox source on its own: cursors per file, growing files, bad input counted."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import typing
from pathlib import Path

import pytest

from collector.config import ConfigError, parse_config
from collector.datafiles import jsonfile
from collector.logging import get_logger
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


async def test_a_big_json_file_streams_each_item_decoded_once_never_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "list.json"
    path.write_text(json.dumps([{"n": i} for i in range(50)]))
    age(path)
    decoded: list[int] = []
    real = jsonfile.msgspec.json.decode

    def counting(data: bytes) -> object:
        decoded.append(len(data))
        return real(data)

    monkeypatch.setattr(jsonfile.msgspec.json, "decode", counting)
    batches = await collect(make_source(inbox, batch_size=7), {})
    assert [r.payload["n"] for b in batches for r in b.records] == list(range(50))
    assert len(batches) == 8
    assert len(decoded) == 50  # one item at a time, each once across the batches
    assert max(decoded) == len(json.dumps({"n": 10}))


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


async def test_a_csv_with_a_broken_header_is_counted_once_however_the_file_grows(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "t.csv"
    path.write_bytes(b'original,\xff\n"x","y"\n')
    source = make_source(inbox)
    first = await collect(source, {})
    assert [(d.reason, d.record_id) for b in first for d in b.drops] == [
        ("csv_bad_header", "t.csv:0")
    ]
    with path.open("ab") as handle:
        handle.write(b'"z","w"\n')
    again = await collect(source, first[-1].cursors)
    assert [(b.records, b.drops) for b in again] == []


async def test_an_unreadable_file_is_counted_once_and_the_others_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.jsonl").write_text('{"n": 1}\n')
    locked = inbox / "locked.jsonl"
    locked.write_text('{"n": 2}\n')
    real_open = os.open

    def guarded_open(path: str, *args: object, **kwargs: object) -> int:
        if Path(path).name == "locked.jsonl":  # root reads any file: simulate EACCES
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded_open)
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
    real_open = os.open

    def failing_open(path: str, *args: object, **kwargs: object) -> int:
        if Path(path).name == "a.jsonl":
            raise OSError(5, "Input/output error", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", failing_open)
    failed = await collect(source, cursors)
    assert [d.reason for b in failed for d in b.drops] == ["file_unreadable"]
    cursors.update({k: v for b in failed for k, v in b.cursors.items()})
    monkeypatch.setattr(os, "open", real_open)
    again = await collect(source, cursors)
    assert [r.payload for b in again for r in b.records] == [{"n": 3}]  # not 1 and 2 again


async def test_a_csv_cell_holding_a_whole_resume_is_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    resume = "Led the platform team. " * 20_000  # ~460 KiB, above csv's default limit
    (inbox / "resumes.csv").write_text(f'Category,Resume\nData Science,"{resume}"\n')
    batches = await collect(make_source(inbox), {})
    assert [len(r.payload["Resume"]) for b in batches for r in b.records] == [len(resume)]


# --- a closed inbox: only regular files inside the folder are read --------------------------


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def outside_secret(tmp_path: Path) -> Path:
    """A file outside the inbox that parses as a record: reading it would ingest it."""
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.jsonl"
    secret.write_text(json.dumps({"original": "SECRET outside the inbox"}) + "\n")
    return secret


def read_payloads(batches: list[SourceBatch]) -> list[dict[str, object]]:
    return [r.payload for b in batches for r in b.records]


def drops_by_file(batches: list[SourceBatch]) -> dict[str, str]:
    return {d.record_id: d.reason for b in batches for d in b.drops}


def all_cursors(batches: list[SourceBatch]) -> dict[str, str]:
    return {k: v for b in batches for k, v in b.cursors.items()}


async def test_links_and_special_files_are_counted_never_read_and_the_rest_proceeds(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "ok.jsonl").write_text('{"n": 1}\n')
    secret = outside_secret(tmp_path)
    (inbox / "link.jsonl").symlink_to(secret)
    (inbox / "environ.jsonl").symlink_to("/proc/self/environ")
    (inbox / "folder").symlink_to(secret.parent, target_is_directory=True)
    (inbox / "inner.jsonl").symlink_to(inbox / "ok.jsonl")  # a link, even to a file inside
    os.mkfifo(inbox / "pipe.jsonl")  # opening it to read would wait for a writer forever
    source = make_source(inbox)
    batches = await collect(source, {})
    assert read_payloads(batches) == [{"n": 1}]
    assert drops_by_file(batches) == {
        "environ.jsonl": "outside_inbox",
        "folder": "outside_inbox",
        "inner.jsonl": "not_regular_file",
        "link.jsonl": "outside_inbox",
        "pipe.jsonl": "not_regular_file",
    }
    again = await collect(source, all_cursors(batches))
    assert drops_by_file(again) == {}  # counted once per path, not on every pass


async def test_a_socket_in_the_inbox_is_counted_not_opened(inbox: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(inbox / "s.jsonl"))
        batches = await collect(make_source(inbox), {})
    assert drops_by_file(batches) == {"s.jsonl": "not_regular_file"}


async def test_a_file_swapped_for_a_link_after_the_listing_is_not_read(
    tmp_path: Path, inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inbox / "sub").mkdir()
    (inbox / "a.jsonl").write_text('{"n": 1}\n')
    (inbox / "b.jsonl").write_text('{"n": 2}\n')
    (inbox / "sub" / "c.jsonl").write_text('{"n": 3}\n')
    secret = outside_secret(tmp_path)
    source = make_source(inbox)
    listed = source._files()
    assert [reason for _, reason in listed] == ["", "", ""]  # three regular files

    def listing_then_swap() -> list[tuple[Path, str]]:
        # The attacker wins the race: between the listing and the opening, a file becomes a
        # link to the secret, and a folder on the way to another becomes a link to its folder.
        (inbox / "b.jsonl").unlink()
        (inbox / "b.jsonl").symlink_to(secret)
        (inbox / "sub").rename(tmp_path / "old-sub")
        (inbox / "sub").symlink_to(secret.parent, target_is_directory=True)
        (secret.parent / "c.jsonl").write_text('{"n": "SECRET via the folder"}\n')
        return listed

    monkeypatch.setattr(source, "_files", listing_then_swap)
    batches = await collect(source, {})
    assert read_payloads(batches) == [{"n": 1}]
    assert drops_by_file(batches) == {"b.jsonl": "outside_inbox", "sub/c.jsonl": "outside_inbox"}


async def test_a_file_swapped_for_a_fifo_after_the_listing_is_not_read(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inbox / "a.jsonl").write_text('{"n": 1}\n')
    source = make_source(inbox)
    listed = source._files()

    def listing_then_swap() -> list[tuple[Path, str]]:
        (inbox / "a.jsonl").unlink()
        os.mkfifo(inbox / "a.jsonl")
        return listed

    monkeypatch.setattr(source, "_files", listing_then_swap)
    batches = await asyncio.wait_for(collect(source, {}), 10)  # no wait for a writer
    assert drops_by_file(batches) == {"a.jsonl": "not_regular_file"}


async def test_a_link_replaced_by_a_regular_file_is_read_from_its_start(
    tmp_path: Path, inbox: Path
) -> None:
    (inbox / "a.jsonl").symlink_to(outside_secret(tmp_path))
    source = make_source(inbox)
    refused = await collect(source, {})
    assert drops_by_file(refused) == {"a.jsonl": "outside_inbox"}
    (inbox / "a.jsonl").unlink()
    (inbox / "a.jsonl").write_text('{"n": 1}\n')
    batches = await collect(source, all_cursors(refused))
    assert read_payloads(batches) == [{"n": 1}]


# --- records over max_record_bytes: read past, counted, the rest kept ------------------------


def write_huge_line(handle: typing.BinaryIO, size: int, *, newline: bool = True) -> None:
    """A JSON line of `size` bytes, written a MiB at a time (never built whole here either)."""
    handle.write(b'{"original": "')
    left = size - len(b'{"original": ""}')
    while left > 0:
        piece = min(left, 1024 * 1024)
        handle.write(b"x" * piece)
        left -= piece
    handle.write(b'"}' + (b"\n" if newline else b""))


async def test_a_line_over_max_record_bytes_is_skipped_and_the_good_ones_beside_it_kept(
    inbox: Path,
) -> None:
    path = inbox / "a.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"n": 1}\n')
        write_huge_line(handle, 3 * 1024 * 1024)
        handle.write(b'{"n": 2}\n')
    batches = await collect(make_source(inbox, max_record_bytes=64 * 1024), {})
    assert [r.payload for b in batches for r in b.records] == [{"n": 1}, {"n": 2}]
    drops = [d for b in batches for d in b.drops]
    assert [(d.reason, d.record_id) for d in drops] == [("record_too_large", "a.jsonl:9")]
    assert "over max_record_bytes 65536" in drops[0].detail
    assert batches[-1].cursors["a.jsonl"] == str(path.stat().st_size)


async def test_an_unfinished_huge_line_waits_and_is_counted_once_when_finished(
    inbox: Path,
) -> None:
    path = inbox / "a.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"n": 1}\n')
        write_huge_line(handle, 200_000, newline=False)
    source = make_source(inbox, max_record_bytes=1000)
    first = await collect(source, {})
    assert [r.payload for b in first for r in b.records] == [{"n": 1}]
    assert [d.reason for b in first for d in b.drops] == []
    with path.open("ab") as handle:
        handle.write(b'\n{"n": 2}\n')
    second = await collect(source, first[-1].cursors)
    assert [r.payload for b in second for r in b.records] == [{"n": 2}]
    assert [d.reason for b in second for d in b.drops] == ["record_too_large"]


async def test_a_csv_record_over_max_record_bytes_is_skipped_however_many_lines_it_spans(
    inbox: Path,
) -> None:
    big = 'one "" quoted\n' + "y" * 5000 + '\nand ""more"" lines\n' * 300
    (inbox / "t.csv").write_text(
        f'original,improved\na,b\n"{big}",c\n"long ""{"z" * 9000}",d\ne,f\n'
    )
    batches = await collect(make_source(inbox, max_record_bytes=2000), {})
    assert [r.payload for b in batches for r in b.records] == [
        {"original": "a", "improved": "b"},
        {"original": "e", "improved": "f"},
    ]
    assert [d.reason for b in batches for d in b.drops] == ["record_too_large"] * 2


async def test_a_json_item_over_max_record_bytes_is_skipped_and_the_others_kept(
    inbox: Path,
) -> None:
    path = inbox / "list.json"
    path.write_text(json.dumps([{"n": 0}, {"text": "w" * 50_000}, {"n": 2}]))
    age(path)
    batches = await collect(make_source(inbox, max_record_bytes=1000, batch_size=1), {})
    assert [r.payload for b in batches for r in b.records] == [{"n": 0}, {"n": 2}]
    assert [(d.reason, d.record_id) for b in batches for d in b.drops] == [
        ("record_too_large", "list.json#1")
    ]


async def test_a_batch_ends_once_it_holds_batch_bytes_of_the_file_and_the_next_goes_on(
    inbox: Path,
) -> None:
    lines = [json.dumps({"n": n, "pad": "p" * 80}) + "\n" for n in range(10)]
    (inbox / "a.jsonl").write_text("".join(lines))
    items = inbox / "list.json"
    items.write_text(json.dumps([{"n": n, "pad": "p" * 80} for n in range(10)]))
    age(items)
    size = len(lines[0])
    source = make_source(inbox, batch_bytes=3 * size - 10)
    batches = await collect(source, {})
    per_file = {
        name: [len(b.records) for b in batches if name in b.cursors and b.records]
        for name in ("a.jsonl", "list.json")
    }
    assert per_file == {"a.jsonl": [3, 3, 3, 1], "list.json": [3, 3, 3, 1]}
    ns = [r.payload["n"] for b in batches for r in b.records]
    assert ns == list(range(10)) * 2  # each record once, in order
    # A pass resumed after the first batch reads on from there.
    rest = await collect(source, {"a.jsonl": batches[0].cursors["a.jsonl"]})
    assert [r.payload["n"] for b in rest for r in b.records if r.id.startswith("a.jsonl")] == [
        *range(3, 10)
    ]


async def test_items_passed_over_in_a_changed_json_file_do_not_count_toward_a_batch(
    inbox: Path,
) -> None:
    # A `.json` file that changed since its cursor is read again from its start, passing over
    # the items handed out already: those are not in the batch, so they do not fill it.
    items = inbox / "list.json"
    items.write_text(json.dumps([{"n": n, "pad": "p" * 80} for n in range(10)]))
    age(items)
    size = len(json.dumps({"n": 0, "pad": "p" * 80})) + 2
    source = make_source(inbox, batch_bytes=3 * size - 10)
    batches = await collect(source, {"list.json": "6+500+1:1"})  # another version's cursor
    assert [[r.payload["n"] for r in b.records] for b in batches if b.records] == [
        [6, 7, 8],
        [9],
    ]


def test_batch_size_and_batch_bytes_are_checked_at_load() -> None:
    for field in ("batch_size", "batch_bytes"):
        raw = {"sources": [{"type": "inbox", "name": "box", field: 0}]}
        with pytest.raises(ConfigError, match=rf"sources\[0\]\.{field}: expected `?int`? >= 1"):
            parse_config(raw)


def test_max_record_bytes_is_checked_at_load() -> None:
    raw = {"sources": [{"type": "inbox", "name": "box", "max_record_bytes": 0}]}
    with pytest.raises(ConfigError, match=r"sources\[0\]\.max_record_bytes: expected `?int`? >= 1"):
        parse_config(raw)
