"""What every data file reader shares: the `Row` it yields and the rule on record size.

Every reader holds one rule on record size (`max_record_bytes`, a source setting, 16 MiB by
default): a line, a CSV record, a JSON item or a Parquet row larger than that is skipped as it
streams past, never held whole in memory, and is one `record_too_large` drop; the rest of the
file proceeds. `bounded_lines` is where lines are cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
CHUNK = 1024 * 1024  # bytes read at a time where a file is read past or copied
# The largest record a reader hands out (a source's `max_record_bytes`, this by default).
DEFAULT_MAX_RECORD_BYTES = 16 * 1024**2
# The input a batch of records holds at most (collector/sources/config.py `batch_bytes`).
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
RECORD_TOO_LARGE = "record_too_large"


class Row(msgspec.Struct, frozen=True):
    """One record of a file, or the reason it is not one, and the offset just after it."""

    value: dict[str, Any] | None
    end: int  # byte offset after this row (rows read, for Parquet): where a reader resumes
    error: str = ""  # a drop reason: invalid_utf8, malformed_json, csv_ragged_row, ...
    detail: str = ""


def is_lfs_pointer(path: Path) -> bool:
    """Whether the file is a Git LFS pointer (the data was never fetched), not the data."""
    with path.open("rb") as handle:
        return handle.read(len(LFS_POINTER)) == LFS_POINTER


def bounded_lines(handle: BinaryIO, limit: int) -> Iterator[tuple[bytes | None, int, bool, int]]:
    """The lines of `handle` from where it stands: (line, size, ended, quotes) for each.

    `line` is None when the line is longer than `limit` bytes: it is then read past in 1 MiB
    pieces and never held whole, while `size` (its bytes, newline included) and `quotes` (how
    many `"` it holds, for a CSV reader to keep its quoting state) are counted. `ended` says
    whether the line has its newline (the last line of a file may not, yet).
    """
    while line := handle.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line, len(line), line.endswith(b"\n"), 0
            continue
        size, quotes = len(line), line.count(b'"')
        del line
        size, ended, quotes = read_past(handle, size, quotes)
        yield None, size, ended, quotes


def read_past(handle: BinaryIO, size: int, quotes: int = 0) -> tuple[int, bool, int]:
    """The rest of a line over the limit, whose first `size` bytes (with `quotes` `"` in them)
    were read: read past in 1 MiB pieces, never held whole. (size, ended, quotes) of the whole
    line, as `bounded_lines` gives them."""
    ended = False
    while piece := handle.readline(CHUNK):
        size += len(piece)
        quotes += piece.count(b'"')
        if piece.endswith(b"\n"):
            ended = True
            break
    return size, ended, quotes
