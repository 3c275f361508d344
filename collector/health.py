"""Is the pipeline moving? One definition, shared by the systemd watchdog and `/healthz`.

The pipeline is **stuck** when work is waiting (a batch was submitted and is not durable yet:
queued, being processed, or written and not checkpointed) and nothing has moved (no worker
finished a batch, no checkpoint was committed) for longer than `service.stall_timeout`.

An idle pipeline (nothing waiting) is healthy however long it has been idle: a source that
sleeps until its next pass, or waits for a rate limit, is not a stuck pipeline. Work that has
just arrived after a long idle spell is measured from the moment it was first seen waiting, not
from the last movement before the idle spell.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from collector.components import Component
from processors.records import Example

if TYPE_CHECKING:
    from collector.service import Service


@dataclass(frozen=True)
class PipelineSnapshot:
    waiting: int  # batches submitted and not yet durable
    work_queue: int  # batches waiting for a worker
    ordered_queue: int  # batches waiting for the writer
    last_move: float  # monotonic time of the last batch processed or checkpoint committed


@dataclass(frozen=True)
class Health:
    stuck: bool
    waiting: int
    stalled_for: float  # seconds nothing moved while work waited; 0 when idle


class StallDetector:
    """Turns snapshots taken over time into a verdict; it remembers when waiting began."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._waiting_since: float | None = None

    def check(self, snapshot: PipelineSnapshot, now: float) -> Health:
        if snapshot.waiting == 0:
            self._waiting_since = None
            return Health(stuck=False, waiting=0, stalled_for=0.0)
        if self._waiting_since is None:
            self._waiting_since = now
        stalled_for = max(0.0, now - max(snapshot.last_move, self._waiting_since))
        return Health(stalled_for > self.timeout, snapshot.waiting, stalled_for)


def snapshot(service: Service) -> PipelineSnapshot | None:
    """The pipeline's state now; None before the pipeline exists."""
    pipeline = getattr(service, "pipeline", None)
    if pipeline is None:
        return None
    return PipelineSnapshot(
        waiting=sum(runner.ack.outstanding for runner in service.runners.values()),
        work_queue=pipeline.work.qsize(),
        ordered_queue=pipeline.ordered.qsize(),
        # A writer waiting for disk space is not hung: it tries again on its backoff (and a
        # restart would free no space); it says so in the log (`disk_full`).
        last_move=max(
            pipeline.last_progress, pipeline.writer.last_checkpoint, pipeline.writer.disk.last_try
        ),
    )


class PipelineMonitor:
    """A `StallDetector` over a running service, on the monotonic clock."""

    def __init__(self, service: Service, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.clock = clock
        self.detector = StallDetector(service.config.service.stall_timeout)

    def check(self) -> Health:
        found = snapshot(self.service)
        if found is None:
            return Health(stuck=False, waiting=0, stalled_for=0.0)
        return self.detector.check(found, self.clock())


# --- a stalled writer, for tests only --------------------------------------------------------

# While the file this names exists, every checkpoint waits: how the watchdog and /healthz tests
# stall the writer of a real daemon. Unset in production.
TEST_STALL_ENV = "RESUME_COLLECTOR_TEST_STALL_FILE"


class _StallingSink:
    name = "test-stall"
    pending_bytes = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self) -> None:
        return None

    def write(self, examples: list[Example]) -> None:
        return None

    async def flush(self) -> dict[str, dict[str, str]]:
        while self.path.exists():
            await asyncio.sleep(0.02)
        return {}

    async def committed(self) -> None:
        return None

    async def close(self) -> None:
        return None


class TestStall(Component):
    """Adds a sink whose flush waits while `RESUME_COLLECTOR_TEST_STALL_FILE` exists."""

    name = "test-stall"
    __test__ = False  # not a pytest test class

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @classmethod
    def from_environment(cls) -> TestStall | None:
        path = os.environ.get(TEST_STALL_ENV)
        return cls(path) if path else None

    async def prepare(self, service: Service) -> None:
        service.log.warning("test_stall_enabled", file=str(self.path))
        service.sinks.append(_StallingSink(self.path))
