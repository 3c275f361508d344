"""The seam between the service and what runs inside it beside the sources: the uploader, the
rewrite stage, metrics, systemd notification, raw retention, the progress bar.

A component is built from the config by the service (the one place that builds them, see
`collector.service.build_components`), may add sinks before the pipeline starts, starts once
the sources run, hears the service's lifecycle events, and stops after the pipeline has
drained. It sees the service only through `Host`: what it may read (the config, the data folder,
the state store, the log, a `ServiceSnapshot` of what runs) and the two things it may add (a
sink, an internal source). It never holds the pipeline, the runners or the other components.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from collector.reporting import Report

if TYPE_CHECKING:
    from collector.config import Config
    from collector.layout import DataLayout
    from collector.logging import Logger
    from collector.scaleout.placement import PlacementView
    from collector.sinks.base import Sink
    from collector.sources.base import Source, SourceContext
    from collector.sources.config import AnySourceConfig
    from collector.state import StateStore
    from collector.workers import Chain

# How the service runs: `run` polls every source until SIGTERM, `once` makes one pass.
Mode = Literal["run", "once"]

# The lifecycle events a component hears, in order:
#   "ready" once every source runs; "reloading" / "reloaded" / "reload_failed" around SIGHUP;
#   "stopping" when the drain starts; "checkpoint" after every durable commit.
Event = Literal["ready", "reloading", "reloaded", "reload_failed", "stopping", "checkpoint"]


class SourceSnapshot(msgspec.Struct, frozen=True):
    """One source's runner as it is now."""

    name: str
    running: bool  # its runner's task is alive
    passes: int  # passes over the source so far
    last_success: float | None  # unix time the last pass without error ended
    outstanding: int  # batches submitted and not durable yet
    counts: dict[str, int]  # acknowledged this run: fetched, written, pairs, drop:{reason}
    report: Report  # what the source says of itself (`collector.reporting`); empty if nothing


class QueueFill(msgspec.Struct, frozen=True):
    depth: int  # batches in the queue
    capacity: int  # its bound


class ServiceSnapshot(msgspec.Struct, frozen=True):
    """What a component may know of the running service, read in one go on the event loop:
    what `/metrics`, `/healthz`, the systemd watchdog and STATUS, and the progress bar show."""

    work: QueueFill  # batches waiting for a worker
    ordered: QueueFill  # batches waiting for the writer, in submission order
    checkpoints: int  # committed so far
    # Monotonic times: the last batch a worker finished, or the writer's last try on a full
    # disk (a writer waiting for space is not hung); the last checkpoint committed.
    last_progress: float
    last_checkpoint: float
    sources: list[SourceSnapshot]  # by name
    components: dict[str, dict[str, float]]  # `Component.telemetry`, of those that have some
    placement: PlacementView | None = None  # with the Redis backend only

    @property
    def outstanding(self) -> int:
        """Batches submitted and not durable yet (queued, processed or not checkpointed)."""
        return sum(source.outstanding for source in self.sources)

    def counts(self) -> Counter[str]:
        """The sources' counts added up."""
        total: Counter[str] = Counter()
        for source in self.sources:
            total.update(source.counts)
        return total


class Host(Protocol):
    """The service as its components see it."""

    @property
    def config(self) -> Config:
        """The config running now (a SIGHUP may replace it)."""
        ...

    @property
    def config_path(self) -> Path: ...

    @property
    def layout(self) -> DataLayout:
        """Where the service keeps its files (collector/layout.py)."""
        ...

    @property
    def state(self) -> StateStore:
        """The state store; open from `prepare` on."""
        ...

    @property
    def log(self) -> Logger: ...

    def add_sink(self, sink: Sink) -> None:
        """In `prepare` only: the sink gets every batch and shares every checkpoint."""
        ...

    def add_runner(
        self,
        config: AnySourceConfig,
        source: Source,
        context: SourceContext,
        chain: Chain,
        *,
        fetched_as: str = "fetched",
        follows_erasure: bool = False,
    ) -> None:
        """Run an internal source through the pipeline, as the configured ones run
        (`WorkItem.fetched_as`, `SourceRunner.follows_erasure` say what the options do)."""
        ...

    def sources_finished(self) -> asyncio.Future[Any]:
        """Done once every source running now has finished (`once`: its single pass)."""
        ...

    def snapshot(self) -> ServiceSnapshot | None:
        """What runs now; None while the pipeline is not built yet."""
        ...


class Component:
    name = "component"

    async def prepare(self, host: Host) -> None:
        """Before the pipeline starts: the place to add sinks (`host.add_sink`)."""

    async def start(self, host: Host) -> None:
        """Once the sources run."""

    def on_event(self, event: Event, fields: Mapping[str, Any]) -> None:
        """A lifecycle event; must not block (schedule work on the loop if needed)."""

    async def stop(self) -> None:
        """After the pipeline has drained and the last checkpoint is committed."""

    def paused(self) -> AbstractAsyncContextManager[None]:
        """Held while the service rewrites the data folder's files under the component
        (`forget` served in-process): work that reads or publishes them waits."""
        return contextlib.nullcontext()

    def telemetry(self) -> Mapping[str, float]:
        """Figures for `/metrics`, each as `resume_collector_{name}_{key}`; none by default."""
        return {}
