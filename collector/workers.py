"""Where the processor chains run: threads of this process, or a pool of worker processes.

    pipeline worker task --to_thread--> PooledChain.run(records)
                                            | msgpack bytes: (recipe, processing), RawRecords
                                            v
                                 worker process (one per `service.workers`)
                                   chains built once per (recipe, processing), kept
                                   exact dedupe keys set (the writer, serial, takes them)
                                            | msgpack bytes: RenderedBatch (each kept
                                            |   example's split and lines made here, not
                                            |   in the writer; with near dedupe, the
                                            |   examples: collector/sinks/lines.py)
                                            v
                                 back in order through the pipeline's futures

The chain is pure CPU in Python, so threads share one core under the GIL whatever
`service.workers` says; processes use every core. `service.worker_mode` chooses ("auto":
processes when more than one core is usable). Records cross as msgspec bytes, never pickled
Structs. The pool starts its workers from a forkserver that has loaded the anonymizer's lexicon
(collector/workerboot.py) once: every worker shares it copy-on-write, the pool starts in a
fraction of a second, and no worker inherits this process's threads, locks or open files (a
plain `fork` of the running service would copy all three, the data folder's lock included).

A worker that dies (the OOM killer, a kill) breaks the pool: it is replaced and the batch runs
once more; a second death of the same batch stops the service (`WorkerProcessDied`, exit 1),
nothing of it acknowledged, so the next start fetches it again. Never a hang.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import msgspec

from collector import poolserver
from collector.logging import Logger
from collector.pipeline import PipelineFailed
from collector.sinks.lines import RenderedBatch, for_writer, renders_ahead
from processors.config import ProcessingConfig, RecipeConfig
from processors.records import ProcessedBatch, RawRecord

# The chain's code is the workers' (collector/workerboot.py loads it in the forkserver), not the
# service's: a service whose chains run in processes never imports it.
if TYPE_CHECKING:
    from processors.chain import ProcessorChain

WorkerMode = Literal["auto", "process", "thread"]
_T = TypeVar("_T")
# Chains a worker keeps: one per (recipe, processing) in use; a reload adds new ones, so the
# least recently used go first.
CHAINS_PER_WORKER = 32
# Batches sent to the pool per worker process: the one it runs and the next, already queued.
# With one, a worker that finished its batch idled while its result came back to the service
# and the next batch was encoded and sent: a fifth of its time.
IN_FLIGHT_PER_PROCESS = 2
# How often a worker checks that the service still lives (it exits when orphaned by a kill -9).
ORPHAN_CHECK_SECONDS = 0.5


class Chain(Protocol):
    """What a source runner processes its batches with."""

    def run(self, records: list[RawRecord]) -> ProcessedBatch | RenderedBatch: ...


class WorkerProcessDied(PipelineFailed):
    """A worker process died twice on the same batch: the service stops, nothing is lost."""


def resolve_mode(mode: WorkerMode) -> Literal["process", "thread"]:
    if mode == "auto":
        return "process" if poolserver.usable_cores() > 1 else "thread"
    return mode


# --- inside a worker process -----------------------------------------------------------------

_KEY = msgspec.msgpack.Decoder(tuple[RecipeConfig, ProcessingConfig])
_RECORDS_IN = msgspec.msgpack.Decoder(list[RawRecord])
_ENCODE = msgspec.msgpack.Encoder().encode
_chains: OrderedDict[bytes, tuple[ProcessorChain, ProcessingConfig]] = OrderedDict()


def _worker_started(service_pid: int) -> None:
    # A Ctrl-C or a terminal's hangup reaches the whole process group: the service drains, and
    # a worker that died of it would fail the drain. SIGTERM is left alone: the pool stops a
    # broken pool's workers with it (systemd's KillMode=mixed sends it to the service only).
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    parent = os.getppid()  # the forkserver, which exits with the service
    threading.Thread(target=_exit_when_orphaned, args=(service_pid, parent), daemon=True).start()


def _exit_when_orphaned(service_pid: int, parent: int) -> None:
    while True:
        time.sleep(ORPHAN_CHECK_SECONDS)
        if os.getppid() != parent:  # re-parented: the forkserver, so the service, is gone
            os._exit(0)
        try:
            os.kill(service_pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or the pid is another's now
            os._exit(0)


def _chain(key: bytes) -> tuple[ProcessorChain, ProcessingConfig]:
    chain = _chains.get(key)
    if chain is None:
        from processors.chain import ProcessorChain

        recipe, processing = _KEY.decode(key)
        chain = _chains[key] = (ProcessorChain(recipe, processing), processing)
        while len(_chains) > CHAINS_PER_WORKER:
            _chains.popitem(last=False)
    else:
        _chains.move_to_end(key)
    return chain


def _run_in_worker(key: bytes, records: bytes) -> bytes:
    chain, processing = _chain(key)
    processed = chain.run(_RECORDS_IN.decode(records))
    # Here, in parallel, not in the service's writer: the exact keys, the splits and the
    # rendered lines (the service's running processing config is the one the chain has).
    return _ENCODE(for_writer(processed, processing))


def _build_in_worker(key: bytes) -> None:
    _chain(key)


def _warm(_: int) -> int:
    from processors.anonymize.lexicon import load_lexicon

    load_lexicon()
    return os.getpid()


# --- in the service --------------------------------------------------------------------------

_RENDERED = msgspec.msgpack.Decoder(RenderedBatch)
_PROCESSED = msgspec.msgpack.Decoder(ProcessedBatch)


class ProcessPool:
    """`workers` processes that run processor chains on batches sent as bytes."""

    def __init__(self, workers: int, log: Logger) -> None:
        self.workers = workers
        self.log = log
        self._lock = threading.Lock()
        # Loaded once by the forkserver, then shared by every worker it forks (started early
        # by the command line where it can be: collector/poolserver.py).
        self._context = poolserver.context()
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=_worker_started,
            initargs=(os.getpid(),),
        )

    @property
    def in_flight(self) -> int:
        """How many batches the pipeline should have in the pool at once."""
        return self.workers * IN_FLIGHT_PER_PROCESS

    def warm(self) -> list[int]:
        """Start every worker now (blocking), so the first batches do not wait; their pids."""
        list(self._executor.map(_warm, range(self.workers)))
        return sorted(self._executor._processes or {})

    def chain(self, recipe: RecipeConfig, processing: ProcessingConfig) -> PooledChain:
        """The chain of a source, built once in a worker now: a config the chain refuses fails
        here, not at the first batch. Not in this process, which never loads the lexicon."""
        key = msgspec.msgpack.encode((recipe, processing))
        self._call(0, _build_in_worker, key)
        return PooledChain(self, key, rendered=renders_ahead(processing))

    def run(
        self, key: bytes, records: list[RawRecord], rendered: bool
    ) -> ProcessedBatch | RenderedBatch:
        """Process one batch in a worker (blocking: called from a pipeline thread); what it
        returns is `for_writer`'s: `rendered` tells which."""
        result = self._call(len(records), _run_in_worker, key, _ENCODE(records))
        return _RENDERED.decode(result) if rendered else _PROCESSED.decode(result)

    def _call(self, records: int, job: Callable[..., _T], *args: bytes) -> _T:
        """`job(*args)` in a worker; a dead worker's pool is replaced and the job runs once more."""
        for attempt in (1, 2):
            executor = self._executor
            try:
                return executor.submit(job, *args).result()
            except BrokenProcessPool as error:
                self._replace(executor)
                self.log.error(
                    "worker_process_died", attempt=attempt, records=records, error=str(error)
                )
                if attempt == 2:
                    raise WorkerProcessDied(
                        f"a worker process died twice on a batch of {records} records"
                    ) from error
        raise AssertionError("unreachable")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:  # the first of the batches that saw it replaces it
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()

    def close(self) -> None:
        """Stop the workers once the pipeline has drained (blocking)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        """Stop the workers now, whatever they are doing (the drain ran out of time)."""
        executor = self._executor
        processes = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()


class PooledChain:
    """A processor chain run in the pool: the same `run(records)` as `ProcessorChain`."""

    def __init__(self, pool: ProcessPool, key: bytes, rendered: bool) -> None:
        self.pool = pool
        self.key = key
        self.rendered = rendered

    def run(self, records: list[RawRecord]) -> ProcessedBatch | RenderedBatch:
        return self.pool.run(self.key, records, self.rendered)
