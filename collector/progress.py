"""A progress bar for `resume-collector once` on a terminal (plain log lines otherwise).

While the bar shows, every log line goes through `tqdm.write` (`collector.logging.route_lines`):
the bar is cleared, the line printed, the bar drawn again below it, so the two never overwrite
each other on the terminal.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from collector.components import Component
from collector.logging import OUTPUT, route_lines

if TYPE_CHECKING:
    from collector.service import Service


class ProgressBar(Component):
    name = "progress"

    def __init__(self) -> None:
        self.service: Service | None = None
        self.bar: tqdm[Any] | None = None

    @classmethod
    def for_terminal(cls, mode: str) -> ProgressBar | None:
        return cls() if mode == "once" and sys.stderr.isatty() else None

    async def start(self, service: Service) -> None:
        self.service = service
        self.bar = tqdm(desc="records", unit=" rec", file=sys.stderr, dynamic_ncols=True)
        route_lines(lambda line: tqdm.write(line, file=OUTPUT.stream))

    def on_event(self, event: str, fields: dict[str, Any]) -> None:
        if event != "checkpoint" or self.bar is None or self.service is None:
            return
        counts = self.service.counts()
        dropped = sum(n for what, n in counts.items() if what.startswith("drop:"))
        self.bar.update(counts["fetched"] - self.bar.n)
        self.bar.set_postfix(written=counts["written"], pairs=counts["pairs"], dropped=dropped)

    async def stop(self) -> None:
        if self.bar is not None:
            self.on_event("checkpoint", {})
            route_lines(None)
            self.bar.close()
