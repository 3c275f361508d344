"""The uploader: pending chunks into commits, each chunk in the target exactly once.

- A round takes the pending chunks in name order, at most `max_files_per_commit - 1` per commit
  (the dataset card, updated in the same commit, takes the last slot).
- Commits to the Hub stay within `max_commits_per_hour` over any sliding hour; the times are
  kept in the state store, so a restart does not reset the budget. A 429 whose `Retry-After`
  is longer than a retry wait pauses the uploader until then.
- The blocking client runs in a daemon thread of its own per call (`_abandonable`); tenacity
  retries a commit on 429, 5xx, timeouts and 412/409 (a commit landed since the head was read:
  the next attempt re-reads it). A call still running when the shutdown deadline comes is left
  behind, as a crash would leave it: its chunks stay pending for the next start's reconcile.
- Exactly once: the ledger marks a chunk committed (with its commit id) only after the commit
  returned; a crash or a lost answer in between is reconciled by looking the chunks up in the
  target: at start (`reconcile`), and at every attempt (the target reports chunks already
  there). A chunk's local file is removed only once the ledger says committed.
- With a shared state store, an uploader handles its own instance's chunks (their files are on
  its disk) and the card counts every instance's committed chunks, re-read at each attempt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TypeVar

import msgspec
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from collector import moments
from collector.config import Config
from collector.logging import Logger
from collector.scaleout.leases import LeaseBusy
from collector.state import StateStore
from collector.upload.card import build_card
from collector.upload.chunks import DATA
from collector.upload.ledger import COMMITS_NAMESPACE, ChunkEntry, Ledger
from collector.upload.targets import CommitResult, Target

HOUR = 3600.0
T = TypeVar("T")
Progress = Callable[[int, int], None]  # (chunks, records) just committed


class UploadReport(msgspec.Struct):
    committed: int = 0  # chunks marked committed in this round
    records: int = 0
    commits: int = 0  # commits made
    pending: int = 0  # chunks still pending after the round
    conflicts: int = 0
    paused_until: float | None = None  # the commit budget is spent until then
    error: str = ""
    busy: str = ""  # the instance that held the upload lease, when this round was skipped


class Uploader:
    def __init__(
        self,
        config: Config,
        target: Target,
        state: StateStore,
        log: Logger,
        *,
        chunks_root: Path,
        instance: str = "",
        exclusive: Callable[[], AbstractAsyncContextManager[object]] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.upload = config.upload
        self.target = target
        self.state = state
        self.ledger = Ledger(state)
        self.log = log.bind(target=target.description)
        self.chunks_root = chunks_root
        self.instance = instance
        self.clock = clock
        self.sleep = sleep
        self.paused_until = 0.0
        # For metrics, as of the last round: read without touching the state store.
        self.pending_chunks = 0
        self.oldest_pending = 0.0  # closed_at of the oldest pending chunk (0: none)
        self.committed_chunks = 0  # by this process
        self.commits = 0
        self.failures = 0
        # The chunks of the commit under way (kept when it is abandoned: they stay pending).
        self.in_flight: list[str] = []
        self._lock = asyncio.Lock()  # one round at a time
        # With a shared (Redis) state: one round at a time across the instances too (a lease on
        # the target, collector/scaleout/upload_lease.py `UploadLease`).
        self.exclusive = exclusive

    def paused(self) -> AbstractAsyncContextManager[None]:
        """Held: no round starts, and one in progress is finished first."""
        return _held(self._lock)

    def local_path(self, entry: ChunkEntry) -> Path:
        return self.chunks_root / entry.path

    # --- the commit budget ------------------------------------------------------------------

    def budget_wait(self) -> float:
        """Seconds until a commit is allowed (0: now)."""
        now = self.clock()
        wait = max(0.0, self.paused_until - now)
        if not self.target.budgeted:
            return wait
        recent = [t for t in self.ledger.commit_times() if t > now - HOUR]
        if len(recent) >= self.upload.max_commits_per_hour:
            wait = max(wait, recent[-self.upload.max_commits_per_hour] + HOUR - now)
        return wait

    # --- reconcile --------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Chunks the ledger calls pending but the target already holds become committed."""
        async with self._lock:
            return await self._reconcile()

    async def _reconcile(self) -> int:
        entries = await asyncio.to_thread(
            self.ledger.entries, None, instance=self.instance, folder=None
        )
        await asyncio.to_thread(self._remove_committed_files, entries)
        pending = [e for e in entries if e.status == "pending"]
        if not pending:
            return 0
        remote = await self._retrying(
            lambda: self.target.lookup([e.path for e in pending]), "reconcile"
        )
        now = self.clock()
        changed = []
        for entry in pending:
            there = remote.get(entry.path)
            if there is None:
                continue
            if there.holds(entry, self.local_path(entry)):
                entry.status, entry.commit, entry.committed_at = "committed", there.commit, now
            elif there.replaced(entry):
                continue  # a revision not committed yet: the target still holds what it replaces
            else:
                entry.status = "conflict"
                self.log.error("chunk_conflict", file=entry.path, remote_oid=there.oid)
            changed.append(entry)
        if changed:
            await asyncio.to_thread(self.ledger.put, changed)
            await asyncio.to_thread(self._remove_committed_files, changed)
        found = sum(1 for e in changed if e.status == "committed" and e.folder == DATA)
        self.log.info("upload_reconciled", pending=len(pending), found_in_target=found)
        return found

    def _remove_committed_files(self, entries: list[ChunkEntry]) -> None:
        if self.upload.keep_committed:
            return
        for entry in entries:
            if entry.status == "committed":
                self.local_path(entry).unlink(missing_ok=True)

    # --- upload -----------------------------------------------------------------------------

    async def run(self, progress: Progress | None = None) -> UploadReport:
        """Commit pending chunks while the budget allows; what was done and what is left."""
        async with self._lock:
            if self.exclusive is None:
                return await self._run(progress)
            try:
                async with self.exclusive():
                    return await self._run(progress)
            except LeaseBusy as busy:
                self.log.info(
                    "upload_round_skipped", reason="another instance uploads", holder=busy.holder
                )
                return UploadReport(pending=self.pending_chunks, busy=busy.holder)

    async def _run(self, progress: Progress | None) -> UploadReport:
        report = UploadReport()
        entries = await asyncio.to_thread(
            self.ledger.entries, "pending", instance=self.instance, folder=None
        )
        # A chunk and the provenance beside it go in the same commit where they fit.
        pending = sorted(entries, key=lambda e: (e.path.removeprefix(e.folder), e.folder))
        pending = await asyncio.to_thread(self._drop_lost, pending)
        self._note_pending(pending)
        per_commit = self.upload.max_files_per_commit - 1
        while pending:
            wait = self.budget_wait()
            if wait > 0:
                report.paused_until = self.clock() + wait
                self.log.info("upload_paused", seconds=round(wait, 1), pending=len(pending))
                break
            batch, pending = pending[:per_commit], pending[per_commit:]
            self.in_flight = [e.path for e in batch]
            try:
                result = await self._commit(batch)
            except Exception as error:
                self.in_flight = []
                retry_after = self.target.retry_after(error)
                if retry_after is not None:
                    self.paused_until = self.clock() + retry_after
                    report.paused_until = self.paused_until
                report.error = f"{type(error).__name__}: {error}".splitlines()[0]
                self.log.error("upload_failed", chunks=len(batch), error=report.error)
                self.failures += 1
                pending = batch + pending
                break
            moments.passed("after_commit")
            await asyncio.to_thread(self._record, batch, result)
            self.in_flight = []
            # Counted as a reader counts: training chunks; their provenance files go along.
            chunks = [e for e in batch if e.folder == DATA]
            done = [e for e in chunks if e.status == "committed"]
            records = sum(e.records for e in done)
            report.committed += len(done)
            report.records += records
            report.commits += int(result.created)
            report.conflicts += len(chunks) - len(done)
            self.log.info(
                "chunks_committed",
                commit=result.commit,
                chunks=len(done),
                records=records,
                found_in_target=len(result.found),
                conflicts=len(result.conflicts),
            )
            if progress is not None:
                progress(len(chunks), records)
        report.pending = sum(1 for e in pending if e.folder == DATA)
        self._note_pending(pending)
        self.committed_chunks += report.committed
        self.commits += report.commits
        return report

    def _note_pending(self, pending: list[ChunkEntry]) -> None:
        self.pending_chunks = sum(1 for e in pending if e.folder == DATA)
        self.oldest_pending = min((e.closed_at for e in pending), default=0.0)

    def telemetry(self) -> dict[str, float]:
        now = self.clock()
        return {
            "pending_chunks": self.pending_chunks,
            "lag_seconds": now - self.oldest_pending if self.oldest_pending else 0.0,
            "committed_chunks": self.committed_chunks,
            "commits": self.commits,
            "failures": self.failures,
            "paused_seconds": self.budget_wait(),  # the budget's or the Hub's pause
        }

    def _drop_lost(self, pending: list[ChunkEntry]) -> list[ChunkEntry]:
        lost = [e for e in pending if not self.local_path(e).is_file()]
        for entry in lost:
            entry.status = "lost"
            self.log.error("chunk_file_missing", file=entry.path, records=entry.records)
        if lost:
            self.ledger.put(lost)
        return [e for e in pending if e.status == "pending"]

    async def _commit(self, batch: list[ChunkEntry]) -> CommitResult:
        counts = await asyncio.to_thread(self.state.counts)  # fixed: a retry gives the same card

        def card(entries: list[ChunkEntry]) -> bytes:
            # Re-read at each attempt: another instance may have committed in between.
            committed = self.ledger.entries("committed", folder=None)
            return build_card(self.config, committed + entries, counts).encode()

        data = [e for e in batch if e.folder == DATA]
        records = sum(e.records for e in data)
        message = f"Add {len(data)} chunk{'s' if len(data) != 1 else ''} ({records} records)"
        if len(data) < len(batch):
            message += " with their provenance"
        revised = [e for e in data if e.revision]
        if revised:
            message = (
                f"Remove records on request from {len(revised)} chunk"
                f"{'s' if len(revised) != 1 else ''}"
                + (f"; add {len(data) - len(revised)}" if len(revised) < len(data) else "")
            )
        chunks = [(entry, self.local_path(entry)) for entry in batch]
        return await self._retrying(lambda: self.target.commit(chunks, card, message), "commit")

    def _record(self, batch: list[ChunkEntry], result: CommitResult) -> None:
        """Ledger and commit time in one transaction, then the local files go."""
        now = self.clock()
        for entry in batch:
            if entry.path in result.conflicts:
                entry.status = "conflict"
                self.log.error("chunk_conflict", file=entry.path)
            else:
                entry.status = "committed"
                entry.commit = result.found.get(entry.path) or result.commit
                entry.committed_at = now
        extra = {}
        if result.created and self.target.budgeted:
            extra[COMMITS_NAMESPACE] = {f"{now:020.6f} {result.commit}": repr(now)}
        self.ledger.put(batch, extra)
        self.ledger.forget_commit_times(now - HOUR)
        self._remove_committed_files(batch)

    # --- retries ----------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        retry = self.upload.retry
        wait = min(retry.max_wait, retry.initial_wait * 2 ** (state.attempt_number - 1))
        wait *= 1 + random.random() / 4
        error = state.outcome.exception() if state.outcome is not None else None
        after = self.target.retry_after(error) if error is not None else None
        return float(max(wait, after or 0.0))

    def _worth_retry(self, error: BaseException) -> bool:
        after = self.target.retry_after(error)
        if after is not None and after > self.upload.retry.max_wait:
            return False  # a quota that frees up later: pause instead of hammering
        return self.target.retryable(error)

    async def _retrying(self, call: Callable[[], T], what: str) -> T:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            self.log.warning(
                "upload_retry",
                step=what,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 2),
                error=f"{type(error).__name__}: {error}".splitlines()[0],
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.upload.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception(self._worth_retry),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await _abandonable(call)
        raise AssertionError("unreachable: tenacity reraises the last error")


async def _abandonable(call: Callable[[], T]) -> T:
    """`call` in a daemon thread of its own, which the awaiting task may cancel and leave behind.

    Not `asyncio.to_thread`: a request to the target may hang as long as `upload.timeout` (300 s
    by default), and the default executor's threads are joined when `asyncio.run` ends and again
    at interpreter exit, so a commit abandoned at the shutdown deadline held the exit until its
    answer came (issue #20: 97 s with `shutdown_timeout = 20`). A daemon thread is not waited
    for. Leaving it is safe: the ledger marks chunks committed only once the commit's answer
    came back here and `_record` wrote it, so an abandoned commit is one the next start
    reconciles (landed: found in the target; not landed: committed again). What the thread
    might touch once the state store is closed fails in that thread, unseen.
    """
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
    context = contextvars.copy_context()  # the log's bound fields, as `to_thread` passes them

    def work() -> None:
        if not outcome.set_running_or_notify_cancel():
            return  # cancelled before it started
        try:
            outcome.set_result(context.run(call))
        except BaseException as error:  # handed to the awaiting task (if it still waits)
            outcome.set_exception(error)

    threading.Thread(target=work, name="upload-target-call", daemon=True).start()
    # Cancelling the wrapper leaves the thread running; a loop closed by then is not called.
    return await asyncio.wrap_future(outcome)


@contextlib.asynccontextmanager
async def _held(lock: asyncio.Lock) -> AsyncIterator[None]:
    async with lock:
        yield
