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
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from collector.state.base import LOCAL_NAMESPACES, Counts

if TYPE_CHECKING:
    from collector.config import StateConfig

_SEP = "\x1f"
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
            "state",
            [f"state.password_env: the environment variable {config.password_env} is not set"],
        )
    return password


def connect(config: StateConfig) -> redis.Redis:
    """A synchronous client for `state.url`, answering `str`; checked with a PING."""
    client = redis.Redis.from_url(
        config.url, password=redis_password(config), decode_responses=True
    )
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        from collector.config import ConfigError

        raise ConfigError(
            "state", [f"state.url: cannot reach Redis at {_safe(config.url)}: {error}"]
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


class RedisStateStore:
    def __init__(self, client: redis.Redis, *, prefix: str, instance: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.instance = instance

    @classmethod
    def from_config(cls, config: StateConfig, instance: str = "") -> RedisStateStore:
        return cls(connect(config), prefix=config.prefix, instance=instance)

    def _hash(self, namespace: str) -> str:
        if namespace in LOCAL_NAMESPACES:
            return f"{self.prefix}:local:{self.instance}:kv:{namespace}"
        return f"{self.prefix}:kv:{namespace}"

    @property
    def _counts(self) -> str:
        return f"{self.prefix}:counts"

    def get(self, namespace: str, key: str) -> str | None:
        value: Any = self.client.hget(self._hash(namespace), key)
        return None if value is None else str(value)

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(keys))
        name = self._hash(namespace)
        found: dict[str, str] = {}
        with self.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(wanted), _SLICE):
                pipe.hmget(name, wanted[start : start + _SLICE])
            replies: list[list[str | None]] = pipe.execute()
        for start, values in zip(range(0, len(wanted), _SLICE), replies, strict=True):
            part = wanted[start : start + _SLICE]
            found.update((k, v) for k, v in zip(part, values, strict=True) if v is not None)
        return found

    def scan(self, namespace: str, prefix: str = "") -> Iterator[tuple[str, str]]:
        # HSCAN walks the hash in no particular order: collect the matches, then sort them
        # (Python orders str by code point, which is SQLite's byte order of UTF-8 text).
        items: Iterator[tuple[str, str]] = self.client.hscan_iter(
            self._hash(namespace), match=f"{_glob_escape(prefix)}*", count=1000
        )
        found = {str(k): str(v) for k, v in items if str(k).startswith(prefix)}
        return iter(sorted(found.items()))

    def commit(self, puts: Mapping[str, Mapping[str, str]], counts: Counts | None = None) -> None:
        pipe = self.client.pipeline(transaction=True)
        try:
            for namespace, items in puts.items():
                pairs = list(items.items())
                for start in range(0, len(pairs), _SLICE):
                    mapping = dict(pairs[start : start + _SLICE])
                    _check_strings(namespace, mapping)
                    pipe.hset(self._hash(namespace), mapping=mapping)  # type: ignore[arg-type]
            for (source, dataset, what), n in (counts or {}).items():
                if n:
                    pipe.hincrby(self._counts, _SEP.join((source, dataset, what)), int(n))
            if len(pipe):
                pipe.execute()
        finally:
            pipe.reset()

    def delete(self, namespace: str, keys: Iterable[str]) -> None:
        doomed = list(keys)
        name = self._hash(namespace)
        for start in range(0, len(doomed), _SLICE):
            self.client.hdel(name, *doomed[start : start + _SLICE])

    def counts(self) -> list[tuple[str, str, str, int]]:
        rows: dict[str, str] = self.client.hgetall(self._counts)  # type: ignore[assignment]
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
