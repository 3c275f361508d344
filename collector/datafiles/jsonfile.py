"""JSON readers: JSON Lines a line at a time, and a JSON array cut into its items.

A JSON array is cut into its items without loading the document: a scanner finds where each
item ends and only that item is decoded. A top-level object is one row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from collector.datafiles.rows import CHUNK, RECORD_TOO_LARGE, Row, read_past


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


def jsonl_rows(handle: BinaryIO, offset: int, limit: int, *, settled: bool = True) -> Iterator[Row]:
    """The objects of a JSON Lines file from byte `offset` (0, or the `end` of a row before).

    A line over `limit` bytes is read past, not held (`record_too_large`). A last line without
    its newline is read only from a `settled` file (one no longer written: the inbox waits for
    a growing file's line to end); if it does not decode it is `truncated_json`: the file was cut.
    """
    handle.seek(offset)
    position = offset
    # `bounded_lines` inlined: this loop runs for every line of every JSON Lines file, and the
    # inbox reads them in the service's own process, whose cost per record caps what any
    # number of worker processes can give.
    readline, decode, too_long = handle.readline, msgspec.json.decode, limit + 1
    while line := readline(too_long):
        size = len(line)
        ended = line[-1] == 10  # a newline
        if not ended:
            if size == too_long:  # over the limit: read past, never held whole
                del line
                size, ended, _ = read_past(handle, size)
                if not ended and not settled:
                    return
                position += size
                yield Row(None, position, RECORD_TOO_LARGE, f"a line of {size} bytes, over {limit}")
                continue
            if not settled:
                return  # still being written: wait for the next pass
        position += size
        try:
            value = decode(line)  # JSON's own white space around a value is no error
        except (msgspec.DecodeError, UnicodeDecodeError):
            text = line.strip()  # and a blank line is no record
            if not text:
                continue
            try:
                value = decode(text)
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
