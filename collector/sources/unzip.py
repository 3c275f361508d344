"""Safe extraction of third-party archives, and streaming readers for the files inside them.

Archives from Kaggle (or anywhere else) are treated as hostile:

- no entry may land outside the target folder: absolute paths (`/etc/x`, `C:\\x`, `\\\\host\\x`),
  `..` components, symlinks and special files are refused, as are duplicate names (an entry
  that would overwrite another);
- a zip bomb is stopped by limits on the entry count, the total uncompressed size and the
  expansion ratio of each entry. The declared sizes are checked first (cheap), then the real
  bytes are counted while they stream to disk: headers are never trusted alone;
- encrypted entries are refused (nothing could read them anyway).

A refused archive raises `UnsafeArchive` with a `reason` (a counted drop reason) and leaves
nothing behind: extraction goes to a temporary folder renamed into place only on success.

`read_rows` streams a CSV, JSONL or JSON file from a byte offset, yielding one `Row` per record
with the offset after it, so a reader can stop anywhere and resume there: CSV rows may span
lines (quoted newlines), invalid UTF-8 is counted per row, a JSON array is cut into its items
without loading the document, and a Git LFS pointer is reported instead of being parsed.
A Parquet file is read a row group at a time with pyarrow; its offsets count rows, not bytes.

Every reader here, and the inbox's, holds one rule on record size (`max_record_bytes`, a
source setting, 16 MiB by default): a line, a CSV record, a JSON item or a Parquet row larger
than that is skipped as it streams past, never held whole in memory, and is one
`record_too_large` drop; the rest of the file proceeds. `bounded_lines` is where lines are cut.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import msgspec

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
CHUNK = 1024 * 1024
# Small entries compress extremely well (a file of spaces): the ratio is checked past this size.
RATIO_FLOOR_BYTES = 1024 * 1024
MEMBER_KINDS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
PARQUET_BATCH = 1024  # rows converted to Python at a time
# The largest record a reader hands out (a source's `max_record_bytes`, this by default).
DEFAULT_MAX_RECORD_BYTES = 16 * 1024**2
RECORD_TOO_LARGE = "record_too_large"


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
        size, quotes, ended = len(line), line.count(b'"'), False
        del line
        while piece := handle.readline(CHUNK):
            size += len(piece)
            quotes += piece.count(b'"')
            if piece.endswith(b"\n"):
                ended = True
                break
        yield None, size, ended, quotes


def json_error_reason(data: bytes) -> str:
    """The drop reason for bytes that failed to decode as JSON: `invalid_utf8` or `malformed_json`.

    Decided from the bytes, not from the exception: JSON decoders disagree on what they raise
    for invalid UTF-8 (msgspec raised `UnicodeDecodeError` before 0.23, `DecodeError` since).
    Called only after a failure, so valid input pays nothing.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return "malformed_json"


class UnsafeArchive(Exception):
    """An archive that is refused as a whole. `reason` is the drop reason that is counted."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"unsafe archive ({reason}): {detail}")


class ExtractLimits(msgspec.Struct, frozen=True):
    max_total_bytes: int = 8 * 1024**3  # uncompressed bytes written, all entries together
    max_entries: int = 100_000  # entries in the archive, extracted or not
    max_ratio: float = 200.0  # uncompressed / compressed size of one entry
    max_entry_bytes: int | None = None  # one entry; None: only the total limit applies


DEFAULT_LIMITS = ExtractLimits()


class Member(msgspec.Struct, frozen=True):
    name: str  # the entry's name in the archive, with `/` separators
    path: str  # where it was written
    size: int  # bytes written


def is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def safe_name(name: str) -> PurePosixPath:
    """The entry name as a relative path inside the target, or `UnsafeArchive`."""
    if "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise UnsafeArchive("unsafe_name", f"control characters in {name!r}")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UnsafeArchive("absolute_path", f"entry {name!r} has an absolute path")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive("zip_slip", f"entry {name!r} climbs out of the target folder")
    if not parts:
        raise UnsafeArchive("unsafe_name", f"entry {name!r} has no file name")
    return PurePosixPath(*parts)


def _check_entry(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # made on Unix: the mode bits are meaningful
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchive("symlink", f"entry {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive("special_file", f"entry {info.filename!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise UnsafeArchive("encrypted_entry", f"entry {info.filename!r} is encrypted")


def extract_zip(
    archive: Path,
    target: Path,
    limits: ExtractLimits = DEFAULT_LIMITS,
    select: Callable[[str], bool] = lambda name: True,
) -> list[Member]:
    """Extract the selected entries of `archive` into `target` (which must not exist yet).

    Every entry is checked, selected or not: one hostile entry refuses the whole archive.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            if len(infos) > limits.max_entries:
                raise UnsafeArchive(
                    "too_many_entries", f"{len(infos)} entries, the limit is {limits.max_entries}"
                )
            planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[str] = set()
            declared = 0
            for info in infos:
                relative = safe_name(info.filename)
                _check_entry(info)
                key = relative.as_posix().casefold()
                if key in seen:
                    raise UnsafeArchive("duplicate_entry", f"entry {info.filename!r} repeats")
                seen.add(key)
                if info.is_dir() or not select(relative.as_posix()):
                    continue
                _check_sizes(info, info.file_size, limits)
                declared += info.file_size
                if declared > limits.max_total_bytes:
                    raise UnsafeArchive(
                        "too_large",
                        f"declared sizes exceed {limits.max_total_bytes} bytes uncompressed",
                    )
                planned.append((info, relative))
            return _extract(bundle, planned, target, limits)
    except zipfile.BadZipFile as error:
        raise UnsafeArchive("bad_archive", str(error)) from error
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise UnsafeArchive("bad_archive", f"{type(error).__name__}: {error}") from error


def _check_sizes(info: zipfile.ZipInfo, size: int, limits: ExtractLimits) -> None:
    if limits.max_entry_bytes is not None and size > limits.max_entry_bytes:
        raise UnsafeArchive(
            "entry_too_large",
            f"entry {info.filename!r} is over {limits.max_entry_bytes} bytes uncompressed",
        )
    compressed = max(info.compress_size, 1)
    if size > RATIO_FLOOR_BYTES and size / compressed > limits.max_ratio:
        raise UnsafeArchive(
            "compression_ratio",
            f"entry {info.filename!r} expands {size / compressed:.0f}x "
            f"(the limit is {limits.max_ratio:.0f}x): a zip bomb",
        )


def _extract(
    bundle: zipfile.ZipFile,
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    target: Path,
    limits: ExtractLimits,
) -> list[Member]:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    root = staging.resolve()
    members: list[Member] = []
    total = 0
    try:
        for info, relative in planned:
            destination = staging.joinpath(*relative.parts)
            if not destination.resolve().is_relative_to(root):  # belt and braces
                raise UnsafeArchive("zip_slip", f"entry {info.filename!r} escapes the target")
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with bundle.open(info) as source, destination.open("xb") as out:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if total > limits.max_total_bytes:
                        raise UnsafeArchive(
                            "too_large",
                            f"more than {limits.max_total_bytes} bytes uncompressed",
                        )
                    _check_sizes(info, written, limits)
                    out.write(chunk)
            members.append(
                Member(relative.as_posix(), str(target.joinpath(*relative.parts)), written)
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return members


# --- reading members as streams -------------------------------------------------------------


class Row(msgspec.Struct, frozen=True):
    """One record of a member, or the reason it is not one, and the offset just after it."""

    value: dict[str, Any] | None
    end: int  # byte offset after this row: where a reader resumes
    error: str = ""  # a drop reason: invalid_utf8, malformed_json, csv_ragged_row, ...
    detail: str = ""


def member_kind(name: str) -> str | None:
    return MEMBER_KINDS.get(PurePosixPath(name).suffix.casefold())


def is_lfs_pointer(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(LFS_POINTER)) == LFS_POINTER


def read_rows(
    path: Path, kind: str, offset: int = 0, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> Iterator[Row]:
    """The records of a member from `offset` on (0: the start); see the module docstring."""
    if offset == 0 and is_lfs_pointer(path):
        size = path.stat().st_size
        yield Row(
            None, size, "lfs_pointer", "a Git LFS pointer, not the data: fetch the LFS object"
        )
        return
    if kind == "parquet":
        yield from _parquet_rows(path, offset, max_record_bytes)
        return
    with path.open("rb") as handle:
        if kind == "csv":
            yield from _csv_rows(handle, offset, max_record_bytes)
        elif kind == "jsonl":
            yield from _jsonl_rows(handle, offset, max_record_bytes)
        elif kind == "json":
            yield from json_items(handle, offset, max_record_bytes)
        else:
            raise ValueError(f"no reader for {kind!r} files")


def _parquet_rows(path: Path, offset: int, limit: int) -> Iterator[Row]:
    """The rows of a Parquet file after the first `offset`; `end` is the rows read so far.

    Row groups wholly before `offset` are skipped from the footer's counts, without reading
    them. A file pyarrow cannot read is one `malformed_parquet` row, past everything. A row
    whose text and binary values add up to more than `limit` bytes is `record_too_large`,
    found from the Arrow batch before it is converted to Python (pyarrow has decoded the
    batch by then: Parquet pages are not read value by value).
    """
    import pyarrow  # here: only Parquet members need it
    import pyarrow.parquet

    position = 0
    try:
        parquet = pyarrow.parquet.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if position + rows <= offset:
                position += rows
                continue
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=[group]):
                sizes = _row_sizes(batch)
                kept = [size <= limit for size in sizes]
                values = iter(batch.to_pylist() if all(kept) else batch.filter(kept).to_pylist())
                for size, keep in zip(sizes, kept, strict=True):
                    value = next(values) if keep else None
                    position += 1
                    if position <= offset:
                        continue
                    if keep:
                        yield Row(value, position)
                    else:
                        detail = f"a row of {size} bytes, over {limit}"
                        yield Row(None, position, RECORD_TOO_LARGE, detail)
    except (pyarrow.ArrowException, OSError) as error:
        yield Row(None, max(position, offset) + 1, "malformed_parquet", str(error)[:300])


def _row_sizes(batch: Any) -> list[int]:
    """The bytes of each row's string and binary values (top-level columns) in an Arrow batch."""
    import pyarrow
    import pyarrow.compute

    sizes = [0] * batch.num_rows
    for column in batch.columns:
        kind = column.type
        if not (
            pyarrow.types.is_string(kind)
            or pyarrow.types.is_large_string(kind)
            or pyarrow.types.is_binary(kind)
            or pyarrow.types.is_large_binary(kind)
        ):
            continue
        lengths = pyarrow.compute.binary_length(column).fill_null(0).to_pylist()
        sizes = [total + length for total, length in zip(sizes, lengths, strict=True)]
    return sizes


def _jsonl_rows(handle: BinaryIO, offset: int, limit: int) -> Iterator[Row]:
    handle.seek(offset)
    position = offset
    for line, size, ended, _ in bounded_lines(handle, limit):
        position += size
        if line is None:
            yield Row(None, position, RECORD_TOO_LARGE, f"a line of {size} bytes, over {limit}")
            continue
        text = line.strip()
        if not text:
            continue
        try:
            value = msgspec.json.decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            reason = json_error_reason(text)
            if reason == "invalid_utf8":
                yield Row(None, position, reason)
            else:
                reason = "truncated_json" if not ended else reason
                yield Row(None, position, reason, str(error)[:200])
            continue
        if isinstance(value, dict):
            yield Row(value, position)
        else:
            yield Row(None, position, "not_an_object", type(value).__name__)


def _csv_rows(handle: BinaryIO, offset: int, limit: int) -> Iterator[Row]:
    """CSV records with the byte offset after each; the header is read from the file start."""
    raise_csv_field_limit(limit)
    handle.seek(0)
    header_rows = csv_records(handle, 0, limit)
    first = next(header_rows, None)
    if first is None:
        return
    header_fields, header_end, header_error = first
    if header_error:
        yield Row(None, header_end, "csv_bad_header", header_error)
        return
    header = _unique([h.strip().lstrip("\ufeff") for h in header_fields])
    start = max(offset, header_end)
    handle.seek(start)
    for fields, end, error in csv_records(handle, start, limit):
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


def json_items(handle: BinaryIO, offset: int, limit: int) -> Iterator[Row]:
    """The items of a top-level JSON array, one at a time; a top-level object is one row.

    The scanner tracks strings, escapes and nesting depth to find where each item ends, then
    decodes just that item, so memory holds one item, not the document. `offset` is the byte
    offset after an item already read (0: the start).
    """
    handle.seek(0)
    head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"{":
        if offset:
            return  # the one object was read already
        handle.seek(0)
        data = handle.read(limit + 1)
        end = handle.seek(0, os.SEEK_END)
        if len(data) > limit:
            yield Row(None, end, RECORD_TOO_LARGE, f"a JSON document over {limit} bytes")
            return
        yield _decode_item(data, end, truncated=False)
        return
    if head[:1] != b"[":
        yield Row(None, handle.seek(0, os.SEEK_END), "malformed_json", "not a JSON array or object")
        return
    yield from _array_items(handle, offset, limit)


def _decode_item(data: bytes, end: int, *, truncated: bool) -> Row:
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        if json_error_reason(data) == "invalid_utf8":
            return Row(None, end, "invalid_utf8")
        return Row(None, end, "truncated_json" if truncated else "malformed_json", str(error)[:200])
    if not isinstance(value, dict):
        return Row(None, end, "not_an_object", type(value).__name__)
    return Row(value, end)


_NEXT_VALUE = re.compile(rb"[^\s,]")
_SCALAR_END = re.compile(rb"[\s,\]]")
_IN_STRING = re.compile(rb'["\\]')
_STRUCTURE = re.compile(rb'["{}\[\]]')


def _array_items(handle: BinaryIO, offset: int, limit: int) -> Iterator[Row]:
    """Cut a JSON array into items by scanning for its structural bytes (regex jumps)."""
    if offset:
        position = handle.seek(offset)
    else:  # skip to just after the opening bracket
        handle.seek(0)
        position = 0
        while (head := handle.read(1)) and head != b"[":
            position += 1
        position += 1
    item = bytearray()
    started = scalar = in_string = escaped = oversized = False
    depth = 0

    def take(data: bytes) -> None:
        nonlocal oversized
        if not oversized:
            item.extend(data)
            oversized = len(item) > limit

    def finish(end: int) -> Row:
        nonlocal started, scalar, oversized
        started = scalar = False
        if oversized:
            oversized = False
            item.clear()
            return Row(None, end, RECORD_TOO_LARGE, f"an item over {limit} bytes")
        row = _decode_item(bytes(item), end, truncated=False)
        item.clear()
        return row

    while chunk := handle.read(CHUNK):
        i, size = 0, len(chunk)
        segment = 0  # where the current item's bytes start in this chunk
        while i < size:
            if not started:
                found = _NEXT_VALUE.search(chunk, i)
                if found is None:
                    break
                i = segment = found.start()
                if chunk[i] == 0x5D:  # ]: the end of the array
                    return
                started, depth = True, 0
                scalar = chunk[i] not in (0x7B, 0x5B, 0x22)  # not { [ "
                if scalar:
                    i += 1
                    continue
            if scalar:
                found = _SCALAR_END.search(chunk, i)
                if found is None:
                    break
                take(chunk[segment : found.start()])
                yield finish(position + found.start())
                i = found.start()
                continue
            if escaped:  # the escaped byte opened this chunk
                escaped = False
                i += 1
                continue
            pattern = _IN_STRING if in_string else _STRUCTURE
            found = pattern.search(chunk, i)
            if found is None:
                break
            k = found.start()
            byte = chunk[k]
            i = k + 1
            if in_string:
                if byte == 0x5C:  # backslash: skip the next byte, maybe in the next chunk
                    if i < size:
                        i += 1
                    else:
                        escaped = True
                else:
                    in_string = False
            elif byte == 0x22:
                in_string = True
            elif byte in (0x7B, 0x5B):
                depth += 1
            else:
                depth -= 1
            if depth == 0 and not in_string:
                take(chunk[segment:i])
                yield finish(position + i)
        if started:
            take(chunk[segment:])
        position += size
    # The document ended inside the array: it was cut (a partial download, a truncated file).
    # Every complete item was yielded; the cut is reported once.
    detail = "the file ends inside an item" if started else "the array has no closing bracket"
    yield Row(None, position, "truncated_json", detail)
