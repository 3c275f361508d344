"""`resume-collector reprocess`: re-run the processors over the raw archive, without fetching.

Each configured source that archives its responses (`records_from_archive`) is replaced, for
this one run, by an `ArchiveSource` (collector/sources/replay.py) that reads
`{data_dir}/raw/{source}/` in order and rebuilds the records with the source's own parsing code.
The records go through the normal pipeline: format, anonymize, validate, dedupe, split, sinks.
Output goes to the configured data folder (duplicates of lines already written are dropped by
dedupe as usual) or, with `--output DIR`, to a fresh folder with its own state. Uploads and
other daemon components do not run.

A corrupt archive file (not gzip, cut short, not an entry, a body that is not JSON) is counted
as `archive_corrupt` with its path, and the run goes on. A source whose older raw files
`raw.retention` has removed is named at the end: what was fetched before then is not rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import msgspec

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import ConfigError, load_config


def _reprocess(args: argparse.Namespace) -> int:
    from collector import sources as registry
    from collector.logging import configure_logging
    from collector.service import Service
    from collector.sources.replay import ArchiveSource, expired_archives, replaying

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    raw_dir = config.layout().raw
    wanted = set(args.source or [])
    unknown = wanted - {s.name for s in config.sources}
    if unknown:
        print(f"reprocess: no source named {', '.join(sorted(unknown))} in {args.config}")
        return 2
    sources = [
        msgspec.structs.replace(s, enabled=True)
        for s in config.sources
        if (not wanted and s.enabled) or s.name in wanted
    ]
    config = msgspec.structs.replace(config, sources=sources)
    if args.output:
        out = Path(args.output)
        config = msgspec.structs.replace(
            config,
            service=msgspec.structs.replace(config.service, data_dir=str(out)),
            state=msgspec.structs.replace(config.state, path=str(out / "state.sqlite3")),
        )
    configure_logging(config.service.log_format, config.service.log_level)
    replayed: list[ArchiveSource] = []
    for kind, factory in list(registry.SOURCES.items()):
        registry.SOURCES[kind] = replaying(factory, raw_dir, replayed)
    service = Service(args.config, "once", config)
    service.components = []  # no uploads, no rewrite calls: only the processors

    async def main() -> int:
        return await service.run()

    code = asyncio.run(main())
    for name, expired in expired_archives(raw_dir, [s.name for s in sources]):
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expired.before))
        print(
            f"reprocess: {name} cannot be rebuilt in full from raw: raw.retention removed"
            f" {expired.files} files written before {when}"
        )
    counts = service.counts()
    corrupt = counts.get("drop:archive_corrupt", 0)
    dropped = sum(v for k, v in counts.items() if k.startswith("drop:"))
    print(
        f"reprocessed {sum(s.files for s in replayed)} archive files: "
        f"{counts.get('fetched', 0)} records, {counts.get('written', 0)} written, "
        f"{counts.get('pairs', 0)} pairs, {dropped} dropped ({corrupt} archive_corrupt)"
    )
    return code


def register(commands: Subparsers) -> None:
    sub = commands.add_parser(
        "reprocess", help="re-run the processors over the raw archive (no fetching)"
    )
    sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    sub.add_argument(
        "--source", action="append", help="only this source (repeatable); default: all enabled"
    )
    sub.add_argument(
        "--output",
        help="write to this data folder with a fresh state (default: the configured one)",
    )
    sub.set_defaults(func=_reprocess)


__all__ = ["register"]
