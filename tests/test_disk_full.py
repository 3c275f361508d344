"""A full disk is a pause: logged once, nothing lost or written twice, resumed when space returns.

The daemon tests run the real service with its data folder on a small tmpfs filled to the last
byte by a filler file (mounting needs root: they are skipped, with the reason, without it).
The unit tests of the pieces use a file that takes a few bytes and then answers ENOSPC, as a
nearly full disk does, and SQLite's own page limit, which fails a commit as a full disk does.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.diskfull import EXIT_DISK_FULL, DiskFull, DiskWait
from collector.http import HttpResponse, SourceStopping
from collector.logging import get_logger
from collector.service import SourceRunner
from collector.sinks.files import DurableFiles
from collector.sinks.formatted import FormattedSink
from collector.sinks.naming import output_name
from collector.sources.archive import RawArchive, archived
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import InboxSourceConfig
from collector.state.sqlite import SqliteStateStore
from processors.config import RecipeConfig
from tests.conftest import collector_command, subprocess_env, wait_for, write_config
from tests.daemon_process import Daemon, inbox_source, write_pairs
from tests.test_pipeline import batch, chain, make_pipeline

DISK_SIZE = "16m"


# --- a real full file system -------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE mounted for the test, unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (a real file system to fill) needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """A filler file that takes every free byte of `disk`; delete it to give the space back."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler


def bullets_written(data_dir: Path, name: str) -> list[str]:
    path = data_dir / "formatted" / f"{name}.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [str(line["messages"][1]["content"]).split('"')[1] for line in lines]


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the worker processes) so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def full_disk_daemon(
    tmp_path: Path, disk: Path, shutdown_timeout: float = 20
) -> tuple[Path, Path, Daemon]:
    """A daemon over an inbox (off the small disk) that has written its first 20 records to
    a data folder on `disk`: (inbox, data folder, daemon). Its config is `tmp_path/c.toml`."""
    data_dir = disk / "training-data"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "a.jsonl", 0, 20)
    body = inbox_source("box", inbox, batch_size=20)
    config = write_config(tmp_path / "c.toml", body, data_dir, 'log_level = "debug"')
    text = config.read_text().replace(
        "shutdown_timeout = 20", f"shutdown_timeout = {shutdown_timeout}"
    )
    config.write_text(text)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    wait_for(lambda: len(bullets_written(data_dir, "local__a")) == 20, timeout=60)
    return inbox, data_dir, daemon


def test_a_full_disk_is_logged_once_pauses_the_service_and_it_resumes_writing_each_record_once(
    tmp_path: Path, small_disk: Path
) -> None:
    inbox, data_dir, daemon = full_disk_daemon(tmp_path, small_disk)
    try:
        filler = fill(small_disk)
        # More than the bounded queues hold (16 batches of 20): the source has to be held.
        write_pairs(inbox / "a.jsonl", 20, 3000)
        full = daemon.wait_event("disk_full")
        assert full["level"] == "error"
        assert str(full["path"]).startswith(str(data_dir)), full
        assert full["free_bytes"] < 64 * 1024, full
        # Waiting, not spinning: the writer retries on its backoff (1 s, then 2 s between the
        # first and the third retry), the sources wait on the queues.
        daemon.wait_event("disk_full_retry")
        cpu = cpu_seconds(daemon.process.pid)
        daemon.wait_event("disk_full_retry", count=3)
        assert cpu_seconds(daemon.process.pid) - cpu < 1.0
        assert daemon.process.poll() is None
        assert len(daemon.find("disk_full")) == 1
        assert "pipeline_task_failed" not in daemon.names()
        # Nothing half written is left in view: every file ends with a whole line.
        for path in (data_dir / "formatted").glob("*.jsonl"):
            assert path.read_bytes().endswith(b"\n"), path

        filler.unlink()
        returned = daemon.wait_event("disk_space_returned", timeout=60)
        assert returned["tries"] >= 3
        wait_for(lambda: len(bullets_written(data_dir, "local__a")) >= 3020, timeout=120)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    expected = [f"Maintained service number {i} for the billing team" for i in range(3020)]
    assert sorted(bullets_written(data_dir, "local__a")) == sorted(expected)
    provenance = (data_dir / "formatted" / "local__a__provenance.jsonl").read_text()
    assert len(provenance.splitlines()) == 3020
    report = json.loads((data_dir / "formatted" / "local__a__clean_report.json").read_text())
    assert report["written"] == 3020
    assert len(daemon.find("disk_full")) == 1
    assert daemon.find("service_stopped")


def test_sigterm_while_the_disk_stays_full_exits_74_and_the_next_start_writes_each_record_once(
    tmp_path: Path, small_disk: Path
) -> None:
    inbox, data_dir, daemon = full_disk_daemon(tmp_path, small_disk, shutdown_timeout=3)
    try:
        filler = fill(small_disk)
        write_pairs(inbox / "a.jsonl", 20, 500)
        daemon.wait_event("disk_full", timeout=60)
        assert daemon.stop() == EXIT_DISK_FULL
    finally:
        daemon.kill()
    timeout = daemon.wait_event("service_drain_timeout")
    assert timeout["exit_code"] == EXIT_DISK_FULL
    assert str(timeout["disk_full"]).startswith(str(data_dir))

    filler.unlink()
    done = subprocess.run(
        collector_command("once", "--config", str(tmp_path / "c.toml")),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    expected = [f"Maintained service number {i} for the billing team" for i in range(520)]
    assert sorted(bullets_written(data_dir, "local__a")) == sorted(expected)


def test_space_that_returns_during_the_drain_is_used_and_sigterm_exits_0(
    tmp_path: Path, small_disk: Path
) -> None:
    inbox, data_dir, daemon = full_disk_daemon(tmp_path, small_disk)
    try:
        filler = fill(small_disk)
        write_pairs(inbox / "a.jsonl", 20, 500)
        daemon.wait_event("disk_full", timeout=60)
        # Far into the backoff (its waits grow to 30 s): the drain still sees space at once.
        daemon.wait_event("disk_full_retry", count=3)
        daemon.signal(15)
        daemon.wait_event("service_draining")
        filler.unlink()
        assert daemon.process.wait(30) == 0
    finally:
        daemon.kill()
    assert daemon.find("disk_space_returned")
    written = bullets_written(data_dir, "local__a")
    assert len(written) == len(set(written))  # none twice; the rest is fetched at the next start
    assert set(written) >= {
        f"Maintained service number {i} for the billing team" for i in range(20)
    }


async def test_the_raw_archive_holds_its_source_while_the_disk_is_full_and_writes_the_entry_after(
    small_disk: Path,
) -> None:
    context = SourceContext(data_dir=small_disk, log=get_logger())
    archive = RawArchive(context.raw_dir, "se", context=context)
    response = archived(_response(b'{"items": [' + b'"x",' * 20_000 + b'"y"]}'))
    filler = fill(small_disk)
    with structlog.testing.capture_logs() as logs:
        saving = asyncio.ensure_future(archive.save("questions", [response]))
        await _until(lambda: [e for e in logs if e["event"] == "disk_full_retry"])
        assert not saving.done()
        assert [e["event"] for e in logs].count("disk_full") == 1
        assert not list(small_disk.rglob("*.part"))  # half an entry is removed at once
        filler.unlink()
        path = await asyncio.wait_for(saving, 30)
    assert path is not None
    assert RawArchive.read(path).responses == [response]
    assert [e["event"] for e in logs].count("disk_space_returned") == 1


async def test_a_stop_while_the_archive_waits_for_space_ends_the_pass_without_the_entry(
    small_disk: Path,
) -> None:
    context = SourceContext(data_dir=small_disk, log=get_logger())
    archive = RawArchive(context.raw_dir, "se", context=context)
    fill(small_disk)
    saving = asyncio.ensure_future(archive.save("questions", [archived(_response(b"{}"))]))
    await _until(lambda: archive.disk is not None and archive.disk.full is not None)
    context.stop.set()
    with pytest.raises(SourceStopping):
        await asyncio.wait_for(saving, 10)
    assert archive.files() == []


async def test_a_clean_report_the_full_disk_refused_is_written_at_the_next_try(
    tmp_path: Path, small_disk: Path
) -> None:
    state = SqliteStateStore(tmp_path / "state.sqlite3")  # off the small disk
    try:
        sink = FormattedSink(small_disk, state, get_logger())
        await sink.open()
        state.commit({}, {("box", "local/a", "written"): 3})
        sink.note_drops("box", "local/a")
        filler = fill(small_disk)
        with pytest.raises(DiskFull):
            await sink.committed()
        assert not list(small_disk.rglob("*.tmp"))  # half a report is removed at once
        filler.unlink()
        await sink.committed()
    finally:
        state.close()
    name = output_name("box", "local/a")
    report = json.loads((small_disk / "formatted" / f"{name}__clean_report.json").read_text())
    assert report["written"] == 3


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(status=200, url="https://api.example/q?key=k", headers={}, body=body)


async def _until(predicate: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


# --- the pieces, without root --------------------------------------------------------------------


class DownloadOnFullDisk:
    """A source whose first two passes meet a full disk saving a download, as a Kaggle or
    Hugging Face source's dataset file does; the third yields its batch, the next nothing."""

    name = "box"

    def __init__(self, where: Path) -> None:
        self.where = where
        self.passes = 0

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        self.passes += 1
        if self.passes <= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.where))
        if self.passes == 3:
            yield batch(1)

    async def close(self) -> None:
        return None


async def test_a_source_pass_that_meets_a_full_disk_is_logged_once_and_tried_again(
    tmp_path: Path,
) -> None:
    pipeline = make_pipeline(tmp_path)
    source = DownloadOnFullDisk(tmp_path / "raw" / "box" / "dataset.zip")
    context = SourceContext(data_dir=tmp_path, log=get_logger().bind(source="box"))
    config = InboxSourceConfig(name="box", interval=0.01, recipe=RecipeConfig(name="pairs"))
    runner = SourceRunner(config, source, context, chain(), pipeline, pipeline.writer.state, "run")
    with structlog.testing.capture_logs() as logs:
        runner.start()
        await _until(lambda: runner.ack.counts["fetched"] == 1)
        await runner.stop(5)
        await pipeline.drain()
    events = [e["event"] for e in logs]
    assert events.count("disk_full") == 1
    assert "source_pass_failed" not in events
    full = next(e for e in logs if e["event"] == "disk_full")
    assert full["path"] == str(source.where) and full["source"] == "box"
    assert events.count("disk_space_returned") == 1
    assert source.passes >= 3


class NearlyFullDisk(DurableFiles):
    """DurableFiles whose files share `room` bytes of free space: a write takes what fits, as
    a raw write on a nearly full disk does, and the next one answers ENOSPC."""

    room = 1 << 30

    def _handle(self, key: str) -> io.FileIO:
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = _FillingFile(self.root / key, self)
        return handle


class _FillingFile(io.FileIO):
    def __init__(self, path: Path, disk: NearlyFullDisk) -> None:
        super().__init__(path, "ab")
        self.disk = disk

    def write(self, data: Any) -> int:
        if self.disk.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        part = bytes(data[: self.disk.room])
        self.disk.room -= len(part)
        return super().write(part)


def test_a_flush_that_meets_a_full_disk_cuts_every_file_back_and_keeps_its_lines(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    files = NearlyFullDisk(tmp_path, state, get_logger())
    a, b = tmp_path / "out" / "a.jsonl", tmp_path / "out" / "b.jsonl"
    files.append(a, b"a0\n")
    assert files.flush() == {"out/a.jsonl": "3"}
    files.append(a, b"a1\na2\n")
    files.append(b, b"b1\nb2\n")
    pending = files.pending_bytes
    files.room = 8  # a's 6 bytes fit, b gets 2 of its 6
    with pytest.raises(DiskFull) as raised:
        files.flush()
    assert raised.value.filename == str(b)
    assert a.read_bytes() == b"a0\n"  # written whole, cut back all the same: all or nothing
    assert b.read_bytes() == b""
    assert files.pending_bytes == pending
    with pytest.raises(DiskFull):  # still full: nothing moves, nothing is written twice
        files.flush()
    assert (a.read_bytes(), b.read_bytes()) == (b"a0\n", b"")
    files.room = 1 << 20
    assert files.flush() == {"out/a.jsonl": "9", "out/b.jsonl": "6"}
    assert a.read_bytes() == b"a0\na1\na2\n"
    assert b.read_bytes() == b"b1\nb2\n"
    assert files.pending_bytes == 0


def test_a_commit_on_a_full_database_rolls_back_whole_and_the_store_goes_on(
    tmp_path: Path,
) -> None:
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        store.commit({"cursor": {"s": "1"}}, {("s", "d", "written"): 1})
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
        big = {f"key{i}": "v" * 200 for i in range(2000)}
        with pytest.raises(DiskFull) as raised:
            store.commit({"cursor": {"s": "2"}, "big": big}, {("s", "d", "written"): 5})
        assert raised.value.filename == str(tmp_path / "state.sqlite3")
        assert store.get("cursor", "s") == "1"
        assert store.counts() == [("s", "d", "written", 1)]
        store._db.execute("PRAGMA max_page_count = 1073741823")
        store.commit({"cursor": {"s": "2"}, "big": big}, {("s", "d", "written"): 5})
        assert store.get("cursor", "s") == "2"
        assert store.counts() == [("s", "d", "written", 6)]
    finally:
        store.close()


def test_a_disk_full_episode_is_logged_once_backs_off_to_the_cap_and_ends_with_one_line() -> None:
    now = [0.0]
    with structlog.testing.capture_logs() as logs:
        wait = DiskWait(get_logger(), first=0.5, cap=4.0, clock=lambda: now[0])
        waits = [wait.failed(DiskFull("/data/x.jsonl")) for _ in range(6)]
        now[0] = 12.0
        wait.succeeded()
        wait.succeeded()  # no episode under way: nothing to say
        again = wait.failed(DiskFull("/data/x.jsonl"))
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert again == 0.5  # a new episode starts from the first wait
    events = [e["event"] for e in logs]
    assert events.count("disk_full") == 2
    assert events.count("disk_space_returned") == 1
    returned = next(e for e in logs if e["event"] == "disk_space_returned")
    assert returned["tries"] == 6 and returned["seconds"] == 12.0
    full = next(e for e in logs if e["event"] == "disk_full")
    assert full["path"] == "/data/x.jsonl" and "free_bytes" in full
