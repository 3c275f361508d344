"""`resume-collector upload`: close every open chunk, upload what is pending, exit.

For cron users who run `once` and then publish. The running daemon uploads on its own (every
`upload.interval`) and holds the chunks folder's lock: this command then says so and exits 3.
Exit codes: 0 everything committed; 1 an upload failed (retried next time, nothing lost);
2 a bad config; 3 the chunks folder is in use; 4 chunks left for later (commit budget spent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config
from collector.filemodes import apply_file_modes


async def publish(config: Config, *, progress_bar: bool) -> int:
    from tqdm import tqdm

    from collector.logging import get_logger
    from collector.scaleout.upload_lease import UploadLease
    from collector.state.open import open_state_store
    from collector.upload.chunks import ChunkRoller
    from collector.upload.component import ChunksBusy, ChunksLock, upload_instance
    from collector.upload.targets import build_target
    from collector.upload.uploader import Uploader

    log = get_logger().bind(command="upload")
    layout = config.layout()
    instance = upload_instance(config)
    state = await asyncio.to_thread(open_state_store, config.state, instance)
    try:
        roller = ChunkRoller(layout.data_dir, state, config.upload, log, instance=instance)
        lock = ChunksLock(roller.root)
        try:
            lock.acquire()
        except ChunksBusy as error:
            print(
                f"{error}: the running service uploads every {config.upload.interval:g}s "
                "on its own; stop it to upload now.",
                file=sys.stderr,
            )
            return 3
        try:
            await roller.open()
            closed = await roller.close_now(everything=True)
            await roller.close()
            target = build_target(config.upload, layout.data_dir, log)
            # With a Redis state, the daemons of other instances take turns on the target:
            # this command waits its turn like them (up to `upload.interval`).
            lease = UploadLease.for_config(config, instance, log)
            uploader = Uploader(
                config,
                target,
                state,
                log,
                chunks_root=roller.root,
                instance=instance,
                exclusive=lease.exclusive if lease is not None else None,
            )
            try:
                await uploader.reconcile()
            except Exception as error:  # every commit looks its chunks up again
                log.error("upload_reconcile_failed", error=str(error).splitlines()[0])
            pending = len(uploader.ledger.entries("pending", instance=instance))
            with tqdm(
                total=pending, unit="chunk", disable=not progress_bar, file=sys.stderr
            ) as bar:
                try:
                    report = await uploader.run(lambda chunks, _records: bar.update(chunks))
                finally:
                    if lease is not None:
                        await lease.close()
        finally:
            lock.release()
    finally:
        await asyncio.to_thread(state.close)
    print(
        f"closed {closed} chunks; committed {report.committed} chunks ({report.records} records)"
        f" in {report.commits} commits to {target.description}; {report.pending} pending"
    )
    if report.error:
        print(f"upload failed: {report.error}", file=sys.stderr)
        return 1
    if report.busy:
        print(
            f"another instance ({report.busy}) kept the upload lease for "
            f"{config.upload.interval:g}s: nothing was committed; try again later",
            file=sys.stderr,
        )
        return 5
    if report.pending:
        when = time.strftime("%H:%M:%S", time.localtime(report.paused_until or time.time()))
        print(f"commit budget spent: the rest can go after {when}", file=sys.stderr)
        return 4
    return 0


def _upload(args: argparse.Namespace) -> int:
    from collector.logging import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    if not config.upload.enabled:
        print(f"{args.config}: upload.enabled is false: nothing to upload")
        return 0
    configure_logging(config.service.log_format, config.service.log_level, stream=sys.stderr)
    apply_file_modes(config.service.file_mode)
    return asyncio.run(publish(config, progress_bar=sys.stderr.isatty()))


def register(commands: Subparsers) -> None:
    upload = commands.add_parser(
        "upload", help="close open chunks, upload every pending chunk and the card, then exit"
    )
    upload.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    upload.set_defaults(func=_upload)
