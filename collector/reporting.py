"""What a source and its HTTP client show on `/metrics`: declared, not probed.

A source that implements `Reporting` is asked for a `Report` whenever the service takes a
snapshot (`collector.components.ServiceSnapshot`); a source without it shows its runner's
figures only (passes, last success). `HttpClient` implements it too, so a source that sends
requests passes its client's report on, adding figures of its own if it has any.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec


class HttpFigures(msgspec.Struct, frozen=True):
    """What an HTTP client did since it started, and its rate limiter now."""

    requests: int = 0  # requests sent, retries included
    retries: int = 0  # requests sent again (429, 5xx, timeouts, resets)
    not_modified: int = 0  # conditional requests answered 304 Not Modified
    rate_wait_seconds: float = 0.0  # waited for the rate limiter
    rate_tokens: float = 0.0  # requests the token bucket allows now
    rate_paused_seconds: float = 0.0  # left in a pause the server asked for
    rate_remaining: float | None = None  # the server's quota as it last reported it


class Report(msgspec.Struct, frozen=True):
    """A source's figures: its own gauges (`resume_collector_source_{key}`) and, when it sends
    HTTP requests, its client's."""

    figures: dict[str, float] = {}
    http: HttpFigures | None = None


@runtime_checkable
class Reporting(Protocol):
    def report(self) -> Report:
        """Figures as they are now; called on the event loop, so it must not block."""
        ...
