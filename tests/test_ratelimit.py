"""The token bucket and the rate limiter, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from collector.ratelimit import QuotaExhausted, RateLimiter, TokenBucket, server_wait
from collector.sources.config import RateConfig


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        self.wall_now += max(0.0, seconds)
        await asyncio.sleep(0)


async def test_burst_is_free_then_tokens_come_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock, sleep=clock.sleep)
    waits = [await bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.1)
    assert waits[4] == pytest.approx(0.1)


async def test_steady_rate_never_exceeds_the_configured_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=1, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(51):
        await bucket.acquire()
    assert clock.now - start == pytest.approx(10.0)


async def test_pause_until_holds_every_token_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=10, clock=clock, sleep=clock.sleep)
    bucket.pause_until(clock.now + 7)
    waited = await bucket.acquire()
    assert waited == pytest.approx(7)


async def test_an_earlier_pause_does_not_shorten_a_later_one() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=10, clock=clock, sleep=clock.sleep)
    bucket.pause_until(clock.now + 5)
    bucket.pause_until(clock.now + 1)
    assert await bucket.acquire() == pytest.approx(5)


async def test_waiters_are_served_in_order() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]


async def test_backoff_blocks_only_its_own_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        RateConfig(per_second=100, burst=10), clock=clock, wall=clock.wall, sleep=clock.sleep
    )
    limiter.pause(30, key="/questions")
    assert await limiter.acquire("/answers") == 0
    assert await limiter.acquire("/questions") == pytest.approx(30)
    assert limiter.paused_for("/questions") == 0


async def test_daily_quota_refuses_with_the_time_it_frees_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        RateConfig(per_second=100, burst=10, per_day=2),
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
    )
    first = clock.wall_now
    await limiter.acquire()
    await limiter.acquire()
    with pytest.raises(QuotaExhausted) as caught:
        await limiter.acquire()
    assert caught.value.retry_at == pytest.approx(first + 86_400)


async def test_server_quota_at_zero_refuses_until_its_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        RateConfig(per_second=100, burst=10), clock=clock, wall=clock.wall, sleep=clock.sleep
    )
    limiter.server_quota(0, clock.wall_now + 60)
    with pytest.raises(QuotaExhausted):
        await limiter.acquire()
    clock.wall_now += 61
    assert await limiter.acquire() == 0


def test_bucket_rejects_a_nonsense_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


async def test_a_late_wake_up_is_not_lost_time() -> None:
    clock = FakeClock()

    async def late_sleep(seconds: float) -> None:  # every sleep ends 10 ms late
        await clock.sleep(seconds + 0.01)

    bucket = TokenBucket(rate=5, burst=1, clock=clock, sleep=late_sleep)
    start = clock.now
    for _ in range(51):
        await bucket.acquire()
    # 50 intervals of 0.2 s; lateness does not add up (it would be 10.5 s if it did)
    assert clock.now - start == pytest.approx(10.0, abs=0.02)


# --- what the server asks: one reading for the HTTP client and the Hub uploader ----------------


def test_the_hubs_ietf_ratelimit_header_without_retry_after_is_a_wait() -> None:
    # As `huggingface_hub`'s `parse_ratelimit_headers` docstring shows the Hub's headers.
    headers = {
        "RateLimit": '"api";r=0;t=55',
        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
    }
    assert server_wait(headers) == 55.0
    assert server_wait({"ratelimit": '"api";r=12;t=55'}) is None  # requests left: no wait
    assert server_wait({"ratelimit": '"api";r=0;t=5, "resolvers";r=0;t=40'}) == 40.0
    assert server_wait({"ratelimit": "garbage"}) is None
    assert server_wait({}) is None


def test_retry_after_wins_over_ratelimit_and_may_be_a_date() -> None:
    assert server_wait({"Retry-After": "7", "RateLimit": '"api";r=0;t=55'}) == 7.0
    date = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert server_wait(date, now=1445412480.0 - 30) == pytest.approx(30.0)
