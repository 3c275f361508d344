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

import time
from collections.abc import Callable
from dataclasses import dataclass

from collector.components import ServiceSnapshot


@dataclass(frozen=True)
class PipelineSnapshot:
    waiting: int  # batches submitted and not yet durable
    work_queue: int  # batches waiting for a worker
    ordered_queue: int  # batches waiting for the writer
    last_move: float  # monotonic time of the last batch processed or checkpoint committed

    @classmethod
    def of(cls, service: ServiceSnapshot) -> PipelineSnapshot:
        return cls(
            waiting=service.outstanding,
            work_queue=service.work.depth,
            ordered_queue=service.ordered.depth,
            last_move=max(service.last_progress, service.last_checkpoint),
        )


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


class PipelineMonitor:
    """A `StallDetector` over a running service's snapshots, on the monotonic clock."""

    def __init__(
        self,
        snapshot: Callable[[], ServiceSnapshot | None],
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.snapshot = snapshot
        self.clock = clock
        self.detector = StallDetector(timeout)

    def check(self) -> Health:
        found = self.snapshot()
        if found is None:  # the pipeline is not built yet: nothing can wait
            return Health(stuck=False, waiting=0, stalled_for=0.0)
        return self.detector.check(PipelineSnapshot.of(found), self.clock())
