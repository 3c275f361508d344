"""`resume-collector rewrite FILE`: rewrite an existing `__pairs` file into its `__rewritten` file.

It runs the daemon's rewrite stage once over FILE, with the same cache, budget, checks, cursor
and pipeline (dedupe, split, durable writes), so it continues where the daemon stopped and the
daemon continues where it stopped. Output goes to `{data_dir}/formatted/{name}__rewritten.jsonl`
(beside FILE when FILE is the daemon's own pairs file). A progress bar is drawn on a terminal.

Exit codes: 0 done, 2 bad arguments or config (or the daemon's stage holds the lock), 3 stopped
early (budget spent for today, endpoint down or refusing): run it again later, it resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config
from collector.filemodes import apply_file_modes


def register(commands: Subparsers) -> None:
    sub = commands.add_parser(
        "rewrite",
        help="rewrite a {name}__pairs.jsonl file into {name}__rewritten.jsonl with the LLM",
    )
    sub.add_argument("file", help="a {owner}__{dataset}__pairs.jsonl file")
    sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    sub.add_argument(
        "--restart",
        action="store_true",
        help="read FILE from its first line again (cached answers are not paid again, lines "
        "already written are dropped as duplicates)",
    )
    sub.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    sub.add_argument("--verbose", "-v", action="store_true", help="log every event to stderr")
    sub.set_defaults(func=_rewrite)


def _rewrite(args: argparse.Namespace) -> int:
    from collector.logging import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    path = Path(args.file)
    if not path.is_file():
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    if not path.name.endswith("__pairs.jsonl"):
        print(f"{path}: expected a {{name}}__pairs.jsonl file", file=sys.stderr)
        return 2
    configure_logging("console", "info" if args.verbose else "warning", stream=sys.stderr)
    show = not args.no_progress and sys.stderr.isatty()
    apply_file_modes(config.service.file_mode)
    return asyncio.run(_main(config, path, restart=args.restart, progress=show))


async def _main(config: Config, path: Path, *, restart: bool, progress: bool) -> int:
    from tqdm import tqdm

    from collector.datalock import FolderBusy
    from collector.logging import get_logger
    from collector.pipeline import CURSOR_NAMESPACE, Pipeline, cursor_key
    from collector.rewrite.source import RUNNER_NAME
    from collector.rewrite.stage import (
        StageLock,
        build_source,
        rewrite_chain,
        runner_config,
        shared_instance,
    )
    from collector.service import SourceRunner
    from collector.sinks.formatted import FormattedSink
    from collector.sources.base import SourceContext
    from collector.state.open import instance_name, open_state_store
    from processors.rewrite import pii_scanner

    service = config.service
    layout = config.layout()
    data_dir = layout.data_dir
    lock = StageLock(data_dir)
    try:
        lock.acquire()
    except FolderBusy as busy:
        print(
            f"{lock.path} is held (pid {busy.owner}): the daemon's rewrite stage is running on"
            " this data folder; stop it (or set rewrite.enabled = false) and try again",
            file=sys.stderr,
        )
        return 2
    log = get_logger()
    state = await asyncio.to_thread(open_state_store, config.state, instance_name(config))
    bar: Any = None
    try:
        sink = FormattedSink(data_dir, state, log)
        await sink.open()
        pipeline = Pipeline.from_config(config, state, [sink], log)
        context = SourceContext(data_dir=data_dir, log=log.bind(source=RUNNER_NAME))
        done = [0]

        def advance(stream: str, offset: int, limit: int) -> None:
            if bar is not None:
                bar.total = max(limit, offset)
                bar.update(offset - done[0])
            done[0] = offset

        pii = await asyncio.to_thread(pii_scanner, config.processing.anonymize)
        source = build_source(
            config, state, data_dir, context, files=[path], pause_on_budget=False,
            on_progress=advance, pii=pii, instance=shared_instance(config),
        )  # fmt: skip
        key = cursor_key(RUNNER_NAME, source.stream(path))
        if restart:
            await asyncio.to_thread(state.delete, CURSOR_NAMESPACE, [key])
        saved = await asyncio.to_thread(state.get, CURSOR_NAMESPACE, key)
        done[0] = int(saved) if saved and saved.isdigit() else 0
        if progress:
            bar = tqdm(
                total=path.stat().st_size, initial=done[0], unit="B", unit_scale=True,
                desc=path.name.removesuffix("__pairs.jsonl"), file=sys.stderr,
            )  # fmt: skip
        runner = SourceRunner(
            runner_config(config, data_dir), source, context, rewrite_chain(config, pii),
            pipeline, state, "once",
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, context.stop.set)
        runner.start()
        assert runner.task is not None
        await runner.task
        await runner.stop(service.shutdown_timeout / 2)
        await pipeline.drain()
        await sink.close()
    finally:
        if bar is not None:
            bar.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(state.close)
        lock.release()
    _summary(path, layout.formatted, runner.ack.counts, source.rewriter.stats, source.halted)
    return 0 if source.halted is None else 3


def _summary(
    path: Path, formatted: Path, counts: Counter[str], stats: Counter[str], halted: str | None
) -> None:
    drops = {k.removeprefix("drop:"): v for k, v in counts.items() if k.startswith("drop:")}
    name = path.name.removesuffix("__pairs.jsonl")
    print(f"{path}: {counts['fetched']} pairs read")
    print(f"  rewritten: {counts['written']} -> {formatted / name}__rewritten.jsonl")
    print(f"  dropped: {sum(drops.values())}")
    for reason, n in sorted(drops.items(), key=lambda kv: -kv[1]):
        print(f"    {reason}: {n}")
    print(
        f"  requests: {stats['requests']}, cache hits: {stats['cache_hits']}, "
        f"tokens: {stats['tokens']}"
    )
    if halted is not None:
        why = {
            "budget": "the daily budget is spent; run again tomorrow (UTC) to continue",
            "unavailable": "the endpoint did not answer; run again later to continue",
            "refused": "the endpoint refused the requests (key, model or account?)",
            "stopped": "interrupted; run again to continue",
        }.get(halted, halted)
        print(f"  stopped early: {why}")
