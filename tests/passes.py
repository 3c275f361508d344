"""One pass of a source, gathered for assertions: what the source tests share."""

from __future__ import annotations

from collections.abc import Mapping

from collector.sources.base import Source
from processors.records import Drop, RawRecord


class Pass:
    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.drops: list[Drop] = []
        self.cursors: dict[str, str] = {}
        self.batches = 0

    def reasons(self) -> list[str]:
        return [d.reason for d in self.drops]


async def run_pass(
    source: Source, cursors: Mapping[str, str] = {}, max_batches: int | None = None
) -> Pass:
    """Fetch from `cursors` to the end (or `max_batches` batches), then close the source."""
    result = Pass()
    try:
        async for batch in source.fetch(cursors):
            result.batches += 1
            result.records += batch.records
            result.drops += batch.drops
            result.cursors.update(batch.cursors)
            if max_batches is not None and result.batches >= max_batches:
                break
    finally:
        await source.close()
    return result
