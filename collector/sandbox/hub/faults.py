"""The Hub's scripted faults: what the next requests to an endpoint meet (`HubFault`).

A status (429 with `Retry-After` or the Hub's IETF `RateLimit`, 500...), a hang before a commit
is applied (answered 504, nothing applied), a hang after it is applied (the client times out
and cannot know whether its commit landed), and a concurrent commit that lands just before the
client's own. The shared `collector.sandbox.faults` middleware (latency, random 429/500,
resets...) sits in front as in every emulator; its 429 is worded as the Hub words it
(`hub_rate_limit_response`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Literal

import msgspec
from aiohttp import web

from collector.sandbox.hub.errors import HubError

Endpoint = Literal[
    "any",
    "create",
    "info",
    "tree",
    "paths_info",
    "preupload",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "commit",
    "commits",
    "resolve",
    "validate_yaml",
]


def hub_rate_limit_headers(reset: float) -> dict[str, str]:
    """The Hub's IETF rate-limit headers of a spent window (`huggingface_hub`'s
    `parse_ratelimit_headers` docstring shows them: 500 requests per 5-minute window)."""
    return {
        "RateLimit": f'"api";r=0;t={math.ceil(reset)}',
        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
    }


def hub_rate_limit_response(request: web.Request, retry_after: float | None) -> web.Response:
    """A 429 as the Hub sends it: the wait in `RateLimit`, no `Retry-After`."""
    headers = hub_rate_limit_headers(retry_after or 0.0)
    message = "You have exceeded our hourly quotas for action: api. We invite you to retry later."
    return HubError(429, message, **headers).response()


class HubFault(msgspec.Struct, frozen=True):
    """One scripted fault, used by the next `times` requests to `endpoint`.

    kind:
      - "status": answer `status` (with `Retry-After: retry_after` when set, and the Hub's IETF
        `RateLimit: "api";r=0;t={rate_limit_reset}` when that is) and do nothing;
      - "hang_before": hold the request `hang` seconds, then fail it with 504, not applied;
      - "hang_after": apply the commit, then hold the response `hang` seconds (the client times
        out not knowing its commit landed);
      - "concurrent_commit": another writer's commit lands on the branch just before this one.
    """

    kind: Literal["status", "hang_before", "hang_after", "concurrent_commit"] = "status"
    endpoint: Endpoint = "commit"
    status: int = 500
    retry_after: float | None = None
    rate_limit_reset: int | None = None
    hang: float = 30.0
    times: int = 1


class FaultScript:
    """The faults still to be used, taken in order by the requests they match."""

    def __init__(self) -> None:
        self.pending: list[HubFault] = []
        self._uses: dict[int, int] = {}
        self._released = asyncio.Event()  # set on shutdown: every held request goes

    def inject(self, *faults: HubFault) -> None:
        self.pending.extend(faults)

    def release(self) -> None:
        """Let every held request go (called when the server shuts down)."""
        self._released.set()

    async def meet(self, endpoint: Endpoint) -> HubFault | None:
        """The fault a request to `endpoint` meets: a status is raised as its `HubError`, a
        `hang_before` holds the request and fails it; any other fault is returned, for the
        handler to apply at its point of the commit."""
        fault = self._take(endpoint)
        if fault is None:
            return None
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            if fault.rate_limit_reset is not None:
                headers.update(hub_rate_limit_headers(fault.rate_limit_reset))
            raise HubError(fault.status, f"injected fault: HTTP {fault.status}", **headers)
        if fault.kind == "hang_before":
            await self.hold(fault.hang)
            raise HubError(504, "injected fault: the request was held and not applied")
        return fault

    async def hold(self, seconds: float) -> None:
        """Wait `seconds`, or less when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    def _take(self, endpoint: Endpoint) -> HubFault | None:
        for index, fault in enumerate(self.pending):
            if fault.endpoint in (endpoint, "any"):
                used = self._uses.get(id(fault), 0) + 1
                if used >= fault.times:
                    self.pending.pop(index)
                    self._uses.pop(id(fault), None)
                else:
                    self._uses[id(fault)] = used
                return fault
        return None
