"""The shared HTTP client against a local app with injected faults (no mocks of our own calls)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from collector.http import (
    USER_AGENT,
    HttpClient,
    HttpError,
    HttpResponse,
    MalformedResponse,
    MemoryEtagStore,
    Refusal,
    ResponseTooLarge,
    SourceStopping,
)
from collector.logging import get_logger
from collector.ratelimit import QuotaExhausted
from collector.sandbox import RunningApp, start_app
from collector.sandbox.faults import FaultConfig, FaultRule, FaultState, install
from collector.sources.config import RateConfig, RetryConfig, StackExchangeSourceConfig

PAYLOAD = {"items": [{"id": i, "text": "resume bullet " * 5} for i in range(20)]}


def make_app(faults: FaultConfig | None = None) -> web.Application:
    app = web.Application()
    install(app, faults)
    state: dict[str, Any] = {"reset_at": 0.0}

    async def data(request: web.Request) -> web.StreamResponse:
        body = web.json_response(PAYLOAD).body
        assert isinstance(body, bytes)
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        response = web.json_response(PAYLOAD, headers={"ETag": etag})
        response.enable_compression()
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"headers": dict(request.headers), "query": dict(request.query)})

    async def compressed(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"ok": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "0"))
        response = web.StreamResponse()
        if request.query.get("declare"):
            response.content_length = size
        await response.prepare(request)
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            await response.write(chunk[: size - sent])
            sent += len(chunk[: size - sent])
        await response.write_eof()
        return response

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"message": "Not Found"}, status=int(request.match_info["code"]))

    async def primary(request: web.Request) -> web.Response:
        """Two requests per window; `x-ratelimit-remaining: 0` on the second."""
        now = time.time()
        if now >= state["reset_at"]:
            state["reset_at"], state["left"] = now + 0.6, 2
        if state["left"] <= 0:
            return web.json_response(
                {"message": "API rate limit exceeded"},
                status=403,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": f"{state['reset_at']}"},
            )
        state["left"] -= 1
        headers = {
            "x-ratelimit-remaining": str(state["left"]),
            "x-ratelimit-reset": f"{state['reset_at']}",
        }
        return web.json_response({"ok": True}, headers=headers)

    app.router.add_get("/data", data)
    app.router.add_get("/echo", echo)
    app.router.add_post("/echo", echo)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/big", big)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/primary", primary)
    return app


@pytest.fixture
async def server() -> AsyncIterator[RunningApp]:
    running = await start_app(make_app(), "test")
    yield running
    await running.stop()


def config(**overrides: Any) -> StackExchangeSourceConfig:
    fields: dict[str, Any] = {
        "name": "test",
        "rate": RateConfig(per_second=200, burst=10),
        "concurrency": 4,
        "retry": RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05, secondary_wait=0.05),
        "timeout": 2.0,
    }
    fields.update(overrides)
    return StackExchangeSourceConfig(**fields)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(config(), get_logger())
    yield http
    await http.close()


def faults_of(server: RunningApp) -> FaultState:
    return server.faults


async def test_get_json_sends_user_agent_and_params(server: RunningApp, client: HttpClient) -> None:
    response, data = await client.get_json(f"{server.url}/echo", params={"page": 2, "q": "a b"})
    assert response.status == 200
    assert data["headers"]["User-Agent"] == USER_AGENT
    assert "gzip" in data["headers"]["Accept-Encoding"]
    assert data["query"] == {"page": "2", "q": "a b"}


async def test_gzip_bodies_are_decompressed(server: RunningApp, client: HttpClient) -> None:
    _, data = await client.get_json(f"{server.url}/gzip")
    assert data == {"ok": True}
    _, data = await client.get_json(f"{server.url}/data")
    assert data == PAYLOAD


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule("rate_limit", retry_after=0.05),
        FaultRule("rate_limit", retry_after=None),
        FaultRule("rate_limit", status=403, retry_after=0.05),
        FaultRule("rate_limit", status=403, retry_after=None),
        FaultRule("server_error"),
        FaultRule("unavailable", retry_after=0.05),
        FaultRule("reset"),
        FaultRule("truncated_json"),
    ],
    ids=lambda r: f"{r.fault}-{r.status}-{r.retry_after}",
)
async def test_every_injected_fault_is_retried_until_it_succeeds(
    server: RunningApp, client: HttpClient, rule: FaultRule
) -> None:
    faults_of(server).add(
        FaultRule(
            rule.fault, path="/data", count=2, retry_after=rule.retry_after, status=rule.status
        )
    )
    _, data = await client.get_json(f"{server.url}/data")
    assert data == PAYLOAD
    assert len(faults_of(server).seen("/data")) == 3
    # aiohttp itself re-sends once on a reset of a reused keep-alive connection
    assert client.stats["retries"] == (2 if rule.fault != "reset" else pytest.approx(1.5, abs=0.5))


async def test_a_slow_body_times_out_and_is_retried(server: RunningApp) -> None:
    faults_of(server).configure(FaultConfig(slow_seconds=1.0, sequence=[FaultRule("slow_body")]))
    http = HttpClient(config(timeout=0.3), get_logger())
    try:
        _, data = await http.get_json(f"{server.url}/data")
    finally:
        await http.close()
    assert data == PAYLOAD
    assert http.stats["retries"] == 1


async def test_retry_after_is_honoured(server: RunningApp, client: HttpClient) -> None:
    faults_of(server).add(FaultRule("rate_limit", "/data", count=1, retry_after=0.3))
    await client.get_json(f"{server.url}/data")
    first, second = faults_of(server).seen("/data")
    assert second.at - first.at >= 0.3


async def test_secondary_limit_without_retry_after_waits_the_secondary_wait(
    server: RunningApp,
) -> None:
    faults_of(server).add(FaultRule("rate_limit", "/data", count=2, status=403, retry_after=None))
    retry = RetryConfig(attempts=4, initial_wait=0.001, max_wait=0.001, secondary_wait=0.2)
    http = HttpClient(config(retry=retry), get_logger())
    try:
        await http.get_json(f"{server.url}/data")
    finally:
        await http.close()
    first, second, third = faults_of(server).seen("/data")
    assert second.at - first.at >= 0.2
    assert third.at - second.at >= 0.4  # then exponential


async def test_exhausted_primary_limit_sleeps_until_the_reset(
    server: RunningApp, client: HttpClient
) -> None:
    for _ in range(5):
        response = await client.get(f"{server.url}/primary")
        assert response.status == 200
    statuses = [r.status for r in faults_of(server).seen("/primary")]
    assert statuses == [200] * 5  # never refused: the client waited for each reset


async def test_other_4xx_are_not_retried(server: RunningApp, client: HttpClient) -> None:
    with pytest.raises(HttpError) as caught:
        await client.get(f"{server.url}/status/404")
    assert caught.value.status == 404
    assert caught.value.message == "Not Found"
    assert len(faults_of(server).seen("/status")) == 1


async def test_retries_give_up_with_a_clear_error(server: RunningApp, client: HttpClient) -> None:
    faults_of(server).add(FaultRule("server_error", "/data", count=0))
    with pytest.raises(HttpError) as caught:
        await client.get(f"{server.url}/data")
    assert caught.value.status == 500
    assert "gave up after 4 attempts" in str(caught.value)
    assert len(faults_of(server).seen("/data")) == 4


async def test_truncated_json_every_time_is_a_malformed_response(
    server: RunningApp, client: HttpClient
) -> None:
    faults_of(server).add(FaultRule("truncated_json", "/data", count=0))
    with pytest.raises(MalformedResponse):
        await client.get_json(f"{server.url}/data")


async def test_an_oversize_body_is_refused_without_reading_it_all(server: RunningApp) -> None:
    http = HttpClient(config(max_response_bytes=1_000_000), get_logger())
    try:
        with pytest.raises(ResponseTooLarge):
            await http.get(f"{server.url}/big", params={"size": 100 * 1024 * 1024})
        with pytest.raises(ResponseTooLarge):
            await http.get(f"{server.url}/big", params={"size": 2_000_000, "declare": 1})
        ok = await http.get(f"{server.url}/big", params={"size": 999_999})
        assert len(ok.body) == 999_999
    finally:
        await http.close()


async def test_download_streams_to_disk_and_refuses_oversize(
    server: RunningApp, client: HttpClient, tmp_path: Path
) -> None:
    dest = tmp_path / "sub" / "file.bin"
    response = await client.download(f"{server.url}/big", dest, params={"size": 300_000})
    assert response.status == 200 and dest.stat().st_size == 300_000
    with pytest.raises(ResponseTooLarge):
        await client.download(
            f"{server.url}/big", tmp_path / "x.bin", params={"size": 300_000}, max_bytes=1000
        )
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.bin.part").exists()


async def test_conditional_get_returns_304_for_an_unchanged_page(server: RunningApp) -> None:
    etags = MemoryEtagStore()
    http = HttpClient(config(), get_logger(), etags=etags)
    try:
        first, data = await http.get_json(f"{server.url}/data", params={"page": 1})
        again, nothing = await http.get_json(f"{server.url}/data", params={"page": 1})
    finally:
        await http.close()
    assert first.status == 200 and data == PAYLOAD
    assert again.not_modified and nothing is None
    assert list(etags.take_pending()) == [f"{server.url}/data?page=1"]


async def test_post_json_sends_a_json_body(server: RunningApp, client: HttpClient) -> None:
    _, data = await client.post_json(f"{server.url}/echo", {"a": 1})
    assert data["headers"]["Content-Type"] == "application/json"


async def test_an_answer_the_caller_cannot_decode_is_retried_then_malformed(
    server: RunningApp, client: HttpClient
) -> None:
    def needs_answer(body: bytes) -> Any:
        data = msgspec.json.decode(body)
        if "answer" not in data:
            raise ValueError("no answer")
        return data

    with pytest.raises(MalformedResponse, match="malformed_body, gave up after 4 attempts"):
        await client.post_json(f"{server.url}/echo", {"a": 1}, decode=needs_answer)
    assert client.stats["requests"] == 4


class OwnWords:
    """An API that says in its body whether a refusal is worth another try."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def observe(self, headers: Mapping[str, str]) -> None:
        self.seen.append(headers.get("content-type", ""))

    def refusal(self, response: HttpResponse) -> Refusal | None:
        if response.status == 404:
            return Refusal(retry=True, reason="not_there_yet")
        return None


async def test_server_hints_read_every_answer_and_may_retry_a_refusal(server: RunningApp) -> None:
    hints = OwnWords()
    http = HttpClient(config(), get_logger(), hints=hints)
    try:
        with pytest.raises(HttpError, match="not_there_yet, gave up after 4 attempts"):
            await http.get_json(f"{server.url}/status/404")
        with pytest.raises(HttpError) as final:  # no hint: the client's own rules
            await http.get_json(f"{server.url}/status/410")
    finally:
        await http.close()
    assert final.value.status == 410 and http.stats["requests"] == 5
    assert hints.seen == ["application/json; charset=utf-8"] * 5


async def test_basic_auth_is_sent(server: RunningApp) -> None:
    with pytest.warns(DeprecationWarning):  # aiohttp 3.14 deprecates the class we agreed on
        auth = aiohttp.BasicAuth("user", "secret")
    http = HttpClient(config(), get_logger(), auth=auth)
    try:
        _, data = await http.get_json(f"{server.url}/echo")
    finally:
        await http.close()
    assert data["headers"]["Authorization"].startswith("Basic ")


async def test_daily_quota_stops_requests_with_a_clear_error(server: RunningApp) -> None:
    http = HttpClient(config(rate=RateConfig(per_second=100, burst=5, per_day=3)), get_logger())
    try:
        for _ in range(3):
            await http.get(f"{server.url}/echo")
        with pytest.raises(QuotaExhausted):
            await http.get(f"{server.url}/echo")
    finally:
        await http.close()
    assert len(faults_of(server).seen("/echo")) == 3


async def test_concurrency_cap_holds(server: RunningApp) -> None:
    faults_of(server).configure(FaultConfig(latency=0.05))
    http = HttpClient(config(concurrency=2), get_logger())
    try:
        started = time.monotonic()
        await asyncio.gather(*(http.get(f"{server.url}/echo") for _ in range(6)))
        elapsed = time.monotonic() - started
    finally:
        await http.close()
    assert elapsed >= 0.15  # 6 requests, 2 at a time, 50 ms each


async def test_connection_refused_is_retried_then_reported() -> None:
    http = HttpClient(config(), get_logger())
    try:
        with pytest.raises(HttpError) as caught:
            await http.get("http://127.0.0.1:9/nothing")
    finally:
        await http.close()
    assert caught.value.status == 0
    assert http.stats["retries"] == 3


async def test_the_stop_event_cuts_a_retry_backoff_short() -> None:
    with socket.socket() as sock:  # a port nobody listens on: every attempt is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = asyncio.Event()
    retry = RetryConfig(attempts=10, initial_wait=60, max_wait=60)
    client = HttpClient(config(retry=retry), get_logger(), stop=stop)
    try:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/"))
        for _ in range(200):  # the first attempt fails fast, then a backoff of a minute
            if client.stats["retries"]:
                break
            await asyncio.sleep(0.01)
        assert client.stats["retries"] == 1 and not request.done()
        started = time.monotonic()
        stop.set()
        with pytest.raises(SourceStopping):
            await asyncio.wait_for(request, 5)
        assert time.monotonic() - started < 1
        assert client.stats["requests"] == 1  # no further attempt once stopping
    finally:
        await client.close()
