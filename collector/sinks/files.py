"""Append-only files made durable together, and repaired after a crash.

The committed length of every file is saved in the state store in the same transaction as the
sources' cursors. On start each file is cut back to its committed length: what was written
after the last checkpoint (a torn line included) is removed, and its records are fetched again
from the saved cursor. That is what makes "nothing lost, nothing written twice" hold across
kill -9.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import structlog

from collector.diskfull import as_disk_full
from collector.state import StateStore

NAMESPACE = "files"
# Whole-file replacements waiting to be made (`resume-collector forget`): file key -> the key of
# its new version, written and fsynced beside it. The new committed length is saved in the same
# transaction as the entry, so a start that finds the entry makes the rename before it cuts
# anything back (see `apply_replacements`).
REPLACE_NAMESPACE = "files_replace"


class FlushUndone(Exception):
    """A flush failed and what it had written could not be cut back."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(f"{path}: cannot cut back a failed flush: {error}")


class DurableFiles:
    def __init__(self, root: Path, state: StateStore, log: structlog.typing.FilteringBoundLogger):
        self.root = root
        self.state = state
        self.log = log
        self._lengths: dict[str, int] = {}  # key -> length once everything buffered is written
        self._buffers: dict[str, list[bytes]] = {}
        self._handles: dict[str, io.FileIO] = {}
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

    def extend(self, key: str, data: list[bytes]) -> None:
        """Buffer several pieces for one file, by its key (`append` for one)."""
        self._buffers.setdefault(key, []).extend(data)
        self.pending_bytes += sum(map(len, data))

    def flush(self) -> dict[str, str]:
        """Write and fsync everything buffered; the lengths to commit (sync: run in a thread).

        All or nothing: on an error (a full disk: `DiskFull`) every file is cut back to its
        length before the flush and the buffers are kept, so the next flush writes each line
        once and a reader never sees half a line. Lengths move only once every file is synced.
        """
        self._register_new()
        written = self._write_buffers()
        self._lengths.update(written)
        self._buffers.clear()
        self.pending_bytes = 0
        return {key: str(length) for key, length in written.items()}

    def _register_new(self) -> None:
        """Files seen for the first time are known to the state before a byte is written to
        them, so a crash right after is repaired (their lengths are taken only then)."""
        new: dict[str, int] = {}
        for key in self._buffers:
            if key not in self._lengths:
                path = self.root / key
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    new[key] = path.stat().st_size if path.exists() else 0
                except OSError as error:
                    full = as_disk_full(error, path)
                    if full is None:
                        raise
                    raise full from error
        if new:
            self.state.commit({NAMESPACE: {key: str(length) for key, length in new.items()}})
            self._lengths.update(new)

    def _write_buffers(self) -> dict[str, int]:
        """Append each file's buffer and fsync it; the new lengths. On any error the files
        written so far (and the one being written) are cut back to their lengths before."""
        started: list[str] = []
        written: dict[str, int] = {}
        try:
            for key, chunks in self._buffers.items():
                started.append(key)
                handle = self._handle(key)
                data = b"".join(chunks)
                _write_all(handle, data)
                os.fsync(handle.fileno())
                written[key] = self._lengths[key] + len(data)
        except OSError as error:
            self._cut_back(started)
            full = as_disk_full(error, self.root / started[-1])
            if full is None:
                raise
            raise full from error
        return written

    def _handle(self, key: str) -> io.FileIO:
        handle = self._handles.get(key)
        if handle is None:
            # Unbuffered: a write the disk refuses leaves nothing behind in a buffer that a
            # later flush or close would write after the cut-back.
            handle = self._handles[key] = (self.root / key).open("ab", buffering=0)
            _fsync_dir((self.root / key).parent)
        return handle

    def _cut_back(self, keys: list[str]) -> None:
        """Files back to their lengths before this flush (a partial write removed: it frees
        its space, and the retry appends at the right place). If that fails too, the files
        can no longer be vouched for: the error stops the writer, and the next start cuts
        them back to their committed lengths."""
        for key in keys:
            handle = self._handles.get(key)
            if handle is not None:
                try:
                    os.ftruncate(handle.fileno(), self._lengths[key])
                except OSError as error:
                    raise FlushUndone(self.root / key, error) from error

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


def _write_all(handle: io.FileIO, data: bytes) -> None:
    """`data` to an unbuffered file, whole: a raw write may take only part of it (the part that
    fitted on a nearly full disk), and the next write then says why it stopped."""
    view = memoryview(data)
    while view:
        done = handle.write(view)
        if not done:  # None (non-blocking, never here) or 0: the disk took nothing
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[done:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
