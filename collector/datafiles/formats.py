"""Which reader reads a data file, by its name, and the records of a file from an offset.

`read_rows` streams a CSV, JSONL, JSON or Parquet file from an offset, yielding one `Row` per
record with the offset after it, so a reader can stop anywhere and resume there: CSV rows may
span lines (quoted newlines), invalid UTF-8 is counted per row, a JSON array is cut into its
items without loading the document, and a Git LFS pointer is reported instead of being parsed.
A Parquet file's offsets count rows, not bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from collector.datafiles.csvfile import CsvFile
from collector.datafiles.jsonfile import json_items, jsonl_rows
from collector.datafiles.parquetfile import parquet_rows
from collector.datafiles.rows import DEFAULT_MAX_RECORD_BYTES, Row, is_lfs_pointer

MEMBER_KINDS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}


def member_kind(name: str) -> str | None:
    """The reader for a file of this name (`csv`, `jsonl`, `json`, `parquet`), or None."""
    return MEMBER_KINDS.get(PurePosixPath(name).suffix.casefold())


def read_rows(
    path: Path, kind: str, offset: int = 0, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Row]:
    """The records of a file of `kind` from `offset` on (0: the start); see the module docstring."""
    if offset == 0 and is_lfs_pointer(path):
        size = path.stat().st_size
        yield Row(
            None, size, "lfs_pointer", "a Git LFS pointer, not the data: fetch the LFS object"
        )
        return
    if kind == "parquet":
        yield from parquet_rows(path, offset, max_record_bytes)
        return
    with path.open("rb") as handle:
        if kind == "csv":
            yield from CsvFile(handle, max_record_bytes).rows(offset)
        elif kind == "jsonl":
            yield from jsonl_rows(handle, offset, max_record_bytes)
        elif kind == "json":
            yield from json_items(handle, offset, max_record_bytes)
        else:
            raise ValueError(f"no reader for {kind!r} files")
