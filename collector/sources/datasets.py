"""What the dataset-file sources (Kaggle, Hugging Face) share: the cursor of a versioned
dataset and the reading of its downloaded files as batches that can stop and resume anywhere.

A dataset is one stream. Its cursor says which version is being read (a Kaggle version number,
a Hub commit sha), which files of it are done, and, for the file being read, the byte offset
and the row count after the last record handed out. Record ids are `{file}#{row}`: stable
across restarts and versions, so the same row read twice is the same record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec

from collector.datafiles.formats import member_kind, read_rows
from collector.datafiles.rows import DEFAULT_BATCH_BYTES, DEFAULT_MAX_RECORD_BYTES
from collector.logging import Logger
from collector.sources.archive import ArchivedResponse, ArchiveEntry, redact_url
from collector.sources.base import JsonCursor, SourceBatch
from processors.records import Drop, RawRecord


class DatasetCursor(JsonCursor, frozen=True, omit_defaults=True):
    """Where one dataset's stream stands."""

    version: str = ""  # the dataset version being read (or read to the end)
    complete: bool = False  # every file of `version` was read
    done: list[str] = msgspec.field(default_factory=list)  # files of `version` read to the end
    member: str = ""  # the file being read
    offset: int = 0  # byte offset (or rows-API offset) after the last record handed out
    row: int = 0  # rows of `member` handed out (records and drops)
    error: str = ""  # the last failure reported, so a repeated one is not counted again

    def at_version(self, version: str, log: Logger, dataset: str) -> DatasetCursor | None:
        """Where a pass over `version` starts: None when that version was read to the end
        already, a fresh cursor when the dataset moved on, else this one (resumed mid-version).
        """
        if self.version == version and self.complete:
            log.info("dataset_unchanged", dataset=dataset, version=version)
            return None
        if self.version != version:
            if self.version:
                log.info("dataset_new_version", dataset=dataset, old=self.version, new=version)
            return DatasetCursor(version=version)
        return self

    def finish_member(self, member: str) -> DatasetCursor:
        return msgspec.structs.replace(
            self, done=sorted({*self.done, member}), member="", offset=0, row=0
        )

    def at(self, member: str, offset: int, row: int) -> DatasetCursor:
        return msgspec.structs.replace(self, member=member, offset=offset, row=row)

    def completed(self) -> DatasetCursor:
        return msgspec.structs.replace(self, complete=True, member="", offset=0, row=0, error="")


class Chunk(msgspec.Struct):
    records: list[RawRecord]
    drops: list[Drop]
    offset: int
    row: int
    finished: bool


def read_chunk(
    source: str,
    dataset: str,
    member: str,
    path: Path,
    offset: int,
    row: int,
    batch_size: int,
    meta: dict[str, Any],
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> Chunk:
    """Up to `batch_size` records and drops of `member` from `offset` (in a worker thread),
    fewer once they hold `batch_bytes` of the file (not for Parquet: its offsets count rows)."""
    kind = member_kind(member) or member_kind(path.name) or ""
    records: list[RawRecord] = []
    drops: list[Drop] = []
    now = time.time()
    size, most = 0, batch_bytes if kind != "parquet" else None
    for item in read_rows(path, kind, offset, max_record_bytes=max_record_bytes):
        row += 1
        size += item.end - offset
        offset = item.end
        record_id = f"{member}#{row}"
        if item.error == "lfs_pointer":  # the whole file is a pointer: one drop, named by file
            drops.append(Drop(source, dataset, member, item.error, item.detail))
        elif item.error or item.value is None:
            drops.append(Drop(source, dataset, record_id, item.error, item.detail))
        else:
            records.append(
                RawRecord(source, dataset, record_id, item.value, str(row), now, dict(meta))
            )
        if len(records) + len(drops) >= batch_size or (most is not None and size >= most):
            return Chunk(records, drops, offset, row, False)
    return Chunk(records, drops, offset, row, True)


async def read_member(
    *,
    source: str,
    dataset: str,
    member: str,
    path: Path,
    cursor: DatasetCursor,
    batch_size: int,
    meta: dict[str, Any],
    stopped: Callable[[], bool],
    log: Any,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> AsyncIterator[tuple[SourceBatch, DatasetCursor]]:
    """Batches of one downloaded file from where `cursor` left it, each with its new cursor."""
    offset, row = (cursor.offset, cursor.row) if cursor.member == member else (0, 0)
    if not (member_kind(member) or member_kind(path.name)):
        log.warning(
            "dataset_file_skipped",
            dataset=dataset,
            file=member,
            reason="not csv/json/jsonl/parquet",
        )
        cursor = cursor.finish_member(member)
        detail = "not csv, json, jsonl or parquet"
        drop = Drop(source, dataset, member, "unsupported_format", detail)
        yield SourceBatch([], [drop], {dataset: cursor.encode()}), cursor
        return
    while not stopped():
        chunk = await asyncio.to_thread(
            read_chunk,
            source,
            dataset,
            member,
            path,
            offset,
            row,
            batch_size,
            meta,
            max_record_bytes,
            batch_bytes,
        )
        offset, row = chunk.offset, chunk.row
        if any(d.reason == "lfs_pointer" for d in chunk.drops):
            log.warning("dataset_file_is_lfs_pointer", dataset=dataset, file=member)
        cursor = cursor.finish_member(member) if chunk.finished else cursor.at(member, offset, row)
        yield SourceBatch(chunk.records, chunk.drops, {dataset: cursor.encode()}), cursor
        if chunk.finished:
            log.info("dataset_file_read", dataset=dataset, file=member, rows=row)
            return


def failure_batch(
    source: str, dataset: str, cursor: DatasetCursor, reason: str, detail: str, step: str
) -> SourceBatch | None:
    """A drop for a failed request, counted once: the cursor remembers the failure, so the
    same one on the next passes is only logged. None when it was counted already."""
    mark = f"{cursor.version}:{step}:{reason}"
    if cursor.error == mark:
        return None
    cursor = msgspec.structs.replace(cursor, error=mark)
    drop = Drop(source, dataset, dataset, reason, f"{step}: {detail}"[:300])
    return SourceBatch([], [drop], {dataset: cursor.encode()})


# --- the raw archive ---------------------------------------------------------------------------

ARCHIVE_KIND = "dataset_file"


def file_entry(
    url: str, dataset: str, version: str, member: str, path: Path
) -> tuple[list[ArchivedResponse], dict[str, Any]]:
    """What the raw archive keeps for a file read to the end: where it came from and where it
    is on disk (the downloaded file itself is the raw data; it is not copied into the entry)."""
    response = ArchivedResponse(redact_url(url), {}, {}, 200, {}, "")
    note = {"dataset": dataset, "version": version, "member": member, "path": str(path.resolve())}
    return [response], note


def records_from_file_entry(
    source: str,
    entry: ArchiveEntry,
    meta: dict[str, Any],
    log: Any,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> tuple[list[RawRecord], list[Drop]]:
    """Every record of an archived file, read again from disk (for `reprocess`).

    A file of a version that a newer one has replaced is gone from disk: its entry is skipped
    (the newer version's entry holds the same rows under the same ids).
    """
    note = entry.note
    dataset, member = str(note["dataset"]), str(note["member"])
    path = Path(str(note["path"]))
    if not path.is_file():
        log.info("archived_file_superseded", dataset=dataset, file=member, version=note["version"])
        return [], []
    chunk = read_chunk(source, dataset, member, path, 0, 0, 1 << 62, meta, max_record_bytes)
    return chunk.records, chunk.drops
