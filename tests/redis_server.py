"""A real Redis for the tests: the one CI started, or a private `redis-server` on a unix socket.

`.ci/run` starts one server for the whole run and exports its URL in
`RESUME_COLLECTOR_TEST_REDIS_URL`. Without it, the session starts its own `redis-server`
(no TCP port at all: a unix socket in a temporary folder, so parallel runs never collide).
Each test gets its own key prefix, and its keys are removed afterwards, so tests sharing one
server never see each other's data. With no `redis-server` binary at all the Redis tests skip,
saying how to get one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

URL_ENV = "RESUME_COLLECTOR_TEST_REDIS_URL"
MISSING = (
    "no redis-server binary: install the Debian package (apt-get install redis-server) "
    f"or point {URL_ENV} at a Redis to run the Redis tests"
)


class RedisServer:
    """A throwaway `redis-server` listening only on a unix socket; no persistence unless
    `persistent` (an AOF fsynced at every write, as docs/scale-out.md advises for production),
    which `restart` and `kill` keep across the server's lives."""

    def __init__(
        self, binary: str = "redis-server", password: str | None = None, persistent: bool = False
    ) -> None:
        self.binary = binary
        self.password = password
        self.persistent = persistent
        self.dir = Path(tempfile.mkdtemp(prefix="rc-redis-"))
        self.socket = self.dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self._spawn()

    def _spawn(self) -> None:
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.dir),
                "--save", "",
                *durability,
                "--loglevel", "warning",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {error.strip()}")
            if self.socket.exists() and _pings(self.url, self.password):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer within 10 s")

    def restart(self, *, kill: bool = False, down_for: float = 0.0) -> float:
        """Stop the server (SIGTERM, or SIGKILL with `kill`), wait `down_for`, start it again
        on the same socket and folder; the seconds it did not answer."""
        started = time.monotonic()
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(10)
        if self.process.stderr:
            self.process.stderr.close()
        time.sleep(down_for)
        self._spawn()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(url: str, password: str | None = None) -> bool:
    try:
        with redis.Redis.from_url(url, password=password, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def delete_prefix(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get(URL_ENV)
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(MISSING)
    server = RedisServer(binary)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted when the test ends."""
    prefix = f"rc-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(redis_url, prefix)
