"""`resume-collector reprocess`: re-run the processors over the raw archive, without fetching.

Each configured source that archives its responses (`records_from_archive`) is replaced, for
this one run, by an `ArchiveSource` that reads `{data_dir}/raw/{source}/` in order and rebuilds
the records with the source's own parsing code. The records go through the normal pipeline:
format, anonymize, validate, dedupe, split, sinks. Output goes to the configured data folder
(duplicates of lines already written are dropped by dedupe as usual) or, with `--output DIR`,
to a fresh folder with its own state. Uploads and other daemon components do not run.

A corrupt archive file (not gzip, cut short, not an entry, a body that is not JSON) is counted
as `archive_corrupt` with its path, and the run goes on. A source whose older raw files
`raw.retention` has removed is named at the end: what was fetched before then is not rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import ConfigError, load_config
from collector.sources.archive import (
    ArchiveCorrupt,
    ArchiveEntry,
    ArchivingSource,
    Expired,
    RawArchive,
)
from collector.sources.base import Source, SourceBatch, SourceContext
from processors.records import Drop, RawRecord


class ArchiveSource:
    """Replays one source's archive as if it were fetching."""

    def __init__(
        self, live: Source, context: SourceContext, raw_dir: Path, batch_size: int
    ) -> None:
        self.name = live.name
        self.live = live
        self.context = context
        self.archive = RawArchive(raw_dir, live.name)
        self.batch_size = batch_size
        self.files = 0

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        if not isinstance(self.live, ArchivingSource):
            self.context.log.info("reprocess_not_archived", source=self.name)
            return
        rebuild = self.live.records_from_archive
        records: list[RawRecord] = []
        drops: list[Drop] = []
        for path in await asyncio.to_thread(self.archive.files):
            if self.context.stop.is_set():
                break
            where = path.relative_to(self.archive.root).as_posix()
            self.files += 1
            try:
                entry: ArchiveEntry = await asyncio.to_thread(self.archive.read, path)
                found, lost = rebuild(entry)
            except (ArchiveCorrupt, msgspec.DecodeError, ValueError, KeyError, TypeError) as error:
                self.context.log.warning("archive_corrupt", file=where, error=str(error)[:300])
                detail = f"{type(error).__name__}: {error}"[:300]
                dataset = f"archive/{self.name}"
                drops.append(Drop(self.name, dataset, where, "archive_corrupt", detail))
                continue
            records += found
            drops += lost
            if len(records) + len(drops) >= self.batch_size:
                yield SourceBatch(records, drops, {})
                records, drops = [], []
        if records or drops:
            yield SourceBatch(records, drops, {})

    async def close(self) -> None:
        await self.live.close()


def _reprocess(args: argparse.Namespace) -> int:
    from collector import sources as registry
    from collector.logging import configure_logging
    from collector.service import Service

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
        registry.SOURCES[kind] = _replaying(factory, raw_dir, replayed)
    service = Service(args.config, "once", config)
    service.components = []  # no uploads, no rewrite calls: only the processors

    async def main() -> int:
        return await service.run()

    code = asyncio.run(main())
    for name, expired in _expired(raw_dir, [s.name for s in sources]):
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


def _expired(raw_dir: Path, names: list[str]) -> list[tuple[str, Expired]]:
    """The sources whose archive retention has cut, with what it removed."""
    found = [(name, RawArchive(raw_dir, name).expired()) for name in names]
    return [(name, expired) for name, expired in found if expired is not None]


def _replaying(factory: Any, raw_dir: Path, replayed: list[ArchiveSource]) -> Any:
    def build(config: Any, context: SourceContext) -> Source:
        source = ArchiveSource(factory(config, context), context, raw_dir, config.batch_size)
        replayed.append(source)
        return source

    return build


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


__all__ = ["ArchiveSource", "register"]
