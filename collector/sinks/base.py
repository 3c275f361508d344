"""The sink protocol: buffer examples, make them durable on flush, recover on open."""

from __future__ import annotations

from typing import Protocol

from collector.sinks.lines import OutputLine


class Sink(Protocol):
    name: str

    async def open(self) -> None:
        """Repair what a crash left behind: cut files back to their committed state."""
        ...

    def write(self, lines: list[OutputLine]) -> None:
        """Buffer examples (rendered once for every sink) in order; nothing is durable until
        `flush`."""
        ...

    @property
    def pending_bytes(self) -> int: ...

    async def flush(self) -> dict[str, dict[str, str]]:
        """Make everything buffered durable; the state puts to commit with the checkpoint."""
        ...

    async def committed(self) -> None:
        """Called once the checkpoint holding the last flush is committed."""
        ...

    async def close(self) -> None: ...
