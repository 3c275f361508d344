"""`resume-collector forget`: erasure on request (collector/erasure.py does the work).

    resume-collector forget -c CONFIG --match jane.doe@example.com --match "Jane Doe" [--dry-run]
    resume-collector forget -c CONFIG --source github-json-resume --record jdoe/cv/resume.json

With the data folder to itself it does the work; with the service running (it holds
`{data_dir}/.service.lock`) it queues the request for the service, which serves it between two
checkpoints (collector/erasure_requests.py), and waits for the answer (`--wait`). Either way the
next upload round commits the revised chunks. Run again after a crash, it finishes what was left
(and with no `--match`/`--record`, re-applies every earlier request and serves queued ones).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from typing import TYPE_CHECKING

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from collector.erasure import Found, Plan

# The data folder, its chunks or its state store are held by another process: try again.
EXIT_BUSY = 3
# The request is queued and the service has not served it yet (`--wait` ran out).
EXIT_QUEUED = 75
# How long `forget` waits for the running service to serve a queued request, by default.
WAIT_DEFAULT = 600.0


def _forget(args: argparse.Namespace) -> int:
    from collector.logging import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    if bool(args.source) != bool(args.record):
        print("forget: --source and --record go together", file=sys.stderr)
        return 2
    texts = [t.strip() for t in args.match or [] if t.strip()]
    if any(len(t) < 3 for t in texts):
        print(
            "forget: a --match of fewer than 3 characters would match far too much", file=sys.stderr
        )
        return 2
    records = [(args.source, args.record)] if args.source else []
    configure_logging(config.service.log_format, config.service.log_level, stream=sys.stderr)
    try:
        return asyncio.run(forget(config, texts, records, dry_run=args.dry_run, wait=args.wait))
    except sqlite3.OperationalError as error:
        if "locked" not in str(error):
            raise
        # Another process stayed inside a write past the store's busy timeout: most often a
        # service stopped (SIGSTOP, a debugger) in the middle of a checkpoint.
        print(
            f"forget: the state store {config.state.path} stayed locked by another process"
            f" ({error}): a service stopped or stuck inside a write? Let it run on, or stop"
            " it, then run forget again: it finishes what this run began.",
            file=sys.stderr,
        )
        return EXIT_BUSY


async def forget(
    config: Config,
    texts: list[str],
    records: list[tuple[str, str]],
    *,
    dry_run: bool,
    wait: float = WAIT_DEFAULT,
) -> int:
    from collector import erasure
    from collector.datalock import DataDirBusy, DataDirLock, FolderBusy
    from collector.erasure_requests import DONE, REQUESTS, pending
    from collector.filemodes import apply_file_modes
    from collector.logging import get_logger
    from collector.rewrite.stage import StageLock
    from collector.sinks.formatted import FormattedSink
    from collector.state.open import instance_name, open_state_store
    from collector.upload.chunks import ChunkRoller
    from collector.upload.component import ChunksBusy, ChunksLock, upload_instance
    from collector.upload.ledger import Ledger

    log = get_logger().bind(command="forget")
    layout = config.layout()
    data_dir = layout.data_dir
    apply_file_modes(config.service.file_mode)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirBusy as error:
        return await _beside_the_service(config, texts, records, error.owner, dry_run, wait)
    chunks_lock = ChunksLock(layout.chunks)
    stage_lock = StageLock(data_dir)
    try:
        chunks_lock.acquire()
    except ChunksBusy as error:
        lock.release()
        print(f"forget: {error} (`resume-collector upload`?): try again", file=sys.stderr)
        return EXIT_BUSY
    try:
        stage_lock.acquire()
    except FolderBusy:
        chunks_lock.release()
        lock.release()
        print("forget: `resume-collector rewrite` is running on this data folder", file=sys.stderr)
        return EXIT_BUSY
    state = await asyncio.to_thread(open_state_store, config.state, instance_name(config))
    try:
        # What a start would do first: finish replacements, cut files back, close chunks.
        formatted = FormattedSink(data_dir, state, log)
        formatted.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(formatted.files.recover, formatted.dir)
        instance = upload_instance(config)
        roller = ChunkRoller(data_dir, state, config.upload, log, instance=instance)
        chunks_there = (layout.chunks / "open").is_dir() or config.upload.enabled
        if chunks_there:
            await asyncio.to_thread(roller._open_sync)
        await asyncio.to_thread(erasure.remove_stale_temporaries, data_dir, state)
        # Requests queued for a service that stopped before serving them are served here.
        queued = [] if dry_run else await asyncio.to_thread(pending, state)
        texts = [*texts, *(t for _, r in queued for t in r.texts)]
        records = [*records, *((s, i) for _, q in queued for s, i in q.records)]

        def report(found: erasure.Found, plan: erasure.Plan) -> None:
            _report(found, plan, texts, dry_run=dry_run)

        result = await erasure.erase(
            config,
            data_dir,
            state,
            texts,
            records,
            log,
            instance=instance,
            dry_run=dry_run,
            report=report,
        )
        if result is None:
            print("forget: nothing to forget (give --match TEXT or --source NAME --record ID)")
            return 2
        if dry_run:
            return 0
        if chunks_there:
            entries = await asyncio.to_thread(lambda: Ledger(state).entries(folder=None))
            await asyncio.to_thread(roller.finish_revisions, entries)
        if queued:
            keys = [key for key, _ in queued]
            answer = _answer(result.counts())
            await asyncio.to_thread(state.commit, {DONE: dict.fromkeys(keys, answer)})
            await asyncio.to_thread(state.delete, REQUESTS, keys)
        log.info("forget_done", **result.counts(), queued_requests=len(queued))
        print(
            f"forget: done. The texts and record ids are remembered: a later fetch of them is"
            f" dropped as opted_out. {len(result.plan.chunks)} chunk(s) wait for the next upload"
            " round. The dedupe fingerprints stay (the dedupe sets cannot remove keys)."
        )
        return 0
    finally:
        await asyncio.to_thread(state.close)
        stage_lock.release()
        chunks_lock.release()
        lock.release()


def _answer(counts: dict[str, int]) -> str:
    import os
    import time

    import msgspec

    from collector.erasure_requests import Answer

    answer = Answer(**counts, served_by=os.getpid(), served_at=time.time())
    return msgspec.json.encode(answer).decode()


async def _beside_the_service(
    config: Config,
    texts: list[str],
    records: list[tuple[str, str]],
    owner: str,
    dry_run: bool,
    wait: float,
) -> int:
    """The service (pid `owner`) holds the data folder: list only, or queue the request for
    it (collector/erasure_requests.py) and wait for its answer."""
    import time

    from collector import erasure
    from collector.erasure_requests import RequestServer, answer_of, queue_request
    from collector.logging import get_logger
    from collector.state.open import instance_name, open_state_store
    from collector.upload.component import upload_instance

    layout = config.layout()
    data_dir = layout.data_dir
    if not RequestServer.serves(config) and not dry_run:
        print(
            f"forget: {data_dir} is in use by pid {owner}, a service that cannot serve a removal"
            " while it runs (its state is shared on Redis)."
            " Stop it (systemctl stop resume-collector), run forget, then start it again.",
            file=sys.stderr,
        )
        return EXIT_BUSY
    if not dry_run and not texts and not records:
        print("forget: nothing to forget (give --match TEXT or --source NAME --record ID)")
        return 2
    state = await asyncio.to_thread(open_state_store, config.state, instance_name(config))
    try:
        if dry_run:
            # Read only: the files may grow meanwhile, never shrink (only an erasure does that).
            try:
                result = await erasure.erase(
                    config,
                    data_dir,
                    state,
                    texts,
                    records,
                    get_logger().bind(command="forget"),
                    instance=upload_instance(config),
                    dry_run=True,
                    report=lambda found, plan: _report(found, plan, texts, dry_run=True),
                )
            except RuntimeError as error:  # a line half written as it was read
                print(f"forget: {error}: the service is writing, try again", file=sys.stderr)
                return EXIT_BUSY
            if result is None:
                print("forget: nothing to forget (give --match TEXT or --source NAME --record ID)")
                return 2
            return 0
        key = await asyncio.to_thread(queue_request, state, texts, records)
        print(
            f"forget: the service (pid {owner}) holds {data_dir}: request {key} is queued;"
            " the service serves it at its next checkpoint."
        )
        deadline = time.monotonic() + wait
        while True:
            answer = await asyncio.to_thread(answer_of, state, key)
            if answer is not None:
                print(
                    f"forget: done by the service (pid {answer.served_by}): {answer.records}"
                    f" record(s), {answer.lines} line(s) removed, {answer.chunks} chunk(s) wait"
                    f" for the next upload round, {answer.raw_files} raw entr(ies) removed."
                    " The texts and record ids are remembered: a later fetch is dropped as"
                    " opted_out."
                )
                return 0
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        if wait > 0:
            print(
                f"forget: not served within {wait:g}s; request {key} stays queued and is served"
                " by the service (or by `forget` run with the service stopped).",
                file=sys.stderr,
            )
        return EXIT_QUEUED
    finally:
        await asyncio.to_thread(state.close)


def _report(found: Found, plan: Plan, texts: list[str], *, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removing"
    print(f"forget: {len(found.records)} record(s) match")
    for source, record_id in sorted(found.records):
        print(f"  record {source} {record_id}")
    for key, n in sorted(plan.lines.items()):
        print(f"  {verb} {n} line(s) from {key}")
    for path, n in sorted(plan.chunks.items()):
        print(f"  {verb} {n} line(s) from chunk {path} (a new version is published)")
    for raw in found.raw_files:
        print(f"  {verb} raw entry {raw}")
    if found.raw_others:
        print(
            f"  those raw entries also hold {found.raw_others} other record(s): their lines stay,"
            " reprocess can no longer rebuild them"
        )
    if texts:
        print(f"  {'would remember' if dry_run else 'remembering'} {len(texts)} text(s)")


def register(commands: Subparsers) -> None:
    sub = commands.add_parser(
        "forget",
        help="remove a person's records everywhere, the published dataset included (erasure)",
    )
    sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    sub.add_argument(
        "--match",
        action="append",
        metavar="TEXT",
        help="literal text as it appeared in the input (e-mail, name, profile URL); any case,"
        " whole words; repeatable",
    )
    sub.add_argument("--source", help="with --record: the source that fetched the record")
    sub.add_argument("--record", help="with --source: the record id (as in provenance)")
    sub.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    sub.add_argument(
        "--wait",
        type=float,
        default=WAIT_DEFAULT,
        metavar="SECONDS",
        help="with the service running: how long to wait for it to serve the request"
        f" (default {WAIT_DEFAULT:g}; 0: queue it and return, exit {EXIT_QUEUED})",
    )
    sub.set_defaults(func=_forget)


__all__ = ["forget", "register"]
