"""The service: wires sources, the pipeline and the sinks together, and handles signals.

It holds no business logic. `run` polls every source on its own interval until SIGTERM;
`once` makes one pass over every source and exits. SIGHUP re-reads the config and applies the
difference (collector/reload.py): added sources start, removed ones drain and stop, changed ones
restart, the others are not touched; log settings, the opt-out list, the processing chain,
metrics and raw retention follow the file; the rest is named as needing a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import redis

from collector.components import (
    Component,
    Event,
    Mode,
    QueueFill,
    ServiceSnapshot,
    SourceSnapshot,
)
from collector.config import Config, ConfigError, load_config
from collector.datalock import DataDirBusy, DataDirLock
from collector.diskfull import EXIT_DISK_FULL, DiskWait, as_disk_full
from collector.erasure import ForgottenList
from collector.erasure_requests import RequestServer
from collector.filemodes import apply_file_modes, data_dir_warning
from collector.logging import ERRORS, Logger, configure_logging, get_logger
from collector.metrics import MetricsServer
from collector.optout import OptOutFile
from collector.pipeline import (
    CURSOR_NAMESPACE,
    Acknowledger,
    Pipeline,
    PipelineFailed,
    WorkItem,
)
from collector.progress import ProgressBar
from collector.reload import COMPONENT_SECTIONS, diff_configs
from collector.reporting import Report, Reporting
from collector.retention import RawRetention
from collector.rewrite.component import RewriteComponent
from collector.scaleout.leases import EXIT_LEASE_LOST, REDIS_ERRORS
from collector.scaleout.open import open_placement
from collector.scaleout.placement import LocalPlacement, Placement
from collector.sinks.base import Sink
from collector.sinks.formatted import FormattedSink
from collector.sinks.lines import RenderedBatch
from collector.sources import Source, SourceBatch, SourceContext, build_source
from collector.sources.config import AnySourceConfig
from collector.state import StateStore
from collector.state.open import instance_name, open_state_store
from collector.stopping import SourceStopping
from collector.systemd import SystemdNotifier
from collector.upload.component import UploadComponent
from collector.workers import Chain, ProcessPool, resolve_mode
from processors.records import Drop, ProcessedBatch

# Redis could not be reached while the service started (EX_UNAVAILABLE); systemd restarts it.
EXIT_REDIS_UNAVAILABLE = 69
# A source with nothing new logs its first idle pass at info, the ones after it at debug, and
# one `source_idle` summary at info this often: a quiet daemon's log is not all idle passes.
IDLE_SUMMARY_SECONDS = 600.0
# `once`: some sources failed (a pass raised or logged an error), the others went well.
EXIT_SOME_SOURCES_FAILED = 4
# `once`: every source failed and nothing at all was fetched (all unreachable, say).
EXIT_NOTHING_FETCHED = 5


class SourceRunner:
    """Runs one source: passes from its saved cursors, batches into the pipeline."""

    def __init__(
        self,
        config: AnySourceConfig,
        source: Source,
        context: SourceContext,
        chain: Chain,
        pipeline: Pipeline,
        state: StateStore,
        mode: Mode,
        optout: OptOutFile | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.optout = optout
        self.forgotten: ForgottenList | None = None  # set by Service.add_runner
        self.context = context
        self.chain = chain
        self.pipeline = pipeline
        self.state = state
        self.mode = mode
        self.ack = Acknowledger()
        self.fetched_as = "fetched"  # see WorkItem.fetched_as
        self.log = context.log
        self.task: asyncio.Task[None] | None = None
        self.passes = 0
        self.failed_passes = 0  # passes that raised or logged an error of this source
        self._quiet_since: float | None = None  # when the current run of idle passes began
        self._idle_passes = 0
        self.last_success: float | None = None
        # The source reads files an erasure rewrites (the rewrite stage reads `__pairs` by
        # offset): `forget` suspends it first, and it starts again from the moved cursors.
        self.follows_erasure = False
        self._stopping = False
        # A pass that met a full disk (a dataset download): `disk_full` once, passes on a backoff.
        self.disk = DiskWait(self.log)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"source-{self.config.name}")

    def suspend(self) -> None:
        """End the current pass early and the runner with it; its batches still get written.

        Only asks: `suspended` says when it is done (the task ends once the writer has
        acknowledged everything the runner submitted). Never waits, so the writer may call it.
        """
        if self.task is not None and not self.task.done():
            self.context.stop.set()

    @property
    def suspended(self) -> bool:
        return self.task is None or self.task.done()

    def resume(self) -> None:
        """Start again after `suspend`, from the cursors saved in the state (not from memory:
        what suspended it may have moved them). Not once the service stops it for good."""
        if self._stopping or not self.suspended:
            return
        self.context.stop = asyncio.Event()
        self.start()

    async def _run(self) -> None:
        prefix = f"{self.config.name}\x1f"
        try:
            saved = await asyncio.to_thread(lambda: list(self.state.scan(CURSOR_NAMESPACE, prefix)))
        except Exception as error:  # without its cursors the source must not fetch at all
            self.log.exception("source_cursor_read_failed", error=str(error))
            return
        cursors = {key.removeprefix(prefix): value for key, value in saved}
        self.log.info("source_started", streams=len(cursors))
        stop = self.context.stop
        while not stop.is_set():
            errors = ERRORS.counts[self.config.name]
            fetched_before = self.ack.counts["fetched"]
            failed = False
            pause = self.config.interval
            try:
                async for batch in self.source.fetch(cursors):
                    cursors.update(batch.cursors)
                    await self.pipeline.submit(
                        WorkItem(self.config.name, batch, self._process, self.ack, self.fetched_as)
                    )
                    if stop.is_set():
                        break
                self.last_success = time.time()
            except asyncio.CancelledError:
                raise
            except SourceStopping as stopping:  # the drain woke a retry's backoff: no failure
                self.log.info("source_pass_stopped", reason=str(stopping))
            except Exception as error:  # one source failing must not stop the others
                full = as_disk_full(error, self.context.raw_dir)
                if full is None:
                    self.log.exception("source_pass_failed", error=str(error))
                else:  # the next pass tries again from the same cursors, once there is room
                    pause = max(pause, self.disk.failed(full))
                failed = True
            if not failed:
                self.disk.succeeded()
            self.passes += 1
            if failed or ERRORS.counts[self.config.name] > errors:
                self.failed_passes += 1
            await self.pipeline.durable(self.ack)
            self._pass_done(idle=not failed and self.ack.counts["fetched"] == fetched_before)
            if self.mode == "once":
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    def _process(self, batch: SourceBatch) -> ProcessedBatch | RenderedBatch:
        records, opted_out = batch.records, list[Drop]()
        if self.optout is not None:
            records, opted_out = self.optout.current().split(records)
        if self.forgotten is not None:  # what `forget` removed, fetched again
            records, forgotten = self.forgotten.split(records)
            opted_out += forgotten
        processed = self.chain.run(records)
        processed.drops.extend(opted_out)
        return processed

    def _pass_done(self, *, idle: bool) -> None:
        summary = self.summary()
        if idle and self._quiet_since is not None and self.mode != "once":
            self._idle_passes += 1
            self.log.debug("source_pass_done", passes=self.passes, **summary)
            quiet = time.monotonic() - self._quiet_since
            if quiet >= IDLE_SUMMARY_SECONDS:
                self.log.info(
                    "source_idle", idle_passes=self._idle_passes, seconds=round(quiet), **summary
                )
                self._quiet_since, self._idle_passes = time.monotonic(), 0
            return
        self.log.info("source_pass_done", passes=self.passes, **summary)
        self._quiet_since = time.monotonic() if idle else None
        self._idle_passes = 0

    def summary(self) -> dict[str, int | dict[str, int]]:
        counts = self.ack.counts
        drops = {k.removeprefix("drop:"): v for k, v in counts.items() if k.startswith("drop:")}
        return {
            "fetched": counts["fetched"],
            "written": counts["written"],
            "pairs": counts["pairs"],
            "dropped": sum(drops.values()),
            "drop_reasons": drops,
        }

    async def stop(self, grace: float) -> None:
        """Stop fetching, then wait until everything already fetched is durable."""
        self._stopping = True
        self.context.stop.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), grace)
            except TimeoutError:
                # Stuck inside a request: cancelling loses nothing, its batch was never acked.
                self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.pipeline.durable(self.ack)
        await self.source.close()

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    def snapshot(self) -> SourceSnapshot:
        report = Report()
        if isinstance(self.source, Reporting):
            # A broken report must not break a scrape, the watchdog or the progress bar.
            with contextlib.suppress(Exception):
                report = self.source.report()
        return SourceSnapshot(
            name=self.config.name,
            running=self.task is not None and not self.task.done(),
            passes=self.passes,
            last_success=self.last_success,
            outstanding=self.ack.outstanding,
            counts=dict(self.ack.counts),
            report=report,
        )


def build_components(config: Config, mode: Mode) -> list[Component]:
    """What runs beside the sources, in the order they are prepared and started (and stopped
    in reverse): each is there only when the config or the environment asks for it."""
    candidates: list[Component | None] = [
        ProgressBar.for_terminal(mode),  # `once` on a terminal
        SystemdNotifier.from_environment(),  # when NOTIFY_SOCKET is set
        MetricsServer.from_config(config.metrics),  # [metrics] enabled
        RewriteComponent.from_config(config, mode),  # [rewrite] enabled
        UploadComponent.from_config(config, mode),  # [upload] enabled
        RawRetention.from_config(config),  # [raw] retention set
    ]
    return [component for component in candidates if component is not None]


class Service:
    def __init__(
        self,
        config_path: str | Path,
        mode: Mode,
        config: Config | None = None,
        resolve: Callable[[Config], Config] | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.mode = mode
        # How the file's config becomes the one the service runs (`--sandbox` aims it at the
        # emulators): at start and at every reload, so a reload compares like with like.
        self.resolve: Callable[[Config], Config] = resolve or (lambda config: config)
        self.config = config or self.resolve(load_config(self.config_path))
        self.layout = self.config.layout()
        self.log: Logger = get_logger()
        self.runners: dict[str, SourceRunner] = {}
        self._stop = asyncio.Event()
        self._writer_failed = asyncio.Event()
        self._signals = 0
        self._reloading = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self.components: list[Component] = build_components(self.config, mode)
        self.sinks: list[Sink] = []
        # Which sources run here: every one, until `_run` opens the placement the state calls
        # for (collector/scaleout/open.py: with Redis, those whose lease this instance holds).
        self.placement: Placement = LocalPlacement(self._launch_source, self._halt_source)
        self.optout: OptOutFile | None = None
        self.forgotten: ForgottenList | None = None
        # The processor chains' worker processes (service.worker_mode); None: threads.
        self.pool: ProcessPool | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> int:
        # One owner of the data folder's files at a time (`forget` rewrites them in place).
        apply_file_modes(self.config.service.file_mode)
        lock = DataDirLock(self.layout.data_dir)
        try:
            lock.acquire()
        except DataDirBusy as error:
            self.log.error(
                "data_dir_busy", path=str(self.layout.data_dir), pid=error.owner, exit_code=3
            )
            return 3
        try:
            return await self._run()
        finally:
            if self.pool is not None:  # closed by the drain; killed if it did not get there
                self.pool.kill()
            lock.release()

    async def _run(self) -> int:
        service = self.config.service
        # Before anything is written: owner-only files unless service.file_mode opens them.
        apply_file_modes(service.file_mode)
        too_open = data_dir_warning(self.layout.data_dir, service.file_mode)
        if too_open is not None:
            self.log.warning("data_dir_readable_by_others", **too_open)
        if self.config.privacy.optout:
            path = Path(self.config.privacy.optout)
            try:
                self.optout = OptOutFile(path, self.log)
            except (OSError, UnicodeDecodeError) as error:
                # Collecting without the list would take in people who asked to be left out.
                self.log.error("optout_unreadable", path=str(path), error=str(error))
                return 2
            self.log.info("optout_loaded", path=str(path), entries=len(self.optout.list))
        self.instance = instance_name(self.config)
        self.state = await asyncio.to_thread(open_state_store, self.config.state, self.instance)
        if self.config.state.backend == "redis":
            from collector.state.redis import RedisStateStore

            assert isinstance(self.state, RedisStateStore)
            for event, fields in await asyncio.to_thread(self.state.server_risks):
                self.log.warning(event, **fields)
        # What `forget` removed stays out: the same record, or text holding a forgotten string.
        self.forgotten = await asyncio.to_thread(ForgottenList.load, self.state)
        if len(self.forgotten):
            self.log.info("forgotten_loaded", entries=len(self.forgotten))
        self.sinks.append(FormattedSink(self.layout.data_dir, self.state, self.log))
        for component in self.components:
            await component.prepare(self)
        for sink in self.sinks:
            await sink.open()
        if resolve_mode(service.worker_mode) == "process":
            started = time.monotonic()
            self.pool = ProcessPool(service.workers, self.log)
            pids = await asyncio.to_thread(self.pool.warm)
            seconds = round(time.monotonic() - started, 3)
            self.log.info("worker_pool_started", pids=pids, seconds=seconds)
        self.pipeline = Pipeline.from_config(
            self.config,
            self.state,
            self.sinks,
            self.log,
            in_flight=self.pool.in_flight if self.pool else None,
        )
        self.pipeline.writer.on_checkpoint.append(lambda: self.emit("checkpoint"))
        # `forget` while the service runs: served between two checkpoints, in this process.
        assert self.forgotten is not None
        requests = RequestServer(
            self.config, self.layout.data_dir, self.state, self.forgotten, self.log
        )
        if requests.serves_in(self.mode):
            self.pipeline.writer.between_checkpoints.append(
                lambda: requests.between_checkpoints(
                    self.pipeline,
                    self.sinks,
                    self._paused,
                    [r for r in self.runners.values() if r.follows_erasure],
                )
            )
        self.pipeline.on_failure.append(self._pipeline_failed)
        self._install_signals()
        self.placement = open_placement(
            self.config,
            instance=self.instance,
            log=self.log,
            launch=self._launch_source,
            halt=self._halt_source,
            mode=self.mode,
            on_fatal=lambda reason: self.request_stop(),
            state=self.state,
        )
        for source in self.config.sources:
            if source.enabled:
                self._start_source(source)
        try:
            await self.placement.start()
        except REDIS_ERRORS as error:  # Redis went away during start-up: nothing written
            self.pipeline.abort()
            await self.placement.close()
            await asyncio.to_thread(self.state.close)
            return redis_unavailable(self.log, "leases", error)
        self.log.info(
            "service_started", mode=self.mode, sources=sorted(self.runners), pid=os.getpid()
        )
        for component in self.components:
            await component.start(self)
        # What is built by now (name lists, compiled rules, chains) lives as long as the
        # process: out of the collector's full passes, which would scan it again and again.
        gc.collect()
        gc.freeze()
        self.emit("ready", sources=sorted(self.runners))
        if self.mode == "once":
            await self._until_sources_finish()
        else:
            await self._stop.wait()
        return await self._shutdown()

    async def _until_sources_finish(self) -> None:
        while not self._stop.is_set():
            tasks = [r.task for r in self.runners.values() if r.task is not None]
            if all(task.done() for task in tasks):
                return
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()

    async def _shutdown(self) -> int:
        timeout = self.config.service.shutdown_timeout
        self.log.info("service_draining", timeout=timeout)
        self.emit("stopping")
        started = time.monotonic()
        try:
            async with self._reloading:  # a reload in progress finishes first; none starts now
                await self._drain_unless_failed(timeout)
        except TimeoutError:
            # Still waiting for disk space (collector/diskfull.py): a code of its own. What
            # was not committed is cut back at the next start and fetched again.
            full = self.pipeline.writer.disk.full
            code = 1 if full is None else EXIT_DISK_FULL
            where = {} if full is None else {"disk_full": full.filename}
            self.log.error("service_drain_timeout", timeout=timeout, exit_code=code, **where)
            self.pipeline.abort()
            await self._abandon_sources("service_drain_timeout")
            return code
        except PipelineFailed as error:
            # Nothing uncommitted is lost: the next start cuts back and fetches it again.
            cause = error.__cause__ or error
            code = EXIT_LEASE_LOST if isinstance(cause, REDIS_ERRORS) else 1
            self.log.error("service_failed", error=str(cause), exit_code=code)
            self.pipeline.abort()
            await self._abandon_sources("writer_failed")
            return code
        finally:
            await asyncio.to_thread(self.state.close)
        self.log.info("service_stopped", seconds=round(time.monotonic() - started, 3))
        return self._once_outcome() if self.mode == "once" else 0

    def _once_outcome(self) -> int:
        """The exit code of `once`, and the summary line that says why."""
        names = [s.name for s in self.config.sources if s.enabled and s.name in self.runners]
        failed = [n for n in names if self.runners[n].failed_passes]
        fetched = sum(self.runners[n].ack.counts["fetched"] for n in names)
        if failed and len(failed) == len(names) and fetched == 0:
            outcome, code = "nothing_fetched", EXIT_NOTHING_FETCHED
        elif failed:
            outcome, code = "some_sources_failed", EXIT_SOME_SOURCES_FAILED
        else:
            outcome, code = "ok", 0
        log = self.log.error if code else self.log.info
        ok = [n for n in names if n not in failed]
        log("once_finished", outcome=outcome, exit_code=code, failed=failed, ok=ok, fetched=fetched)
        return code

    async def _drain_unless_failed(self, timeout: float) -> None:
        """The drain, unless the writer dies first: then nothing more can be committed, and
        waiting for the runners to drain would only keep their sources from the others."""
        if self.pipeline.failed is not None:
            raise PipelineFailed(str(self.pipeline.failed)) from self.pipeline.failed
        drain = asyncio.ensure_future(asyncio.wait_for(self._drain(timeout), timeout))
        failed = asyncio.ensure_future(self._writer_failed.wait())
        try:
            await asyncio.wait([drain, failed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
        if not drain.done():
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
            error = self.pipeline.failed
            raise PipelineFailed(str(error)) from error
        drain.result()

    def _pipeline_failed(self, error: BaseException) -> None:
        """The writer (or a worker) died: stop, and let the sources go at once."""
        self._writer_failed.set()
        self.request_stop()

    async def _abandon_sources(self, reason: str) -> None:
        await self.placement.abandon(reason)
        await self.placement.close()

    async def _drain(self, timeout: float) -> None:
        # One budget for the whole drain: what a step does not use, the next may.
        deadline = time.monotonic() + timeout
        self.pipeline.writer.hurry()  # space that returns now must be seen before the deadline
        await self.placement.freeze()
        runners = list(self.runners.values())
        await asyncio.gather(*(runner.stop(timeout / 2) for runner in runners))
        await self.pipeline.drain()
        if self.pool is not None:  # every batch is processed: the workers have nothing left
            await asyncio.to_thread(self.pool.close)
        for runner in runners:
            runner.log.info("source_summary", passes=runner.passes, **runner.summary())
        for sink in self.sinks:
            await sink.close()
        for component in reversed(self.components):
            # A second is kept back so the leases below are still released in time.
            remaining = max(0.1, deadline - time.monotonic() - 1.0)
            try:
                await asyncio.wait_for(component.stop(), remaining)
            except TimeoutError:
                self.log.error("component_stop_timeout", component=component.name)
        await self.placement.close()  # after the last checkpoint: others continue from it

    @contextlib.asynccontextmanager
    async def _paused(self) -> AsyncIterator[None]:
        """Every component paused (`Component.paused`), for a change under their files."""
        async with contextlib.AsyncExitStack() as stack:
            for component in self.components:
                await stack.enter_async_context(component.paused())
            yield

    def request_stop(self) -> None:
        self._stop.set()

    # --- sources ---------------------------------------------------------------------------

    def _start_source(self, config: AnySourceConfig) -> None:
        self.placement.want(config)  # it launches the runner once the source is placed here

    async def _stop_source(self, name: str) -> None:
        """Stop a source that is no longer configured (as it was): drained, lease released."""
        await self.placement.unwant(name)

    async def _halt_source(self, name: str) -> None:
        runner = self.runners.pop(name, None)
        if runner is not None:
            await runner.stop(self.config.service.shutdown_timeout / 2)

    def _launch_source(self, config: AnySourceConfig) -> None:
        context = SourceContext(
            data_dir=self.layout.data_dir,
            log=self.log.bind(source=config.name),
            shared_limits=self.placement.shared_limits,
        )
        source = build_source(config, context)
        chain: Chain
        if self.pool is not None:
            chain = self.pool.chain(config.recipe, self.config.processing)
        else:
            from processors.chain import ProcessorChain  # in this process only in thread mode

            chain = ProcessorChain(config.recipe, self.config.processing)
        self.add_runner(config, source, context, chain, optout=self.optout)

    def add_runner(
        self,
        config: AnySourceConfig,
        source: Source,
        context: SourceContext,
        chain: Chain,
        *,
        fetched_as: str = "fetched",
        optout: OptOutFile | None = None,
        follows_erasure: bool = False,
    ) -> None:
        """Run a source through the pipeline; components use it for internal sources."""
        runner = SourceRunner(
            config, source, context, chain, self.pipeline, self.state, self.mode, optout
        )
        runner.fetched_as = fetched_as
        runner.follows_erasure = follows_erasure
        runner.forgotten = self.forgotten  # the live list: `forget` may add to it
        self.runners[config.name] = runner
        runner.start()

    # --- the Host the components see (collector/components.py) ----------------------------

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def sources_finished(self) -> asyncio.Future[Any]:
        tasks = [runner.task for runner in self.runners.values() if runner.task is not None]
        return asyncio.gather(*tasks, return_exceptions=True)

    def snapshot(self) -> ServiceSnapshot | None:
        pipeline: Pipeline | None = getattr(self, "pipeline", None)
        if pipeline is None:  # still starting
            return None
        writer = pipeline.writer
        return ServiceSnapshot(
            work=QueueFill(pipeline.work.qsize(), pipeline.work.maxsize),
            ordered=QueueFill(pipeline.ordered.qsize(), pipeline.ordered.maxsize),
            checkpoints=writer.checkpoints,
            last_progress=max(pipeline.last_progress, writer.disk.last_try),
            last_checkpoint=writer.last_checkpoint,
            sources=[runner.snapshot() for _, runner in sorted(self.runners.items())],
            components=self._component_figures(),
            placement=self.placement.placement_view(),
        )

    def _component_figures(self) -> dict[str, dict[str, float]]:
        figures: dict[str, dict[str, float]] = {}
        for component in self.components:
            try:
                values = component.telemetry()
            except Exception:  # a broken hook must not break a scrape
                continue
            if values:
                figures[component.name] = dict(values)
        return figures

    def emit(self, event: Event, **fields: Any) -> None:
        for component in self.components:
            try:
                component.on_event(event, fields)
            except Exception:  # a broken listener must not break the service
                self.log.exception(
                    "component_event_failed", component=component.name, lifecycle=event
                )

    async def reload(self) -> None:
        """Re-read the config, resolved as at start; apply what differs (collector/reload.py)."""
        async with self._reloading:
            if self._stop.is_set():
                return
            self.emit("reloading")
            try:
                from processors.chain import ProcessorChain  # built to refuse a bad config

                new = self.resolve(await asyncio.to_thread(load_config, self.config_path))
                for source in new.sources:
                    if source.enabled:
                        build_source(source, SourceContext(self.layout.data_dir, self.log))
                        ProcessorChain(source.recipe, new.processing)
                diff = diff_configs(self.config, new)
                optout = self.optout
                if diff.applies("privacy"):
                    optout = await asyncio.to_thread(self._open_optout, new)
            except (ConfigError, ValueError, OSError, UnicodeDecodeError) as error:
                errors = error.errors if isinstance(error, ConfigError) else [str(error)]
                self.log.error("config_reload_failed", path=str(self.config_path), errors=errors)
                self.emit("reload_failed", errors=errors)
                return
            await asyncio.gather(*(self._stop_source(n) for n in diff.removed + diff.changed))
            self.config = diff.config
            if diff.applies("privacy"):
                self.optout = optout
                for name, runner in self.runners.items():
                    if name in {s.name for s in self.config.sources}:
                        runner.optout = optout
            for section in COMPONENT_SECTIONS:
                if diff.applies(section):
                    await self._rebuild_component(section)
            fresh = {s.name: s for s in self.config.sources if s.enabled}
            for name in diff.added + diff.changed:
                self._start_source(fresh[name])
            self.log.info("config_reloaded", **diff.fields())
            if diff.applies("service"):  # after the report, which the old settings show
                service = self.config.service
                configure_logging(service.log_format, service.log_level)
            self.emit("reloaded", added=diff.added, removed=diff.removed, changed=diff.changed)

    def _open_optout(self, config: Config) -> OptOutFile | None:
        if not config.privacy.optout:
            return None
        return OptOutFile(Path(config.privacy.optout), self.log)

    async def _rebuild_component(self, name: str) -> None:
        """Stop the component serving `name` ("metrics", "raw") and start the one the config
        now asks for, in its place; one that cannot start is logged, the service goes on."""
        new: Component | None
        if name == "metrics":
            key, new = MetricsServer.name, MetricsServer.from_config(self.config.metrics)
        else:
            key, new = RawRetention.name, RawRetention.from_config(self.config)
        index = next((i for i, c in enumerate(self.components) if c.name == key), None)
        if index is not None:
            await self.components.pop(index).stop()
        if new is None:
            self.log.info("component_stopped", component=key)
            return
        try:
            await new.prepare(self)
            await new.start(self)
        except (ConfigError, OSError) as error:
            errors = error.errors if isinstance(error, ConfigError) else [str(error)]
            self.log.error("component_reload_failed", component=key, errors=errors)
            return
        self.components.insert(len(self.components) if index is None else index, new)
        new.on_event("ready", {})
        self.log.info("component_restarted", component=key)

    # --- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            # Files are safe: anything after the last checkpoint is cut back on the next start.
            self.log.warning("service_killed", signal=sig.name)
            os._exit(128 + sig.value)
        self.log.info("service_stop_requested", signal=sig.name)
        self._stop.set()

    def _on_reload_signal(self) -> None:
        if self._stop.is_set():
            self.log.warning("config_reload_ignored", reason="the service is stopping")
            return
        self.log.info("config_reload_requested", path=str(self.config_path))
        task = asyncio.ensure_future(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.log.error("config_reload_failed", errors=[f"{type(error).__name__}: {error}"])
            self.emit("reload_failed", errors=[str(error)])

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for runner in self.runners.values():
            total.update(runner.ack.counts)
        return total


def run_service(
    config_path: str | Path, mode: Mode, resolve: Callable[[Config], Config] | None = None
) -> int:
    """Load the config, set up logging and run the service to the end; the exit code.
    `resolve` applies the command line's overrides (at start and at every reload)."""
    resolve = resolve or (lambda config: config)
    config = resolve(load_config(config_path))
    configure_logging(config.service.log_format, config.service.log_level)

    async def main() -> int:
        try:
            return await Service(config_path, mode, config, resolve=resolve).run()
        except redis.RedisError as error:  # at start (later ones are handled where they occur)
            return redis_unavailable(get_logger(), "start", error)
        except ConfigError as error:
            if error.path == "state.url":  # Redis did not answer (collector/state/redis.py)
                return redis_unavailable(get_logger(), "connect", error)
            get_logger().error("config_error", path=error.path, errors=error.errors, exit_code=2)
            raise

    return asyncio.run(main())


def redis_unavailable(log: Logger, phase: str, error: BaseException) -> int:
    """Redis could not be reached while the service started: a log event, exit 69."""
    log.error(
        "redis_unavailable",
        phase=phase,
        error=f"{type(error).__name__}: {error}",
        exit_code=EXIT_REDIS_UNAVAILABLE,
        hint="check state.url and that Redis runs; systemd restarts the service",
    )
    return EXIT_REDIS_UNAVAILABLE
