"""The one resumable CSV reader: records keyed by the file's header, from any record boundary.

The inbox reads growing CSV files with it and the dataset sources (Kaggle, Hugging Face) read
downloaded ones: both save the byte offset after the last record handed out and resume there.
The header is always read from the start of the file, so a reader resumed mid-file keys its
records exactly as one that read from the start.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO

from collector.datafiles.rows import RECORD_TOO_LARGE, Row, bounded_lines


class CsvFile:
    """One CSV file: its header, read on opening, then its records from any offset.

    A header that is not a record (invalid UTF-8, over the limit, malformed) is one
    `csv_bad_header` drop and no record of the file is read: without the header no record can
    be keyed. Repeated header names are made unique (`name`, `name_2`, ...) so no column is
    lost. A record with another number of fields than the header is `csv_ragged_row`.
    """

    def __init__(self, handle: BinaryIO, limit: int, *, settled: bool = True) -> None:
        """`settled` False: the file may still be written, so a last line without its newline is
        left unread (the header too: `start` stays 0 until the header's line is complete)."""
        self.handle = handle
        self.limit = limit
        self.settled = settled
        raise_csv_field_limit(limit)
        handle.seek(0)
        first = next(csv_records(handle, 0, limit, settled=settled), None)
        fields, end, error = first or ([], 0, "")
        self.start = end  # the byte offset after the header; 0 while there is none yet
        self.header_error = error
        self.header = _unique([name.strip().lstrip("\ufeff") for name in fields])

    def rows(self, offset: int = 0) -> Iterator[Row]:
        """The records after byte `offset` (0, or the `end` of a row handed out before)."""
        if not self.start:
            return
        if self.header_error:
            if offset < self.start:  # reported once: a resumed reader is past it
                yield Row(None, self.start, "csv_bad_header", self.header_error)
            return
        start = max(offset, self.start)
        self.handle.seek(start)
        header, limit = self.header, self.limit
        for fields, end, error in csv_records(self.handle, start, limit, settled=self.settled):
            if error == RECORD_TOO_LARGE:
                yield Row(None, end, error, f"a CSV record over {limit} bytes")
            elif error:
                yield Row(None, end, error)
            elif len(fields) != len(header):
                detail = f"{len(fields)} fields, the header has {len(header)}"
                yield Row(None, end, "csv_ragged_row", detail)
            else:
                yield Row(dict(zip(header, fields, strict=True)), end)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count + 1}")
    return out


def raise_csv_field_limit(limit: int) -> None:
    # Whole resumes in HTML exceed csv's default 128 KiB field limit. The setting is global to
    # the process; it is only ever raised, never lowered.
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def csv_records(
    handle: BinaryIO, offset: int, limit: int, *, settled: bool = True
) -> Iterator[tuple[list[str], int, str]]:
    """(fields, offset after the record, drop reason or "") for each CSV record.

    Records may span lines, so the csv reader is fed one physical line at a time while the
    byte offset of each line is tracked: the offset after a record always falls between two
    records. A line that is not valid UTF-8 marks its whole record `invalid_utf8`. A record
    over `limit` bytes is `record_too_large`: once it passes the limit, the reader is fed only
    each further line's quotes (odd or even), so it finds where the record ends without the
    text being held. With `settled` False, a last line without its newline is left unread.
    """
    position = offset
    bad_utf8 = False
    row_bytes = 0

    def lines() -> Iterator[str]:
        nonlocal position, bad_utf8, row_bytes
        for raw, size, ended, quotes in bounded_lines(handle, limit):
            if not ended and not settled:
                return
            position += size
            row_bytes += size
            if raw is None or row_bytes > limit:  # only the quoting state, not the text
                odd = (quotes if raw is None else raw.count(b'"')) % 2
                yield '"' * odd + ("\n" if ended else "")
                continue
            try:  # a line break never falls inside a UTF-8 sequence: lines decode on their own
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8 = True
                yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(lines())
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            too_large = row_bytes > limit
            bad_utf8, row_bytes = False, 0
            yield [], position, RECORD_TOO_LARGE if too_large else "csv_malformed_row"
            continue
        too_large = row_bytes > limit
        broken = bad_utf8
        bad_utf8, row_bytes = False, 0
        if too_large:
            yield [], position, RECORD_TOO_LARGE
        elif broken:
            yield [], position, "invalid_utf8"
        elif fields:
            yield fields, position, ""
