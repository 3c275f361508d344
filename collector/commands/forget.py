"""`resume-collector forget`: erasure on request (collector/erasure.py does the work).

    resume-collector forget -c CONFIG --match jane.doe@example.com --match "Jane Doe" [--dry-run]
    resume-collector forget -c CONFIG --source github-json-resume --record jdoe/cv/resume.json

It owns the data folder while it runs: with the service running (it holds
`{data_dir}/.service.lock`) it refuses and says so (exit 3); stop the service, run it, start
the service: the next upload round commits the revised chunks. Run again after a crash, it
finishes what was left (and with no `--match`/`--record`, re-applies every earlier request).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config

EXIT_BUSY = 3


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
    return asyncio.run(forget(config, texts, records, dry_run=args.dry_run))


async def forget(
    config: Config, texts: list[str], records: list[tuple[str, str]], *, dry_run: bool
) -> int:
    from collector import erasure
    from collector.datalock import DataDirBusy, DataDirLock
    from collector.filemodes import apply_file_modes
    from collector.logging import get_logger
    from collector.rewrite.stage import StageLock
    from collector.sinks.formatted import FormattedSink
    from collector.state import open_state_store
    from collector.state.base import instance_name
    from collector.upload.chunks import ChunkRoller
    from collector.upload.component import ChunksBusy, ChunksLock, upload_instance
    from collector.upload.crashpoints import crash_point
    from collector.upload.ledger import Ledger
    from collector.upload.targets import build_target

    log = get_logger().bind(command="forget")
    data_dir = Path(config.service.data_dir)
    apply_file_modes(config.service.file_mode)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirBusy as error:
        print(
            f"forget: {error}: the service is running. Stop it (systemctl stop resume-collector),"
            " run forget, then start it again; the next upload round publishes the removal.",
            file=sys.stderr,
        )
        return EXIT_BUSY
    chunks_lock = ChunksLock(data_dir / "chunks")
    stage_lock = StageLock(data_dir)
    try:
        chunks_lock.acquire()
    except ChunksBusy as error:
        lock.release()
        print(f"forget: {error} (`resume-collector upload`?): try again", file=sys.stderr)
        return EXIT_BUSY
    if not stage_lock.acquire():
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
        chunks_there = (data_dir / "chunks" / "open").is_dir() or config.upload.enabled
        if chunks_there:
            await asyncio.to_thread(roller._open_sync)
        await asyncio.to_thread(erasure.remove_stale_temporaries, data_dir, state)

        before = await asyncio.to_thread(erasure.ForgottenList.load, state)
        wanted = erasure.ForgottenList([*before.texts, *texts], before.records | set(records))
        if not len(wanted):
            print("forget: nothing to forget (give --match TEXT or --source NAME --record ID)")
            return 2
        found = await erasure.find(config, data_dir, wanted, log)
        every = found.records | wanted.records
        plan = erasure.Plan()
        removed = await asyncio.to_thread(erasure.plan_formatted, data_dir, every, plan)
        await asyncio.to_thread(erasure.plan_rewrite_cursors, state, plan, instance)
        target = None
        if config.upload.enabled:
            target = build_target(config.upload, data_dir, log)
        await asyncio.to_thread(
            erasure.plan_chunks,
            config,
            data_dir,
            state,
            removed,
            plan,
            instance=instance,
            target=target,
        )
        _report(found, plan, texts, records, dry_run=dry_run)
        if dry_run:
            return 0

        # 2. Remembered before anything goes: a crash from here on loses no record key.
        await asyncio.to_thread(erasure.remember, state, texts, found.records | set(records))
        crash_point("forget_after_remember")
        # 3. New versions beside the files, then one transaction, then the renames.
        await asyncio.to_thread(erasure.write_new_versions, data_dir, plan)
        crash_point("forget_before_commit")
        await asyncio.to_thread(state.commit, plan.puts, dict(plan.counts))
        crash_point("forget_after_commit")
        await asyncio.to_thread(erasure.apply_all, data_dir, state, log)
        if chunks_there:
            entries = await asyncio.to_thread(Ledger(state).entries)
            await asyncio.to_thread(roller.finish_revisions, entries)
        # 4. Clean up what nothing else refers to.
        for path in found.raw_files:
            path.unlink(missing_ok=True)
        cached = await asyncio.to_thread(erasure.clean_cache, state, plan.answers)
        if plan.names:
            await asyncio.to_thread(formatted._write_reports, plan.names)
        log.info(
            "forget_done",
            records=len(found.records | set(records)),
            lines=plan.removed,
            chunks=len(plan.chunks),
            raw_files=len(found.raw_files),
            cache_entries=cached,
        )
        print(
            f"forget: done. The texts and record ids are remembered: a later fetch of them is"
            f" dropped as opted_out. {len(plan.chunks)} chunk(s) wait for the next upload round."
            " The dedupe fingerprints stay (the dedupe sets cannot remove keys)."
        )
        return 0
    finally:
        await asyncio.to_thread(state.close)
        stage_lock.release()
        chunks_lock.release()
        lock.release()


def _report(
    found: object,
    plan: object,
    texts: list[str],
    records: list[tuple[str, str]],
    *,
    dry_run: bool,
) -> None:
    from collector.erasure import Found, Plan

    assert isinstance(found, Found) and isinstance(plan, Plan)
    verb = "would remove" if dry_run else "removing"
    print(f"forget: {len(found.records | set(records))} record(s) match")
    for source, record_id in sorted(found.records | set(records)):
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
    sub.set_defaults(func=_forget)


__all__ = ["forget", "register"]
