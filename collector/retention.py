"""Raw archive retention inside the daemon: `raw.retention` ("90d") removes older raw files.

The raw archive keeps API responses as they came, personal data included; with a retention
set, a sweep at start and every `raw.sweep_interval` seconds removes every file under `raw/`
written longer ago than that (`collector/sources/archive.py` says what and how), and logs
`raw_expired` per source with the count. `reprocess` then says which sources it can no longer
rebuild in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from collector.components import Component, Host
from collector.config import Config
from collector.logging import Logger
from collector.sources.archive import expire_raw


class RawRetention(Component):
    name = "raw_retention"

    def __init__(self, retention: float, interval: float) -> None:
        self.retention = retention
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @classmethod
    def from_config(cls, config: Config) -> RawRetention | None:
        seconds = config.raw.retention_seconds
        return None if seconds is None else cls(seconds, config.raw.sweep_interval)

    async def start(self, host: Host) -> None:
        self.log: Logger = host.log.bind(component=self.name)
        self.raw_dir: Path = host.layout.raw
        self._task = asyncio.create_task(self._sweeps(), name=self.name)

    async def _sweeps(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except OSError as error:  # a folder it cannot read: said, and tried again later
                self.log.error("raw_expiry_failed", error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def sweep(self) -> dict[str, int]:
        cutoff = time.time() - self.retention
        removed = await asyncio.to_thread(expire_raw, self.raw_dir, cutoff)
        before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutoff))
        for source, files in removed.items():
            if files:
                self.log.info("raw_expired", source=source, files=files, before=before)
        return removed

    async def stop(self) -> None:
        """Lets a sweep in progress finish (it removes files one by one: nothing is torn)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
