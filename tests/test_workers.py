"""The processor chains in worker processes: same results as in threads, every core, no hang."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from collector.config import ConfigError, parse_config
from collector.logging import get_logger
from collector.sinks.lines import RenderedBatch, for_writer
from collector.workers import PooledChain, ProcessPool, WorkerProcessDied
from processors.chain import ProcessorChain
from processors.config import DedupeConfig, ProcessingConfig, RecipeConfig, ValidateConfig
from processors.records import ProcessedBatch, RawRecord
from tests.conftest import run_python, wait_for, write_config
from tests.daemon_process import Daemon, inbox_source, write_pairs


def records(count: int) -> list[RawRecord]:
    return [
        RawRecord(
            "box",
            "local/a",
            str(i),
            {
                "original": f"Maintained service {i} for Jane Doe (jane.doe{i}@example.com)",
                "improved": f"Cut the error rate of service {i} by half within one year",
            },
            cursor=str(i),
            meta={"authors": ["Jane Doe"], "n": i, "ok": True, "ratio": 0.5, "none": None},
        )
        for i in range(count)
    ]


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    pool = ProcessPool(2, get_logger())
    yield pool
    pool.kill()


def test_a_batch_processed_in_the_pool_equals_the_batch_processed_here(pool: ProcessPool) -> None:
    recipe, processing = RecipeConfig(name="pairs"), ProcessingConfig()
    batch = records(200)
    here = ProcessorChain(recipe, processing).run(batch)
    # The pool sets the exact keys and renders each line too, so the writer need not.
    expected = for_writer(here, processing)
    there = pool.chain(recipe, processing).run(batch)
    assert isinstance(there, RenderedBatch)
    assert msgspec.msgpack.encode(there) == msgspec.msgpack.encode(expected)
    assert all(line.dedupe_key for line in there.lines)
    assert all(json.loads(line.provenance)["split"] == line.split for line in there.lines)
    assert len(there.lines) == 200  # the comparison compared something


def test_with_near_dedupe_the_pool_returns_the_examples_with_their_exact_keys(
    pool: ProcessPool,
) -> None:
    # Near dedupe reads the texts in the writer, and may move a line into another group.
    recipe = RecipeConfig(name="pairs")
    processing = ProcessingConfig(dedupe=DedupeConfig(near=True))
    there = pool.chain(recipe, processing).run(records(20))
    assert isinstance(there, ProcessedBatch)
    assert len(there.examples) == 20
    assert all(example.dedupe_key and example.messages for example in there.examples)


def test_each_worker_process_has_its_next_batch_queued(pool: ProcessPool) -> None:
    # Two batches per process in flight: one runs, the next waits in the pool's queue, so a
    # worker never idles while its result travels back and the next batch is sent.
    assert pool.in_flight == 2 * pool.workers
    recipe, processing = RecipeConfig(name="pairs"), ProcessingConfig()
    chain = pool.chain(recipe, processing)
    with ThreadPoolExecutor(pool.in_flight) as threads:
        batches = [records(50) for _ in range(pool.in_flight)]
        results = list(threads.map(chain.run, batches))
    assert [len(r.lines) for r in results] == [50] * pool.in_flight


def test_each_processing_config_reaches_the_workers(pool: ProcessPool) -> None:
    recipe = RecipeConfig(name="pairs")
    strict = ProcessingConfig(
        validate=ValidateConfig(min_chars={"system": 1, "user": 1, "assistant": 500})
    )
    assert len(pool.chain(recipe, ProcessingConfig()).run(records(10)).lines) == 10
    dropped = pool.chain(recipe, strict).run(records(10))
    assert dropped.lines == [] and len(dropped.drops) == 10


def test_a_processor_error_in_a_worker_is_raised_to_the_caller(pool: ProcessPool) -> None:
    # (the pipeline counts it as `processor_error` for the batch's records, as in a thread)
    with pytest.raises(msgspec.DecodeError):
        PooledChain(pool, b"not a chain", rendered=True).run(records(1))
    assert len(pool.chain(RecipeConfig(name="pairs"), ProcessingConfig()).run(records(1)).lines)


def test_a_worker_that_dies_is_replaced_and_the_batch_runs_again(pool: ProcessPool) -> None:
    chain = pool.chain(RecipeConfig(name="pairs"), ProcessingConfig())
    os.kill(pool.warm()[0], signal.SIGKILL)
    assert len(chain.run(records(20)).lines) == 20
    assert len(chain.run(records(20)).lines) == 20


def test_a_process_whose_worker_died_still_exits() -> None:
    """A broken pool's surviving workers are stopped (SIGTERM), so exiting never waits on them."""
    script = (
        "import os, signal\n"
        "from collector.logging import get_logger\n"
        "from collector.workers import ProcessPool\n"
        "from processors.config import ProcessingConfig, RecipeConfig\n"
        "from tests.test_workers import records\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPool(2, get_logger())\n"
        "    os.kill(pool.warm()[0], signal.SIGKILL)\n"
        "    chain = pool.chain(RecipeConfig(name='pairs'), ProcessingConfig())\n"
        "    assert len(chain.run(records(20)).lines) == 20\n"
    )
    run_python(script)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: threads, no pool")
def test_the_command_line_starts_the_forkserver_before_the_service_and_the_pool_uses_it() -> None:
    # Started before the commands' imports, it loads the processors on another core meanwhile.
    script = (
        "import multiprocessing.forkserver as fs, sys\n"
        "from collector import poolserver\n"
        "if __name__ == '__main__':\n"
        "    assert not poolserver.start_early(['report', '--config', 'c.toml'])\n"
        "    assert fs._forkserver._forkserver_pid is None\n"
        "    assert poolserver.start_early(['once', '--config', 'c.toml'])\n"
        "    assert 'collector.workers' not in sys.modules  # nothing heavy imported yet\n"
        "    server = fs._forkserver._forkserver_pid\n"
        "    from collector.logging import get_logger\n"
        "    from collector.workers import ProcessPool\n"
        "    pool = ProcessPool(1, get_logger())\n"
        "    [worker] = pool.warm()\n"
        "    stat = open(f'/proc/{worker}/stat').read()\n"
        "    assert int(stat.rsplit(')', 1)[1].split()[1]) == server\n"
        "    pool.close()\n"
    )
    run_python(script)


def test_the_workers_code_and_the_config_load_no_http_client_nor_numpy() -> None:
    # What the forkserver imports before the pool can start (the start's critical path):
    # the HTTP sources and aiohttp come only with a source that is built, numpy only with
    # near dedupe (in the writer, not in a worker).
    script = (
        "import sys\n"
        "import collector.config, collector.workers\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp'\n"
        "assert 'collector.sources.github' not in sys.modules, 'github'\n"
        "assert 'numpy' not in sys.modules, 'numpy'\n"
    )
    run_python(script)


def test_a_service_whose_chains_run_in_processes_imports_no_chain() -> None:
    # The chain's code (the anonymizer's detectors, the formatters) is the workers': the
    # forkserver loads it, and the service itself only in thread mode or to check a reload.
    script = (
        "import sys\n"
        "import collector.service, collector.workers\n"
        "chain = ('processors.chain', 'processors.anonymize.anonymizer', 'processors.formatters')\n"
        "loaded = [m for m in chain if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    run_python(script)


def test_a_batch_whose_workers_die_twice_is_an_error_not_a_hang(
    pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dying() -> ProcessPoolExecutor:  # every worker dies as it starts
        return ProcessPoolExecutor(1, mp_context=pool._context, initializer=os._exit, initargs=(9,))

    monkeypatch.setattr(pool, "_start", dying)
    pool._executor = dying()
    with pytest.raises(WorkerProcessDied, match="died twice"):
        pool.chain(RecipeConfig(name="pairs"), ProcessingConfig()).run(records(5))


def test_worker_mode_is_validated_at_load_with_the_field_named() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"service": {"worker_mode": "fast"}}, "c.toml")
    assert any(
        "service.worker_mode" in e and "'process'" in e and "'thread'" in e
        for e in error.value.errors
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # it went while we looked
        return False


def process_daemon(tmp_path: Path, data_dir: Path) -> tuple[Daemon, Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(
        tmp_path / "c.toml",
        inbox_source("box", inbox),
        data_dir,
        service='worker_mode = "process"\nworkers = 2',
    )
    return Daemon(config, tmp_path / "log.jsonl"), inbox, config


def written(data_dir: Path, name: str) -> int:
    path = data_dir / "formatted" / f"{name}.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sighup_brings_a_new_chain_to_the_workers_and_sigterm_stops_them(
    tmp_path: Path, data_dir: Path
) -> None:
    daemon, inbox, config = process_daemon(tmp_path, data_dir)
    try:
        pids = daemon.wait_event("worker_pool_started")["pids"]
        assert len(pids) == 2
        write_pairs(inbox / "a.jsonl", 0, 10)
        wait_for(lambda: written(data_dir, "local__a") == 10)
        strict = "\n[processing.validate]\nmin_chars = { system = 1, user = 1, assistant = 900 }\n"
        config.write_text(config.read_text().replace("[[sources]]", strict + "\n[[sources]]"))
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_event("config_reloaded")["changed"] == ["box"]
        write_pairs(inbox / "b.jsonl", 100, 10)

        def after_reload() -> list[dict[str, object]]:
            names = daemon.names()
            return daemon.events()[names.index("config_reloaded") :]

        wait_for(lambda: any(e.get("dropped") == 10 for e in after_reload()))
        assert written(data_dir, "local__b") == 0  # the workers validate with the new minimum
        assert daemon.stop() == 0
        assert not any(alive(pid) for pid in pids)
    finally:
        daemon.kill()


def test_kill_9_of_the_service_leaves_no_worker_behind(tmp_path: Path, data_dir: Path) -> None:
    daemon, inbox, _ = process_daemon(tmp_path, data_dir)
    try:
        write_pairs(inbox / "a.jsonl", 0, 2_000)
        pids = daemon.wait_event("worker_pool_started")["pids"]
        wait_for(lambda: written(data_dir, "local__a") > 0)
    finally:
        daemon.kill()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
