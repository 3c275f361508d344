"""A progress bar for `resume-collector once` on a terminal (plain log lines otherwise).

While the bar shows, every log line goes through `tqdm.write` (`collector.logging.route_lines`):
the bar is cleared, the line printed, the bar drawn again below it, so the two never overwrite
each other on the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from tqdm import tqdm

from collector.components import Component, Event, Host
from collector.logging import OUTPUT, route_lines


class ProgressBar(Component):
    name = "progress"

    def __init__(self) -> None:
        self.host: Host | None = None
        self.bar: tqdm[Any] | None = None

    @classmethod
    def for_terminal(cls, mode: str) -> ProgressBar | None:
        return cls() if mode == "once" and sys.stderr.isatty() else None

    async def start(self, host: Host) -> None:
        self.host = host
        self.bar = tqdm(desc="records", unit=" rec", file=sys.stderr, dynamic_ncols=True)
        route_lines(lambda line: tqdm.write(line, file=OUTPUT.stream))

    def on_event(self, event: Event, fields: Mapping[str, Any]) -> None:
        if event != "checkpoint" or self.bar is None or self.host is None:
            return
        snapshot = self.host.snapshot()
        if snapshot is None:
            return
        counts = snapshot.counts()
        dropped = sum(n for what, n in counts.items() if what.startswith("drop:"))
        self.bar.update(counts["fetched"] - self.bar.n)
        self.bar.set_postfix(written=counts["written"], pairs=counts["pairs"], dropped=dropped)

    async def stop(self) -> None:
        if self.bar is not None:
            self.on_event("checkpoint", {})
            route_lines(None)
            self.bar.close()
