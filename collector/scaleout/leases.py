"""Leases in Redis: the primitives every lease of the service is made of.

A lease is one or more Redis keys holding the owner's token, with a TTL its owner renews.
Taking it is atomic over all its keys (free or already ours: set them all); renewing and
releasing check ownership first, in the same Lua script, so an instance can never extend or
drop a lease another instance took after its own expired.

What is built on them: the placement of sources over the instances
(collector/scaleout/redis_placement.py) and one uploader per target
(collector/scaleout/upload_lease.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from collector.logging import Logger
from collector.state.redis import ASYNC_TIMEOUT

# The exit code when a lease was lost with uncommitted output (EX_TEMPFAIL: restart me).
EXIT_LEASE_LOST = 75

# What may fail talking to Redis: its own errors, and our bound on each call.
REDIS_ERRORS = (redis.RedisError, TimeoutError, OSError)

# KEYS: the lease's keys. ARGV: owner, ttl in ms. Free or ours: take every key; 0 otherwise.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
    local holder = redis.call('GET', key)
    if holder and holder ~= ARGV[1] then return {0, key, holder} end
end
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return {1}
"""

# Renew only if every key is still ours; otherwise the lease is lost (nothing is touched).
_RENEW = """
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) ~= ARGV[1] then return 0 end
end
for i, key in ipairs(KEYS) do
    redis.call('PEXPIRE', key, ARGV[2])
end
return 1
"""

# Delete the keys that are ours; leave any other holder's alone.
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('DEL', key)
        n = n + 1
    end
end
return n
"""

# KEYS: interest sets. ARGV: member, ttl in ms, 1 to announce or 0 to withdraw.
# Returns, per set, the members whose interest has not expired (server time, not ours).
_INTEREST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
    if ARGV[3] == '1' then
        redis.call('ZADD', key, now + tonumber(ARGV[2]), ARGV[1])
        redis.call('PEXPIRE', key, tonumber(ARGV[2]) * 4)
    else
        redis.call('ZREM', key, ARGV[1])
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    out[i] = redis.call('ZRANGE', key, 0, -1)
end
return out
"""


# ARGV: prefix, member, ttl in ms, then the source keys `member` is configured with, each
# followed by its weight. Announces them (each in its interest set, in the fleet's set of
# sources, and its weight in the fleet's hash of weights), then returns the whole fleet's view,
# flat: per live source key, its key, its holder ("" when free), its weight (1 when none was
# announced), the number of live interested instances and their names. Every instance places
# from the same view.
_FLEET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, member, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local fleet = prefix .. ':sources'
local weights = prefix .. ':weights'
for i = 4, #ARGV, 2 do
    local key = prefix .. ':interest:' .. ARGV[i]
    redis.call('ZADD', key, now + ttl, member)
    redis.call('PEXPIRE', key, ttl * 4)
    redis.call('ZADD', fleet, now + ttl, ARGV[i])
    redis.call('HSET', weights, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', fleet, ttl * 4)
redis.call('PEXPIRE', weights, ttl * 4)
redis.call('ZREMRANGEBYSCORE', fleet, '-inf', now)
local out = {}
for _, source in ipairs(redis.call('ZRANGE', fleet, 0, -1)) do
    local key = prefix .. ':interest:' .. source
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local members = redis.call('ZRANGE', key, 0, -1)
    local holder = redis.call('GET', prefix .. ':lease:source:' .. source) or ''
    out[#out + 1] = source
    out[#out + 1] = holder
    out[#out + 1] = redis.call('HGET', weights, source) or '1'
    out[#out + 1] = #members
    for _, m in ipairs(members) do out[#out + 1] = m end
end
return out
"""


def new_owner_token(instance: str) -> str:
    """Unique per process: a restarted instance never mistakes its old leases for its own."""
    return f"{instance}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_instance(token: str) -> str:
    """The instance of an owner token (`{instance}:{pid}:{random}`)."""
    return token.rsplit(":", 2)[0]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class LeaseStore:
    """Atomic take / renew / release of leases under `{prefix}:lease:`."""

    def __init__(
        self, client: redis.asyncio.Redis, prefix: str, timeout: float = ASYNC_TIMEOUT
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._interest = client.register_script(_INTEREST)
        self._fleet = client.register_script(_FLEET)

    def key(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    async def acquire(self, names: Sequence[str], owner: str, ttl: float) -> tuple[bool, str]:
        """(taken, current holder): the lease over all `names`, if each is free or ours."""
        async with asyncio.timeout(self.timeout):
            reply: list[Any] = await self._acquire(
                keys=[self.key(n) for n in names], args=[owner, _ms(ttl)]
            )
        if int(reply[0]) == 1:
            return True, owner
        return False, str(reply[2])

    async def renew(self, names: Sequence[str], owner: str, ttl: float) -> bool:
        async with asyncio.timeout(self.timeout):
            reply = await self._renew(keys=[self.key(n) for n in names], args=[owner, _ms(ttl)])
        return int(reply) == 1

    async def release(self, names: Sequence[str], owner: str) -> int:
        async with asyncio.timeout(self.timeout):
            reply = await self._release(keys=[self.key(n) for n in names], args=[owner])
        return int(reply)

    async def holder(self, name: str) -> str | None:
        async with asyncio.timeout(self.timeout):
            value: Any = await self.client.get(self.key(name))
        return None if value is None else str(value)

    async def interest(
        self, sources: Sequence[str], member: str, ttl: float, announce: bool = True
    ) -> dict[str, list[str]]:
        """Announce (or withdraw) `member`'s interest in each source; the live members of each."""
        if not sources:
            return {}
        keys = [f"{self.prefix}:interest:{s}" for s in sources]
        async with asyncio.timeout(self.timeout):
            reply: list[list[str]] = await self._interest(
                keys=keys, args=[member, _ms(ttl), "1" if announce else "0"]
            )
        return {s: [str(m) for m in members] for s, members in zip(sources, reply, strict=True)}

    async def fleet(self, sources: Mapping[str, int], member: str, ttl: float) -> FleetView:
        """Announce `member`'s interest in `sources` (source key -> weight); every live source
        of the fleet with its live interested instances, its holder and its weight."""
        args: list[str | int] = [self.prefix, member, _ms(ttl)]
        for source, weight in sources.items():
            args += [source, weight]
        async with asyncio.timeout(self.timeout):
            reply: list[Any] = await self._fleet(keys=[], args=args)
        view = FleetView()
        at = 0
        while at < len(reply):
            source, holder, count = str(reply[at]), str(reply[at + 1]), int(reply[at + 3])
            view.interest[source] = [str(m) for m in reply[at + 4 : at + 4 + count]]
            view.holders[source] = owner_instance(holder) if holder else None
            view.weights[source] = int(reply[at + 2])
            at += 4 + count
        return view

    @contextlib.asynccontextmanager
    async def hold(
        self,
        name: str,
        owner: str,
        ttl: float,
        *,
        wait: float | None = None,
        log: Logger | None = None,
    ) -> AsyncIterator[HeldLease]:
        """Take `name` (polling up to `wait` seconds, forever if None), keep it renewed while
        the block runs, release it afterwards. `LeaseBusy` if it could not be taken in time;
        check `lost` (an `asyncio.Event`) before any step that must only run under the lease."""
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            taken, holder = await self.acquire([name], owner, ttl)
            if taken:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseBusy(name, holder)
            await asyncio.sleep(min(ttl / 3, 0.5) * (0.5 + random.random()))
        held = HeldLease(name, owner)
        keeper = asyncio.create_task(self._keep(held, ttl, log), name=f"lease-{name}")
        try:
            yield held
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            with contextlib.suppress(*REDIS_ERRORS):
                await self.release([name], owner)

    async def _keep(self, held: HeldLease, ttl: float, log: Logger | None) -> None:
        valid_until = time.monotonic() + ttl
        while not held.lost.is_set():
            await asyncio.sleep(ttl / 3)
            try:
                if await self.renew([held.name], held.owner, ttl):
                    valid_until = time.monotonic() + ttl
                    continue
            except REDIS_ERRORS as error:
                if log is not None:
                    log.warning("lease_renew_failed", lease=held.name, error=str(error))
                if time.monotonic() < valid_until - ttl / 3:
                    continue
            held.lost.set()
            if log is not None:
                log.error("lease_lost", lease=held.name)


@dataclass
class FleetView:
    """What one fleet round read: per live source key, the live instances configured with it,
    its holder's instance (None when free) and its weight."""

    interest: dict[str, list[str]] = field(default_factory=dict)
    holders: dict[str, str | None] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)


@dataclass
class HeldLease:
    name: str
    owner: str
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class LeaseBusy(Exception):
    def __init__(self, name: str, holder: str) -> None:
        super().__init__(f"the lease {name!r} is held by {holder}")
        self.name = name
        self.holder = holder
