"""The one protocol every source implements, and the batch it yields."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

import msgspec
import structlog

from collector.layout import raw_dir
from processors.records import Drop, RawRecord

if TYPE_CHECKING:  # aiohttp, imported only where a source makes HTTP requests
    from collector.http import HttpClient, HttpSettings, ServerHints, SharedLimits


class JsonCursor(msgspec.Struct, frozen=True):
    """A source's cursor as a Struct, saved as JSON text in the state store.

    An unreadable cursor (an older format, a hand edit) decodes to the start: the source then
    fetches again from the beginning rather than failing, and dedupe drops what it had.
    """

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, text: str) -> Self:
        if not text:
            return cls()
        try:
            return msgspec.json.decode(text, type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return cls()


class SourceBatch(msgspec.Struct):
    """Records fetched together, the drops met while fetching them, and where to resume.

    `cursors` maps a stream of the source (a file, a query, a dataset) to the position after this
    batch. The service saves them only once every record of the batch is durable.
    """

    records: list[RawRecord]
    drops: list[Drop] = []
    cursors: dict[str, str] = {}


@dataclass
class SourceContext:
    """What the service lends a source: where to archive raw responses, how to log, when to
    stop, and the rate limits it shares with other instances (for its `HttpClient`)."""

    data_dir: Path
    log: structlog.typing.FilteringBoundLogger
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # With the Redis backend: one quota per credential across the instances (None: its own).
    shared_limits: SharedLimits | None = None

    @property
    def raw_dir(self) -> Path:
        return raw_dir(self.data_dir)

    def http_client(
        self,
        config: HttpSettings,
        *,
        headers: Mapping[str, str] | None = None,
        hints: ServerHints | None = None,
    ) -> HttpClient:
        """The source's HTTP client: it logs as the source, its retries wake at the drain, and
        its rate limit is the one shared by the fleet when there is one."""
        from collector.http import HttpClient

        return HttpClient(
            config,
            self.log,
            headers=headers,
            hints=hints,
            stop=self.stop,
            shared_limits=self.shared_limits,
        )


class Source(Protocol):
    """Knows one remote API (or folder). Yields batches; never formats or writes output."""

    name: str

    def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        """One pass from the given cursors to whatever is available now."""
        ...

    async def close(self) -> None: ...
