"""A daemon whose writer stalls on demand, for the systemd watchdog and `/healthz` tests.

`python -m tests.stall FILE ARGS...` is `resume-collector ARGS...` with one more component: it
adds a sink whose flush waits while FILE exists, so every checkpoint waits with work behind it,
as a hung disk would leave the pipeline. The service builds its components in one place
(`collector.service.build_components`); this program adds the stalling one there, in its own
process, so the service itself carries no test switch.
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial
from pathlib import Path

from collector.components import Component, Host, Mode
from collector.config import Config
from collector.sinks.lines import OutputLine
from tests.daemon_process import Daemon


class StallingSink:
    name = "test-stall"
    pending_bytes = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self) -> None:
        return None

    def write(self, lines: list[OutputLine]) -> None:
        return None

    async def flush(self) -> dict[str, dict[str, str]]:
        while self.path.exists():
            await asyncio.sleep(0.02)
        return {}

    async def committed(self) -> None:
        return None

    async def close(self) -> None:
        return None


class StallingComponent(Component):
    """Adds a `StallingSink`: checkpoints wait while `path` exists."""

    name = "test-stall"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def prepare(self, host: Host) -> None:
        host.log.warning("test_stall_enabled", file=str(self.path))
        host.add_sink(StallingSink(self.path))


def stalling_command(stall: Path, *args: str) -> list[str]:
    """`collector_command(*args)` whose writer stalls while `stall` exists."""
    return [sys.executable, "-m", "tests.stall", str(stall), *args]


def stalling_daemon(config: Path, log: Path, stall: Path, env: dict[str, str]) -> Daemon:
    """A `Daemon` (tests/daemon_process.py) started through `stalling_command`."""
    return Daemon(config, log, env, command=partial(stalling_command, stall))


def run_stalling(stall: Path, args: list[str]) -> int:
    from collector import service
    from collector.cli import main

    build = service.build_components

    def with_stall(config: Config, mode: Mode) -> list[Component]:
        return [StallingComponent(stall), *build(config, mode)]

    service.build_components = with_stall
    return main(args)


if __name__ == "__main__":
    raise SystemExit(run_stalling(Path(sys.argv[1]), sys.argv[2:]))
