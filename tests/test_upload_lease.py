"""Uploads from several instances sharing a Redis: they take turns on the repo (a lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from collector.config import Config, StateConfig
from collector.logging import get_logger
from collector.scaleout.leases import LeaseStore
from collector.scaleout.upload_lease import UploadLease
from collector.sinks.lines import render
from collector.state.open import open_state_store
from collector.state.redis import RedisStateStore, connect_async
from collector.upload.chunks import ChunkRoller
from collector.upload.targets import HubTarget
from collector.upload.uploader import Uploader
from tests import redis_server
from tests.test_chunks import example
from tests.test_upload import REPO, assert_each_chunk_once, hub, make_config

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix
hub_emulator = hub


def redis_config(config: Config, url: str, prefix: str, **state: object) -> Config:
    settings = StateConfig(backend="redis", url=url, prefix=prefix, lease_ttl=1.0, **state)  # type: ignore[arg-type]
    return msgspec.structs.replace(config, state=settings)


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisStateStore]:
    opened = open_state_store(StateConfig(backend="redis", url=redis_url, prefix=redis_prefix))
    assert isinstance(opened, RedisStateStore)
    yield opened
    opened.close()


def test_one_lease_per_target_whatever_the_instance(redis_url: str, redis_prefix: str) -> None:
    log = get_logger()
    hub_a = redis_config(make_config("http://127.0.0.1:9", repo_id="a/b"), redis_url, redis_prefix)
    hub_c = redis_config(make_config("http://127.0.0.1:9", repo_id="a/c"), redis_url, redis_prefix)

    def name(config: Config, instance: str) -> str:
        lease = UploadLease.for_config(config, instance, log)
        assert lease is not None
        return lease.name

    assert name(hub_a, "one") == name(hub_a, "two")
    assert name(hub_a, "one") != name(hub_c, "one")
    assert UploadLease.for_config(make_config(), "one", log) is None  # SQLite: one instance


async def test_instances_take_turns_and_every_chunk_lands_once(
    tmp_path: Path,
    store: RedisStateStore,
    hub_emulator: tuple[object, str],
    redis_url: str,
    redis_prefix: str,
) -> None:
    emulator, url = hub_emulator
    config = redis_config(make_config(url), redis_url, redis_prefix)
    log = get_logger()
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    uploaders = []
    for name in ("one", "two", "three"):
        folder = tmp_path / name
        roller = ChunkRoller(folder, store, config.upload, log, instance=name)
        await roller.open()
        roller.write(render([example(i) for i in range(3)]))
        await roller.close_now(everything=True)
        lease = UploadLease.for_config(config, name, log)
        assert lease is not None
        up = Uploader(
            config,
            HubTarget(config.upload, log),
            store,
            log,
            chunks_root=folder / "chunks",
            instance=name,
            exclusive=lease.exclusive,
        )
        original = up._run

        async def watched(
            progress: object, name: str = name, original: object = original
        ) -> object:
            inside.append(name)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            await asyncio.sleep(0.1)
            try:
                return await original(progress)  # type: ignore[operator]
            finally:
                inside.remove(name)

        up._run = watched  # type: ignore[method-assign]
        uploaders.append((up, lease))
    reports = await asyncio.gather(*(up.run() for up, _ in uploaders))
    assert overlaps == []
    assert [r.committed for r in reports] == [1, 1, 1]
    assert_each_chunk_once(emulator, store)  # type: ignore[arg-type]
    for _, lease in uploaders:
        await lease.close()


async def test_a_round_is_skipped_while_another_instance_holds_the_repo(
    tmp_path: Path, store: RedisStateStore, redis_url: str, redis_prefix: str
) -> None:
    config = redis_config(make_config("http://127.0.0.1:9", repo_id=REPO), redis_url, redis_prefix)
    log = get_logger()
    lease = UploadLease.for_config(config, "one", log)
    assert lease is not None
    lease.wait = 0.2
    other = LeaseStore(connect_async(config.state), redis_prefix)
    await other.acquire([lease.name], "two:1:abc", 30)
    up = Uploader(
        config,
        HubTarget(config.upload, log),
        store,
        log,
        chunks_root=tmp_path / "chunks",
        instance="one",
        exclusive=lease.exclusive,
    )
    report = await up.run()
    assert report.committed == 0 and report.error == ""
    await other.client.aclose()
    await lease.close()
