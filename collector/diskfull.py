"""A full disk (or a spent quota) is a pause, not a failure.

Where the service writes, ENOSPC and EDQUOT (SQLite's "database or disk is full" among them)
leave the writing code as `DiskFull`, naming the path, once whatever was half written is cut
back (`collector/sinks/files.py`) or rolled back (`collector/state/sqlite.py`). Whoever waits
for space, the pipeline's writer or a source's raw archive, keeps a `DiskWait`:

    try fails ──▶ DiskWait.failed ──▶ `disk_full` (the first failure of an episode only,
        ▲              │                with the path and the free bytes)
        │              ▼
        └────── sleep 0.5 s, 1 s, 2 s ... 30 s (doubling)
    try works ──▶ DiskWait.succeeded ──▶ `disk_space_returned` (seconds, tries)

Nothing is dropped meanwhile: what was buffered stays buffered and is written once space
returns; the bounded queues hold the sources still (see collector/pipeline.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

# Exit code of a drain cut short while the disk was still full (sysexits' EX_IOERR): what was
# not committed is cut back at the next start and fetched again, as after a crash.
EXIT_DISK_FULL = 74

# SQLite's answers when its files cannot grow: SQLITE_FULL, and SQLITE_IOERR_SHMSIZE (the WAL
# index could not be extended; not exported by Python's sqlite3 module).
_SQLITE_FULL_CODES = frozenset({sqlite3.SQLITE_FULL, 4874})
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

FIRST_WAIT = 0.5
MAX_WAIT = 30.0


class DiskFull(OSError):
    """No space left (or the quota is spent) where `filename` lives; nothing half written."""

    def __init__(self, path: str | Path, cause: BaseException | None = None) -> None:
        code = cause.errno if isinstance(cause, OSError) and cause.errno else errno.ENOSPC
        super().__init__(code, os.strerror(code), str(path))


def is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in _FULL_ERRNOS
    if isinstance(error, sqlite3.OperationalError):
        return getattr(error, "sqlite_errorcode", None) in _SQLITE_FULL_CODES
    return False


def as_disk_full(error: BaseException, path: str | Path) -> DiskFull | None:
    """`error` as a `DiskFull` at `path` (or at the path it names), or None: another error."""
    if isinstance(error, DiskFull):
        return error
    if not is_disk_full(error):
        return None
    named = error.filename if isinstance(error, OSError) and error.filename else path
    return DiskFull(named, error)


@contextlib.contextmanager
def replacing(temporary: Path, named: Path) -> Iterator[None]:
    """Around writing `temporary` and moving it into place: on failure the half-written
    temporary goes (its space is what a retry needs), and a full disk leaves as `DiskFull`
    naming `named`."""
    try:
        yield
    except OSError as error:
        temporary.unlink(missing_ok=True)
        full = as_disk_full(error, named)
        if full is None:
            raise
        raise full from error


def free_bytes(path: str | Path) -> int | None:
    """Bytes free to us on the file system holding `path` (its nearest existing folder)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


class DiskWait:
    """One writing place's waits for space: logs once per episode, backs off, says when over."""

    def __init__(
        self,
        log: structlog.typing.FilteringBoundLogger,
        *,
        first: float = FIRST_WAIT,
        cap: float = MAX_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.first = first
        self.cap = cap
        self.clock = clock
        self.full: DiskFull | None = None  # the episode under way, if any
        self.episodes = 0
        self.tries = 0  # failed tries in this episode
        self.last_try = 0.0  # when a try last came back, in or out of an episode
        self._since = 0.0
        self._wait = 0.0

    def failed(self, error: DiskFull) -> float:
        """Note a try that met a full disk; the seconds to wait before the next one."""
        now = self.clock()
        self.last_try = now
        self.tries += 1
        if self.full is None:
            self.full, self._since, self._wait = error, now, self.first
            self.episodes += 1
            self.log.error(
                "disk_full",
                path=error.filename,
                free_bytes=free_bytes(error.filename) if error.filename else None,
                error=error.strerror,
                retry_in=self._wait,
            )
            return self._wait
        self._wait = min(self.cap, self._wait * 2)
        self.log.debug(
            "disk_full_retry", path=error.filename, tries=self.tries, retry_in=self._wait
        )
        return self._wait

    def succeeded(self) -> None:
        """A try went through: the end of the episode, if one was under way."""
        self.last_try = self.clock()
        if self.full is None:
            return
        self.log.info(
            "disk_space_returned",
            path=self.full.filename,
            free_bytes=free_bytes(self.full.filename) if self.full.filename else None,
            seconds=round(self.last_try - self._since, 3),
            tries=self.tries,
        )
        self.full, self.tries = None, 0

    def hurry(self) -> None:
        """From now on try every `first` seconds: the service is stopping, and space that
        returns must be noticed within its shutdown_timeout, not after a 30 s wait."""
        self.cap = self._wait = self.first
