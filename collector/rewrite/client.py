"""A client for the OpenAI-compatible `POST {base_url}/v1/chat/completions` (aiohttp, no SDK).

The common protocol of vLLM, llama.cpp server, Ollama, OpenRouter and OpenAI. The client holds
its own limits before the server has to refuse anything:

- requests per minute and tokens per minute, as two `TokenBucket`s (a request takes one request
  token and its estimated tokens: prompt characters / 4 + `max_tokens`);
- a concurrency cap (a semaphore);
- what the server says: `retry-after-ms` / `retry-after` on a 429 or 503 hold every request
  back (both buckets paused), and `x-ratelimit-remaining-requests` / `-tokens` at zero pause
  the bucket until `x-ratelimit-reset-requests` / `-tokens` (durations such as `20ms`, `1s`,
  `6m0s`);
- retries with tenacity (exponential backoff with jitter, or the server's wait) on 429, 408,
  5xx, timeouts, connection errors and malformed answers (invalid JSON, no choices); a
  backoff pauses every request of the client, not only the one that failed.

Errors: `ChatRejected(status, message, code)` when the server refuses the request itself
(400, 401, 403, 404, 422 ...: not retried; 429 `insufficient_quota` is one too: no retry pays
a bill), `ChatUnavailable(reason)` when the retries ran out.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from collector import __version__
from collector.http import _retry_after as http_retry_after
from collector.logging import Logger
from collector.ratelimit import TokenBucket
from collector.rewrite.config import RewriteConfig

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

USER_AGENT = f"resume-collector/{__version__}"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# A server wait longer than this is taken as this: a broken header must not park the stage.
MAX_SERVER_WAIT = 600.0
# Codes of a 429 that no waiting fixes (OpenAI: the account has no credit left).
NOT_RETRYABLE_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class Message(msgspec.Struct, frozen=True):
    role: str
    content: str


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatAnswer(msgspec.Struct, frozen=True):
    """The first choice of a completion, and what it cost."""

    content: str
    finish_reason: str
    usage: Usage
    model: str = ""


class _AnswerMessage(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _AnswerMessage
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    usage: Usage | None = None
    model: str = ""


class ChatError(Exception):
    pass


class ChatRejected(ChatError):
    """The server refused this request; sending it again would not help."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(f"{status} {code + ': ' if code else ''}{message}")
        self.status = status
        self.message = message
        self.code = code


class ChatUnavailable(ChatError):
    """No usable answer after every retry (rate limited, down, slow or garbled)."""


class _Retryable(Exception):
    def __init__(self, reason: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_duration(text: str) -> float | None:
    """`6m0s` -> 360.0, `20ms` -> 0.02, `1.5` (plain seconds) -> 1.5; None when unreadable."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def retry_after(headers: dict[str, str]) -> float | None:
    """Seconds the server asked to wait: `retry-after-ms` (OpenAI sends it), else `retry-after`
    (seconds or an HTTP date, read as the shared HTTP client reads it)."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    return http_retry_after(headers.get("retry-after"))


def estimate_tokens(messages: list[Message], max_tokens: int) -> int:
    """What a request may cost at most: prompt characters / 4 (the usual rule) + max_tokens."""
    return sum(len(m.content) for m in messages) // 4 + 4 * len(messages) + max_tokens


class ChatClient:
    def __init__(
        self,
        config: RewriteConfig,
        log: Logger,
        *,
        api_key: str = "",
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.api_key = api_key
        self.clock = clock
        self._sleep: Sleep = sleep or asyncio.sleep
        per_second = config.requests_per_minute / 60
        self.requests = TokenBucket(per_second, max(1.0, per_second), clock, self._sleep)
        self.tokens: TokenBucket | None = None
        if config.tokens_per_minute > 0:
            tokens_per_second = config.tokens_per_minute / 60
            self.tokens = TokenBucket(
                tokens_per_second, max(1.0, tokens_per_second), clock, self._sleep
            )
        self._slots = asyncio.Semaphore(config.concurrency)
        self._session: aiohttp.ClientSession | None = None
        retry = config.retry
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial_wait, max=retry.max_wait, jitter=retry.initial_wait
        )
        self._decoder = msgspec.json.Decoder(_Completion)
        self.stats: Counter[str] = Counter()

    # --- public ----------------------------------------------------------------------------

    async def complete(self, messages: list[Message]) -> ChatAnswer:
        """The model's answer to `messages`; retried, rate limited. Raises `ChatError`."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(messages)
        except _Retryable as error:
            raise ChatUnavailable(
                f"{error.reason}, gave up after {self.config.retry.attempts} attempts"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- one attempt -----------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                raise_for_status=False,
            )
        return self._session

    async def _attempt(self, messages: list[Message]) -> ChatAnswer:
        config = self.config
        body = msgspec.json.encode(
            {
                "model": config.model,
                "messages": messages,
                "temperature": config.temperature,
                "max_tokens": config.max_tokens,
            }
        )
        if await self.requests.acquire() >= 0.001:  # less is the bucket's lock, not the limit
            self.stats["rate_limited"] += 1  # held back by the client-side requests limit
        if self.tokens is not None:
            await self.tokens.acquire(estimate_tokens(messages, config.max_tokens))
        async with self._slots:
            self.stats["requests"] += 1
            try:
                async with self._get_session().post(config.endpoint, data=body) as response:
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    self._observe(headers)
                    data = await response.read()
                    status = response.status
            except TimeoutError:
                raise _Retryable("timeout") from None
            except aiohttp.ClientError as error:
                raise _Retryable(type(error).__name__) from None
        if status >= 400:
            self._refuse(status, headers, data)
        try:
            completion = self._decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise _Retryable("malformed_json", status) from None
        if not completion.choices:
            raise _Retryable("no_choices", status)
        choice = completion.choices[0]
        usage = completion.usage or Usage()
        self.stats["answers"] += 1
        self.stats["tokens"] += usage.total_tokens
        return ChatAnswer(
            content=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            usage=usage,
            model=completion.model,
        )

    def _refuse(self, status: int, headers: dict[str, str], data: bytes) -> None:
        message, code = _error_of(data)
        if status in RETRY_STATUSES and code not in NOT_RETRYABLE_CODES:
            wait = retry_after(headers)
            if wait is not None:
                wait = min(wait, MAX_SERVER_WAIT)
                deadline = self.clock() + wait
                # A rate-limit answer holds back every request of the client, not only this one.
                self.requests.pause_until(deadline)
                if self.tokens is not None:
                    self.tokens.pause_until(deadline)
            raise _Retryable(f"http_{status}", status, wait)
        raise ChatRejected(status, message or f"HTTP {status}", code)

    def _observe(self, headers: dict[str, str]) -> None:
        """Pause a bucket whose server-side quota reads zero until the server's reset."""
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
            if remaining is None or reset is None:
                continue
            try:
                left = float(remaining)
            except ValueError:
                continue
            low = 1 if kind == "requests" else self.config.max_tokens
            if left < low:
                deadline = self.clock() + min(reset, MAX_SERVER_WAIT)
                (bucket or self.requests).pause_until(deadline)
                self.stats[f"paused_{kind}"] += 1

    # --- tenacity hooks --------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        error = state.outcome.exception() if state.outcome is not None else None
        reason = error.reason if isinstance(error, _Retryable) else type(error).__name__
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        # One backoff for the client: the other requests in flight back off too, instead of
        # each learning on its own that the server is struggling.
        self.requests.pause_until(self.clock() + wait)
        self.log.warning(
            "rewrite_retry",
            reason=reason,
            attempt=state.attempt_number,
            max_attempts=self.config.retry.attempts,
            wait=round(wait, 3),
        )


def _error_of(data: bytes) -> tuple[str, str]:
    """(message, code) of an OpenAI-style error body; ("", "") when it is something else."""
    try:
        body: Any = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return data[:200].decode("utf-8", "replace"), ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", "")), str(error.get("code") or error.get("type") or "")
    if isinstance(error, str):  # llama.cpp and some proxies
        return error, ""
    return str(body)[:200], ""
