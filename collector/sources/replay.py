"""Replaying a source's raw archive (`resume-collector reprocess`): `ArchiveSource` stands in
for a configured source and yields the records its own parsing code rebuilds from each file of
`{data_dir}/raw/{source}/`, in order, instead of fetching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

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


def expired_archives(raw_dir: Path, names: list[str]) -> list[tuple[str, Expired]]:
    """The sources whose archive retention has cut, with what it removed."""
    found = [(name, RawArchive(raw_dir, name).expired()) for name in names]
    return [(name, expired) for name, expired in found if expired is not None]


def replaying(factory: Any, raw_dir: Path, replayed: list[ArchiveSource]) -> Any:
    """A source factory (`collector.sources.SOURCES`) that builds the live source, for its
    parsing code, and hands out an `ArchiveSource` replaying it, kept in `replayed`."""

    def build(config: Any, context: SourceContext) -> Source:
        source = ArchiveSource(factory(config, context), context, raw_dir, config.batch_size)
        replayed.append(source)
        return source

    return build
