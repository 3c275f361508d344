"""A Redis that restarts, crashes or goes away for a while, under the state store and the service.

Each test runs its own `redis-server` (tests/redis_server.py), restarted or killed as the test
says: a blip shorter than the leases is ridden out by retrying, a longer one ends in a clear log
event and a defined exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collector.config import StateConfig
from collector.state.redis import Fence, LeaseLost, RedisStateStore
from tests import redis_server
from tests.conftest import collector_command, subprocess_env, wait_for
from tests.test_redis_scaleout import (
    Instance,
    append_pairs,
    committed_lengths,
    inbox_source,
    write_config,
)


@pytest.fixture
def server() -> Iterator[redis_server.RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip(redis_server.MISSING)
    running = redis_server.RedisServer(persistent=True)
    yield running
    running.stop()


def store_for(server: redis_server.RedisServer) -> RedisStateStore:
    config = StateConfig(backend="redis", url=server.url, prefix="blip", lease_ttl=3.0)
    return RedisStateStore.from_config(config, instance="one")


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill"])
def test_commits_wait_for_a_restarted_redis_and_land_once(
    server: redis_server.RedisServer, kill: bool
) -> None:
    store = store_for(server)
    store.commit({"cursor": {"a": "0"}}, {("s", "d", "written"): 1})
    outage = threading.Thread(target=server.restart, kwargs={"kill": kill, "down_for": 0.5})
    outage.start()
    time.sleep(0.1)  # the server is down now
    for i in range(1, 6):
        store.commit({"cursor": {"a": str(i)}}, {("s", "d", "written"): 1})
    outage.join()
    assert store.retries > 0  # it was down, and the commits waited
    assert store.get("cursor", "a") == "5"
    assert store.counts() == [("s", "d", "written", 6)]
    store.close()


def test_reads_give_up_when_the_leases_can_no_longer_be_proven_valid(
    server: redis_server.RedisServer,
) -> None:
    store = store_for(server)
    server.process.kill()
    server.process.wait()
    until = time.monotonic() + 0.6
    store.valid_until = lambda: until
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        store.get_many("set:dedupe:exact", ["k"])
    assert 0.5 <= time.monotonic() - started < 3
    store.close()


def test_a_fenced_commit_redis_never_took_is_a_lost_lease_once_the_lease_may_have_expired(
    server: redis_server.RedisServer,
) -> None:
    store = store_for(server)
    lease = "blip:lease:source-name:a"
    store.client.set(lease, "owner")
    store.fence("a", Fence("cursor", "a\x1f", (lease,), "owner"))
    lost: list[list[str]] = []
    store.on_lease_lost = lost.append
    server.process.kill()
    server.process.wait()
    until = time.monotonic() + 0.5
    store.valid_until = lambda: until
    with pytest.raises(LeaseLost):
        store.commit({"cursor": {"a\x1fstream": "7"}})
    assert lost == [["a"]]
    store.close()


def test_redis_absent_at_start_is_a_json_log_event_and_exit_69(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[service]
data_dir = "{tmp_path / "data"}"

[state]
backend = "redis"
url = "unix://{tmp_path}/no-redis-here.sock"
lease_ttl = 1.0
"""
    )
    done = subprocess.run(
        collector_command("run", "--config", str(config)),
        capture_output=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert done.returncode == 69, done.stderr.decode()[-2000:]
    assert b"Traceback" not in done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    failure = events[-1]
    assert failure["event"] == "redis_unavailable"
    assert failure["exit_code"] == 69 and "no-redis-here.sock" in failure["error"]


def test_a_writer_that_cannot_commit_lets_its_sources_go_at_once(
    tmp_path: Path, server: redis_server.RedisServer
) -> None:
    (tmp_path / "box").mkdir()
    append_pairs(tmp_path / "box" / "box.jsonl", "box", 0, 10)
    config = write_config(
        tmp_path / "one.toml",
        tmp_path / "data",
        server.url,
        "writer",
        "one",
        inbox_source("box", tmp_path / "box"),
    )
    one = Instance("one", config, tmp_path / "data", tmp_path / "one.log")
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        wait_for(lambda: len(one.records()) == 10, timeout=30)
        # Redis refuses every write from now on (not a blip: an error no retry outlives).
        client.config_set("maxmemory", 1)
        append_pairs(tmp_path / "box" / "box.jsonl", "box", 10, 10)
        wait_for(lambda: "leases_abandoned" in one.names(), timeout=30)
        failed_at = time.monotonic()
        # Released at once (not after the 2 s TTL, let alone the 20 s drain timeout).
        assert client.get("writer:lease:source-name:box") is None
        code = one.process.wait(30)
        assert time.monotonic() - failed_at < 5
        assert code == 75  # EX_TEMPFAIL: systemd restarts it, the restart cuts back
        assert "service_drain_timeout" not in one.names()
        failure = [e for e in one.events() if e.get("event") == "service_failed"]
        assert failure and "maxmemory" in failure[0]["error"] and failure[0]["exit_code"] == 75
    finally:
        client.config_set("maxmemory", 0)
        client.close()
        one.stop()


LEASE_TTL = 3.0
FLUSH_INTERVAL = 0.2


def test_three_instances_ride_out_a_redis_restart_and_a_redis_crash_exactly_once(
    tmp_path: Path, server: redis_server.RedisServer
) -> None:
    boxes = [f"box{i}" for i in range(6)]
    body = ""
    for box in boxes:
        (tmp_path / "inbox" / box).mkdir(parents=True)
        body += inbox_source(box, tmp_path / "inbox" / box)
    body = body.replace("interval = 0.2", "interval = 0.1")
    fleet = []
    for name in ("node-a", "node-b", "node-c"):
        config = write_config(
            tmp_path / f"{name}.toml", tmp_path / name, server.url, "fleet", name, body
        )
        text = config.read_text().replace("lease_ttl = 2.0", f"lease_ttl = {LEASE_TTL}")
        config.write_text(
            text.replace("flush_interval = 0.2", f"flush_interval = {FLUSH_INTERVAL}")
        )
        fleet.append(Instance(name, config, tmp_path / name, tmp_path / f"{name}.log"))
    expected: list[tuple[str, int]] = []
    written_at: dict[str, float] = {}
    gaps: dict[str, float] = dict.fromkeys(boxes, 0.0)
    seen: dict[str, int] = dict.fromkeys(boxes, 0)
    stop = threading.Event()
    measuring = threading.Event()

    def feed() -> None:  # 2 records per source every 0.1 s
        n = 0
        while not stop.is_set():
            for box in boxes:
                expected.extend(append_pairs(tmp_path / "inbox" / box / f"{box}.jsonl", box, n, 2))
            n += 2
            time.sleep(0.1)

    def watch() -> None:  # the longest time each source went without a new line written
        while not stop.is_set():
            counts = {box: 0 for box in boxes}
            for instance in fleet:
                for box, _ in instance.records():
                    counts[box] += 1
            now = time.monotonic()
            for box in boxes:
                if counts[box] > seen[box]:
                    if measuring.is_set() and box in written_at:
                        gaps[box] = max(gaps[box], now - written_at[box])
                    written_at[box] = now
                    seen[box] = counts[box]
            time.sleep(0.05)

    try:
        wait_for(lambda: all("service_started" in i.names() for i in fleet), timeout=60)
        feeder = threading.Thread(target=feed, daemon=True)
        watcher = threading.Thread(target=watch, daemon=True)
        feeder.start()
        watcher.start()
        wait_for(lambda: all(seen[b] > 0 for b in boxes), timeout=60)
        measuring.set()
        time.sleep(2)
        down = [server.restart(down_for=0.5)]  # SIGTERM: Redis writes its AOF and exits
        time.sleep(LEASE_TTL * 2)
        down.append(server.restart(kill=True, down_for=0.5))  # a crash: kill -9
        time.sleep(LEASE_TTL * 2)
        measuring.clear()
        stop.set()
        feeder.join()
        watcher.join()
        client = redis.Redis.from_url(server.url, decode_responses=True)

        def committed() -> Counter[tuple[str, int]]:
            union: Counter[tuple[str, int]] = Counter()
            for i in fleet:
                union.update(i.records(committed_lengths(client, "fleet", i.name)))
            return union

        wait_for(lambda: set(committed()) == set(expected), timeout=60)
        assert max(committed().values()) == 1
        for instance in fleet:
            assert instance.restarts == [], instance.name  # no instance exited by itself
            assert instance.process.poll() is None
        print(f"redis down {[round(d, 2) for d in down]} s; longest gap per source {gaps}")
        assert max(gaps.values()) <= LEASE_TTL + FLUSH_INTERVAL, gaps
        for instance in fleet:
            assert instance.stop() == 0
        union: Counter[tuple[str, int]] = Counter()
        for instance in fleet:
            union.update(instance.records())
        assert set(union) == set(expected) and max(union.values()) == 1
        client.close()
    finally:
        stop.set()
        for instance in fleet:
            if instance.process.poll() is None:
                instance.kill()
