"""The pipeline's own guarantees: bounded queues, acks that always settle, failures that show."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from collector.logging import get_logger
from collector.pipeline import Acknowledger, Pipeline, PipelineFailed, WorkItem
from collector.sinks.formatted import FormattedSink
from collector.sinks.lines import RenderedBatch, for_writer
from collector.sources.base import SourceBatch
from collector.state.sqlite import SqliteStateStore
from processors.chain import ProcessorChain
from processors.config import DedupeConfig, ProcessingConfig, RecipeConfig, SplitConfig
from processors.dedupe import Deduplicator
from processors.records import Example, ProcessedBatch, RawRecord


def make_pipeline(
    tmp_path: Path,
    sinks: list[object] | None = None,
    size: int = 1,
    flush_interval: float = 0.05,
    flush_bytes: int = 1 << 20,
) -> Pipeline:
    state = SqliteStateStore(tmp_path / "state.sqlite3")
    log = get_logger()
    return Pipeline(
        state=state,
        sinks=sinks if sinks is not None else [FormattedSink(tmp_path, state, log)],  # type: ignore[list-item]
        deduplicator=Deduplicator(DedupeConfig(), state),
        split=SplitConfig(),
        workers=1,
        queue_size=size,
        flush_interval=flush_interval,
        flush_bytes=flush_bytes,
        log=log,
    )


def record(n: int, original: str, improved: str) -> RawRecord:
    return RawRecord(
        source="box",
        dataset="local/a",
        id=str(n),
        payload={"original": original, "improved": improved},
    )


def batch(n: int) -> SourceBatch:
    # A trivial rewrite: the chain drops it (what these tests need is the batch's passage).
    one = record(n, f"Wrote report number {n} for finance", f"Automated report {n}")
    return SourceBatch([one], [], {"a.jsonl": str(n)})


def chain() -> ProcessorChain:
    return ProcessorChain(RecipeConfig(name="pairs"), ProcessingConfig())


async def test_a_runner_cancelled_while_waiting_for_the_queue_leaves_no_ack_behind(
    tmp_path: Path,
) -> None:
    pipeline = make_pipeline(tmp_path, size=1)
    ack = Acknowledger()
    run = chain().run

    async def submit_many() -> None:
        for n in range(50):
            await pipeline.submit(WorkItem("box", batch(n), lambda b: run(b.records), ack))

    task = asyncio.create_task(submit_many())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(ack.wait_idle(), 5)  # every submitted batch was acknowledged
    await pipeline.drain()


async def test_every_queue_is_bounded_and_the_drain_fits_in_a_full_one(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, size=2)
    assert pipeline.ordered.maxsize == 2
    assert pipeline.work.maxsize == 2 + 1  # and a place for the one worker's stop marker
    gate = threading.Event()
    run = chain().run

    def held(b: SourceBatch) -> ProcessedBatch:
        gate.wait(10)
        return run(b.records)

    ack = Acknowledger()

    async def submit_many() -> None:
        for n in range(6):
            await pipeline.submit(WorkItem("box", batch(n), held, ack))

    submitting = asyncio.create_task(submit_many())
    await asyncio.sleep(0.2)
    assert not submitting.done()  # backpressure: the sources wait
    assert pipeline.work.qsize() == 2  # the worker holds one, the writer waits on it
    assert pipeline.ordered.qsize() == 2
    submitting.cancel()
    await asyncio.gather(submitting, return_exceptions=True)
    draining = asyncio.create_task(pipeline.drain())  # its stop marker fits in the full queue
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(draining, 10)
    assert ack.outstanding == 0


@pytest.mark.parametrize("when", ["while the writer writes", "once it waits for more"])
async def test_a_runner_waiting_for_durability_does_not_wait_for_the_flush_interval(
    tmp_path: Path, when: str
) -> None:
    # A pass's end (and with it `once`) comes as soon as its batches are written and committed.
    pipeline = make_pipeline(tmp_path, size=4, flush_interval=3600)
    ack = Acknowledger()
    run = chain().run
    for n in range(3):
        await pipeline.submit(WorkItem("box", batch(n), lambda b: run(b.records), ack))
    if when == "once it waits for more":
        while pipeline.written < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the writer is back waiting for the next batch
    await asyncio.wait_for(pipeline.durable(ack), 10)
    assert pipeline.writer.checkpoints == 1
    assert dict(pipeline.writer.state.scan("cursor", "")) == {"box\x1fa.jsonl": "2"}
    await pipeline.drain()


async def test_a_checkpoint_for_size_while_a_runners_batches_wait_still_checkpoints_after_them(
    tmp_path: Path,
) -> None:
    # The first batch fills `flush_bytes` and is checkpointed with the other two still queued:
    # the runner's wish holds until its last batch is written.
    pipeline = make_pipeline(tmp_path, size=4, flush_interval=3600, flush_bytes=10_000)
    ack = Acknowledger()
    run = chain().run
    gate = threading.Event()

    def held(b: SourceBatch) -> ProcessedBatch:
        gate.wait(10)
        return run(b.records)

    kept = [
        record(
            n,
            f"Maintained service number {n} for the billing and payments team",
            f"Cut the error rate of billing service {n} by half within one year",
        )
        for n in range(200)
    ]
    assert len(run(kept).examples) == 200
    big = SourceBatch(kept, [], {"a.jsonl": "199"})
    await pipeline.submit(WorkItem("box", big, held, ack))
    for n in (200, 201):
        await pipeline.submit(WorkItem("box", batch(n), lambda b: run(b.records), ack))
    durable = asyncio.create_task(pipeline.durable(ack))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(durable, 10)
    assert pipeline.writer.checkpoints == 2
    assert dict(pipeline.writer.state.scan("cursor", "")) == {"box\x1fa.jsonl": "201"}
    await pipeline.drain()


class BrokenSink:
    name = "broken"
    pending_bytes = 1

    async def open(self) -> None: ...

    def write(self, examples: list[Example]) -> None: ...

    async def flush(self) -> dict[str, dict[str, str]]:
        # An I/O error, not a full disk: the writer waits for space (tests/test_disk_full.py).
        raise OSError(5, "Input/output error")

    async def committed(self) -> None: ...

    async def close(self) -> None: ...


async def test_a_writer_that_dies_is_reported_and_stops_the_service(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, sinks=[BrokenSink()])
    failures: list[BaseException] = []
    pipeline.on_failure.append(failures.append)
    run = chain().run
    await pipeline.submit(WorkItem("box", batch(1), lambda b: run(b.records), Acknowledger()))
    for _ in range(100):
        if failures:
            break
        await asyncio.sleep(0.02)
    assert [type(e) for e in failures] == [OSError]
    with pytest.raises(PipelineFailed, match="Input/output error"):
        await pipeline.drain()


@pytest.mark.parametrize(
    "dedupe",
    [
        DedupeConfig(near=True, near_action="group"),
        DedupeConfig(near=True),
        DedupeConfig(),
        DedupeConfig(exact=False),
    ],
    ids=["near-group", "near-drop", "exact", "none"],
)
async def test_what_a_worker_returns_is_written_as_what_the_writer_renders_itself(
    tmp_path: Path, dedupe: DedupeConfig
) -> None:
    # A worker process renders each line (`for_writer`), unless near dedupe in the writer
    # reads the texts and may move a line into its cluster's group: then its split and
    # provenance must follow the cluster, as when the writer renders everything itself.
    processing = ProcessingConfig(dedupe=dedupe)
    here = ProcessorChain(RecipeConfig(name="pairs"), processing)
    answer = "Automated the monthly finance report for all four regional sales teams"
    texts = [answer, answer + " in Q3", "Hired and trained six analysts", answer]
    records = [
        RawRecord("box", "local/a", str(n), {"original": f"Wrote report {n}", "improved": text})
        for n, text in enumerate(texts)
    ]
    records.append(RawRecord("box", "local/a", "4", {"original": "Wrote report 0"}))
    records.append(RawRecord("box", "local/a", "5", dict(records[0].payload)))  # exact re-post

    def in_worker(batch: SourceBatch) -> ProcessedBatch | RenderedBatch:
        return for_writer(here.run(batch.records), processing)

    outputs = []
    for name, run in (("writer", lambda b: here.run(b.records)), ("worker", in_worker)):
        folder = tmp_path / name
        folder.mkdir()
        state = SqliteStateStore(folder / "state.sqlite3")
        pipeline = Pipeline(
            state=state,
            sinks=[FormattedSink(folder, state, get_logger())],
            deduplicator=Deduplicator(dedupe, state),
            split=SplitConfig(),
            workers=1,
            queue_size=1,
            flush_interval=0.05,
            flush_bytes=1 << 20,
            log=get_logger(),
        )
        ack = Acknowledger()
        await pipeline.submit(WorkItem("box", SourceBatch(records, [], {}), run, ack))
        await pipeline.drain()
        files = sorted((folder / "formatted").glob("*.jsonl"))
        outputs.append(({path.name: path.read_bytes() for path in files}, ack.counts))
    assert outputs[0] == outputs[1]
    files, counts = outputs[1]
    assert set(files) == {"local__a.jsonl", "local__a__provenance.jsonl", "local__a__pairs.jsonl"}
    assert counts["pairs"] == 1
    provenance = [json.loads(line) for line in files["local__a__provenance.jsonl"].splitlines()]
    if dedupe.near_action == "group":
        assert provenance[0]["group"] == provenance[1]["group"] != provenance[2]["group"]
    if dedupe.exact:
        assert counts["drop:duplicate_exact"] == 1  # the re-post
    assert len(provenance) == counts["written"] > 0
