"""A Redis that restarts, crashes or goes away for a while, under the state store and the service.

Each test runs its own `redis-server` (tests/redis_server.py), restarted or killed as the test
says: a blip shorter than the leases is ridden out by retrying, a longer one ends in a clear log
event and a defined exit code.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from collector.config import StateConfig
from collector.state.redis import Fence, LeaseLost, RedisStateStore
from tests import redis_server


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
