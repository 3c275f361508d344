"""One process at a time owns a data folder's files: the service, or `forget`.

An advisory `flock` on `{data_dir}/.service.lock` holding the owner's pid, released by the
kernel when the process ends (kill -9 included). `resume-collector forget` rewrites files
whose committed lengths the service keeps in memory, so while the service runs it hands the
request to it instead (collector/erasure_requests.py). The same lock, on `chunks/.lock`,
keeps one chunk roller per data folder (collector/upload/component.py `ChunksLock`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO

LOCK_FILE = ".service.lock"


class FolderBusy(RuntimeError):
    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(f"{path} is in use by pid {owner}")
        self.path = path
        self.owner = owner


class FolderLock:
    """An advisory `flock` on `{folder}/{name}`, which holds the owner's pid so that a refusal
    can name it; released by the kernel when the process ends (kill -9 included)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / name
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise FolderBusy(self.path.parent, owner) from error
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


DataDirBusy = FolderBusy


class DataDirLock(FolderLock):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, LOCK_FILE)
