"""Leases in a real Redis: atomic take / renew / release, and sources spread over instances."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from collector.config import StateConfig
from collector.scaleout.balance import balanced_placement, rendezvous_owner, source_key
from collector.scaleout.leases import LeaseBusy, LeaseStore
from collector.scaleout.redis_placement import RedisPlacement
from collector.sources.config import (
    AnySourceConfig,
    GitHubSourceConfig,
    InboxSourceConfig,
    RateConfig,
)
from collector.state.redis import connect_async
from tests import redis_server

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix

LOG = structlog.get_logger()


@pytest.fixture
async def leases(redis_url: str, redis_prefix: str) -> AsyncIterator[LeaseStore]:
    client = connect_async(StateConfig(backend="redis", url=redis_url))
    yield LeaseStore(client, redis_prefix)
    await client.aclose()


# --- the lease primitives ---------------------------------------------------------------------


async def test_a_free_lease_is_taken_and_a_held_one_is_refused(leases: LeaseStore) -> None:
    assert await leases.acquire(["a"], "one", 5) == (True, "one")
    assert await leases.acquire(["a"], "two", 5) == (False, "one")
    assert await leases.holder("a") == "one"


async def test_the_holder_may_take_its_own_lease_again(leases: LeaseStore) -> None:
    assert (await leases.acquire(["a"], "one", 5))[0]
    assert (await leases.acquire(["a"], "one", 5))[0]


async def test_a_lease_over_several_keys_is_all_or_nothing(leases: LeaseStore) -> None:
    assert (await leases.acquire(["name"], "two", 5))[0]
    assert await leases.acquire(["identity", "name"], "one", 5) == (False, "two")
    assert await leases.holder("identity") is None  # nothing was taken


async def test_only_the_holder_renews_or_releases(leases: LeaseStore) -> None:
    await leases.acquire(["a"], "one", 5)
    assert not await leases.renew(["a"], "two", 5)
    assert await leases.release(["a"], "two") == 0
    assert await leases.holder("a") == "one"
    assert await leases.renew(["a"], "one", 5)
    assert await leases.release(["a"], "one") == 1
    assert await leases.holder("a") is None


async def test_an_unrenewed_lease_expires_and_cannot_be_renewed_by_its_old_owner(
    leases: LeaseStore,
) -> None:
    await leases.acquire(["a"], "one", 0.2)
    await asyncio.sleep(0.3)
    assert (await leases.acquire(["a"], "two", 5))[0]
    assert not await leases.renew(["a"], "one", 5)
    assert await leases.holder("a") == "two"


async def test_renewing_keeps_a_lease_past_its_ttl(leases: LeaseStore) -> None:
    await leases.acquire(["a"], "one", 0.3)
    for _ in range(4):
        await asyncio.sleep(0.1)
        assert await leases.renew(["a"], "one", 0.3)
    assert await leases.holder("a") == "one"


async def test_hold_keeps_the_lease_while_the_block_runs_and_releases_it(
    leases: LeaseStore,
) -> None:
    async with leases.hold("upload:repo", "one", 0.3) as held:
        await asyncio.sleep(0.7)  # more than two TTLs
        assert await leases.holder("upload:repo") == "one"
        assert not held.lost.is_set()
    assert await leases.holder("upload:repo") is None


async def test_hold_waits_for_the_holder_or_gives_up(leases: LeaseStore) -> None:
    await leases.acquire(["upload:repo"], "one", 0.3)
    with pytest.raises(LeaseBusy, match="held by one"):
        async with leases.hold("upload:repo", "two", 0.3, wait=0.1):
            pass
    started = time.monotonic()
    async with leases.hold("upload:repo", "two", 0.3, wait=5):  # once one's lease expires
        assert await leases.holder("upload:repo") == "two"
    assert time.monotonic() - started < 2


async def test_interest_lists_the_live_members_and_forgets_the_silent(
    leases: LeaseStore,
) -> None:
    await leases.interest(["s"], "one", 0.2)
    live = await leases.interest(["s", "t"], "two", 5)
    assert sorted(live["s"]) == ["one", "two"] and live["t"] == ["two"]
    await asyncio.sleep(0.3)
    assert (await leases.interest(["s"], "two", 5))["s"] == ["two"]
    assert (await leases.interest(["s"], "two", 5, announce=False))["s"] == []


# --- source identity and preference ------------------------------------------------------------


def test_a_source_key_ignores_how_a_source_runs_but_not_what_it_fetches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = GitHubSourceConfig(name="gh", queries=["resume.json in:path"])
    same = GitHubSourceConfig(
        name="other-name",
        queries=["resume.json in:path"],
        rate=RateConfig(per_second=9, burst=3),
        interval=5,
        token_env="MY_TOKEN",
    )
    different = GitHubSourceConfig(name="gh", queries=["cv.json in:path"])
    assert source_key(base) == source_key(same)
    assert source_key(base) != source_key(different)
    assert source_key(base).startswith("github-")
    monkeypatch.chdir(tmp_path)
    relative = InboxSourceConfig(name="in", path="inbox")
    absolute = InboxSourceConfig(name="in", path=str(tmp_path / "inbox"))
    assert source_key(relative) == source_key(absolute)
    assert source_key(relative) != source_key(InboxSourceConfig(name="in", path="elsewhere"))


def test_rendezvous_spreads_sources_and_moves_few_when_an_instance_leaves() -> None:
    sources = [f"s{i}" for i in range(300)]
    three = {s: rendezvous_owner(s, ["a", "b", "c"]) for s in sources}
    counts = {i: list(three.values()).count(i) for i in "abc"}
    assert all(70 < n < 130 for n in counts.values()), counts
    two = {s: rendezvous_owner(s, ["a", "b"]) for s in sources}
    moved = [s for s in sources if three[s] != two[s]]
    assert all(three[s] == "c" for s in moved)  # only c's sources moved
    assert rendezvous_owner("s", []) is None


def test_placement_stays_within_the_bound_and_moves_only_what_it_must() -> None:
    for n_sources in range(1, 21):
        sources = [f"inbox-{n_sources}-{i}" for i in range(n_sources)]
        for n_instances in range(1, 7):
            names = [f"node-{i}" for i in range(n_instances)]
            bound = -(-n_sources // n_instances)
            fresh = balanced_placement({s: names for s in sources}, {})
            assert set(fresh) == set(sources)
            assert max(Counter(fresh.values()).values()) <= bound
            # An instance joins: only sources above the new bound move, all of them to
            # instances under it.
            joined = [*names, "node-new"]
            grown = balanced_placement({s: joined for s in sources}, fresh)
            new_bound = -(-n_sources // len(joined))
            assert max(Counter(grown.values()).values()) <= new_bound
            moved = [s for s in sources if grown[s] != fresh[s]]
            excess = sum(max(0, n - new_bound) for n in Counter(fresh.values()).values())
            assert len(moved) == excess, (n_sources, n_instances)
            # An instance leaves: only its sources move.
            if n_instances > 1:
                gone = names[0]
                left = [n for n in names if n != gone]
                shrunk = balanced_placement({s: left for s in sources}, fresh)
                assert max(Counter(shrunk.values()).values()) <= -(-n_sources // len(left))
                moved = [s for s in sources if shrunk[s] != fresh[s]]
                assert sorted(moved) == sorted(s for s in sources if fresh[s] == gone)


def test_placement_gives_six_sources_on_three_instances_two_each() -> None:
    sources = [f"box{i}" for i in range(6)]
    placed = balanced_placement({s: ["node-a", "node-b", "node-c"] for s in sources}, {})
    assert sorted(Counter(placed.values()).values()) == [2, 2, 2]


def test_placement_only_uses_instances_configured_with_a_source() -> None:
    placed = balanced_placement({"a": ["one"], "b": ["one"], "c": ["one", "two"]}, {})
    assert placed["a"] == placed["b"] == "one" and placed["c"] == "two"


# --- RedisPlacement: several instances in one process ----------------------------------------


class FakeService:
    """What RedisPlacement drives: which runners run on one instance."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.started: list[str] = []
        self.stopped: list[str] = []

    def launch(self, config: AnySourceConfig) -> None:
        assert config.name not in self.running
        self.running.add(config.name)
        self.started.append(config.name)

    async def halt(self, name: str) -> None:
        await asyncio.sleep(0.01)  # a drain
        self.running.discard(name)
        self.stopped.append(name)


def inbox(name: str, tmp_path: Path) -> InboxSourceConfig:
    return InboxSourceConfig(name=name, path=str(tmp_path / name))


def instance(store: LeaseStore, name: str, ttl: float = 0.6) -> tuple[RedisPlacement, FakeService]:
    fake = FakeService()
    keeper = RedisPlacement(
        store, instance=name, ttl=ttl, log=LOG, launch=fake.launch, halt=fake.halt
    )
    return keeper, fake


async def eventually(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_each_source_runs_on_exactly_one_instance_and_they_spread(
    leases: LeaseStore, tmp_path: Path
) -> None:
    names = [f"s{i}" for i in range(9)]
    members = [instance(leases, f"i{n}") for n in range(3)]
    for keeper, _ in members:
        for name in names:
            keeper.want(inbox(name, tmp_path))
    for keeper, _ in members:
        await keeper.start()
    try:

        def balanced() -> bool:
            runs = [fake.running for _, fake in members]
            union = set().union(*runs)
            exclusive = sum(len(r) for r in runs) == len(union)
            return union == set(names) and exclusive and all(len(r) == 3 for r in runs)

        await eventually(balanced)  # 9 sources on 3 instances: never more than 3 on one
    finally:
        for keeper, _ in members:
            await keeper.freeze()
            await keeper.close()


async def test_a_dead_instances_sources_are_taken_over_after_the_ttl(
    leases: LeaseStore, tmp_path: Path
) -> None:
    first, first_fake = instance(leases, "first")
    second, second_fake = instance(leases, "second")
    for keeper in (first, second):
        for name in ("a", "b", "c", "d"):
            keeper.want(inbox(name, tmp_path))
    await first.start()
    await eventually(lambda: first_fake.running == {"a", "b", "c", "d"})
    await second.start()
    try:
        # Death: the renewals stop and nothing is released.
        assert first._task is not None
        first._task.cancel()
        died = time.monotonic()
        await eventually(lambda: second_fake.running == {"a", "b", "c", "d"})
        assert time.monotonic() - died >= 0.5 * first.ttl
    finally:
        await second.freeze()
        await second.close()


async def test_a_stopping_instance_hands_its_sources_over_at_once(
    leases: LeaseStore, tmp_path: Path
) -> None:
    # A TTL of 30 s: a takeover in well under that means the lease was released, not expired.
    members = [instance(leases, name, ttl=30) for name in ("first", "second")]
    for keeper, _ in members:
        keeper.want(inbox("a", tmp_path))
        await keeper.start()
    (owner, owner_fake), (other, other_fake) = sorted(members, key=lambda m: not m[0].held)
    assert owner_fake.running == {"a"} and other_fake.running == set()
    stopped = time.monotonic()
    await owner.freeze()
    await owner.close()
    other._wake.set()  # its next round, rather than up to ttl / 3 later
    await eventually(lambda: other_fake.running == {"a"})
    assert time.monotonic() - stopped < 5
    await other.freeze()
    await other.close()


async def test_a_lost_lease_stops_the_runner(leases: LeaseStore, tmp_path: Path) -> None:
    keeper, fake = instance(leases, "one", ttl=0.6)
    keeper.want(inbox("a", tmp_path))
    await keeper.start()
    assert fake.running == {"a"}
    # Someone removes the lease and another instance takes it.
    names = keeper.held["a"].names
    await leases.client.delete(*(leases.key(n) for n in names))
    await leases.acquire(names, "intruder", 30)
    await eventually(lambda: fake.running == set())
    assert fake.stopped == ["a"]
    await keeper.freeze()
    await keeper.close()
    assert await leases.holder(names[0]) == "intruder"


async def test_a_second_process_with_the_same_instance_name_is_refused(
    leases: LeaseStore,
) -> None:
    from collector.config import ConfigError

    first, _ = instance(leases, "same", ttl=0.6)
    second, _ = instance(leases, "same", ttl=0.6)
    await first.start()
    try:
        with pytest.raises(ConfigError, match="another process runs as instance 'same'"):
            await second.start()
    finally:
        await first.freeze()
        await first.close()


async def test_two_sources_with_one_name_do_not_run_at_once(
    leases: LeaseStore, tmp_path: Path
) -> None:
    # Two config files disagree: the same name means another folder. Cursors are saved under
    # the name, so only one of them may run at a time.
    first, first_fake = instance(leases, "first")
    second, second_fake = instance(leases, "second")
    first.want(InboxSourceConfig(name="inbox", path=str(tmp_path / "one")))
    second.want(InboxSourceConfig(name="inbox", path=str(tmp_path / "two")))
    await first.start()
    await second.start()
    try:
        await asyncio.sleep(1.5)
        assert first_fake.running == {"inbox"}
        assert second_fake.running == set()
    finally:
        for keeper in (first, second):
            await keeper.freeze()
            await keeper.close()
