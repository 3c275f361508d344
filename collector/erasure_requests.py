"""Erasure requests served by the running service (`forget` while the daemon holds the data).

`resume-collector forget` cannot rewrite files the service writes to, so with the service
running it queues the request in the state store (namespace `forget:requests`, read by the
service through its own store: SQLite in WAL mode takes the short second writer, Redis is
shared) and waits for the answer under the same key in `forget:done`.

The service checks for requests after a checkpoint, when its writer has nothing buffered
(`Writer.between_checkpoints`). A request is served in two steps, so that no record fetched
before it slips past:

1. **Armed**: its texts and records join the live `ForgottenList` at once, so every batch
   processed from then on drops them as `opted_out`; the number of batches submitted so far
   is noted.
2. **Served** once the writer has written every batch submitted before it was armed, and the
   runners that read the service's own outputs (the rewrite stage reads `__pairs` files by
   offset) are suspended with all they submitted written: an erasure moves their cursors, so
   they start again from the saved ones afterwards. With the
   upload round held off (`Component.paused`), the sinks are closed, the same routine as the
   offline command runs (`collector/erasure.py` `erase`), the sinks are opened again (which
   re-reads the committed lengths and open chunks it changed, as a start would), the request
   is marked done and `forget_applied` is logged with the counts.

A kill -9 at any point leaves the request in `forget:requests` (it is removed only after its
answer is saved) and the erasure itself is safe to repeat: the next start serves it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import msgspec

from collector.config import Config
from collector.erasure import ForgottenList, erase
from collector.logging import Logger
from collector.sinks.base import Sink
from collector.state import StateStore

REQUESTS = "forget:requests"
DONE = "forget:done"
# How often an idle service looks for a new request (a state read), at most.
POLL_SECONDS = 1.0
# After a failed attempt, the next one waits this long (the error is logged each time).
RETRY_SECONDS = 30.0


class Request(msgspec.Struct):
    texts: list[str]
    records: list[tuple[str, str]]
    pid: int  # of the `forget` command that queued it
    queued_at: float


class Answer(msgspec.Struct):
    records: int
    lines: int
    chunks: int
    raw_files: int
    cache_entries: int
    served_by: int  # the service's pid
    served_at: float


def queue_request(state: StateStore, texts: list[str], records: list[tuple[str, str]]) -> str:
    """Save a request for the running service; its key, to wait for its answer with."""
    key = f"{time.time_ns():020d}-{os.getpid()}"
    request = Request(texts, records, os.getpid(), time.time())
    state.commit({REQUESTS: {key: msgspec.json.encode(request).decode()}})
    return key


def answer_of(state: StateStore, key: str) -> Answer | None:
    value = state.get(DONE, key)
    return None if value is None else msgspec.json.decode(value, type=Answer)


def pending(state: StateStore) -> list[tuple[str, Request]]:
    decode = msgspec.json.Decoder(Request).decode
    return [(key, decode(value.encode())) for key, value in state.scan(REQUESTS)]


class Writing(Protocol):
    """What the server needs of the pipeline: how many batches went in, and were written."""

    @property
    def submitted(self) -> int: ...

    @property
    def written(self) -> int: ...


class Suspendable(Protocol):
    """A runner whose cursors an erasure moves (collector/service.py `SourceRunner`)."""

    def suspend(self) -> None: ...

    @property
    def suspended(self) -> bool: ...

    def resume(self) -> None: ...


class RequestServer:
    def __init__(
        self,
        config: Config,
        data_dir: Path,
        state: StateStore,
        forgotten: ForgottenList,
        log: Logger,
    ) -> None:
        from collector.upload.component import upload_instance

        self.config = config
        self.data_dir = data_dir
        self.state = state
        self.forgotten = forgotten
        self.log = log
        self.instance = upload_instance(config)
        self._armed: dict[str, int] = {}  # request key -> batches submitted when it was armed
        self._next_look = 0.0

    def serves_in(self, mode: str) -> bool:
        """`once` with the rewrite stage leaves requests for the next start: suspending the
        stage there would look like its end to the wait for every source."""
        return self.serves(self.config) and (mode == "run" or not self.config.rewrite.enabled)

    @staticmethod
    def serves(config: Config) -> bool:
        """Not with a state shared on Redis: any instance would take a request meant for
        every one, and each holds its own files."""
        return config.state.backend == "sqlite"

    async def between_checkpoints(
        self,
        pipeline: Writing,
        sinks: list[Sink],
        paused: Callable[[], AbstractAsyncContextManager[None]],
        readers: Sequence[Suspendable] = (),
    ) -> None:
        """Called by the writer with nothing buffered; serves what is due, quickly otherwise."""
        now = time.monotonic()
        if not self._armed and now < self._next_look:
            return
        self._next_look = now + POLL_SECONDS
        requests = await asyncio.to_thread(pending, self.state)
        for key, request in requests:
            if key not in self._armed:
                self.forgotten.extend(request.texts, request.records)
                self._armed[key] = pipeline.submitted
                self.log.info("forget_request_armed", request=key, pid=request.pid)
        known = {key for key, _ in requests}
        self._armed = {k: n for k, n in self._armed.items() if k in known}
        due = [(k, r) for k, r in requests if self._armed[k] <= pipeline.written]
        if not due:
            return
        # The readers of our outputs stop first; the writer must go on meanwhile to write
        # what they submitted, so this only asks, and a later call serves.
        for reader in readers:
            reader.suspend()
        if not all(reader.suspended for reader in readers):
            return
        try:
            await self._serve(due, sinks, paused)
        except Exception as error:  # the writer goes on; the request stays queued
            self.log.exception("forget_failed", requests=[k for k, _ in due], error=str(error))
            self._next_look = time.monotonic() + RETRY_SECONDS
            self._armed = {}
        finally:
            for reader in readers:
                reader.resume()

    async def _serve(
        self,
        due: list[tuple[str, Request]],
        sinks: list[Sink],
        paused: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        texts = sorted({t for _, r in due for t in r.texts})
        records = sorted({(s, i) for _, r in due for s, i in r.records})
        started = time.monotonic()
        async with paused(), _closed(sinks):
            result = await erase(
                self.config,
                self.data_dir,
                self.state,
                texts,
                records,
                self.log,
                instance=self.instance,
                dry_run=False,
            )
        counts = result.counts() if result is not None else {}
        answer = Answer(
            records=counts.get("records", 0),
            lines=counts.get("lines", 0),
            chunks=counts.get("chunks", 0),
            raw_files=counts.get("raw_files", 0),
            cache_entries=counts.get("cache_entries", 0),
            served_by=os.getpid(),
            served_at=time.time(),
        )
        encoded = msgspec.json.encode(answer).decode()
        keys = [key for key, _ in due]
        await asyncio.to_thread(self.state.commit, {DONE: dict.fromkeys(keys, encoded)})
        await asyncio.to_thread(self.state.delete, REQUESTS, keys)
        for key in keys:
            self._armed.pop(key, None)
        self.log.info(
            "forget_applied",
            requests=keys,
            seconds=round(time.monotonic() - started, 3),
            **counts,
        )


@contextlib.asynccontextmanager
async def _closed(sinks: list[Sink]) -> AsyncIterator[None]:
    """The sinks' files closed around a change made under them, then opened again: the
    opening re-reads what a start reads (committed lengths, open chunks, replacements)."""
    for sink in sinks:
        await sink.close()
    try:
        yield
    finally:
        for sink in sinks:
            await sink.open()
