"""Faults every emulator can inject: latency, a server-side rate limit, 429s, 500s, resets,
truncated JSON and slow bodies, at random (probabilities) or in a scripted sequence.

Every emulator app installs `fault_middleware(faults)`. The middleware keeps a `FaultState` in
the app (`app[FAULTS]`) that tests read and change while the app runs: the request log with
arrival times, the count of each status served, the faults injected, and the config itself
(`state.configure(...)`, `state.add(FaultRule(...))`).

    rule = FaultRule("rate_limit", path="/questions", count=2, retry_after=0.2)
    app = create_app(FaultConfig(latency=0.05, rate_limit=20, sequence=[rule]))
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

Fault = Literal["rate_limit", "server_error", "unavailable", "reset", "truncated_json", "slow_body"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Builds the refusal an emulator sends when its rate limit is exceeded: (request, retry_after).
RateLimitResponse = Callable[[web.Request, float | None], web.StreamResponse]

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]


class FaultRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A scripted fault: the matching requests `skip + 1` .. `skip + count` get it."""

    fault: Fault
    path: str = ""  # a substring of the request path; "" matches every request
    query: str = ""  # a substring of the query string the request must also contain
    count: int = 1  # how many matching requests get the fault; 0 = every one after `skip`
    skip: int = 0  # matching requests let through before the fault starts
    retry_after: float | None = 1.0  # for "rate_limit"/"unavailable": None sends no header
    status: int = 429  # for "rate_limit": 429, or 403 as GitHub's secondary limit does


class FaultConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    latency: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # seconds added to every response
    # Requests per second the server accepts (a token bucket of `rate_burst`, default one
    # second's worth); beyond it, a 429 with Retry-After. 0: no limit.
    rate_limit: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    rate_burst: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    retry_after: Annotated[float, msgspec.Meta(ge=0)] = 1.0  # sent with random 429s/503s
    p_rate_limit: Probability = 0.0
    p_server_error: Probability = 0.0
    p_reset: Probability = 0.0
    p_truncated: Probability = 0.0
    p_slow: Probability = 0.0
    slow_seconds: Annotated[float, msgspec.Meta(ge=0)] = 2.0  # how long a slow body takes
    sequence: list[FaultRule] = []
    seed: int = 0


class RequestSeen(msgspec.Struct, frozen=True):
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    query: str
    status: int = 0


class FaultState:
    """The live fault config of one app, and what it has seen and done."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.requests: list[RequestSeen] = []
        self.statuses: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        """Replace the config; scripted rules start over."""
        self.config = config
        self.rng = random.Random(config.seed)
        self._rules: list[tuple[FaultRule, list[int]]] = [(r, [0]) for r in config.sequence]
        burst = config.rate_burst or config.rate_limit
        self._bucket = (config.rate_limit, burst, burst, time.monotonic())

    def add(self, rule: FaultRule) -> None:
        self._rules.append((rule, [0]))

    def clear(self) -> None:
        """Forget what was seen (the config stays)."""
        self.requests.clear()
        self.statuses.clear()
        self.injected.clear()

    def seen(self, path: str = "") -> list[RequestSeen]:
        return [r for r in self.requests if path in r.path]

    # --- decisions -------------------------------------------------------------------------

    def over_rate(self) -> float | None:
        """None when the request is within the server's rate; else seconds to a free token."""
        rate, burst, tokens, updated = self._bucket
        if rate <= 0:
            return None
        now = time.monotonic()
        tokens = min(burst, tokens + (now - updated) * rate)
        if tokens >= 1:
            self._bucket = (rate, burst, tokens - 1, now)
            return None
        self._bucket = (rate, burst, tokens, now)
        return (1 - tokens) / rate

    def pick(self, path: str, query: str = "") -> FaultRule | None:
        for rule, seen in self._rules:
            if (rule.path and rule.path not in path) or (rule.query and rule.query not in query):
                continue
            seen[0] += 1
            n = seen[0] - rule.skip
            if n >= 1 and (rule.count == 0 or n <= rule.count):
                return rule
        config, roll = self.config, self.rng.random()
        for fault, p in (
            ("rate_limit", config.p_rate_limit),
            ("server_error", config.p_server_error),
            ("reset", config.p_reset),
            ("truncated_json", config.p_truncated),
            ("slow_body", config.p_slow),
        ):
            if roll < p:
                return FaultRule(fault, retry_after=config.retry_after)  # type: ignore[arg-type]
            roll -= p
        return None


FAULTS = web.AppKey("faults", FaultState)
RATE_LIMIT_RESPONSE: web.AppKey[RateLimitResponse] = web.AppKey("rate_limit_response")


def default_rate_limit_response(request: web.Request, retry_after: float | None) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": _seconds(retry_after)}
    return web.json_response({"message": "rate limit exceeded"}, status=429, headers=headers)


def fault_middleware(faults: FaultConfig | FaultState | None = None) -> Middleware:
    """The middleware; it goes first in the app's middlewares. `install` does it all:
    it also puts the state in `app[FAULTS]` where tests find it.
    """
    state = faults if isinstance(faults, FaultState) else FaultState(faults)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen = RequestSeen(time.monotonic(), request.method, request.path, request.query_string)
        index = len(state.requests)
        state.requests.append(seen)
        response = await _serve(state, request, handler)
        state.statuses[response.status] += 1
        state.requests[index] = msgspec.structs.replace(seen, status=response.status)
        return response

    return middleware


def install(app: web.Application, faults: FaultConfig | FaultState | None = None) -> FaultState:
    """Add the fault middleware to an app that is being built; the state it uses."""
    state = faults if isinstance(faults, FaultState) else FaultState(faults)
    app.middlewares.insert(0, fault_middleware(state))
    app[FAULTS] = state
    return state


async def _serve(state: FaultState, request: web.Request, handler: Handler) -> web.StreamResponse:
    config = state.config
    wait = state.over_rate()
    if wait is not None:
        state.injected["server_rate_limit"] += 1
        await asyncio.sleep(config.latency)
        return _rate_limited(request, max(wait, 0.001))
    rule = state.pick(request.path, request.query_string)
    if config.latency:
        await asyncio.sleep(config.latency)
    if rule is None:
        return await handler(request)
    state.injected[rule.fault] += 1
    headers = {} if rule.retry_after is None else {"Retry-After": _seconds(rule.retry_after)}
    if rule.fault == "rate_limit":
        if rule.status == 403:
            return web.json_response(
                {"message": "You have exceeded a secondary rate limit."},
                status=403,
                headers=headers,
            )
        return _rate_limited(request, rule.retry_after)
    if rule.fault == "server_error":
        return web.json_response({"message": "internal error (injected)"}, status=500)
    if rule.fault == "unavailable":
        return web.json_response({"message": "unavailable (injected)"}, status=503, headers=headers)
    if rule.fault == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more to send: the connection is gone
    response = await handler(request)
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or not isinstance(response, web.Response):
        return response
    if rule.fault == "truncated_json":
        cut = web.Response(
            body=body[: max(1, len(body) // 2)], status=response.status, headers=response.headers
        )
        cut.headers.pop("Content-Length", None)
        return cut
    return await _slow(request, response, body, config.slow_seconds)


def _rate_limited(request: web.Request, retry_after: float | None) -> web.StreamResponse:
    builder = request.app.get(RATE_LIMIT_RESPONSE, default_rate_limit_response)
    return builder(request, retry_after)


async def _slow(
    request: web.Request, response: web.Response, body: bytes, seconds: float
) -> web.StreamResponse:
    """Send the body in ten pieces spread over `seconds`."""
    slow = web.StreamResponse(status=response.status)
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "content-encoding", "transfer-encoding"):
            slow.headers[name] = value
    slow.content_length = len(body)
    await slow.prepare(request)
    step = max(1, len(body) // 10)
    for start in range(0, len(body), step):
        await asyncio.sleep(seconds / 10)
        await slow.write(body[start : start + step])
    await slow.write_eof()
    return slow


def _seconds(value: float) -> str:
    """Retry-After as the header carries it: whole seconds, except in fast tests."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
