"""Leases in Redis: which instance runs which source, and who may upload to a repo.

A lease is one or more Redis keys holding the owner's token, with a TTL its owner renews.
Taking it is atomic over all its keys (free or already ours: set them all); renewing and
releasing check ownership first, in the same Lua script, so an instance can never extend or
drop a lease another instance took after its own expired.

`SourceLeases` runs the sources of one instance when several instances share a Redis:

- each configured source is one lease over two keys: its identity (`source_key`: a hash of the
  type and of the fields that say what it fetches, so instances with different config files
  agree) and its name (cursors and output files are saved under the name, so one name must
  mean one source at a time);
- a runner only starts once its lease is held; a runner whose lease is lost stops fetching and
  drains what it has;
- each instance announces which sources it is configured with (a sorted set per source, one
  member per instance, expiring with the lease TTL). Among the live instances interested in a
  source, the preferred owner is the one with the highest rendezvous hash of (source, instance):
  a free source is taken at once by its preferred owner, and by anyone once it has been free for
  a TTL; an owner that is not preferred hands the source over (drains, then releases) once it has
  held it for a TTL. Sources spread evenly, and none stays unowned;
- when an instance dies, its leases expire after the TTL and the others take its sources over,
  continuing from the cursors it committed.

The instance itself holds a lease on its name, so two processes started with the same
`state.instance` (and therefore the same local file ledger) cannot run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import redis.asyncio

from collector.logging import Logger
from collector.pipeline import CURSOR_NAMESPACE
from collector.sources.config import AnySourceConfig
from collector.state.redis import ASYNC_TIMEOUT, Fence, RedisStateStore, connect_async

if TYPE_CHECKING:
    from collector.config import Config

# The exit code when a lease was lost with uncommitted output (EX_TEMPFAIL: restart me).
EXIT_LEASE_LOST = 75

# What may fail talking to Redis: its own errors, and our bound on each call.
REDIS_ERRORS = (redis.RedisError, TimeoutError, OSError)

# What a source's identity leaves out: how it runs, not what it fetches. Secrets are named by
# `*_env` fields, which may differ between machines holding the same credential.
OPERATIONAL_FIELDS = frozenset(
    {
        "name",
        "enabled",
        "interval",
        "batch_size",
        "recipe",
        "license",
        "rate",
        "concurrency",
        "retry",
        "timeout",
        "max_response_bytes",
        "weight",
    }
)

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


def source_key(config: AnySourceConfig) -> str:
    """A stable identity for what a source fetches: its type and its defining fields."""
    kind = str(type(config).__struct_config__.tag)
    defining: dict[str, Any] = {}
    for name in config.__struct_fields__:
        if name in OPERATIONAL_FIELDS or name.endswith("_env"):
            continue
        value = getattr(config, name)
        if name == "path" and isinstance(value, str):
            value = os.path.abspath(value)  # the same folder, whatever the working directory
        defining[name] = value
    encoded = msgspec.json.encode(msgspec.to_builtins(defining, order="sorted"))
    return f"{kind}-{hashlib.blake2b(kind.encode() + b'|' + encoded, digest_size=10).hexdigest()}"


def rendezvous_owner(source: str, instances: Sequence[str]) -> str | None:
    """The instance that should own `source`: the highest hash of (source, instance)."""
    if not instances:
        return None
    return max(
        instances, key=lambda i: hashlib.blake2b(f"{source}|{i}".encode(), digest_size=8).digest()
    )


def _score(source: str, instance: str) -> bytes:
    return hashlib.blake2b(f"{source}|{instance}".encode(), digest_size=8).digest()


def _rank(source: str, instance: str) -> bytes:
    """Sorts the highest `_score` first."""
    return bytes(255 - b for b in _score(source, instance))


def weighted_share(weights: Sequence[int], instances: int) -> int:
    """The load (sum of weights) an instance takes sources up to: the total over the instances,
    rounded up, after setting aside each source heavier than that (it gets an instance to itself,
    so the others share what is left). Unit weights: ceil(sources / instances)."""
    remaining = sorted(weights, reverse=True)
    left = instances
    share = -(-sum(remaining) // left)
    while left > 1 and remaining and remaining[0] > share:
        remaining.pop(0)
        left -= 1
        share = -(-sum(remaining) // left)
    return max(1, share)


def balanced_placement(
    interest: Mapping[str, Sequence[str]],
    holders: Mapping[str, str | None],
    weights: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """source -> the instance that should run it: rendezvous hashing with bounded loads.

    `interest`: per source, the live instances configured with it; `holders`: who runs it now;
    `weights`: how much work each source is (1 when absent); an instance's load is the sum of
    its sources' weights. With W the total weight and k the instances:

    - a holder keeps its sources, heaviest first and then those it ranks highest, while its load
      before each is under ceil(W / k): an instance joining moves only sources from instances
      above the new share, one leaving moves only its own, and a placement is stable (placing
      again from it changes nothing);
    - every other source, heaviest first, goes to the instance with the highest hash of
      (source, instance) that it fits on (load + weight <= `weighted_share`), else, when it fits
      nowhere, to the least loaded instance.

    So no instance's load exceeds ceil(W / k) + (the heaviest weight - 1); with unit weights no
    instance runs more than ceil(sources / instances). (Unless only instances at that bound are
    configured with a source.) Deterministic: every instance computes the same placement from
    the same view.
    """
    weights = weights or {}
    sources = sorted(s for s, members in interest.items() if members)
    instances = sorted({i for s in sources for i in interest[s]})
    if not sources:
        return {}
    weight = {s: max(1, weights.get(s, 1)) for s in sources}
    total = sum(weight.values())
    even = -(-total // len(instances))
    share = weighted_share(list(weight.values()), len(instances))
    placed: dict[str, str] = {}
    load = dict.fromkeys(instances, 0)
    kept: dict[str, list[str]] = {}
    for source in sources:
        holder = holders.get(source)
        if holder is not None and holder in interest[source]:
            kept.setdefault(holder, []).append(source)
    for holder, held in sorted(kept.items()):
        # In the order a fresh placement adds them: what was placed is kept as it is.
        for source in sorted(held, key=lambda s, h=holder: (-weight[s], _rank(s, h))):  # type: ignore[misc]
            if load[holder] < even:
                placed[source] = holder
                load[holder] += weight[source]
    for source in sorted(sources, key=lambda s: -weight[s]):  # stable: by name within a weight
        if source in placed:
            continue
        ranked = sorted(interest[source], key=lambda i, s=source: _rank(s, i))  # type: ignore[misc]
        fits = [i for i in ranked if load[i] + weight[source] <= share]
        target = fits[0] if fits else min(ranked, key=lambda i: load[i])
        placed[source] = target
        load[target] += weight[source]
    return placed


def owner_instance(token: str) -> str:
    """The instance of an owner token (`{instance}:{pid}:{random}`)."""
    return token.rsplit(":", 2)[0]


def current_placement(state: RedisStateStore) -> dict[str, list[str]]:
    """instance -> the sources it runs now (their name leases), read from Redis (`stats`)."""
    marker = f"{state.prefix}:lease:source-name:"
    out: dict[str, list[str]] = {}
    for key in state.client.scan_iter(match=f"{marker}*", count=1000):
        holder = state.client.get(key)
        if holder is not None:
            out.setdefault(owner_instance(str(holder)), []).append(str(key).removeprefix(marker))
    return {instance: sorted(names) for instance, names in sorted(out.items())}


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


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass
class _Held:
    config: AnySourceConfig
    names: list[str]
    since: float
    valid_until: float
    shedding: bool = False


Launch = Callable[[AnySourceConfig], None]
Halt = Callable[[str], Awaitable[None]]


class SourceLeases:
    """Starts and stops this instance's source runners as their leases come and go."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        instance: str,
        ttl: float,
        log: Logger,
        launch: Launch,
        halt: Halt,
        mode: Literal["run", "once"] = "run",
        on_fatal: Callable[[str], None] | None = None,
        state: object = None,
    ) -> None:
        self.store = store
        self.instance = instance
        self.owner = new_owner_token(instance)
        self.ttl = ttl
        self.log = log.bind(instance=instance)
        self._created = time.monotonic()
        self.fences = state if isinstance(state, RedisStateStore) else None
        if self.fences is not None:
            self.fences.on_lease_lost = self._lost_with_uncommitted_output
            # The store retries Redis errors for as long as our leases are known to be valid.
            self.fences.valid_until = self.valid_until
            self.fences.log = self.log
        self.launch = launch
        self.halt = halt
        self.mode = mode
        self.on_fatal = on_fatal
        self.wanted: dict[str, AnySourceConfig] = {}
        self.held: dict[str, _Held] = {}
        self._free_since: dict[str, float] = {}
        self._warned: dict[str, str] = {}
        self._halting: dict[str, asyncio.Task[None]] = {}
        self._frozen = False
        self._wake = asyncio.Event()
        self._owns_client = False
        self._task: asyncio.Task[None] | None = None
        self._instance_valid_until = 0.0
        # Where every source of the fleet should run (source key -> instance), and what the
        # last `placement` log said.
        self.placement: dict[str, str] = {}
        self.fleet = FleetView()
        self.share = 0
        self._placed: tuple[list[str], list[str]] = ([], [])

    @classmethod
    def for_config(
        cls,
        config: Config,
        *,
        instance: str,
        log: Logger,
        launch: Launch,
        halt: Halt,
        mode: Literal["run", "once"] = "run",
        on_fatal: Callable[[str], None] | None = None,
        state: object = None,
    ) -> SourceLeases:
        """Leases in the Redis of `state.url`, with `state.lease_ttl`; `state` (the service's
        store) gets a fence per source held, so cursors are only committed under the lease."""
        timeout = min(ASYNC_TIMEOUT, config.state.lease_ttl / 3)
        store = LeaseStore(connect_async(config.state), config.state.prefix, timeout)
        leases = cls(
            store,
            instance=instance,
            ttl=config.state.lease_ttl,
            log=log,
            launch=launch,
            halt=halt,
            mode=mode,
            on_fatal=on_fatal,
            state=state,
        )
        leases._owns_client = True
        return leases

    # --- what the service calls ------------------------------------------------------------

    def want(self, config: AnySourceConfig) -> None:
        """Run this source whenever its lease can be had (replaces a config of the same name)."""
        self.wanted[config.name] = config
        self._wake.set()

    async def unwant(self, name: str) -> None:
        """No longer configured: stop its runner if it runs here (drained), release its lease."""
        self.wanted.pop(name, None)
        self._free_since.pop(name, None)
        held = self.held.get(name)
        if name in self._halting:
            await self._halting[name]
        elif held is not None:
            await self.halt(name)
        held = self.held.pop(name, None)
        if held is not None:
            await self._release(name, held)

    async def start(self) -> None:
        """Take the instance's own lease, then a first round of source leases."""
        await self._take_instance_lease()
        await self._round(first=True)
        # In `once` too: the leases taken must stay renewed until the pass is over.
        self._task = asyncio.create_task(self._loop(), name="source-leases")

    async def freeze(self) -> None:
        """Shutdown begins: take no more sources, let the others know; renewals go on."""
        self._frozen = True
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.interest(
                [source_key(c) for c in self.wanted.values()], self.instance, self.ttl, False
            )
        if self._halting:
            await asyncio.gather(*self._halting.values(), return_exceptions=True)

    async def close(self) -> None:
        """After the last checkpoint: stop renewing and release every lease held."""
        self._frozen = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for name, held in list(self.held.items()):
            await self._release(name, held)
        self.held.clear()
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.release([f"instance:{self.instance}"], self.owner)
        if self._owns_client:
            await self.store.client.aclose()

    async def abandon(self, reason: str) -> None:
        """The writer cannot commit any more: what the runners fetched will never be committed
        here. Stop renewing and release every source lease now, so the other instances take
        the sources over at once (from the last commit) instead of after a drain timeout."""
        self._frozen = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        sources = sorted(self.held)
        for name, held in list(self.held.items()):
            await self._release(name, held)
        self.held.clear()
        # Logged once they are released: whoever reads the event may count on it.
        self.log.error("leases_abandoned", reason=reason, sources=sources)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.store.interest(
                [source_key(c) for c in self.wanted.values()], self.instance, self.ttl, False
            )

    def valid_until(self) -> float:
        """Until when (`time.monotonic()`) the leases held are known to be ours: the last
        successful renewal plus the TTL (one TTL from creation, before the first round)."""
        held = tuple(self.held.values())  # read from the committing thread: one atomic copy
        return max(
            self._created + self.ttl,
            self._instance_valid_until,
            *(h.valid_until for h in held),
        )

    def owned(self) -> list[str]:
        return sorted(self.held)

    # --- the loop --------------------------------------------------------------------------

    async def _take_instance_lease(self) -> None:
        name = f"instance:{self.instance}"
        # A previous run of this instance that was killed holds it until its TTL runs out.
        deadline = time.monotonic() + self.ttl + 1.0
        while True:
            taken, holder = await self.store.acquire([name], self.owner, self.ttl)
            if taken:
                self._instance_valid_until = time.monotonic() + self.ttl
                return
            if time.monotonic() >= deadline:
                from collector.config import ConfigError

                raise ConfigError(
                    "state.instance",
                    [
                        f"another process runs as instance {self.instance!r} ({holder}); "
                        "give each instance its own state.instance and data_dir"
                    ],
                )
            self.log.info("instance_lease_waiting", holder=holder)
            await asyncio.sleep(min(1.0, self.ttl / 3))

    async def _loop(self) -> None:
        while True:
            # Not `wait_for`: on 3.11 it can swallow a cancel that races a set event.
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait([waiter], timeout=self.ttl / 3 * (0.8 + 0.4 * random.random()))
            finally:
                waiter.cancel()
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as error:
                self.log.warning("lease_round_failed", error=str(error))
                self._expire_unrenewed()
            except Exception as error:  # the loop must keep renewing whatever happens
                self.log.exception("lease_round_failed", error=str(error))

    async def _round(self, first: bool = False) -> None:
        await self._renew(stale_after=0.0)
        # `once` takes what is free in its first round only, and never hands anything over.
        if self._frozen or (self.mode == "once" and not first):
            return
        keys = {name: source_key(config) for name, config in self.wanted.items()}
        weights = {keys[name]: config.weight for name, config in self.wanted.items()}
        view = await self.store.fleet(weights, self.instance, self.ttl)
        self._place(keys, view)
        for name in list(self.wanted):
            if name not in self.held and name not in self._halting:
                await self._maybe_take(name, keys[name], view.holders.get(keys[name]), first)
                # Starting a source may take a while (the first one loads the processors):
                # keep what is held renewed in between.
                await self._renew(stale_after=self.ttl / 3)
        if self.mode == "run":
            self._maybe_shed(keys)

    def _place(self, keys: dict[str, str], view: FleetView) -> None:
        self.fleet = view
        self.placement = balanced_placement(view.interest, view.holders, view.weights)
        mine = sorted(n for n, k in keys.items() if self.placement.get(k) == self.instance)
        instances = sorted({i for members in view.interest.values() for i in members})
        self.share = weighted_share(
            [view.weights.get(k, 1) for k in self.placement], max(1, len(instances))
        )
        if (mine, instances) != self._placed:
            self._placed = (mine, instances)
            self.log.info(
                "placement",
                sources=mine,
                fleet_sources=len(self.placement),
                instances=instances,
                bound=self.share,
                fleet={i: n for i, (n, _) in self.placement_view().fleet.items()},
            )

    def placement_view(self) -> PlacementView:
        """Where the last round placed the fleet's sources, as this instance sees it."""
        keys = {name: source_key(config) for name, config in self.wanted.items()}
        fleet: dict[str, tuple[int, int]] = {}
        for key, instance in sorted(self.placement.items()):
            count, load = fleet.get(instance, (0, 0))
            fleet[instance] = (count + 1, load + self.fleet.weights.get(key, 1))
        return PlacementView(
            instance=self.instance,
            wanted=sorted(self.wanted),
            held=sorted(self.held),
            placed=sorted(n for n, k in keys.items() if self.placement.get(k) == self.instance),
            fleet=fleet,
            share=self.share,
        )

    async def _renew(self, stale_after: float) -> None:
        """Renew the instance lease and the source leases not renewed for `stale_after` s."""
        now = time.monotonic()
        if now - (self._instance_valid_until - self.ttl) >= stale_after:
            await self._renew_instance()
        for name, held in list(self.held.items()):
            if now - (held.valid_until - self.ttl) < stale_after:
                continue
            if await self.store.renew(held.names, self.owner, self.ttl):
                held.valid_until = now + self.ttl
                continue
            self.log.warning("lease_lost", source=name)
            self._lose(name)

    async def _renew_instance(self) -> None:
        name = f"instance:{self.instance}"
        now = time.monotonic()
        if await self.store.renew([name], self.owner, self.ttl):
            self._instance_valid_until = now + self.ttl
            return
        # Expired (the loop was held up longer than the TTL) and nobody took it: take it back.
        taken, holder = await self.store.acquire([name], self.owner, self.ttl)
        if taken:
            self.log.warning("instance_lease_renewed_late", instance=self.instance)
            self._instance_valid_until = now + self.ttl
            return
        # Another process took our name after our lease ran out: it may write our local
        # file ledger. Stop rather than run two instances as one.
        self.log.error("instance_lease_lost", instance=self.instance, holder=holder)
        if self.on_fatal is not None:
            self.on_fatal("instance_lease_lost")

    def _expire_unrenewed(self) -> None:
        """Redis cannot be reached: a lease not renewed in time may be someone else's now."""
        # Stop a third of a TTL early: the runner stops fetching before anyone can take over.
        now = time.monotonic() + self.ttl / 3
        for name, held in list(self.held.items()):
            if now >= held.valid_until:
                self.log.warning("lease_expired_unrenewed", source=name)
                self._lose(name)

    def _lose(self, name: str) -> None:
        self.held.pop(name, None)
        self._stop_runner(name)

    def _stop_runner(self, name: str, then: Callable[[], Awaitable[None]] | None = None) -> None:
        async def stop() -> None:
            try:
                await self.halt(name)
                if then is not None:
                    await then()
            finally:
                self._halting.pop(name, None)

        if name not in self._halting:
            self._halting[name] = asyncio.create_task(stop(), name=f"halt-{name}")

    async def _maybe_take(self, name: str, key: str, holder: str | None, first: bool) -> None:
        config = self.wanted[name]
        now = time.monotonic()
        free_since = self._free_since.setdefault(name, now)
        if holder is not None:
            # Held elsewhere when this round read the fleet: not free. Without this, a source
            # handed over to its preferred owner could be grabbed by a third instance that had
            # not tried it for a TTL, and would then have to move twice.
            self._free_since[name] = free_since = now
        preferred = self.placement.get(key)
        # `once` takes whatever is free; `run` leaves a source to its preferred owner unless
        # nobody has taken it for a whole TTL (the preferred one may be unable to).
        waiting = now - free_since < self.ttl
        if self.mode == "run" and preferred not in (None, self.instance) and waiting:
            return
        taken, owner = await self.store.acquire(self._names(name, key), self.owner, self.ttl)
        if not taken:
            self._free_since[name] = now  # held by someone: not free
            if self._warned.get(name) != owner:
                self._warned[name] = owner
                self.log.info("source_owned_elsewhere", source=name, holder=owner)
            return
        self._free_since.pop(name, None)
        self._warned.pop(name, None)
        self.held[name] = _Held(config, self._names(name, key), now, now + self.ttl)
        self._fence(name, self._names(name, key))
        if time.monotonic() - now > self.ttl / 3:  # too slow to trust: the next round retries
            self.log.warning("lease_acquire_too_slow", source=name)
            await self._release(name, self.held.pop(name))
            return
        self.log.info("lease_acquired", source=name, key=key, first_round=first)
        try:
            self.launch(config)
        except Exception as error:
            self.log.exception("source_start_failed", source=name, error=str(error))
            held = self.held.pop(name)
            self.wanted.pop(name, None)
            await self._release(name, held)
            return
        if (spent := time.monotonic() - now) > self.ttl / 2:
            # Starting it held the loop up: the lease may have run out meanwhile. Stop the
            # runner before it fetches anything; a later round takes the source again.
            self.log.warning("lease_start_too_slow", source=name, seconds=round(spent, 3))
            self._lose(name)

    def _maybe_shed(self, keys: dict[str, str]) -> None:
        """Hand over one source whose preferred owner is another live instance."""
        now = time.monotonic()
        for name, held in self.held.items():
            if held.shedding or name not in keys or now - held.since < self.ttl:
                continue
            preferred = self.placement.get(keys[name])
            if preferred is None or preferred == self.instance:
                continue
            held.shedding = True
            self.log.info("lease_handover", source=name, to=preferred)

            async def release(name: str = name) -> None:
                held = self.held.pop(name, None)
                if held is not None:
                    await self._release(name, held)

            self._stop_runner(name, then=release)
            return

    def _names(self, name: str, key: str) -> list[str]:
        return [f"source:{key}", f"source-name:{name}"]

    def _lost_with_uncommitted_output(self, sources: list[str]) -> None:
        """A commit carried cursors of a source whose lease expired (this instance stalled
        longer than the TTL, or Redis was away): another instance may have fetched the same
        records since. The lines are written but not committed; exit without committing, and
        the restart (systemd: Restart=on-failure) cuts the files back to the last commit."""
        self.log.critical("lease_lost_with_uncommitted_output", sources=sources, exit_code=75)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_LEASE_LOST)

    def _fence(self, name: str, names: list[str]) -> None:
        if self.fences is not None:
            keys = tuple(self.store.key(n) for n in names)
            self.fences.fence(name, Fence(CURSOR_NAMESPACE, f"{name}\x1f", keys, self.owner))

    async def _release(self, name: str, held: _Held) -> None:
        # Only after its runner drained: nothing of it is left to commit.
        if self.fences is not None:
            self.fences.unfence(name)
        try:
            await self.store.release(held.names, self.owner)
            self.log.info("lease_released", source=name)
        except REDIS_ERRORS as error:  # it expires by itself after the TTL
            self.log.warning("lease_release_failed", source=name, error=str(error))


class UploadLease:
    """One uploader at a time per upload target across the instances sharing a Redis.

    Each instance commits its own chunks, and a commit that loses a race is retried (412);
    taking turns on top of that keeps the commit budget and the dataset card exact: the
    holder reads the shared ledger, commits and records the commit before anyone else starts.
    """

    def __init__(
        self, store: LeaseStore, name: str, owner: str, ttl: float, log: Logger, wait: float
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.log = log
        self.wait = wait
        self._owns_client = False

    @classmethod
    def for_config(cls, config: Config, instance: str, log: Logger) -> UploadLease | None:
        """A lease on `upload`'s target (repo or folder); None unless the state is Redis."""
        if config.state.backend != "redis":
            return None
        upload = config.upload
        if upload.resolved_target == "hub":
            target = f"hub|{upload.endpoint}|{upload.repo_id}"
        else:
            folder = upload.folder or os.path.join(config.service.data_dir, "published")
            target = f"folder|{os.path.abspath(folder)}"
        name = f"upload:{hashlib.blake2b(target.encode(), digest_size=10).hexdigest()}"
        ttl = config.state.lease_ttl
        store = LeaseStore(connect_async(config.state), config.state.prefix, min(5.0, ttl / 3))
        lease = cls(store, name, new_owner_token(instance), ttl, log, wait=upload.interval)
        lease._owns_client = True
        return lease

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[HeldLease]:
        """Hold the lease for one round; `LeaseBusy` if another instance kept it for `wait`."""
        return self.store.hold(self.name, self.owner, self.ttl, wait=self.wait, log=self.log)

    async def close(self) -> None:
        if self._owns_client:
            await self.store.client.aclose()
