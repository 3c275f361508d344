"""The streaming pipeline: bounded queues, processor workers and the ordered writer.

    source runners --(work queue)--> workers (processes or threads) ----+
          |                                                          |  futures
          +------------(ordered queue: submission order)------> writer (dedupe, split, sinks)
                                                                     |
                            ack: cursors saved with the checkpoint <-+

A runner puts each batch on both queues; workers complete the batch's future out of order, and
the writer takes futures in submission order, so each source's batches are written in the order
they were fetched and a cursor never runs ahead of the lines before it. Both queues are bounded:
a slow writer stops the sources (backpressure) instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import attrgetter

from collector.config import Config
from collector.diskfull import DiskWait, as_disk_full
from collector.logging import Logger
from collector.sinks.base import Sink
from collector.sinks.lines import OutputLine, RenderedBatch, render
from collector.sources.base import SourceBatch
from collector.state import StateStore
from processors.config import SplitConfig
from processors.dedupe import DUPLICATE, Deduplicator
from processors.grounding import COUNTER_PREFIX as GROUNDING_PREFIX
from processors.records import Drop, ProcessedBatch
from processors.split import assign_split

# What the writer counts of a record, and of a line (`Writer._write`).
_ORIGIN = attrgetter("source", "dataset")
_TALLY = attrgetter("source", "dataset", "kind", "license", "grounding")

CURSOR_NAMESPACE = "cursor"


def cursor_key(source: str, stream: str) -> str:
    return f"{source}\x1f{stream}"


class Acknowledger:
    """What a source runner learns back from the writer: durable batches and their counts."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.counts: Counter[str] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()

    def submitted(self) -> None:
        self.outstanding += 1
        self._idle.clear()

    def acknowledged(self, counts: Counter[str]) -> None:
        self.outstanding -= 1
        self.counts.update(counts)
        if self.outstanding == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass
class WorkItem:
    source: str
    batch: SourceBatch
    # A batch processed here or in a worker process, which renders it too (`RenderedBatch`).
    run: Callable[[SourceBatch], ProcessedBatch | RenderedBatch]
    ack: Acknowledger
    # What reading a record counts as: "fetched" for configured sources; internal sources
    # (the rewrite stage re-reading pairs) count under their own name, so nothing counts twice.
    fetched_as: str = "fetched"
    future: asyncio.Future[ProcessedBatch | RenderedBatch] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PipelineFailed(Exception):
    """The writer or a worker died: what was not committed is fetched again after a restart."""


class Pipeline:
    """Owns the queues, the worker tasks and the writer task."""

    def __init__(
        self,
        *,
        state: StateStore,
        sinks: list[Sink],
        deduplicator: Deduplicator,
        split: SplitConfig,
        workers: int,
        queue_size: int,
        flush_interval: float,
        flush_bytes: int,
        log: Logger,
    ) -> None:
        # `ordered` is the bound: an item enters `work` only once it has a place in `ordered`,
        # so `work` never holds more than `queue_size` items; its own bound says so (and is
        # what /metrics reports), with a place more per worker for the drain's stop markers.
        self.work: asyncio.Queue[WorkItem | None] = asyncio.Queue(queue_size + workers)
        self.ordered: asyncio.Queue[WorkItem | None] = asyncio.Queue(queue_size)
        self.writer = Writer(
            state=state,
            sinks=sinks,
            deduplicator=deduplicator,
            split=split,
            flush_interval=flush_interval,
            flush_bytes=flush_bytes,
            log=log,
        )
        self.log = log
        self._workers = [
            asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(workers)
        ]
        self._writer = asyncio.create_task(self.writer.run(self.ordered), name="writer")
        self.last_progress = time.monotonic()
        self.submitted = 0  # batches put in `ordered` so far (the writer counts them out)
        # A writer or worker that dies would stall everything in silence: it stops the service.
        self.failed: BaseException | None = None
        self.on_failure: list[Callable[[BaseException], None]] = []
        for task in (*self._workers, self._writer):
            task.add_done_callback(self._task_done)

    @classmethod
    def from_config(
        cls,
        config: Config,
        state: StateStore,
        sinks: list[Sink],
        log: Logger,
        *,
        in_flight: int | None = None,
    ) -> Pipeline:
        """The pipeline the config asks for (dedupe, split, workers, queue, flushes): the
        daemon's, and the `rewrite` command's, which must write exactly as the daemon does.
        `in_flight`: how many batches are processed at once (default `service.workers`)."""
        service = config.service
        return cls(
            state=state,
            sinks=sinks,
            deduplicator=Deduplicator(config.processing.dedupe, state),
            split=config.processing.split,
            workers=in_flight or service.workers,
            queue_size=service.queue_size,
            flush_interval=service.flush_interval,
            flush_bytes=service.flush_bytes,
            log=log,
        )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        self.failed = self.failed or error
        self.log.error(
            "pipeline_task_failed",
            task=task.get_name(),
            error=f"{type(error).__name__}: {error}",
            exc_info=error,
        )
        for callback in self.on_failure:
            callback(error)

    @property
    def written(self) -> int:
        """Batches the writer has written, out of `submitted`."""
        return self.writer.written

    async def durable(self, ack: Acknowledger) -> None:
        """Until everything submitted with `ack` is durable, the writer told to checkpoint as
        soon as it has written it rather than at its next interval."""
        if ack.outstanding:
            self.writer.checkpoint_soon()
        await ack.wait_idle()

    async def submit(self, item: WorkItem) -> None:
        # The only wait is for a place in `ordered`; a runner cancelled there has submitted
        # nothing, and once the item is in, nothing can separate the two queues or the ack.
        await self.ordered.put(item)
        self.submitted += 1
        item.ack.submitted()
        self.work.put_nowait(item)

    async def _work(self) -> None:
        while (item := await self.work.get()) is not None:
            try:
                result = await asyncio.to_thread(item.run, item.batch)
            except PipelineFailed:  # a worker process that keeps dying (collector/workers.py)
                raise
            except Exception as error:  # a processor bug must not stop the service
                self.log.exception("processor_failed", source=item.source, error=str(error))
                result = ProcessedBatch(
                    examples=[],
                    drops=[
                        Drop(r.source, r.dataset, r.id, "processor_error", type(error).__name__)
                        for r in item.batch.records
                    ],
                )
            if not item.future.done():
                item.future.set_result(result)
            self.last_progress = time.monotonic()

    async def drain(self) -> None:
        """Finish everything submitted, write it, commit the last checkpoint."""
        if self.failed is not None:
            raise PipelineFailed(str(self.failed)) from self.failed
        for _ in self._workers:
            self.work.put_nowait(None)
        await asyncio.gather(*self._workers)
        await self.ordered.put(None)
        try:
            await self._writer
        except Exception as error:
            raise PipelineFailed(str(error)) from error

    def abort(self) -> None:
        for task in (*self._workers, self._writer):
            task.cancel()


class Writer:
    """Writes processed batches in submission order and commits checkpoints."""

    def __init__(
        self,
        *,
        state: StateStore,
        sinks: list[Sink],
        deduplicator: Deduplicator,
        split: SplitConfig,
        flush_interval: float,
        flush_bytes: int,
        log: Logger,
    ) -> None:
        self.state = state
        self.sinks = sinks
        self.deduplicator = deduplicator
        self.split = split
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes
        self.log = log
        self._cursors: dict[str, str] = {}
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._acks: list[tuple[Acknowledger, Counter[str]]] = []
        self.checkpoints = 0
        self.written = 0  # batches taken from `ordered` and written to the sinks
        self.last_checkpoint = time.monotonic()
        # Called after every committed checkpoint (the service forwards it to its components).
        self.on_checkpoint: list[Callable[[], None]] = []
        # Waits for space on a full disk (collector/diskfull.py); `hurry` shortens the waits.
        self.disk = DiskWait(log)
        self._hurried = asyncio.Event()
        self._wanted = asyncio.Event()  # see `checkpoint_soon`
        self._flushed: dict[str, dict[str, str]] = {}  # sinks' puts not committed yet
        self._unconfirmed: list[Sink] = []  # sinks whose `committed` has not gone through
        # Awaited after each checkpoint the writer makes, with nothing buffered in the sinks
        # and no batch being written: the writer waits for them (`forget` served in-process).
        self.between_checkpoints: list[Callable[[], Awaitable[None]]] = []

    async def run(self, ordered: asyncio.Queue[WorkItem | None]) -> None:
        deadline = time.monotonic() + self.flush_interval
        while True:
            try:
                item = await self._next(ordered, max(0.0, deadline - time.monotonic()))
            except TimeoutError:  # the flush deadline, or a checkpoint wanted with nothing queued
                self._wanted.clear()  # nothing queued: this checkpoint takes all that was wanted
                await self.checkpoint()
                await self._between_checkpoints()
                deadline = time.monotonic() + self.flush_interval
                continue
            if item is None:
                break
            processed = await item.future
            # Dedupe look-ups (a Redis round trip, an SQLite lock), MinHash and JSON encoding
            # are blocking work; the writer is serial, so a thread keeps the order.
            await asyncio.to_thread(self._write, item, processed)
            self.written += 1
            pending = sum(sink.pending_bytes for sink in self.sinks)
            wanted = self._wanted.is_set() and ordered.empty()
            if wanted or time.monotonic() >= deadline or pending >= self.flush_bytes:
                if ordered.empty():  # else what a runner waits for may still be queued
                    self._wanted.clear()
                await self.checkpoint()
                await self._between_checkpoints()
                deadline = time.monotonic() + self.flush_interval
        await self.checkpoint()

    async def _next(
        self, ordered: asyncio.Queue[WorkItem | None], timeout: float
    ) -> WorkItem | None:
        """The next item; TimeoutError when `timeout` passes first, or when a checkpoint is
        wanted (`checkpoint_soon`) and nothing is queued."""
        if not ordered.empty():
            return ordered.get_nowait()
        if self._wanted.is_set():
            raise TimeoutError
        get = asyncio.ensure_future(ordered.get())
        wanted = asyncio.ensure_future(self._wanted.wait())
        try:
            await asyncio.wait((get, wanted), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the writer is cancelled (an abort): no task left behind
            wanted.cancel()
            if not get.done():
                get.cancel()  # a cancelled `Queue.get` takes nothing from the queue
        if get.done() and not get.cancelled():
            return get.result()
        raise TimeoutError

    def checkpoint_soon(self) -> None:
        """A runner waits for what it submitted to be durable (its pass is over): checkpoint
        as soon as nothing more is queued, not at the next `flush_interval`. Without this a
        pass (and `once`) ends up to `flush_interval` later than its last batch is written."""
        self._wanted.set()

    async def _between_checkpoints(self) -> None:
        for callback in self.between_checkpoints:
            await callback()

    def _write(self, item: WorkItem, processed: ProcessedBatch | RenderedBatch) -> None:
        counts: Counter[str] = Counter()
        batch = item.batch
        # Counted per (source, dataset) first (a batch is mostly of one): one update of
        # `_counts` per pair rather than per record.
        fetched = Counter(map(_ORIGIN, batch.records))
        for (source, dataset), n in fetched.items():
            self._counts[(source, dataset, item.fetched_as)] += n
        counts[item.fetched_as] += len(batch.records)
        drops = [*batch.drops, *processed.drops]
        lines: list[OutputLine]
        if isinstance(processed, RenderedBatch):  # rendered in a worker (no near dedupe)
            keys = [line.dedupe_key for line in processed.lines]
            lines, seen = self.deduplicator.first_seen(processed.lines, keys)
            drops += [Drop(s.source, s.dataset, s.record_id, DUPLICATE) for s in seen]
        else:
            kept, duplicates = self.deduplicator.filter(processed.examples)
            drops += [Drop(e.source, e.dataset, e.record_id, reason) for e, reason in duplicates]
            for example in kept:  # its group is final only now: near dedupe may have moved it
                example.split = assign_split(example.group_key, self.split)
            lines = render(kept)
        for drop in drops:
            self._counts[(drop.source, drop.dataset, f"drop:{drop.reason}")] += 1
            counts[f"drop:{drop.reason}"] += 1
            for sink in self.sinks:
                note = getattr(sink, "note_drops", None)
                if note is not None:
                    note(drop.source, drop.dataset)
        # Tallied per (source, dataset, kind, licence, grounding) first, a few per batch (in C:
        # `Counter` of a `map`), then added to the counters: one update each, not several a line.
        for (source, dataset, kind, licence, grounding), n in Counter(map(_TALLY, lines)).items():
            what = "pairs" if kind == "pairs" else "written"
            self._counts[(source, dataset, what)] += n
            counts[what] += n
            # `license:{spdx}`: the licences the card lists per source
            if licence and what == "written":
                self._counts[(source, dataset, f"license:{licence}")] += n
            if grounding:  # "masked" or "kept" (a drop is counted with the drops)
                self._counts[(source, dataset, f"{GROUNDING_PREFIX}{grounding}")] += n
        for line in lines:
            if line.residual:  # most lines: nothing left for the anonymizer's last check
                for kind, n in line.residual.items():
                    self._counts[(line.source, line.dataset, f"residual:{kind}")] += n
        for sink in self.sinks:
            sink.write(lines)
        for stream, cursor in batch.cursors.items():
            self._cursors[cursor_key(item.source, stream)] = cursor
        self._acks.append((item.ack, counts))

    async def checkpoint(self) -> None:
        """Make every write durable, then save cursors, dedupe keys and counts in one commit.

        A full disk does not stop the writer: it waits for space (`_until_written`) with
        everything still buffered and tries again; the sources wait meanwhile, held by the
        bounded queues. Each step is safe to repeat: a sink's flush is all or nothing, and a
        commit that failed was rolled back."""
        if not self._acks and not any(sink.pending_bytes for sink in self.sinks):
            return
        await self._until_written(self._commit)
        self._unconfirmed = list(self.sinks)
        await self._until_written(self._confirm)
        acks, self._acks = self._acks, []
        for ack, counts in acks:
            ack.acknowledged(counts)
        for callback in self.on_checkpoint:
            callback()

    async def _commit(self) -> None:
        for sink in self.sinks:
            # Kept until committed: a sink that flushed before another met a full disk has
            # nothing left to flush on the next try, but its lengths must still be saved.
            for namespace, items in (await sink.flush()).items():
                self._flushed.setdefault(namespace, {}).update(items)
        puts = {namespace: dict(items) for namespace, items in self._flushed.items()}
        puts[CURSOR_NAMESPACE] = self._cursors
        for namespace, items in self.deduplicator.take_pending().items():
            puts.setdefault(namespace, {}).update(items)
        await asyncio.to_thread(self.state.commit, puts, dict(self._counts))
        self._flushed = {}
        self.deduplicator.committed()
        self._cursors, self._counts = {}, Counter()
        self.checkpoints += 1
        self.last_checkpoint = time.monotonic()

    async def _confirm(self) -> None:
        """Tell each sink its flush is committed (it writes its reports, closes chunks); a
        sink that met a full disk there is told again, and only it."""
        while self._unconfirmed:
            await self._unconfirmed[0].committed()
            self._unconfirmed.pop(0)

    async def _until_written(self, step: Callable[[], Awaitable[None]]) -> None:
        """`step`, again and again while the disk is full, on the backoff of `self.disk`."""
        while True:
            try:
                await step()
            except Exception as error:
                full = as_disk_full(error, "")
                if full is None:
                    raise
                wait = self.disk.failed(full)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurried.wait(), wait)
                self._hurried.clear()  # woken once; the waits after it are the short ones
                continue
            self.disk.succeeded()
            return

    def hurry(self) -> None:
        """The service is stopping: a full disk is tried again every `FIRST_WAIT` seconds, and
        at once if the writer is waiting now."""
        self.disk.hurry()
        self._hurried.set()
