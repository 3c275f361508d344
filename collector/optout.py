"""The opt-out file named by `privacy.optout`, read again whenever it changes.

The list itself (what an entry is, how it matches) is `processors/optout.py`. This is the file
on disk: read when the service starts (a file that cannot be read stops the start: collecting
without the list would take in people who asked to be left out), then looked at before each
batch is processed, so an entry added while the daemon runs applies from the next batch on,
with no restart or SIGHUP. A file that becomes unreadable keeps the last list read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from collector.logging import Logger
from processors.optout import OptOutList


class OptOutFile:
    def __init__(self, path: Path, log: Logger) -> None:
        self.path = path
        self.log = log
        self._lock = threading.Lock()  # workers are threads
        self._version = self._stat()
        self.list = OptOutList.parse(path.read_text(encoding="utf-8"))

    def _stat(self) -> tuple[int, int, int]:
        status = os.stat(self.path)
        return status.st_ino, status.st_size, status.st_mtime_ns

    def current(self) -> OptOutList:
        """The list as the file says now (read again only if the file changed)."""
        with self._lock:
            try:
                version = self._stat()
                if version != self._version:
                    self.list = OptOutList.parse(self.path.read_text(encoding="utf-8"))
                    self._version = version
                    self.log.info("optout_reloaded", path=str(self.path), entries=len(self.list))
            except (OSError, UnicodeDecodeError) as error:
                if self._version != (0, 0, 0):
                    self.log.error("optout_unreadable", path=str(self.path), error=str(error))
                    self._version = (0, 0, 0)  # said once; read again once it is back
            return self.list
