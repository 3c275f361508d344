"""Append-only files made durable together, and repaired after a crash.

The committed length of every file is saved in the state store in the same transaction as the
sources' cursors. On start each file is cut back to its committed length: what was written
after the last checkpoint (a torn line included) is removed, and its records are fetched again
from the saved cursor. That is what makes "nothing lost, nothing written twice" hold across
kill -9.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import structlog

from collector.state import StateStore

NAMESPACE = "files"
# Whole-file replacements waiting to be made (`resume-collector forget`): file key -> the key of
# its new version, written and fsynced beside it. The new committed length is saved in the same
# transaction as the entry, so a start that finds the entry makes the rename before it cuts
# anything back (see `apply_replacements`).
REPLACE_NAMESPACE = "files_replace"


class DurableFiles:
    def __init__(self, root: Path, state: StateStore, log: structlog.typing.FilteringBoundLogger):
        self.root = root
        self.state = state
        self.log = log
        self._lengths: dict[str, int] = {}  # key -> length once everything buffered is written
        self._buffers: dict[str, list[bytes]] = {}
        self._handles: dict[str, BinaryIO] = {}
        self.pending_bytes = 0

    def key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def recover(self, under: Path) -> None:
        """Cut every file under `under` back to its committed length (sync: run in a thread)."""
        prefix = f"{self.key(under)}/" if under != self.root else ""
        apply_replacements(self.root, self.state, prefix, self.log)
        committed = dict(self.state.scan(NAMESPACE, prefix))
        for key, value in committed.items():
            path = self.root / key
            length = int(value)
            size = path.stat().st_size if path.exists() else -1
            if size > length:
                with path.open("r+b") as handle:
                    handle.truncate(length)
                    os.fsync(handle.fileno())
                self.log.info("output_repaired", file=key, cut_bytes=size - length)
            elif size < length:
                self.log.warning(
                    "output_shorter_than_committed", file=key, size=size, committed=length
                )
            self._lengths[key] = max(size, 0) if size < length else length
        # Files the state does not know (written by hand, or state was removed): only make
        # sure a torn last line does not stay.
        if under.is_dir():
            for path in under.rglob("*.jsonl"):
                key = self.key(path)
                if key not in committed:
                    _cut_torn_tail(path, self.log, key)

    def append(self, file: str | Path, data: bytes) -> None:
        """Buffer `data` for a file: a path, or its key (hot paths cache keys, see `key`)."""
        key = file if isinstance(file, str) else self.key(file)
        self._buffers.setdefault(key, []).append(data)
        self.pending_bytes += len(data)

    def flush(self) -> dict[str, str]:
        """Write and fsync everything buffered; the lengths to commit (sync: run in a thread)."""
        new = [key for key in self._buffers if key not in self._lengths]
        for key in new:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            length = path.stat().st_size if path.exists() else 0
            self._lengths[key] = length
        if new:
            # Known to the state before a byte is written, so a crash right after is repaired.
            self.state.commit({NAMESPACE: {key: str(self._lengths[key]) for key in new}})
        for key, chunks in self._buffers.items():
            handle = self._handles.get(key)
            if handle is None:
                handle = self._handles[key] = (self.root / key).open("ab")
                _fsync_dir((self.root / key).parent)
            data = b"".join(chunks)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            self._lengths[key] += len(data)
        touched = {key: str(self._lengths[key]) for key in self._buffers}
        self._buffers.clear()
        self.pending_bytes = 0
        return touched

    def length(self, path: Path) -> int:
        key = self.key(path)
        buffered = sum(len(chunk) for chunk in self._buffers.get(key, []))
        return self._lengths.get(key, 0) + buffered

    def forget(self, path: Path) -> None:
        """Stop tracking a file (it was renamed or removed by its owner)."""
        key = self.key(path)
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.close()
        self._lengths.pop(key, None)
        self.state.delete(NAMESPACE, [key])

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


def apply_replacements(
    root: Path, state: StateStore, prefix: str, log: structlog.typing.FilteringBoundLogger
) -> int:
    """Finish the replacements the state records for files under `prefix` (sync).

    Safe to repeat: a new version that is no longer there was moved into place already."""
    done = 0
    for key, new in list(state.scan(REPLACE_NAMESPACE, prefix)):
        source, target = root / new, root / key
        if source.exists():
            os.replace(source, target)
            _fsync_dir(target.parent)
            log.info("output_replaced", file=key)
            done += 1
        state.delete(REPLACE_NAMESPACE, [key])
    return done


def _cut_torn_tail(path: Path, log: structlog.typing.FilteringBoundLogger, key: str) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("r+b") as handle:
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        # Walk back to the last newline, one block at a time.
        end = size
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            block = handle.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        handle.truncate(end)
        os.fsync(handle.fileno())
    log.info("output_repaired", file=key, cut_bytes=size - end)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
