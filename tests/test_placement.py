"""Placement of sources over the instances sharing a Redis: weighted shares, and where an operator
sees the placement (`stats`, `/metrics`, the `placement` log event)."""

from __future__ import annotations

import random
import re
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from collector.config import Config, ConfigError, StateConfig, load_config
from collector.scaleout.balance import balanced_placement, source_key
from collector.scaleout.leases import LeaseStore
from collector.scaleout.open import open_placement
from collector.scaleout.placement import LocalPlacement, Placement
from collector.scaleout.redis_placement import RedisPlacement
from collector.scaleout.shared_limits import SharedBuckets
from collector.sources.config import InboxSourceConfig
from collector.state import StateStore
from collector.state.open import open_state_store
from tests import redis_server
from tests.conftest import collector_command, subprocess_env, wait_for
from tests.test_leases import FakeService, eventually, leases
from tests.test_redis_scaleout import Instance, inbox_source, instances, write_config

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix
__all__ = ["instances", "leases"]  # fixtures used here


def loads(placed: dict[str, str], weights: dict[str, int]) -> Counter[str]:
    out: Counter[str] = Counter()
    for source, instance in placed.items():
        out[instance] += weights[source]
    return out


def test_weighted_placement_stays_within_the_share_is_stable_and_moves_only_what_it_must() -> None:
    rng = random.Random(24)
    for n_sources in range(1, 21):
        for n_instances in range(1, 7):
            for _ in range(5):
                sources = [f"src-{n_sources}-{i}" for i in range(n_sources)]
                weights = {s: rng.choice([1, 1, 1, 2, 3, 5, 8]) for s in sources}
                names = [f"node-{i}" for i in range(n_instances)]
                case = (n_sources, n_instances, weights)

                def bound(k: int, w: dict[str, int] = weights) -> int:
                    # ceil(total / instances), plus the heaviest weight less one.
                    return -(-sum(w.values()) // k) + max(w.values()) - 1

                fresh = balanced_placement({s: names for s in sources}, {}, weights)
                assert set(fresh) == set(sources)
                assert max(loads(fresh, weights).values()) <= bound(n_instances), case
                # Stable: placing again from it moves nothing (no handover back and forth).
                assert balanced_placement({s: names for s in sources}, fresh, weights) == fresh
                # An instance leaves: only its sources move.
                if n_instances > 1:
                    left = names[1:]
                    shrunk = balanced_placement({s: left for s in sources}, fresh, weights)
                    assert max(loads(shrunk, weights).values()) <= bound(len(left)), case
                    moved = {s for s in sources if shrunk[s] != fresh[s]}
                    assert moved == {s for s in sources if fresh[s] == names[0]}, case
                # An instance joins: only instances over the new even share give sources up.
                joined = [*names, "node-new"]
                grown = balanced_placement({s: joined for s in sources}, fresh, weights)
                assert max(loads(grown, weights).values()) <= bound(len(joined)), case
                even = -(-sum(weights.values()) // len(joined))
                before = loads(fresh, weights)
                for source in (s for s in sources if grown[s] != fresh[s]):
                    assert before[fresh[source]] > even, case


def test_unit_weights_give_at_most_ceil_sources_over_instances() -> None:
    for n_sources in range(1, 21):
        sources = [f"s{i}" for i in range(n_sources)]
        for n_instances in range(1, 7):
            names = [f"node-{i}" for i in range(n_instances)]
            placed = balanced_placement({s: names for s in sources}, {}, dict.fromkeys(sources, 1))
            assert max(Counter(placed.values()).values()) <= -(-n_sources // n_instances)


def test_a_source_heavier_than_the_share_gets_an_instance_to_itself() -> None:
    weights = {"big": 10, **{f"small{i}": 1 for i in range(5)}}
    placed = balanced_placement({s: ["a", "b", "c"] for s in weights}, {}, weights)
    alone = placed["big"]
    assert [s for s, i in placed.items() if i == alone] == ["big"]
    # The five others share the two other instances: 3 and 2, not 5 and 0.
    assert sorted(Counter(i for s, i in placed.items() if s != "big").values()) == [2, 3]


def test_a_weight_is_checked_at_load_and_is_not_part_of_the_identity(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\ntype = "inbox"\nname = "box"\nweight = 0\n')
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "sources[0].weight" in str(error.value)
    light = InboxSourceConfig(name="box", path=str(tmp_path))
    heavy = InboxSourceConfig(name="box", path=str(tmp_path), weight=3)
    assert source_key(light) == source_key(heavy)  # two configs weighing it differently agree


async def test_one_instance_runs_every_source_from_the_moment_it_is_wanted(
    tmp_path: Path,
) -> None:
    fake = FakeService()
    placement = LocalPlacement(fake.launch, fake.halt)
    for name in ("a", "b"):
        placement.want(InboxSourceConfig(name=name, path=str(tmp_path / name)))
    assert fake.running == {"a", "b"}  # nothing to wait for: no lease, no round
    await placement.start()
    await placement.unwant("a")
    assert fake.running == {"b"} and fake.stopped == ["a"]
    await placement.freeze()
    await placement.abandon("writer_failed")
    await placement.close()
    assert fake.running == {"b"}  # the service drains its runners itself
    assert placement.placement_view() is None  # no fleet to show in /metrics
    assert placement.shared_limits is None  # each source keeps its own rate limit


async def test_the_state_backend_picks_the_placement(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fake = FakeService()

    def opened(config: Config) -> tuple[Placement, StateStore]:
        state = open_state_store(config.state, "one")
        placement = open_placement(
            config,
            instance="one",
            log=structlog.get_logger(),
            launch=fake.launch,
            halt=fake.halt,
            mode="run",
            on_fatal=lambda reason: None,
            state=state,
        )
        return placement, state

    sqlite = StateConfig(backend="sqlite", path=str(tmp_path / "state.sqlite3"))
    local, state = opened(Config(state=sqlite))
    assert isinstance(local, LocalPlacement)
    state.close()
    shared = StateConfig(backend="redis", url=redis_url, prefix=redis_prefix)
    leased, state = opened(Config(state=shared))
    assert isinstance(leased, RedisPlacement)
    # The sources it runs share their rate limits with the fleet, until it closes.
    assert isinstance(leased.shared_limits, SharedBuckets)
    await leased.close()
    assert leased.shared_limits is None
    state.close()


async def test_instances_place_by_the_weights_the_sources_declare(
    leases: LeaseStore, tmp_path: Path
) -> None:
    # One source of weight 4 and four of weight 1 on two instances: loads 4 and 4, so one
    # instance runs the heavy source alone and the other runs the four light ones.
    configs = [InboxSourceConfig(name="heavy", path=str(tmp_path / "heavy"), weight=4)]
    configs += [InboxSourceConfig(name=f"light{i}", path=str(tmp_path / f"l{i}")) for i in range(4)]
    members = []
    with capture_logs() as logs:
        for name in ("one", "two"):
            fake = FakeService()
            keeper = RedisPlacement(
                leases,
                instance=name,
                ttl=0.6,
                log=structlog.get_logger(),
                launch=fake.launch,
                halt=fake.halt,
            )
            for config in configs:
                keeper.want(config)
            members.append((keeper, fake))
        for keeper, _ in members:
            await keeper.start()
        try:

            def placed() -> bool:
                running = sorted((sorted(fake.running) for _, fake in members), key=len)
                return running == [["heavy"], [f"light{i}" for i in range(4)]]

            await eventually(placed)
            for keeper, fake in members:
                view = keeper.placement_view()
                assert view.share == 4
                assert sorted(view.fleet.values()) == [(1, 4), (4, 4)]
                assert view.held == view.placed == sorted(fake.running)
        finally:
            for keeper, _ in members:
                await keeper.freeze()
                await keeper.close()
    last = {}
    for event in logs:
        if event["event"] == "placement":
            last[event["instance"]] = event
    assert {tuple(e["sources"]) for e in last.values()} == {
        ("heavy",),
        tuple(f"light{i}" for i in range(4)),
    }
    assert all(e["bound"] == 4 and e["instances"] == ["one", "two"] for e in last.values())


METRICS = '\n[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'


def scrape(instance: Instance) -> dict[tuple[str, str], float]:
    """(metric, label value) -> value, for the placement metrics of one instance."""
    port = next(e["port"] for e in instance.events() if e.get("event") == "metrics_listening")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out = {}
    pattern = r"^resume_collector_(source_leased|source_placed|placement_\w+?)(?:\{\w+=\"([^\"]*)\"\})? (\S+)$"  # noqa: E501
    for name, label, value in re.findall(pattern, text, re.MULTILINE):
        out[(name, label)] = float(value)
    return out


def test_placement_shows_in_metrics_stats_and_the_logs(
    tmp_path: Path, redis_url: str, redis_prefix: str, instances: list[Instance]
) -> None:
    # Three sources on two instances, box0 twice the work of the others: a share of 2 each.
    body = ""
    for box in ("box0", "box1", "box2"):
        (tmp_path / box).mkdir()
        source = inbox_source(box, tmp_path / box)
        if box == "box0":
            source = source.replace("batch_size = 20", "batch_size = 20\nweight = 2")
        body += source
    for name in ("node-a", "node-b"):
        config = write_config(
            tmp_path / f"{name}.toml", tmp_path / name, redis_url, redis_prefix, name, body
        )
        config.write_text(config.read_text() + METRICS)
        instances.append(Instance(name, config, tmp_path / name, tmp_path / f"{name}.log"))
    wait_for(lambda: all("metrics_listening" in i.names() for i in instances), timeout=60)

    def settled() -> bool:
        seen = [scrape(i) for i in instances]
        for box in ("box0", "box1", "box2"):
            leased = [s.get(("source_leased", box), -1.0) for s in seen]
            placed = [s.get(("source_placed", box), -1.0) for s in seen]
            if sorted(leased) != [0, 1] or placed != leased:  # on one instance, where placed
                return False
        return all(
            s.get(("placement_load", "node-a")) == s.get(("placement_load", "node-b")) == 2
            and s.get(("placement_share", "")) == 2
            for s in seen
        )

    wait_for(settled, timeout=60)
    heavy_on = next(i.name for i in instances if scrape(i)[("source_leased", "box0")] == 1)
    other = next(i.name for i in instances if i.name != heavy_on)
    for instance in instances:
        counts = scrape(instance)
        assert counts[("placement_sources", heavy_on)] == 1
        assert counts[("placement_sources", other)] == 2

    # `stats` reads who holds what from Redis.
    shown = subprocess.run(
        collector_command("stats", "--config", str(instances[0].config)),
        capture_output=True,
        env=subprocess_env(),
        check=True,
    ).stdout.decode()
    assert f"instance {heavy_on} runs 1: box0" in shown
    assert f"instance {other} runs 2: box1, box2" in shown

    # Each instance logged the placement it ended with.
    for instance in instances:
        last = [e for e in instance.events() if e.get("event") == "placement"][-1]
        expected = ["box0"] if instance.name == heavy_on else ["box1", "box2"]
        assert last["sources"] == expected and last["bound"] == 2
        assert last["fleet"] == {heavy_on: 1, other: 2}
    for instance in instances:
        assert instance.stop() == 0
