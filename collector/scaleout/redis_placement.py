"""Sources placed over the instances sharing a Redis, each run where its lease is held.

`RedisPlacement` runs the sources of one instance when several instances share a Redis:

- each configured source is one lease over two keys: its identity (`source_key`, see
  collector/scaleout/balance.py) and its name (cursors and output files are saved under the
  name, so one name must mean one source at a time);
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
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from collector.logging import Logger
from collector.pipeline import CURSOR_NAMESPACE
from collector.scaleout.balance import balanced_placement, source_key, weighted_share
from collector.scaleout.leases import (
    EXIT_LEASE_LOST,
    REDIS_ERRORS,
    FleetView,
    LeaseStore,
    new_owner_token,
    owner_instance,
)
from collector.scaleout.placement import Halt, Launch, PlacementView
from collector.scaleout.shared_limits import SharedBuckets
from collector.sources.config import AnySourceConfig
from collector.state.redis import ASYNC_TIMEOUT, Fence, RedisStateStore, connect_async

if TYPE_CHECKING:
    from collector.config import Config


@dataclass
class _Held:
    config: AnySourceConfig
    names: list[str]
    since: float
    valid_until: float
    shedding: bool = False


class RedisPlacement:
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
        shared_limits: SharedBuckets | None = None,
    ) -> None:
        self.store = store
        self.shared_limits = shared_limits
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
        self.preferred: dict[str, str] = {}
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
    ) -> RedisPlacement:
        """Leases in the Redis of `state.url`, with `state.lease_ttl`; `state` (the service's
        store) gets a fence per source held, so cursors are only committed under the lease.
        The sources' rate limits are shared through the same Redis: one quota per credential
        across the instances (collector/scaleout/shared_limits.py)."""
        timeout = min(ASYNC_TIMEOUT, config.state.lease_ttl / 3)
        store = LeaseStore(connect_async(config.state), config.state.prefix, timeout)
        placement = cls(
            store,
            instance=instance,
            ttl=config.state.lease_ttl,
            log=log,
            launch=launch,
            halt=halt,
            mode=mode,
            on_fatal=on_fatal,
            state=state,
            shared_limits=SharedBuckets(store.client, config.state.prefix),
        )
        placement._owns_client = True
        return placement

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
        self.shared_limits = None  # a source started from now on would find Redis closed
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
        self.shared_limits = None
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
        self.preferred = balanced_placement(view.interest, view.holders, view.weights)
        mine = sorted(n for n, k in keys.items() if self.preferred.get(k) == self.instance)
        instances = sorted({i for members in view.interest.values() for i in members})
        self.share = weighted_share(
            [view.weights.get(k, 1) for k in self.preferred], max(1, len(instances))
        )
        if (mine, instances) != self._placed:
            self._placed = (mine, instances)
            self.log.info(
                "placement",
                sources=mine,
                fleet_sources=len(self.preferred),
                instances=instances,
                bound=self.share,
                fleet={i: n for i, (n, _) in self.placement_view().fleet.items()},
            )

    def placement_view(self) -> PlacementView:
        """Where the last round placed the fleet's sources, as this instance sees it."""
        keys = {name: source_key(config) for name, config in self.wanted.items()}
        fleet: dict[str, tuple[int, int]] = {}
        for key, instance in sorted(self.preferred.items()):
            count, load = fleet.get(instance, (0, 0))
            fleet[instance] = (count + 1, load + self.fleet.weights.get(key, 1))
        return PlacementView(
            instance=self.instance,
            wanted=sorted(self.wanted),
            held=sorted(self.held),
            placed=sorted(n for n, k in keys.items() if self.preferred.get(k) == self.instance),
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
        preferred = self.preferred.get(key)
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
            preferred = self.preferred.get(keys[name])
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


def current_placement(state: RedisStateStore) -> dict[str, list[str]]:
    """instance -> the sources it runs now (their name leases), read from Redis (`stats`)."""
    marker = f"{state.prefix}:lease:source-name:"
    out: dict[str, list[str]] = {}
    for key in state.client.scan_iter(match=f"{marker}*", count=1000):
        holder = state.client.get(key)
        if holder is not None:
            out.setdefault(owner_instance(str(holder)), []).append(str(key).removeprefix(marker))
    return {instance: sorted(names) for instance, names in sorted(out.items())}
