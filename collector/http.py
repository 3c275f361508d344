"""The HTTP client every remote source uses: one aiohttp session, rate-limited, retried.

What it does for a source, so that sources only speak their API:

- one `aiohttp.ClientSession` per source, a `User-Agent` naming the tool, gzip/deflate accepted,
  TLS verification on, the timeout from the source config;
- a cap on the response size: bodies are streamed and the read stops at
  `max_response_bytes` with `ResponseTooLarge` (a 100 MB body is an error, not an OOM);
- rate limiting through a `RateLimiter` (token bucket + concurrency cap + daily quota), paused by
  what the server says: `Retry-After`, `x-ratelimit-remaining: 0` until `x-ratelimit-reset`,
  the IETF `RateLimit` header (`"api";r=0;t=55`, the Hugging Face Hub's, maybe without
  `Retry-After`),
  secondary limits (a 429 with no hint, or a 403 whose message says so, GitHub's "abuse
  detection" wording too: wait `retry.secondary_wait`, then double), and an API's own throttle
  signal read by its `ServerHints` (Stack Exchange's `throttle_violation` body);
- retries with tenacity: exponential backoff with jitter on 429, 5xx, timeouts, connection
  resets and truncated bodies; never on other 4xx; every retry is logged with its attempt number
  and wait;
- conditional GETs: with an `EtagStore`, a GET sends `If-None-Match` for a page it has seen and
  a `304` comes back as a response with `status == 304` and no body;
- an API's own dialect through `ServerHints`: the headers it reads on every answer and how it
  words a refusal (the rewrite stage's chat client reads the OpenAI-style
  `x-ratelimit-remaining-requests`/`-tokens` and `retry-after-ms` this way), and a `decode`
  that sends a body the caller cannot use round again like a dropped connection.

It serves every owner that talks HTTP to one API: the sources (their `SourceConfig`) and the
rewrite stage's chat client (`collector/rewrite/client.py`), each through `HttpSettings`.

Errors: `HttpError(status, url, message, body)` for a refusal that is not retried or a failure
that outlasted the retries (status 0 when no response came), `ResponseTooLarge`,
`MalformedResponse` (a body that is not the JSON it claims to be), and `QuotaExhausted` (from
`collector.ratelimit`) when the daily quota is spent.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

import aiofiles
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
from collector.logging import Logger
from collector.ratelimit import (
    QuotaExhausted,
    RateLimiter,
    TokenBucket,
    ratelimit_reset,
    server_wait,
)
from collector.reporting import HttpFigures, Report
from collector.stopping import SourceStopping

if TYPE_CHECKING:  # not at run time: collector.sources imports the sources, which import this
    from collector.sources.config import RateConfig, RetryConfig

USER_AGENT = f"resume-collector/{__version__}"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A reset or Retry-After further away than this is treated as this (a broken header must not
# park a source for days).
MAX_SERVER_WAIT = 3600.0
# Seconds added to a rate-limit reset time: clocks differ, and resets are whole seconds.
RESET_MARGIN = 0.5
CHUNK = 64 * 1024
ERROR_BODY_LIMIT = 64 * 1024

Params = Mapping[str, str | int | float] | None
# Reads a body into what the caller uses; raising ValueError (msgspec's DecodeError is one)
# says the body is unusable, and the request is tried again.
Decode = Callable[[bytes], Any]


class HttpResponse(msgspec.Struct):
    """A response read to the end. Header names are lower-case; repeated headers are joined."""

    status: int
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return msgspec.json.decode(self.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            raise MalformedResponse(
                self.status, self.url, f"the body is not valid JSON: {error}", self.body[:200]
            ) from error

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class HttpError(Exception):
    """A request that failed for good: a 4xx that is not retried, or retries exhausted."""

    def __init__(self, status: int, url: str, message: str, body: bytes = b"") -> None:
        super().__init__(f"{status or 'no response'} from {url}: {message}")
        self.status = status
        self.url = url
        self.message = message
        self.body = body


class ResponseTooLarge(HttpError):
    """The body is larger than the configured cap; reading stopped at the cap."""


class MalformedResponse(HttpError):
    """The body could not be decoded (truncated or not JSON), even after the retries."""


class HttpSettings(Protocol):
    """What the client reads of its owner's config: a source's `SourceConfig`, or the settings
    the rewrite stage's chat client derives from its own."""

    @property
    def rate(self) -> RateConfig: ...  # the bucket, when no limiter is given

    @property
    def concurrency(self) -> int: ...  # requests in flight at once

    @property
    def retry(self) -> RetryConfig: ...

    @property
    def timeout(self) -> float: ...  # seconds for one request, body included

    @property
    def max_response_bytes(self) -> int: ...


class Refusal(msgspec.Struct, frozen=True):
    """How an API's own words classify an error answer: tried again (after `wait` seconds, or
    the backoff when None) or final, with `reason` as the retry's reason or the error message."""

    retry: bool
    reason: str
    wait: float | None = None


class ServerHints(Protocol):
    """An API's dialect beyond the headers every API shares (`Retry-After`,
    `x-ratelimit-remaining`/`-reset`, the IETF `RateLimit`), which the client reads itself."""

    def observe(self, headers: Mapping[str, str]) -> None:
        """Every answer's headers (lower-case names): e.g. pause a bucket whose quota is spent."""

    def refusal(self, response: HttpResponse) -> Refusal | None:
        """An error answer (4xx, 5xx) classified, or None to leave it to the client's rules."""


class EtagStore(Protocol):
    """Where the client remembers the ETag of each GET (key: URL with sorted params)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, etag: str) -> None: ...


class SharedLimits(Protocol):
    """Rate limits shared with other instances (collector/scaleout/shared_limits.py): the
    bucket a client's settings draw from, or None when they name no rate."""

    def bucket(self, config: HttpSettings) -> TokenBucket | None: ...


class MemoryEtagStore:
    """ETags in memory; `pending` holds the new ones so a source can save them with a cursor.

    An ETag must be saved only once the records of its page are durable, otherwise a crash
    followed by a `304` would lose them: sources put `pending` into a batch's cursors.
    """

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self.known: dict[str, str] = dict(known or {})
        self.pending: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.known.get(key)

    def put(self, key: str, etag: str) -> None:
        if self.known.get(key) != etag:
            self.known[key] = etag
            self.pending[key] = etag

    def take_pending(self) -> dict[str, str]:
        pending, self.pending = self.pending, {}
        return pending


def request_key(url: str, params: Params = None) -> str:
    """A stable name for a GET: the URL plus its params in sorted order."""
    if not params:
        return url
    query = urlencode(sorted((k, str(v)) for k, v in params.items()))
    return f"{url}{'&' if '?' in url else '?'}{query}"


class _Retryable(Exception):
    """An attempt that failed in a way worth retrying; `retry_after` overrides the backoff."""

    def __init__(
        self,
        status: int,
        reason: str,
        body: bytes = b"",
        retry_after: float | None = None,
        secondary: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body
        self.retry_after = retry_after
        self.secondary = secondary


_TRANSIENT = (
    _Retryable,
    aiohttp.ClientConnectionError,  # refused, reset, server disconnected
    aiohttp.ClientPayloadError,  # body cut short
    TimeoutError,
)


class HttpClient:
    def __init__(
        self,
        config: HttpSettings,
        log: Logger,
        *,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        limiter: RateLimiter | TokenBucket | None = None,
        etags: EtagStore | None = None,
        hints: ServerHints | None = None,
        shared_backoff: bool = False,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        stop: asyncio.Event | None = None,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        self.config = config
        self.log = log
        # The source's stop event: set by the drain, it wakes a retry's backoff at once.
        self.stop = stop
        self.auth = auth
        self.etags = etags
        self.hints = hints
        # Every retry's backoff holds back every request of the client, not only the one that
        # failed: for one server (an LLM endpoint) that struggles, the other requests in flight
        # back off too instead of each learning it on its own.
        self.shared_backoff = shared_backoff
        self._sleep = sleep or asyncio.sleep
        if isinstance(limiter, TokenBucket):
            limiter = RateLimiter(config.rate, config.concurrency, bucket=limiter)
        # With a Redis state, the bucket is shared by every instance using the same credential
        # (`shared_limits`, lent by the service in the source's context).
        shared = None
        if limiter is None and shared_limits is not None:
            shared = shared_limits.bucket(config)
        self.limiter = limiter or RateLimiter(config.rate, config.concurrency, bucket=shared)
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip, deflate",
            **(headers or {}),
        }
        if auth is not None:  # as a header: aiohttp drops it on a redirect to another host
            self.headers["Authorization"] = auth.encode()
        self._session: aiohttp.ClientSession | None = None
        # `rate_limited`: requests the client-side limiter held back (it waited for a token).
        self.stats: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "not_modified": 0,
            "rate_limited": 0,
        }
        # For the metrics endpoint: seconds spent waiting for the limiter, and the quota left
        # as the server last reported it (`x-ratelimit-remaining`).
        self.rate_wait_seconds = 0.0
        self.rate_remaining: int | None = None
        retry = config.retry
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial_wait, max=retry.max_wait, jitter=retry.initial_wait
        )

    # --- public API ------------------------------------------------------------------------

    def report(self) -> Report:
        """What this client did and its rate limiter now, for `/metrics` (`Reporting`)."""
        figures = HttpFigures(
            requests=self.stats["requests"],
            retries=self.stats["retries"],
            not_modified=self.stats["not_modified"],
            rate_wait_seconds=self.rate_wait_seconds,
            rate_tokens=self.limiter.bucket.available(),
            rate_paused_seconds=self.limiter.paused_for(),
            rate_remaining=self.rate_remaining,
        )
        return Report(http=figures)

    async def get(
        self,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        limit_key: str | None = None,
    ) -> HttpResponse:
        """GET a page. With an ETag store, a seen page is asked for conditionally (304)."""
        return await self._retrying(
            "GET", url, params=params, headers=headers, limit_key=limit_key, decode=None
        )

    async def get_json(
        self,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        limit_key: str | None = None,
    ) -> tuple[HttpResponse, Any]:
        """GET and decode JSON; a truncated or invalid body is retried like a dropped connection.

        Returns `(response, None)` on a 304. Raises `MalformedResponse` when every attempt came
        back undecodable: the caller counts it and moves on.
        """
        response = await self._retrying(
            "GET",
            url,
            params=params,
            headers=headers,
            limit_key=limit_key,
            decode=msgspec.json.decode,
        )
        if response.not_modified:
            return response, None
        return response, response.json()

    async def post_json(
        self,
        url: str,
        body: Any,
        *,
        decode: Decode = msgspec.json.decode,
        headers: Mapping[str, str] | None = None,
        limit_key: str | None = None,
    ) -> tuple[HttpResponse, Any]:
        """POST `body` as JSON and read the answer with `decode`; an answer it refuses (a
        truncated body, JSON without what the caller needs) is retried like a dropped
        connection, and `MalformedResponse` raised when every attempt came back so."""
        data = msgspec.json.encode(body)
        merged = {"Content-Type": "application/json", **(headers or {})}
        response = await self._retrying(
            "POST", url, headers=merged, data=data, limit_key=limit_key, decode=decode
        )
        return response, decode(response.body)

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        limit_key: str | None = None,
    ) -> HttpResponse:
        """Stream a body to `dest` (via `dest.part`, renamed when complete); follows redirects.

        The returned response has an empty body; `dest` holds it. Over `max_bytes` (default:
        the source's `max_response_bytes`) the partial file is removed and `ResponseTooLarge`
        raised.
        """
        return await self._retrying(
            "GET",
            url,
            params=params,
            headers=headers,
            limit_key=limit_key,
            decode=None,
            dest=dest,
            max_bytes=max_bytes,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- one request, retried ----------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                connector=aiohttp.TCPConnector(limit=max(4, self.config.concurrency * 2)),
            )
        return self._session

    async def _retrying(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        limit_key: str | None = None,
        decode: Decode | None,
        dest: Path | None = None,
        max_bytes: int | None = None,
    ) -> HttpResponse:
        attempts = self.config.retry.attempts
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_TRANSIENT),
            before_sleep=self._before_sleep(method, url, limit_key),
            sleep=self._backoff_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(
                        method, url, params, headers, data, limit_key, decode, dest, max_bytes
                    )
        except _Retryable as error:
            message = f"{error.reason}, gave up after {attempts} attempts"
            if error.reason == "malformed_body":
                raise MalformedResponse(error.status, url, message, error.body[:200]) from None
            raise HttpError(error.status, url, message, error.body) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = type(error).__name__ + (f": {error}" if str(error) else "")
            message = f"{reason}, gave up after {attempts} attempts"
            raise HttpError(0, url, message) from error
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _backoff_sleep(self, seconds: float) -> None:
        """The wait before a retry, cut short by the source's stop event (`SourceStopping`)."""
        if self.stop is None:
            await self._sleep(seconds)
            return
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({sleeping, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            stopped.cancel()
        if self.stop.is_set():
            raise SourceStopping(f"stopping: a retry's {seconds:.1f} s backoff cut short")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retryable):
            if error.retry_after is not None:
                return min(error.retry_after, MAX_SERVER_WAIT)
            if error.secondary:
                first = self.config.retry.secondary_wait
                cap = max(self.config.retry.max_wait, first * 16)
                return float(min(first * 2 ** (state.attempt_number - 1), cap))
        return float(self._backoff(state))

    def _before_sleep(
        self, method: str, url: str, limit_key: str | None
    ) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            self.stats["retries"] += 1
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, _Retryable):
                reason, status = error.reason, error.status
            else:
                reason, status = type(error).__name__, 0
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            if isinstance(error, _Retryable) and (error.retry_after is not None or error.secondary):
                # Rate-limit refusals hold back every request of this key, not only this one.
                self.limiter.pause(wait, limit_key)
            elif self.shared_backoff:
                self.limiter.pause(wait, limit_key)
            self.log.warning(
                "http_retry",
                method=method,
                url=url,
                status=status,
                reason=reason,
                attempt=state.attempt_number,
                max_attempts=self.config.retry.attempts,
                wait=round(wait, 3),
            )

        return log

    async def _attempt(
        self,
        method: str,
        url: str,
        params: Params,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        limit_key: str | None,
        decode: Decode | None,
        dest: Path | None,
        max_bytes: int | None,
    ) -> HttpResponse:
        send = dict(headers or {})
        etag_key = request_key(url, params)
        if self.etags is not None and method == "GET" and dest is None:
            etag = self.etags.get(etag_key)
            if etag and not any(k.lower() == "if-none-match" for k in send):
                send["If-None-Match"] = etag
        query = {k: str(v) for k, v in params.items()} if params else None
        limit = max_bytes or self.config.max_response_bytes
        # The slot first, then the token: a token is taken right before its request goes out,
        # so requests that waited for a slot do not leave together in a burst.
        async with self.limiter.slot():
            waited = await self.limiter.acquire(limit_key)
            self.rate_wait_seconds += waited
            if waited >= 0.001:  # less is the bucket's lock, not the limit
                self.stats["rate_limited"] += 1
            self.stats["requests"] += 1
            extra: dict[str, Any] = {}
            if dest is not None:  # a big file: no total deadline, but no stalled reads either
                extra["timeout"] = aiohttp.ClientTimeout(
                    total=None, sock_connect=self.config.timeout, sock_read=self.config.timeout
                )
            async with self._get_session().request(
                method, url, params=query, headers=send, data=data, **extra
            ) as raw:
                found = _headers(raw)
                final_url = str(raw.url)
                self._observe(found, limit_key)
                if raw.status == 304:
                    self.stats["not_modified"] += 1
                    return HttpResponse(304, final_url, found, b"")
                if raw.status >= 400:
                    body = await _read(raw, min(limit, ERROR_BODY_LIMIT), final_url, cut=True)
                    self._refuse(HttpResponse(raw.status, final_url, found, body), limit_key)
                if dest is not None:
                    await _stream_to(raw, dest, limit, final_url)
                    return HttpResponse(raw.status, final_url, found, b"")
                body = await _read(raw, limit, final_url)
        response = HttpResponse(raw.status, final_url, found, body)
        if decode is not None:
            try:
                decode(body)
            except ValueError:  # msgspec.DecodeError and UnicodeDecodeError are ValueErrors
                raise _Retryable(raw.status, "malformed_body", body[:200]) from None
        etag = found.get("etag")
        if self.etags is not None and etag and method == "GET" and dest is None:
            self.etags.put(etag_key, etag)
        return response

    # --- what the server says ----------------------------------------------------------------

    def _observe(self, headers: Mapping[str, str], limit_key: str | None) -> None:
        """Primary rate limits: `x-ratelimit-remaining: 0` or an IETF `RateLimit` policy with
        `r=0` holds requests until the reset."""
        remaining = headers.get("x-ratelimit-remaining", "").strip()
        if remaining.isdigit():
            self.rate_remaining = int(remaining)
        wait = None
        if headers.get("x-ratelimit-remaining", "").strip() == "0":
            wait = _reset_wait(headers)
        elif (reset := ratelimit_reset(headers.get("ratelimit"))) is not None:
            wait = min(MAX_SERVER_WAIT, reset + RESET_MARGIN)  # IETF `"api";r=0;t=55`
        if wait is not None:
            self.limiter.pause(wait, limit_key)
            self.log.info("rate_limit_exhausted", key=limit_key, wait=round(wait, 3))
        if self.hints is not None:
            self.hints.observe(headers)

    def _refuse(self, response: HttpResponse, limit_key: str | None) -> None:
        """Raise the right error for a 4xx/5xx: `_Retryable` if it is worth another try.

        A wait longer than `MAX_SERVER_WAIT` (a Stack Exchange IP ban: "more requests available
        in 67194 seconds") is not retried: the whole API pauses for all of it, and
        `QuotaExhausted` ends the pass (the limiter raises it again until the wait is over).
        """
        try:
            self._classify(response)
        except _Retryable as error:
            if error.retry_after is None or error.retry_after <= MAX_SERVER_WAIT:
                raise
            until = time.time() + error.retry_after
            reason = f"HTTP {error.status} {error.reason}: wait {round(error.retry_after)} s"
            self.limiter.server_pause(until, reason)
            raise QuotaExhausted(reason, until) from None

    def _classify(self, response: HttpResponse) -> None:
        status, headers = response.status, response.headers
        refusal = self.hints.refusal(response) if self.hints is not None else None
        if refusal is not None:
            if refusal.retry:
                raise _Retryable(status, refusal.reason, response.body, retry_after=refusal.wait)
            raise HttpError(status, response.url, refusal.reason, response.body)
        retry_after = server_wait(headers)
        exhausted = headers.get("x-ratelimit-remaining", "").strip() == "0"
        if status in (403, 429):
            if retry_after is not None:
                raise _Retryable(status, "rate_limited", response.body, retry_after=retry_after)
            if exhausted and (wait := _reset_wait(headers)) is not None:
                raise _Retryable(status, "rate_limit_exhausted", response.body, retry_after=wait)
            if status == 429 or is_secondary_limit(response.body):
                raise _Retryable(status, "secondary_rate_limit", response.body, secondary=True)
        if status in RETRY_STATUSES:
            raise _Retryable(status, f"http_{status}", response.body, retry_after=retry_after)
        message = _error_message(response.body) or f"HTTP {status}"
        raise HttpError(status, response.url, message, response.body)


# How GitHub words a secondary limit when it sends no Retry-After, as PyGithub recognises it
# (`Requester.isSecondaryRateLimitError`): "You have exceeded a secondary rate limit...", the
# older "You have triggered an abuse detection mechanism...", and any message that asks to
# "wait a few minutes" or to "retry your request again later".
_SECONDARY_PHRASES = (
    "rate limit",
    "abuse detection",
    "secondary quota",
    "please wait a few minutes before you try again",
    "please retry your request again later",
)


def is_secondary_limit(body: bytes) -> bool:
    """Whether a 403 without a wait is a rate limit (retried after `retry.secondary_wait`,
    doubling) rather than a refusal for good."""
    text = (_error_message(body) or body[:2000].decode("utf-8", "replace")).lower()
    return any(phrase in text for phrase in _SECONDARY_PHRASES)


def _headers(raw: aiohttp.ClientResponse) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in raw.headers.items():
        key = name.lower()
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def _reset_wait(headers: Mapping[str, str]) -> float | None:
    try:
        reset = float(headers["x-ratelimit-reset"])
    except (KeyError, ValueError):
        return None
    return min(MAX_SERVER_WAIT, max(0.0, reset - time.time()) + RESET_MARGIN)


def _error_message(body: bytes) -> str:
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        if isinstance(data.get("error_name"), str):  # Stack Exchange's error wrapper
            return f"{data['error_name']}: {data.get('error_message', '')}"
        for key in ("message", "error_message", "error"):
            value = data.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return ""


async def _read(raw: aiohttp.ClientResponse, limit: int, url: str, cut: bool = False) -> bytes:
    """The body, decompressed, refusing (or with `cut`, truncating) past `limit` bytes."""
    if not cut and raw.content_length is not None and raw.content_length > limit:
        raise ResponseTooLarge(
            raw.status, url, f"Content-Length {raw.content_length} is over the {limit}-byte cap"
        )
    body = bytearray()
    async for chunk in raw.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            if cut:
                return bytes(body[:limit])
            raise ResponseTooLarge(raw.status, url, f"the body is over the {limit}-byte cap")
    return bytes(body)


async def _stream_to(raw: aiohttp.ClientResponse, dest: Path, limit: int, url: str) -> None:
    if raw.content_length is not None and raw.content_length > limit:
        raise ResponseTooLarge(
            raw.status, url, f"Content-Length {raw.content_length} is over the {limit}-byte cap"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    size = 0
    try:
        async with aiofiles.open(part, "wb") as out:
            async for chunk in raw.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > limit:
                    message = f"the body is over the {limit}-byte cap"
                    raise ResponseTooLarge(raw.status, url, message)
                await out.write(chunk)
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()


__all__ = [
    "USER_AGENT",
    "EtagStore",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpSettings",
    "MalformedResponse",
    "MemoryEtagStore",
    "QuotaExhausted",
    "Refusal",
    "ResponseTooLarge",
    "ServerHints",
    "request_key",
]


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL, lower-cased: what a token may be sent to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def next_link(header: str, origin: str) -> str:
    """The `rel="next"` URL of a `Link` header (GitHub, the Hub), or "" when there is none.

    A next page on another origin than `origin` is refused (""): following it would send the
    source's token to a host nobody configured.
    """
    match = _NEXT_LINK.search(header)
    if match is None or origin_of(match.group(1)) != origin:
        return ""
    return match.group(1)
