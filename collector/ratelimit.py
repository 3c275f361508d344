"""Client-side rate limiting: a token bucket, a concurrency cap, a daily quota, server pauses.

`TokenBucket` is the agreed primitive: `acquire()` waits for a token and returns the seconds it
waited; `pause_until(deadline)` holds every token back until a monotonic deadline (the server
said "back off"). `RateLimiter` is what an `HttpClient` uses: one bucket per source (from
`RateConfig`), a semaphore for the concurrency cap, a rolling daily quota (`per_day`), pauses per
key (a Stack Exchange method, a GitHub rate-limit resource) and the quota the server reports.
`server_wait(headers)` is the one reading of how long a server asks us to wait, for the shared
HTTP client and for the Hub uploader alike.

Every clock and sleep is injectable so tests can drive time without waiting for it.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: collector.sources imports the sources, which import this
    from collector.sources.config import RateConfig

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DAY = 86_400.0


# One item of the IETF RateLimit header (draft-ietf-httpapi-ratelimit-headers):
# `"api";r=0;t=55`, the policy "api" has 0 requests left and resets in 55 seconds.
_RATELIMIT_ITEM = re.compile(r'"?(?P<name>[^";,]*)"?\s*;(?P<params>[^,]*)')
_RATELIMIT_PARAM = re.compile(r"\b(?P<key>[rt])\s*=\s*(?P<value>\d+)")


def server_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or None when it says nothing.

    `Retry-After` (seconds or an HTTP date) first; else the IETF `RateLimit` header, when a
    policy is spent: `"api";r=0;t=55` (the Hugging Face Hub sends it on every answer, and a
    429 may carry no `Retry-After`; the wait of the longest spent policy). Header names in any
    case. Not capped here: the caller decides what a long wait means.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = retry_after_seconds(lowered.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    return ratelimit_reset(lowered.get("ratelimit"))


def ratelimit_reset(value: str | None) -> float | None:
    """Seconds until the longest spent policy of an IETF `RateLimit` header resets."""
    waits = []
    for item in _RATELIMIT_ITEM.finditer(value or ""):
        params = {m["key"]: int(m["value"]) for m in _RATELIMIT_PARAM.finditer(item["params"])}
        if params.get("r") == 0 and "t" in params:
            waits.append(float(params["t"]))
    return max(waits) if waits else None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class QuotaExhausted(Exception):
    """The daily quota (ours or the server's) is used up; `retry_at` is a wall-clock time."""

    def __init__(self, message: str, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class TokenBucket:
    """`rate` tokens per second up to `burst`; waiters are served first come, first served."""

    def __init__(
        self, rate: float, burst: float, clock: Clock = time.monotonic, sleep: Sleep | None = None
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        self._tokens = float(burst)
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def available(self) -> float:
        """Tokens that could be taken now (0 while paused), without taking any: for metrics."""
        now = self.clock()
        if now < self._paused_until:
            return 0.0
        return max(0.0, min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate))

    def pause_until(self, deadline: float) -> None:
        """Give no token before `deadline` (monotonic). A later deadline wins; earlier is kept."""
        if deadline > self._paused_until:
            self._paused_until = deadline

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    async def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens` (more than `burst` is allowed: it waits for a full bucket and borrows)."""
        started = self.clock()
        async with self._lock:
            need = min(tokens, self.burst)
            while True:
                now = self.clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= need:
                    self._tokens -= tokens
                    return self.clock() - started
                wait = (need - self._tokens) / self.rate
                await self._sleep(wait)
                if self.clock() < self._paused_until:
                    continue  # the server asked for a pause meanwhile
                # The tokens were due at `now + wait`: count from then, not from when the sleep
                # ended, so a late wake-up is not lost time (the long-run rate stays `rate`).
                self._refill(now + wait)
                self._tokens = max(self._tokens, need)
                self._tokens -= tokens
                return self.clock() - started


class RateLimiter:
    """Everything that decides when a source may send its next request."""

    def __init__(
        self,
        rate: RateConfig,
        concurrency: int = 1,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self._sleep: Sleep = sleep or asyncio.sleep
        self.bucket = bucket or TokenBucket(rate.per_second, rate.burst, clock, self._sleep)
        self.per_day = rate.per_day
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._sent: deque[float] = deque()  # wall times of requests in the last day
        self._pauses: dict[str, float] = {}  # key -> monotonic deadline
        self._server_quota_until = 0.0  # wall time before which the server refuses us
        self._server_reason = ""

    # --- what the server says --------------------------------------------------------------

    def pause(self, seconds: float, key: str | None = None) -> None:
        """No request (for `key`, or at all when None) for `seconds` from now."""
        self.pause_until(self.clock() + max(0.0, seconds), key)

    def pause_until(self, deadline: float, key: str | None = None) -> None:
        if key is None:
            self.bucket.pause_until(deadline)
        elif deadline > self._pauses.get(key, 0.0):
            self._pauses[key] = deadline

    def paused_for(self, key: str | None = None) -> float:
        """Seconds left before a request (for `key`) may go out, from pauses alone."""
        deadline = max(self.bucket.paused_until, self._pauses.get(key, 0.0) if key else 0.0)
        return max(0.0, deadline - self.clock())

    def server_quota(self, remaining: int, reset_at: float) -> None:
        """The server reported its daily quota: at 0, nothing more until `reset_at` (wall)."""
        if remaining <= 0:
            self.server_pause(reset_at, "the server's daily quota is used up")

    def server_pause(self, until: float, reason: str) -> None:
        """Nothing more to this API until `until` (wall time): `acquire` raises QuotaExhausted."""
        if until > self._server_quota_until:
            self._server_quota_until, self._server_reason = until, reason

    # --- before each request ---------------------------------------------------------------

    async def acquire(self, key: str | None = None) -> float:
        """Wait for any pause on `key`, then for a token; the seconds waited.

        Raises `QuotaExhausted` when the daily quota is spent: waiting hours inside a request
        helps nobody; the source ends its pass and the next one continues from the cursor.
        """
        started = self.clock()
        while True:
            self._check_quota()
            if key is not None:
                left = self._pauses.get(key, 0.0) - self.clock()
                if left > 0:
                    await self._sleep(left)
                    continue
            await self.bucket.acquire()
            # A pause may have been set while this request waited for its token.
            if key is None or self._pauses.get(key, 0.0) <= self.clock():
                break
        self._check_quota()
        if self.per_day is not None:
            self._sent.append(self.wall())
        return self.clock() - started

    def _check_quota(self) -> None:
        now = self.wall()
        if now < self._server_quota_until:
            raise QuotaExhausted(self._server_reason, self._server_quota_until)
        if self.per_day is None:
            return
        while self._sent and self._sent[0] <= now - DAY:
            self._sent.popleft()
        if len(self._sent) >= self.per_day:
            raise QuotaExhausted(
                f"rate.per_day = {self.per_day} requests used in the last 24 hours",
                self._sent[0] + DAY,
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the `concurrency` request slots."""
        async with self._slots:
            yield
