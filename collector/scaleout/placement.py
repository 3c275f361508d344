"""Which of the configured sources run on this instance: the `Placement` protocol.

The service hands every configured source to its placement (`want`) and takes it back when the
config drops it (`unwant`); the placement starts and stops the runners (`launch`, `halt`).

- `LocalPlacement` (the default, one instance): every source runs here, at once.
- `RedisPlacement` (collector/scaleout/redis_placement.py, `state.backend = "redis"`): the
  instances sharing a Redis spread the sources over themselves; a runner starts once its lease
  is held and stops when it is lost or handed over.

collector/scaleout/open.py picks one from the config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from collector.sources.config import AnySourceConfig

if TYPE_CHECKING:
    from collector.http import SharedLimits

# Start a source's runner now / stop it (drained).
Launch = Callable[[AnySourceConfig], None]
Halt = Callable[[str], Awaitable[None]]


@dataclass
class PlacementView:
    """Placement as one instance sees it, for `/metrics`: the sources configured here, those
    whose lease it holds, those the placement gives it; per live instance of the fleet, the
    number of sources placed on it and their summed weights; the share (bound) of the load."""

    instance: str
    wanted: list[str]
    held: list[str]
    placed: list[str]
    fleet: dict[str, tuple[int, int]]
    share: int


class Placement(Protocol):
    """Runs the sources this instance should run, for as long as it should run them."""

    @property
    def shared_limits(self) -> SharedLimits | None:
        """The rate limits the sources placed here share with the other instances (None: each
        source has its own); None once the placement is closed."""
        ...

    def want(self, config: AnySourceConfig) -> None:
        """Run this source whenever it is placed here (replaces a config of the same name)."""
        ...

    async def unwant(self, name: str) -> None:
        """No longer configured: stop its runner if it runs here (drained), let it go."""
        ...

    async def start(self) -> None:
        """After the configured sources are wanted: the first round of placing them."""
        ...

    async def freeze(self) -> None:
        """Shutdown begins: take no more sources; the ones running drain where they are."""
        ...

    async def close(self) -> None:
        """After the last checkpoint: let every source go (the others continue from it)."""
        ...

    async def abandon(self, reason: str) -> None:
        """The writer cannot commit any more: let every source go now, without a drain."""
        ...

    def placement_view(self) -> PlacementView | None:
        """Where the fleet's sources are placed, for `/metrics` (None: there is no fleet)."""
        ...


class LocalPlacement:
    """One instance: every configured source runs here, from the moment it is wanted."""

    # Nothing is shared: each source's HttpClient has a bucket of its own.
    shared_limits: SharedLimits | None = None

    def __init__(self, launch: Launch, halt: Halt) -> None:
        self.launch = launch
        self.halt = halt

    def want(self, config: AnySourceConfig) -> None:
        self.launch(config)

    async def unwant(self, name: str) -> None:
        await self.halt(name)

    async def start(self) -> None:
        pass  # every source started when it was wanted

    async def freeze(self) -> None:
        pass  # the service drains the runners itself

    async def close(self) -> None:
        pass

    async def abandon(self, reason: str) -> None:
        pass  # no other instance waits for these sources

    def placement_view(self) -> PlacementView | None:
        return None
