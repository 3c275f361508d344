"""Rate limits shared by every instance that uses the same credential (`state.backend = "redis"`).

A GitHub token allows so many requests per hour whoever sends them: when several instances (or
several sources on different instances) use one token, their requests must come out of one
bucket. `SharedTokenBucket` is a `TokenBucket` whose state lives in Redis, taken atomically by
a Lua script; it keeps the `acquire` / `pause_until` interface, so the `RateLimiter` of an
`HttpClient` uses it as it would a local bucket.

The script is GCRA (the "generic cell rate algorithm", a token bucket stored as one number: the
theoretical arrival time `tat` of the next request). Each `acquire` reserves its slot at once
and learns how long to wait for it, so waiters in all instances are served in the order they
asked, and in any window of W seconds at most `burst + rate * W` requests go out in total. A
server's "back off" (`pause_until`) is shared as well: the first instance to hear it holds every
other one back. `rate.per_day`, when set, is counted in Redis too (a sliding 24-hour log).

Buckets are keyed by a hash of the source type, the API origin and the credential (the values of
the source's `*_env` variables), never by the credential itself. A source without a credential
shares its bucket with the other instances on the same host (the remote limit is per IP).

With the Redis backend the placement (collector/scaleout/redis_placement.py) makes one
`SharedBuckets`; the service lends it to each source in its `SourceContext`, and the source's
`HttpClient` asks it for its bucket. Without it (one instance), each client has a local bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import msgspec
import redis.asyncio

from collector.ratelimit import Clock, QuotaExhausted, Sleep, TokenBucket
from collector.scaleout.leases import REDIS_ERRORS
from collector.state.redis import ASYNC_TIMEOUT

# KEYS: tat, pause, day log. ARGV: ms per token, burst, tokens, per_day (0: none), member.
# Returns {ms to wait, tokens left after this one, server ms now} or {-1, ms when a slot of the
# daily quota frees up, server ms now}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local per_day = tonumber(ARGV[4])
if per_day > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 86400000)
    if redis.call('ZCARD', KEYS[3]) >= per_day then
        local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
        return {-1, tostring(tonumber(oldest[2]) + 86400000), tostring(now)}
    end
end
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now, paused)
local new_tat = base + tokens * interval
local allowed = math.max(new_tat - burst * interval, now, paused)
local keep = math.ceil(new_tat - now + burst * interval + 1000)
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', keep)
if per_day > 0 then
    redis.call('ZADD', KEYS[3], allowed, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], 86400000 + math.ceil(allowed - now))
end
local left = (burst * interval - (new_tat - math.max(allowed, now))) / interval
return {tostring(allowed - now), tostring(left), tostring(now)}
"""

# KEYS: pause. ARGV: ms from now. A later deadline wins.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local deadline = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if deadline > current then
    redis.call('SET', KEYS[1], tostring(deadline), 'PX', math.ceil(tonumber(ARGV[1])) + 1)
end
return 1
"""

# While Redis cannot be reached a request waits this long between attempts, and gives up
# (QuotaExhausted: the source ends its pass and retries on the next one) after `GIVE_UP`.
RETRY_EVERY = 1.0
GIVE_UP = 30.0


class SharedTokenBucket(TokenBucket):
    """A `TokenBucket` kept in Redis under `key`: every holder of the key shares its tokens."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        key: str,
        rate: float,
        burst: float,
        *,
        per_day: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        timeout: float = ASYNC_TIMEOUT,
        give_up: float = GIVE_UP,
    ) -> None:
        super().__init__(rate, burst, clock, sleep)
        self.client = client
        self.key = key
        self.per_day = per_day or 0
        self.timeout = timeout
        self.give_up = give_up
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)
        self._left = float(burst)
        self._left_at = clock()
        self._pushes: set[asyncio.Task[None]] = set()

    def available(self) -> float:
        """Tokens left as of the last reply from Redis, refilled since (an estimate: metrics)."""
        now = self.clock()
        if now < self._paused_until:
            return 0.0
        return max(0.0, min(self.burst, self._left + (now - self._left_at) * self.rate))

    def pause_until(self, deadline: float) -> None:
        """Hold back this instance at once, and every other holder of the key through Redis."""
        super().pause_until(deadline)
        seconds = deadline - self.clock()
        if seconds <= 0:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._push_pause(seconds))
        except RuntimeError:  # no loop (a synchronous caller): the local pause still holds
            return
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def _push_pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._pause(keys=[f"{self.key}:pause"], args=[seconds * 1000])
        except REDIS_ERRORS:
            pass  # the local pause holds; the others hear the server themselves

    async def acquire(self, tokens: float = 1.0) -> float:
        started = self.clock()
        async with self._lock:  # this instance's waiters in order; Redis orders the instances
            while (left := self._paused_until - self.clock()) > 0:
                await self._sleep(left)
            reply = await self._reserve(tokens, started)
            wait_ms, left_tokens = float(reply[0]), float(reply[1])
            if wait_ms < 0:
                retry_at = float(reply[1]) / 1000
                raise QuotaExhausted(
                    f"rate.per_day = {self.per_day} requests used in the last 24 hours "
                    "(shared by every instance with this credential)",
                    retry_at,
                )
            self._left, self._left_at = max(0.0, left_tokens), self.clock() + wait_ms / 1000
            if wait_ms > 0:
                await self._sleep(wait_ms / 1000)
        return self.clock() - started

    async def _reserve(self, tokens: float, started: float) -> list[Any]:
        args: list[float | int | str] = [
            1000.0 / self.rate,
            self.burst,
            tokens,
            self.per_day,
            uuid.uuid4().hex,
        ]
        keys = [self.key, f"{self.key}:pause", f"{self.key}:day"]
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    reply: list[Any] = await self._take(keys=keys, args=args)
                return reply
            except REDIS_ERRORS as error:
                # Fail closed: without Redis nobody knows what the others sent.
                if self.clock() - started >= self.give_up:
                    raise QuotaExhausted(
                        f"the shared rate limit in Redis cannot be reached: {error}",
                        time.time() + RETRY_EVERY,
                    ) from error
                await self._sleep(RETRY_EVERY)


def credential_key(config: Any) -> str:
    """Which quota a source's requests count against: type, API origin and credential, hashed.

    The credential is the values of the config's `*_env` variables (a token, a key, a user
    name); without one, the quota is the host's (anonymous limits are per IP).
    """
    struct = getattr(type(config), "__struct_config__", None)
    kind = str(struct.tag) if struct is not None and struct.tag else type(config).__name__
    base_url = str(getattr(config, "base_url", "") or "")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url)) if base_url else ""
    names = sorted(f for f in getattr(config, "__struct_fields__", ()) if f.endswith("_env"))
    secrets = [os.environ.get(str(getattr(config, f) or ""), "") for f in names]
    if not any(secrets):
        secrets = [f"anonymous@{socket.gethostname()}"]
    material = msgspec.json.encode([kind, origin, secrets])
    return f"{kind}-{hashlib.blake2b(material, digest_size=12).hexdigest()}"


class SharedBuckets:
    """Makes the shared bucket of a source config (one `SharedTokenBucket` per HttpClient)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def bucket(self, config: Any) -> SharedTokenBucket | None:
        rate = getattr(config, "rate", None)
        if rate is None:
            return None
        key = f"{self.prefix}:rate:{credential_key(config)}"
        return SharedTokenBucket(
            self.client, key, rate.per_second, rate.burst, per_day=rate.per_day
        )
