"""A token bucket in Redis, shared by every instance that holds the same credential."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
import structlog

from collector.config import StateConfig
from collector.http import HttpClient
from collector.ratelimit import QuotaExhausted, TokenBucket
from collector.scaleout.shared_limits import SharedBuckets, SharedTokenBucket, credential_key
from collector.sources import SourceContext, build_source
from collector.sources.config import (
    AnySourceConfig,
    GitHubSourceConfig,
    HuggingFaceSourceConfig,
    KaggleSourceConfig,
    RateConfig,
    StackExchangeSourceConfig,
)
from collector.state.redis import connect_async
from tests import redis_server

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[redis.asyncio.Redis]]:
    """Three clients, as three instances would have."""
    made = [connect_async(StateConfig(backend="redis", url=redis_url)) for _ in range(3)]
    yield made
    for client in made:
        await client.aclose()


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_instances_sharing_a_key_never_exceed_the_rate_together(
    clients: list[redis.asyncio.Redis], redis_prefix: str
) -> None:
    rate, burst = 20.0, 2
    buckets = [SharedTokenBucket(c, f"{redis_prefix}:rate:k", rate, burst) for c in clients]
    sent: list[float] = []

    async def send(bucket: SharedTokenBucket, n: int) -> None:
        for _ in range(n):
            await bucket.acquire()
            sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(send(b, 10) for b in buckets), *(send(b, 5) for b in buckets))
    elapsed = time.monotonic() - started
    # 45 requests at 20/s with a burst of 2: about (45 - 2) / 20 s, whoever sends them.
    assert elapsed >= (45 - burst) / rate * 0.9
    for window in (0.25, 0.5, 1.0):
        assert most_in_any_window(sent, window) <= burst + rate * window + 1


async def test_separate_keys_do_not_share(
    clients: list[redis.asyncio.Redis], redis_prefix: str
) -> None:
    one = SharedTokenBucket(clients[0], f"{redis_prefix}:rate:one", 5, 5)
    two = SharedTokenBucket(clients[1], f"{redis_prefix}:rate:two", 5, 5)
    for _ in range(5):
        assert await one.acquire() < 0.05
        assert await two.acquire() < 0.05


async def test_a_pause_heard_by_one_instance_holds_back_the_others(
    clients: list[redis.asyncio.Redis], redis_prefix: str
) -> None:
    key = f"{redis_prefix}:rate:k"
    hearing = SharedTokenBucket(clients[0], key, 100, 10)
    other = SharedTokenBucket(clients[1], key, 100, 10)
    hearing.pause_until(time.monotonic() + 0.5)  # e.g. a Retry-After: 0.5
    await asyncio.sleep(0.05)  # the pause reaches Redis in the background
    waited = await other.acquire()
    assert 0.3 <= waited <= 1.0


async def test_the_daily_quota_is_counted_across_instances(
    clients: list[redis.asyncio.Redis], redis_prefix: str
) -> None:
    key = f"{redis_prefix}:rate:k"
    buckets = [SharedTokenBucket(c, key, 1000, 10, per_day=5) for c in clients[:2]]
    for i in range(5):
        await buckets[i % 2].acquire()
    with pytest.raises(QuotaExhausted, match="per_day = 5") as caught:
        await buckets[1].acquire()
    assert caught.value.retry_at > time.time() + 86_000


async def test_without_redis_a_request_waits_then_gives_up_rather_than_guess(
    tmp_path: Path,
) -> None:
    client = connect_async(StateConfig(backend="redis", url=f"unix://{tmp_path}/none.sock"))
    bucket = SharedTokenBucket(client, "k", 10, 1, timeout=0.2, give_up=0.5)
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="cannot be reached"):
        await bucket.acquire()
    assert time.monotonic() - started >= 0.5
    await client.aclose()


def test_the_quota_key_follows_the_credential_not_the_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN_A", "ghp_aaaa")
    monkeypatch.setenv("TOKEN_A_AGAIN", "ghp_aaaa")
    monkeypatch.setenv("TOKEN_B", "ghp_bbbb")
    monkeypatch.delenv("NO_TOKEN", raising=False)
    a = GitHubSourceConfig(name="one", queries=["x"], token_env="TOKEN_A")
    same = GitHubSourceConfig(
        name="two", queries=["y"], token_env="TOKEN_A_AGAIN", rate=RateConfig(per_second=9)
    )
    b = GitHubSourceConfig(name="one", queries=["x"], token_env="TOKEN_B")
    elsewhere = GitHubSourceConfig(
        name="one", queries=["x"], token_env="TOKEN_A", base_url="http://127.0.0.1:9"
    )
    anonymous = GitHubSourceConfig(name="one", token_env="NO_TOKEN")
    assert credential_key(a) == credential_key(same)
    assert credential_key(a) != credential_key(b)
    assert credential_key(a) != credential_key(elsewhere)
    assert credential_key(anonymous) not in {credential_key(a), credential_key(b)}
    assert "ghp_aaaa" not in credential_key(a)


async def test_an_http_client_takes_the_shared_bucket_it_is_lent(
    clients: list[redis.asyncio.Redis], redis_prefix: str
) -> None:
    config = GitHubSourceConfig(name="gh", rate=RateConfig(per_second=3, burst=2))
    log = structlog.get_logger()
    buckets = SharedBuckets(clients[0], redis_prefix)
    local = HttpClient(config, log)
    shared = HttpClient(config, log, shared_limits=buckets)
    explicit = HttpClient(config, log, limiter=TokenBucket(1, 1), shared_limits=buckets)
    assert type(local.limiter.bucket) is TokenBucket
    assert isinstance(shared.limiter.bucket, SharedTokenBucket)
    assert shared.limiter.bucket.rate == 3 and shared.limiter.bucket.burst == 2
    assert type(explicit.limiter.bucket) is TokenBucket  # a limiter given is kept
    for client in (local, shared, explicit):
        await client.close()


@pytest.mark.parametrize(
    "config",
    [
        GitHubSourceConfig(name="gh"),
        StackExchangeSourceConfig(name="se"),
        HuggingFaceSourceConfig(name="hf", repo_id="someone/resumes"),
        KaggleSourceConfig(name="kg", datasets=["someone/resumes"]),
    ],
    ids=lambda config: config.name,
)
async def test_every_remote_source_takes_the_shared_limits_its_context_lends(
    config: AnySourceConfig,
    clients: list[redis.asyncio.Redis],
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    log = structlog.get_logger()
    buckets = SharedBuckets(clients[0], redis_prefix)
    lent = build_source(config, SourceContext(tmp_path, log, shared_limits=buckets))
    own = build_source(config, SourceContext(tmp_path, log))
    try:
        assert isinstance(lent.client.limiter.bucket, SharedTokenBucket)  # type: ignore[attr-defined]
        assert type(own.client.limiter.bucket) is TokenBucket  # type: ignore[attr-defined]
    finally:
        await lent.close()
        await own.close()
