"""A local folder of `.jsonl`, `.json` and `.csv` files: the source that needs no network.

It also reads resume documents (`.pdf`, `.docx`, `.txt`, `.md`, `.html`) whole, one record a
file, once per version of the file (`collector/sources/documents.py`); a file of any other type
is counted once as `unsupported_file_type`, never skipped without a word.

Each file is a stream with its own cursor: the byte offset after the last record read (for
`.json`, the items read and the byte offset after them). Files may grow: the next pass
continues from the offset. A line that is not finished yet (no newline and written in the last
second) waits for the next pass. Bad input is counted with a reason and the rest of the file
proceeds. Every file streams: a line, CSV record or JSON item over `max_record_bytes` is read
past without being held and counted as `record_too_large` (the rule of
`collector/datafiles/rows.py`, shared). CSV files are read by the one resumable CSV reader,
`collector/datafiles/csvfile.py`.

The inbox is closed: other people's files arrive here, so only regular files inside the folder
are read. A symlink (to a file or a folder), a FIFO, a device or a socket is counted once as
`not_regular_file` (`outside_inbox` for a link that leads out of the folder) and never opened.
A file is opened component by component from the inbox folder without following links
(`O_NOFOLLOW`) and the open descriptor is checked, so a file swapped for a link between the
listing and the opening cannot lead out either.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import msgspec

from collector.datafiles.csvfile import CsvFile
from collector.datafiles.jsonfile import json_items, jsonl_rows
from collector.datafiles.rows import LFS_POINTER, RECORD_TOO_LARGE, Row
from collector.licences import inbox_origin
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import InboxSourceConfig
from collector.sources.documents import (
    DocumentRefused,
    document_format,
    document_id,
    read_document,
)
from processors.records import Drop, RawRecord

# A file untouched for this long is complete, even if its last line has no newline.
SETTLE_SECONDS = 1.0
DATA_SUFFIXES = (".jsonl", ".json", ".csv")
# Why a path is never opened, as its drop's detail.
REFUSALS = {
    "not_regular_file": "not a regular file",
    "outside_inbox": "a link out of the inbox",
    "unsupported_file_type": "not .jsonl, .json, .csv, .pdf, .docx, .txt, .md or .html",
}


class _Chunk(msgspec.Struct):
    records: list[RawRecord]
    drops: list[Drop]
    cursor: str
    done: bool


class InboxSource:
    def __init__(self, config: InboxSourceConfig, context: SourceContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self.root = Path(config.path)
        # Worked out once: reading the licence's SPDX id was most of what reading a line cost.
        self._origin_of_all = inbox_origin(config.license, config.attribution)

    def _origin(self) -> dict[str, Any]:
        """A fresh meta per record (formatters may add to it): its licence and credit."""
        origin = self._origin_of_all
        authors = origin["authors"]  # most inboxes credit nobody: no list to copy
        return {**origin, "authors": [dict(author) for author in authors] if authors else []}

    def _files(self) -> list[tuple[Path, str]]:
        """Every path to read or refuse, sorted: (path, "") to read, (path, reason) to refuse.

        Nothing is followed: a link to a folder is refused rather than walked, and a link or a
        special file whose name matches a pattern is refused rather than read.
        """
        found: list[tuple[Path, str]] = []
        pending = [self.root]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    path = Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                    elif entry.is_symlink() and (entry.is_dir() or self._wanted(path)):
                        found.append((path, self._refusal(path)))
                    elif self._wanted(path):
                        regular = entry.is_file(follow_symlinks=False)
                        found.append((path, _file_refusal(path) if regular else "not_regular_file"))
        return sorted(found)

    def _wanted(self, path: Path) -> bool:
        relative = PurePosixPath(path.relative_to(self.root).as_posix())
        return any(relative.match(pattern) for pattern in self.config.patterns)

    def _refusal(self, path: Path) -> str:
        """The drop reason for a path that is not a regular file of the inbox."""
        try:
            target = path.resolve()
        except (OSError, RuntimeError):  # a loop of links
            return "not_regular_file"
        inside = target.is_relative_to(self.root.resolve())
        return "not_regular_file" if inside else "outside_inbox"

    def _dataset(self, path: Path) -> str:
        if document_format(path.name):  # documents of a folder make one dataset, not one each
            return f"{self.config.owner}/{self.config.dataset or 'resume_documents'}"
        return f"{self.config.owner}/{self.config.dataset or path.stem}"

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        if not self.root.is_dir():
            self.context.log.warning("inbox_missing", path=str(self.root))
            return
        for path, refusal in await asyncio.to_thread(self._files):
            stream = path.relative_to(self.root).as_posix()
            cursor = cursors.get(stream, "")
            if refusal:
                chunk = self._refuse(path, stream, cursor, refusal)
                if chunk.drops:
                    yield SourceBatch([], chunk.drops, {stream: chunk.cursor})
                continue
            while not self.context.stop.is_set():
                chunk = await asyncio.to_thread(self._read, path, stream, cursor)
                if chunk.cursor != cursor or chunk.records or chunk.drops:
                    yield SourceBatch(chunk.records, chunk.drops, {stream: chunk.cursor})
                cursor = chunk.cursor
                if chunk.done:
                    break

    async def close(self) -> None:
        return None

    def _refuse(self, path: Path, stream: str, cursor: str, reason: str) -> _Chunk:
        """A path that is never opened: one drop and one log line per version of the path."""
        mark = f"refused:{reason}:{_version(path)}"
        if cursor == mark:
            return _Chunk([], [], mark, True)
        self.context.log.warning("inbox_file_refused", file=stream, reason=reason)
        drop = Drop(self.name, self._dataset(path), stream, reason, REFUSALS.get(reason, ""))
        return _Chunk([], [drop], mark, True)

    # --- reading, in a worker thread -------------------------------------------------------

    def _read(self, path: Path, stream: str, cursor: str) -> _Chunk:
        dataset = self._dataset(path)
        # A failed read leaves `unreadable:{version}@{position}`: the position is kept, so a
        # transient error does not make the next pass read the file from the start.
        failed, _, position = (
            cursor.rpartition("@")
            if cursor.startswith("unreadable:")
            else (
                "",
                "",
                cursor,
            )
        )
        try:
            with _open_inside(self.root, stream) as handle:
                status = os.fstat(handle.fileno())
                if document_format(path.name):
                    return self._read_document(handle, stream, dataset, position, status)
                if path.suffix == ".json":
                    return self._read_json(handle, stream, dataset, position, status)
                return self._read_lines(handle, path, stream, dataset, position, status)
        except _NotRegular:  # swapped for a link or a special file since the listing
            return self._refuse(path, stream, cursor, self._refusal(path))
        except OSError as error:
            # Counted once per version of the file: the cursor remembers which one failed.
            mark = f"unreadable:{_version(path)}"
            drops = []
            if failed != mark:
                reason = f"{error.strerror or error}"
                self.context.log.warning("inbox_file_unreadable", file=stream, error=reason)
                drops = [Drop(self.name, dataset, stream, "file_unreadable", reason)]
            return _Chunk([], drops, f"{mark}@{position}", True)

    def _read_lines(
        self,
        handle: BinaryIO,
        path: Path,
        stream: str,
        dataset: str,
        cursor: str,
        status: os.stat_result,
    ) -> _Chunk:
        offset = int(cursor) if cursor.isdigit() else 0
        if offset > status.st_size:  # the file was replaced by a shorter one: read it anew
            offset = 0
        settled = time.time() - status.st_mtime >= SETTLE_SECONDS
        records: list[RawRecord] = []
        drops: list[Drop] = []
        if offset == 0 and handle.read(len(LFS_POINTER)) == LFS_POINTER:
            drops.append(Drop(self.name, dataset, stream, "lfs_pointer", "a Git LFS pointer"))
            return _Chunk([], drops, str(status.st_size), True)
        limit = self.config.max_record_bytes
        rows: Iterator[Row]
        if path.suffix == ".csv":
            table = CsvFile(handle, limit, settled=settled)
            if not table.start:  # no header yet
                return _Chunk([], [], cursor, True)
            rows = table.rows(offset)
            if not table.header_error:  # records start after the header (a bad one is at 0)
                offset = max(offset, table.start)
        else:
            rows = jsonl_rows(handle, offset, limit, settled=settled)
        # The loop runs once per line, in the service's own process: what it looks up is
        # looked up once, and a batch's records share the time they were read at.
        start, name, now, origin = offset, self.name, time.time(), self._origin
        most_rows, most_bytes = self.config.batch_size, start + self.config.batch_bytes
        add = records.append
        for row in rows:
            end, record_id = row.end, f"{stream}:{offset}"
            if row.value is not None:
                add(RawRecord(name, dataset, record_id, row.value, str(end), now, origin()))
            elif row.error == RECORD_TOO_LARGE:
                detail = f"{end - offset} bytes, over max_record_bytes {limit}"
                drops.append(Drop(name, dataset, record_id, row.error, detail))
            else:
                drops.append(Drop(name, dataset, record_id, row.error, row.detail))
            offset = end
            if len(records) + len(drops) >= most_rows or end >= most_bytes:
                return _Chunk(records, drops, str(offset), False)
        return _Chunk(records, drops, str(offset), True)

    def _read_json(
        self, handle: BinaryIO, stream: str, dataset: str, cursor: str, status: os.stat_result
    ) -> _Chunk:
        """The items of a `.json` document, a batch at a time, streamed (`json_items`): the
        document is never held whole. The cursor is `{items}+{offset}+{version}`: the items
        handed out and the byte offset after them in that version of the file; in another
        version (or in a bare item count, the old form) the items are counted again from the
        start."""
        version = f"{status.st_size}:{status.st_mtime_ns}"
        done_mark = f"done:{version}"
        if cursor == done_mark or time.time() - status.st_mtime < SETTLE_SECONDS:
            return _Chunk([], [], cursor, True)
        index, offset, at = _json_cursor(cursor)
        skip = 0
        if at != version or offset == 0:
            skip, offset = index, 0
            if handle.read(len(LFS_POINTER)) == LFS_POINTER:
                drop = Drop(self.name, dataset, stream, "lfs_pointer", "a Git LFS pointer")
                return _Chunk([], [drop], done_mark, True)
        records: list[RawRecord] = []
        drops: list[Drop] = []
        index -= skip
        size, most = 0, self.config.batch_bytes
        for row in json_items(handle, offset, self.config.max_record_bytes):
            read, offset = row.end - offset, row.end
            if skip:
                skip -= 1
                index += 1
                continue
            size += read  # of the items in this batch, not of those passed over
            record_id = f"{stream}#{index}"
            if row.value is not None:
                records.append(self._record(dataset, record_id, row.value, index + 1))
            else:
                drops.append(Drop(self.name, dataset, record_id, row.error, row.detail))
            index += 1
            if len(records) + len(drops) >= self.config.batch_size or size >= most:
                return _Chunk(records, drops, f"{index}+{offset}+{version}", False)
        return _Chunk(records, drops, done_mark, True)

    def _read_document(
        self, handle: BinaryIO, stream: str, dataset: str, cursor: str, status: os.stat_result
    ) -> _Chunk:
        """One document, whole: a record, or a drop with the reason it gives no text."""
        done_mark = f"done:{status.st_size}:{status.st_mtime_ns}"
        if cursor == done_mark or time.time() - status.st_mtime < SETTLE_SECONDS:
            return _Chunk([], [], cursor, True)
        limit = self.config.max_document_bytes
        data = b"" if status.st_size > limit else handle.read(limit + 1)
        try:
            if len(data) > limit or status.st_size > limit:
                raise DocumentRefused("document_too_large", f"over {limit} bytes")
            payload = read_document(data, stream)
        except DocumentRefused as refused:
            self.context.log.warning(
                "inbox_document_refused", file=stream, reason=refused.reason, detail=refused.detail
            )
            drop = Drop(self.name, dataset, document_id(stream), refused.reason, refused.detail)
            return _Chunk([], [drop], done_mark, True)
        record = RawRecord(
            self.name, dataset, document_id(stream), payload, done_mark, time.time(), self._origin()
        )
        return _Chunk([record], [], done_mark, True)

    def _record(self, dataset: str, record_id: str, payload: dict[str, Any], end: int) -> RawRecord:
        return RawRecord(
            source=self.name,
            dataset=dataset,
            id=record_id,
            payload=payload,
            cursor=str(end),
            fetched_at=time.time(),
            meta=self._origin(),
        )


def _file_refusal(path: Path) -> str:
    """Why a regular file is refused: "" when the inbox reads it."""
    supported = path.suffix in DATA_SUFFIXES or document_format(path.name) is not None
    return "" if supported else "unsupported_file_type"


def _version(path: Path) -> str:
    """The size and time of the path itself (a link's own, not its target's)."""
    try:
        status = path.lstat()
    except OSError:
        return "missing"
    return f"{status.st_size}:{status.st_mtime_ns}"


class _NotRegular(Exception):
    """The path is a link or a special file: it is not opened (or closed unread)."""


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO put there in a race must not wait for a writer.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_inside(root: Path, stream: str) -> BinaryIO:
    """Open `root/stream` for reading, following no link on the way: each folder is opened
    relative to the one before it with O_NOFOLLOW, and the file is used only if its open
    descriptor is a regular file. A link anywhere on the path raises `_NotRegular`."""
    *folders, name = PurePosixPath(stream).parts
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folders:
            inner = os.open(part, _DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(name, _FILE, dir_fd=folder)
    except OSError as error:
        # ELOOP: a link where O_NOFOLLOW forbids one; ENOTDIR: a link (or file) for a folder.
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _NotRegular(stream) from error
        raise
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _NotRegular(stream)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _json_cursor(cursor: str) -> tuple[int, int, str]:
    """A `.json` cursor's (items handed out, byte offset after them, file version)."""
    if cursor.isdigit():  # the old form: an item count alone
        return int(cursor), 0, ""
    index, offset, version = [*cursor.split("+", 2), "", ""][:3]
    if not (index.isdigit() and offset.isdigit()):
        return 0, 0, ""
    return int(index), int(offset), version
