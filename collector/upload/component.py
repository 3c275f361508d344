"""Publishing inside the daemon: the chunk roller as a sink, the uploader on a timer.

- `prepare` takes the chunks folder's lock and adds the chunk roller to the service's sinks, so
  it shares every checkpoint with the formatted output;
- `start` reconciles the ledger with the target, then every `upload.interval` seconds marks the
  chunks older than `max_age` (they close at the next checkpoint) and uploads what is pending;
- `stop` (after the pipeline drained) closes what is due (in `once`, every open chunk: a single
  pass publishes what it collected) and uploads, within half the shutdown timeout; a commit
  still under way then is abandoned (`upload_abandoned`), and the next start reconciles it.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from collector.components import Component, Host, Mode
from collector.config import Config
from collector.datalock import FolderBusy, FolderLock
from collector.logging import Logger
from collector.scaleout.upload_lease import UploadLease
from collector.upload.chunks import ChunkRoller
from collector.upload.targets import build_target
from collector.upload.uploader import Uploader


def upload_instance(config: Config) -> str:
    """The instance that owns this data folder's chunks when a state store is shared."""
    if config.state.backend == "sqlite":
        return ""  # a store of its own: nothing to tell apart, chunk names stay short
    from collector.state.open import instance_name

    return instance_name(config)


# Another process (the daemon, or `resume-collector upload`) owns the chunks folder.
ChunksBusy = FolderBusy


class ChunksLock(FolderLock):
    """One roller per data folder: a lock on `chunks/.lock` (collector/datalock.py)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, ".lock")


class UploadComponent(Component):
    name = "upload"

    def __init__(self, config: Config, mode: Mode) -> None:
        self.config = config
        self.mode = mode
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @classmethod
    def from_config(cls, config: Config, mode: Mode) -> UploadComponent | None:
        return cls(config, mode) if config.upload.enabled else None

    async def prepare(self, host: Host) -> None:
        self.log: Logger = host.log.bind(component=self.name)
        instance = upload_instance(self.config)
        self.roller = ChunkRoller(
            host.layout.data_dir, host.state, self.config.upload, self.log, instance=instance
        )
        self.lock = ChunksLock(self.roller.root)
        try:
            self.lock.acquire()
        except ChunksBusy as error:
            self.log.error("chunks_busy", error=str(error), hint="one roller per data folder")
            raise
        host.add_sink(self.roller)
        target = build_target(self.config.upload, host.layout.data_dir, self.log)
        # Several instances on one Redis take turns on the target (None with SQLite).
        self.lease = UploadLease.for_config(self.config, instance, self.log)
        self.uploader = Uploader(
            self.config,
            target,
            host.state,
            self.log,
            chunks_root=self.roller.root,
            instance=instance,
            exclusive=self.lease.exclusive if self.lease is not None else None,
        )

    def telemetry(self) -> dict[str, float]:
        """For `/metrics`: `resume_collector_upload_{key}` (pending_chunks, lag_seconds...)."""
        if not hasattr(self, "uploader"):
            return {}
        values = self.uploader.telemetry()
        open_chunks = self.roller.open_chunks()
        values["open_chunks"] = len(open_chunks)
        values["open_records"] = sum(c.records for c in open_chunks)
        return values

    async def start(self, host: Host) -> None:
        self._task = asyncio.create_task(self._periodic(), name="uploader")

    def paused(self) -> AbstractAsyncContextManager[None]:
        """No upload round while `forget` revises chunks and the ledger under it."""
        if not hasattr(self, "uploader"):
            return contextlib.nullcontext()
        return self.uploader.paused()

    async def _periodic(self) -> None:
        try:
            await self.uploader.reconcile()
        except Exception as error:  # each commit looks the chunks up again: not fatal
            self.log.error("upload_reconcile_failed", error=str(error).splitlines()[0])
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.config.upload.interval)
            if self._stopping.is_set():
                return
            self.roller.mark_due()
            try:
                await self.uploader.run()
            except Exception:  # the next round tries again; nothing was marked committed
                self.log.exception("upload_round_failed")

    async def stop(self) -> None:
        self._stopping.set()
        grace = self.config.service.shutdown_timeout / 2  # for all of it: the drain is bounded
        try:
            async with asyncio.timeout(grace):
                if self._task is not None:
                    # A round in progress finishes: its commit may be landing right now.
                    await asyncio.shield(self._task)
                closed = await self.roller.close_now(everything=self.mode == "once")
                report = await self.uploader.run()
            self.log.info(
                "upload_stopped",
                closed=closed,
                committed=report.committed,
                pending=report.pending,
                open_chunks=len(self.roller.open_chunks()),
            )
        except TimeoutError:
            self._abandoned(grace)
        except asyncio.CancelledError:  # the service's drain deadline came first
            self._abandoned(grace)
            raise
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self.lock.release()
            if self.lease is not None:
                await self.lease.close()

    def _abandoned(self, grace: float) -> None:
        """The deadline came first. Nothing is lost: the chunks stay pending on disk and in the
        ledger, and a commit under way is left to finish or not in a thread nobody waits for
        (`collector/upload/uploader.py` `_abandonable`): the next start's reconcile finds its
        chunks in the target, or commits them, as after a crash. So the exit is not a failure:
        a warning, and the service's exit code stays 0 (docs/operations.md)."""
        self.log.warning(
            "upload_abandoned",
            seconds=grace,
            chunks=self.uploader.in_flight,
            pending=self.uploader.pending_chunks,
            next_start="reconcile",
        )
