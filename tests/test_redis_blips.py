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
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from collector.config import StateConfig
from collector.state.redis import Fence, LeaseLost, RedisStateStore
from tests import redis_server
from tests.conftest import collector_command, subprocess_env, wait_for
from tests.test_redis_scaleout import Instance, append_pairs, inbox_source, write_config


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
