"""The placement the config asks for: local, or leased through the state's Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from collector.logging import Logger
from collector.scaleout.placement import Halt, Launch, LocalPlacement, Placement
from collector.scaleout.redis_placement import RedisPlacement

if TYPE_CHECKING:
    from collector.config import Config
    from collector.state import StateStore


def open_placement(
    config: Config,
    *,
    instance: str,
    log: Logger,
    launch: Launch,
    halt: Halt,
    mode: Literal["run", "once"],
    on_fatal: Callable[[str], None],
    state: StateStore,
) -> Placement:
    """With `state.backend = "redis"` sources run only while this instance holds their lease,
    and `state` (the service's store) only commits a source's cursors under it; otherwise every
    source runs here. `on_fatal` is called when this instance must stop (another process took
    its name)."""
    if config.state.backend != "redis":
        return LocalPlacement(launch, halt)
    return RedisPlacement.for_config(
        config,
        instance=instance,
        log=log,
        launch=launch,
        halt=halt,
        mode=mode,
        on_fatal=on_fatal,
        state=state,
    )
