"""A client for the OpenAI-compatible `POST {base_url}/v1/chat/completions` (no SDK).

The common protocol of vLLM, llama.cpp server, Ollama, OpenRouter and OpenAI. It is the shared
`HttpClient` (`collector/http.py`: the session, the retries with backoff, the concurrency cap,
`Retry-After`) plus what this API adds:

- its limits, held before the server has to refuse anything: requests per minute and tokens per
  minute, as two `TokenBucket`s (a request takes one request token and its estimated tokens:
  prompt characters / 4 + `max_tokens`);
- its headers (`ChatHints`): `retry-after-ms` / `retry-after` on a 429 or 503 hold every request
  back (both buckets paused), and `x-ratelimit-remaining-requests` / `-tokens` at zero pause
  the bucket until `x-ratelimit-reset-requests` / `-tokens` (durations such as `20ms`, `1s`,
  `6m0s`);
- its retries: also on 409, and on a malformed answer (invalid JSON, no choices); a backoff
  pauses every request of the client, not only the one that failed.

Errors: `ChatRejected(status, message, code)` when the server refuses the request itself
(400, 401, 403, 404, 422 ...: not retried; 429 `insufficient_quota` is one too: no retry pays
a bill), `ChatUnavailable(reason)` when the retries ran out.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from collector.http import HttpClient, HttpError, HttpResponse, MalformedResponse, Refusal
from collector.logging import Logger
from collector.ratelimit import RateLimiter, TokenBucket, retry_after_seconds
from collector.rewrite.config import RewriteConfig
from collector.sources.config import RateConfig, RetryConfig

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# A server wait longer than this is taken as this: a broken header must not park the stage.
MAX_SERVER_WAIT = 600.0
# Codes of a 429 that no waiting fixes (OpenAI: the account has no credit left).
NOT_RETRYABLE_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
# An answer is one bullet; a body this large is not an answer.
MAX_ANSWER_BYTES = 16 * 1024**2
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


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: `retry-after-ms` (OpenAI sends it), else `retry-after`
    (seconds or an HTTP date, read as the shared HTTP client reads it)."""
    if "retry-after-ms" in headers:
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def estimate_tokens(messages: list[Message], max_tokens: int) -> int:
    """What a request may cost at most: prompt characters / 4 (the usual rule) + max_tokens."""
    return sum(len(m.content) for m in messages) // 4 + 4 * len(messages) + max_tokens


class ChatSettings(msgspec.Struct, frozen=True):
    """What the shared HTTP client reads of the stage's config (`HttpSettings`)."""

    rate: RateConfig  # requests per second; the client's own bucket holds it
    concurrency: int
    retry: RetryConfig
    timeout: float
    max_response_bytes: int = MAX_ANSWER_BYTES

    @classmethod
    def of(cls, config: RewriteConfig) -> ChatSettings:
        per_second = config.requests_per_minute / 60
        return cls(RateConfig(per_second), config.concurrency, config.retry, config.timeout)


class ChatHints:
    """The OpenAI-style headers and error bodies, read for the shared HTTP client
    (`ServerHints`): they pause the client's buckets and say which refusals are final."""

    def __init__(
        self, config: RewriteConfig, requests: TokenBucket, tokens: TokenBucket | None, clock: Clock
    ) -> None:
        self.config = config
        self.requests = requests
        self.tokens = tokens
        self.clock = clock
        self.stats: Counter[str] = Counter()

    def observe(self, headers: Mapping[str, str]) -> None:
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

    def refusal(self, response: HttpResponse) -> Refusal:
        status = response.status
        message, code = _error_of(response.body)
        if not retryable(status, code):
            return Refusal(retry=False, reason=message or f"HTTP {status}")
        wait = retry_after(response.headers)
        if wait is not None:
            wait = min(wait, MAX_SERVER_WAIT)
            deadline = self.clock() + wait
            # A rate-limit answer holds back every request of the client, not only this one.
            self.requests.pause_until(deadline)
            if self.tokens is not None:
                self.tokens.pause_until(deadline)
        return Refusal(retry=True, reason=f"http_{status}", wait=wait)


def retryable(status: int, code: str) -> bool:
    """Whether an error answer may succeed when sent again."""
    return status in RETRY_STATUSES and code not in NOT_RETRYABLE_CODES


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
        per_second = config.requests_per_minute / 60
        self.requests = TokenBucket(per_second, max(1.0, per_second), clock, sleep)
        self.tokens: TokenBucket | None = None
        if config.tokens_per_minute > 0:
            tokens_per_second = config.tokens_per_minute / 60
            self.tokens = TokenBucket(tokens_per_second, max(1.0, tokens_per_second), clock, sleep)
        settings = ChatSettings.of(config)
        self.hints = ChatHints(config, self.requests, self.tokens, clock)
        self.http = HttpClient(
            settings,
            log,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else None,
            limiter=RateLimiter(
                settings.rate, config.concurrency, clock=clock, sleep=sleep, bucket=self.requests
            ),
            hints=self.hints,
            shared_backoff=True,
            sleep=sleep,
        )
        self._decoder = msgspec.json.Decoder(_Completion)
        self._answers: Counter[str] = Counter()

    @property
    def stats(self) -> Counter[str]:
        """Requests and retries (the HTTP client's), answers and tokens, and the pauses the
        server's headers caused (`paused_requests`, `paused_tokens`)."""
        return Counter(self.http.stats) + self._answers + self.hints.stats

    # --- public ----------------------------------------------------------------------------

    async def complete(self, messages: list[Message]) -> ChatAnswer:
        """The model's answer to `messages`; retried, rate limited. Raises `ChatError`."""
        config = self.config
        body = {
            "model": config.model,
            "messages": messages,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
        }
        if self.tokens is not None:
            await self.tokens.acquire(estimate_tokens(messages, config.max_tokens))
        try:
            _, completion = await self.http.post_json(config.endpoint, body, decode=self._decode)
        except MalformedResponse as error:
            raise ChatUnavailable(error.message) from None
        except HttpError as error:
            _, code = _error_of(error.body)
            if error.status and not retryable(error.status, code):
                raise ChatRejected(error.status, error.message, code) from None
            raise ChatUnavailable(error.message) from None
        choice = completion.choices[0]
        usage = completion.usage or Usage()
        self._answers["answers"] += 1
        self._answers["tokens"] += usage.total_tokens
        return ChatAnswer(
            content=choice.message.content or "",
            finish_reason=choice.finish_reason or "stop",
            usage=usage,
            model=completion.model,
        )

    def _decode(self, data: bytes) -> _Completion:
        """A completion with at least one choice; anything else is retried."""
        completion = self._decoder.decode(data)
        if not completion.choices:
            raise ValueError("no choices in the completion")
        return completion

    async def close(self) -> None:
        await self.http.close()


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
