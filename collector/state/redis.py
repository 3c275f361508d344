"""The state store shared by several instances: one Redis (`state.backend = "redis"`).

Layout, every key under `state.prefix`:

- `{prefix}:kv:{namespace}`: a hash per namespace, field = key, value = value;
- `{prefix}:local:{instance}:kv:{namespace}`: the same for the namespaces in
  `LOCAL_NAMESPACES` (this instance's committed file lengths), which only make sense next to the
  disk they describe;
- `{prefix}:counts`: one hash of additive counters, field = `source US dataset US what`.

`commit` sends every write in one MULTI/EXEC transaction: other clients see all of it or none
of it. The commands are built before anything is sent, so a failure while building (a bad value,
an error in the caller's mapping) leaves the store untouched. The client is redis-py's
synchronous one: the protocol is synchronous and the service calls it from threads, which the
client's connection pool allows.

A Redis restart, a failover or a network blip must not stop the writer: every call retries the
errors such an event raises (`TRANSIENT_ERRORS`: connection refused or reset, timeouts,
`LOADING` while the server reads its AOF, `READONLY` from a demoted primary), first inside
redis-py (`client_retry`: a few quick attempts with exponential backoff and jitter), then here,
with the same backoff, for as long as the leases this instance holds are known to be valid
(`valid_until`, set by `collector/scaleout/redis_placement.py`; `retry_window` seconds without
leases). A fenced commit still failing after that cannot be proven to be ours any more: it is
refused as a lost lease (`on_lease_lost`), as when the fence itself says so.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.client
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from collector.state.base import LOCAL_NAMESPACES, Counts, is_set_namespace

if TYPE_CHECKING:
    from collector.config import StateConfig
    from collector.logging import Logger

T = TypeVar("T")

# What a Redis restart, a failover or a network blip raises, and a later attempt may outlive.
# `BusyLoadingError` (`LOADING`, the server is reading its AOF) is a `ConnectionError`.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    redis.exceptions.TryAgainError,
    TimeoutError,
    ConnectionError,
)
# The backoff between attempts: exponential from 20 ms, at most 0.5 s, with full jitter (many
# instances coming back at once do not all knock at the same moment).
BACKOFF_BASE = 0.02
BACKOFF_CAP = 0.5


def client_retry() -> Retry:
    """redis-py's own retry for every command of a client: three quick attempts."""
    return Retry(
        ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), 3, TRANSIENT_ERRORS
    )


def async_client_retry() -> redis.asyncio.retry.Retry:
    """The same retry for the asyncio client (leases, shared rate limits)."""
    return redis.asyncio.retry.Retry(
        ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), 3, TRANSIENT_ERRORS
    )


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt` (1-based): full jitter under an exponential."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


_SEP = "\x1f"

# KEYS: lease keys. ARGV: their count, the owner each must hold, then the writes: "H", hash,
# n, then n field/value pairs; or "I", hash, field, increment. Nothing is written unless every
# lease is held; returns the (1-based) indexes of the leases that are not.
_FENCED_COMMIT = """
local n = tonumber(ARGV[1])
local failed = {}
for i = 1, n do
    if redis.call('GET', KEYS[i]) ~= ARGV[1 + i] then failed[#failed + 1] = i end
end
if #failed > 0 then return failed end
local a = 2 + n
while a <= #ARGV do
    if ARGV[a] == 'H' then
        local name, count = ARGV[a + 1], tonumber(ARGV[a + 2])
        a = a + 3
        for j = 1, count do
            redis.call('HSET', name, ARGV[a], ARGV[a + 1])
            a = a + 2
        end
    else
        redis.call('HINCRBY', ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
        a = a + 4
    end
end
return {}
"""
# HMGET / HSET / HDEL in slices: bounded requests, however many keys a batch brings.
_SLICE = 10_000


def redis_password(config: StateConfig) -> str | None:
    """The password from the environment variable `state.password_env` names, if any."""
    if not config.password_env:
        return None
    password = os.environ.get(config.password_env)
    if password is None:
        from collector.config import ConfigError

        raise ConfigError(
            "state.password_env", [f"the environment variable {config.password_env} is not set"]
        )
    return password


def connect(config: StateConfig) -> redis.Redis:
    """A synchronous client for `state.url`, answering `str`; checked with a PING."""
    client = redis.Redis.from_url(
        config.url,
        password=redis_password(config),
        decode_responses=True,
        retry=client_retry(),
        retry_on_error=list(TRANSIENT_ERRORS),
        # A call never hangs on a silent server (a partition): it fails and is retried.
        socket_timeout=min(ASYNC_TIMEOUT, config.lease_ttl / 3),
        socket_connect_timeout=min(ASYNC_TIMEOUT, config.lease_ttl / 3),
    )
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        from collector.config import ConfigError

        # The one `state.url` error: the service logs it as `redis_unavailable` (exit 69).
        raise ConfigError(
            "state.url", [f"cannot reach Redis at {_safe(config.url)}: {error}"]
        ) from error
    return client


def connect_async(config: StateConfig) -> redis.asyncio.Redis:
    """An asyncio client for `state.url` (leases, shared rate limits), answering `str`.

    No socket timeouts: redis-py implements them with `async_timeout`, which on Python 3.11
    swallows a task's cancellation that arrives while a command waits (a stopped task would run
    on). Callers bound each call with `asyncio.timeout` instead (`ASYNC_TIMEOUT`).
    """
    return redis.asyncio.Redis.from_url(
        config.url,
        password=redis_password(config),
        decode_responses=True,
        socket_timeout=None,
        socket_connect_timeout=None,
        retry=async_client_retry(),
        retry_on_error=list(TRANSIENT_ERRORS),
    )


# Seconds any one call of the asyncio client may take (see `connect_async`).
ASYNC_TIMEOUT = 5.0


def _safe(url: str) -> str:
    """The URL without a password that may sit in it."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "\\*?[]" else c for c in text)


class LeaseLost(Exception):
    """A commit carried cursors of sources whose lease this instance no longer holds."""

    def __init__(self, sources: list[str]) -> None:
        super().__init__(f"lease lost for {', '.join(sources)}: the commit was refused")
        self.sources = sources


@dataclass(frozen=True)
class Fence:
    """Puts under `namespace` whose key starts with `key_prefix` need `lease_keys` to hold
    `owner`, checked atomically with the commit (a source's cursors need its lease)."""

    namespace: str
    key_prefix: str
    lease_keys: tuple[str, ...]
    owner: str


class RedisStateStore:
    # Seconds a call retries transient errors when no lease says until when.
    retry_window = 30.0

    def __init__(self, client: redis.Redis, *, prefix: str, instance: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.instance = instance
        self._fences: dict[str, Fence] = {}
        self._fenced_script = client.register_script(_FENCED_COMMIT)
        # Called (from the committing thread) with the sources whose lease was lost before
        # `LeaseLost` is raised: the service stops there (collector/scaleout/redis_placement.py).
        self.on_lease_lost: Callable[[list[str]], None] | None = None
        # Until when (`time.monotonic()`) the leases held are known to be valid: calls retry
        # transient errors until then. Set by collector/scaleout/redis_placement.py, with its
        # logger.
        self.valid_until: Callable[[], float] | None = None
        self.log: Logger | None = None
        self.retries = 0  # attempts that failed with a transient error and were retried

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, again after a transient error for as long as the leases are valid."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                result = call()
            except TRANSIENT_ERRORS as error:
                now = time.monotonic()
                valid = self.valid_until
                deadline = valid() if valid is not None else started + self.retry_window
                if now >= deadline:
                    if self.log is not None and attempt:
                        self.log.error(
                            "redis_retry_gave_up",
                            call=what,
                            attempts=attempt + 1,
                            seconds=round(now - started, 3),
                            error=f"{type(error).__name__}: {error}",
                        )
                    raise
                attempt += 1
                self.retries += 1
                if attempt == 1 and self.log is not None:
                    self.log.warning(
                        "redis_retrying",
                        call=what,
                        error=f"{type(error).__name__}: {error}",
                        for_seconds=round(deadline - now, 3),
                    )
                time.sleep(min(backoff(attempt), max(0.0, deadline - now)))
                continue
            if attempt and self.log is not None:
                self.log.info(
                    "redis_recovered",
                    call=what,
                    attempts=attempt + 1,
                    seconds=round(time.monotonic() - started, 3),
                )
            return result

    def fence(self, name: str, fence: Fence) -> None:
        """From now on, commits touching `fence`'s keys require its lease."""
        self._fences[name] = fence

    def unfence(self, name: str) -> None:
        self._fences.pop(name, None)

    @classmethod
    def from_config(cls, config: StateConfig, instance: str = "") -> RedisStateStore:
        return cls(connect(config), prefix=config.prefix, instance=instance)

    def server_risks(self) -> list[tuple[str, dict[str, str]]]:
        """Server settings that can lose committed state, as (log event, fields) to warn of.

        An evicting `maxmemory-policy` drops cursors and dedupe keys under memory pressure
        (records come again, and are written again); no AOF and no snapshots lose everything
        on a restart of the server. Servers that refuse CONFIG (many managed ones) are not
        asked.
        """
        try:
            settings: Any = self.client.config_get("maxmemory-policy")
            settings.update(self.client.config_get("appendonly"))
            settings.update(self.client.config_get("save"))
        except redis.ResponseError:
            return []
        risks: list[tuple[str, dict[str, str]]] = []
        policy = str(settings.get("maxmemory-policy", "noeviction"))
        if policy != "noeviction":
            hint = "set maxmemory-policy noeviction (docs/scale-out.md)"
            risks.append(("redis_may_evict", {"maxmemory_policy": policy, "hint": hint}))
        if settings.get("appendonly") != "yes" and not settings.get("save"):
            hint = "turn on appendonly (or snapshots): a restart of Redis loses all state"
            risks.append(("redis_not_persistent", {"hint": hint}))
        return risks

    def _hash(self, namespace: str) -> str:
        if namespace in LOCAL_NAMESPACES:
            return f"{self.prefix}:local:{self.instance}:kv:{namespace}"
        return f"{self.prefix}:kv:{namespace}"

    @property
    def _counts(self) -> str:
        return f"{self.prefix}:counts"

    def get(self, namespace: str, key: str) -> str | None:
        name = self._hash(namespace)
        value: Any = self._retrying("get", lambda: self.client.hget(name, key))
        if value is None:
            return None
        return "" if is_set_namespace(namespace) else str(value)

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        name = self._hash(namespace)
        found: dict[str, str] = {}

        def read() -> list[list[str | None]]:
            with self.client.pipeline(transaction=False) as pipe:
                for start in range(0, len(wanted), _SLICE):
                    pipe.hmget(name, wanted[start : start + _SLICE])
                replies: list[list[str | None]] = pipe.execute()
            return replies

        replies = self._retrying("get_many", read)
        for start, values in zip(range(0, len(wanted), _SLICE), replies, strict=True):
            part = wanted[start : start + _SLICE]
            found.update((k, v) for k, v in zip(part, values, strict=True) if v is not None)
        if is_set_namespace(namespace):
            return dict.fromkeys(found, "")
        return found

    def scan(self, namespace: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        if is_set_namespace(namespace):  # as in SQLite, where a set keeps fingerprints only
            raise ValueError(f"{namespace} is a set: it cannot be scanned")
        # HSCAN walks the hash in no particular order: collect the matches, then sort them
        # (Python orders str by code point, which is SQLite's byte order of UTF-8 text).

        def read() -> dict[str, str]:
            items: Iterator[tuple[str, str]] = self.client.hscan_iter(
                self._hash(namespace), match=f"{_glob_escape(prefix)}*", count=1000
            )
            return {str(k): str(v) for k, v in items if str(k).startswith(prefix)}

        found = self._retrying("scan", read)
        return iter(sorted(found.items()))

    def commit(self, puts: Mapping[str, Mapping[str, str]], counts: Counts | None = None) -> None:
        fences = [
            (name, fence)
            for name, fence in list(self._fences.items())
            if any(key.startswith(fence.key_prefix) for key in puts.get(fence.namespace, {}))
        ]
        if fences:
            self._commit_fenced(puts, counts, fences)
            return

        def send() -> None:
            pipe = self.client.pipeline(transaction=True)
            try:
                self._queue(pipe, puts, counts)
                if len(pipe):
                    pipe.execute()
            finally:
                pipe.reset()

        self._retrying("commit", send)

    def _queue(
        self,
        pipe: redis.client.Pipeline,
        puts: Mapping[str, Mapping[str, str]],
        counts: Counts | None,
    ) -> None:
        for namespace, items in puts.items():
            pairs = list(items.items())
            for start in range(0, len(pairs), _SLICE):
                mapping = dict(pairs[start : start + _SLICE])
                _check_strings(namespace, mapping)
                pipe.hset(self._hash(namespace), mapping=mapping)  # type: ignore[arg-type]
        for (source, dataset, what), n in (counts or {}).items():
            if n:
                pipe.hincrby(self._counts, _SEP.join((source, dataset, what)), int(n))

    def _commit_fenced(
        self,
        puts: Mapping[str, Mapping[str, str]],
        counts: Counts | None,
        fences: list[tuple[str, Fence]],
    ) -> None:
        """One Lua script checks that every lease the commit depends on is still ours and only
        then applies the puts and counts: atomic, and unaffected by concurrent renewals."""
        leases = sorted({(key, fence.owner) for _, fence in fences for key in fence.lease_keys})
        args: list[str | int] = [len(leases), *(owner for _, owner in leases)]
        for namespace, items in puts.items():
            mapping = dict(items.items())
            _check_strings(namespace, mapping)
            if mapping:
                args += ["H", self._hash(namespace), len(mapping)]
                for key, value in mapping.items():
                    args += [key, value]
        for (source, dataset, what), n in (counts or {}).items():
            if n:
                args += ["I", self._counts, _SEP.join((source, dataset, what)), int(n)]
        keys = [key for key, _ in leases]
        try:
            failed: list[int] = self._retrying(
                "commit", lambda: self._fenced_script(keys=keys, args=args)
            )
        except TRANSIENT_ERRORS:
            # Redis stayed away longer than the leases are known to last: another instance
            # may hold them now, so this output cannot be committed as ours.
            failed = list(range(1, len(leases) + 1))
        if not failed:
            return
        gone = {leases[int(i) - 1][0] for i in failed}
        lost = [name for name, fence in fences if gone & set(fence.lease_keys)]
        if self.on_lease_lost is not None:
            self.on_lease_lost(lost)
        raise LeaseLost(lost)

    def delete(self, namespace: str, keys: Iterable[str]) -> None:
        if is_set_namespace(namespace):
            raise ValueError(f"{namespace} is a set: keys are never taken out of it")
        doomed = list(keys)
        name = self._hash(namespace)
        for start in range(0, len(doomed), _SLICE):
            part = doomed[start : start + _SLICE]
            self._retrying("delete", lambda part=part: self.client.hdel(name, *part))  # type: ignore[misc]

    def counts(self) -> list[tuple[str, str, str, int]]:
        rows: dict[str, str] = self._retrying("counts", lambda: self.client.hgetall(self._counts))  # type: ignore[arg-type,return-value]
        out = []
        for field, n in rows.items():
            source, dataset, what = field.split(_SEP, 2)
            out.append((source, dataset, what, int(n)))
        return sorted(out)

    def close(self) -> None:
        self.client.close()


def _check_strings(namespace: str, mapping: Mapping[str, object]) -> None:
    """Only strings are stored (as SQLite's TEXT columns); anything else fails the commit."""
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"state values are strings: {namespace}/{key!r} = {type(value).__name__}"
            )
