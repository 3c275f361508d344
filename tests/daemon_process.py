"""The daemon as an operator runs it, for the operations tests: a `resume-collector run`
subprocess whose JSON log lines can be read back, and the datagram socket systemd would own.

Run as a program, `python -m tests.daemon_process MOMENT ARGS...` is `resume-collector ARGS...`
killed with SIGKILL when it passes MOMENT (collector/moments.py), as a power cut would there:
the exactly-once tests start it through `crashing_command`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import collector_command, subprocess_env, wait_for


def crashing_command(moment: str, *args: str) -> list[str]:
    """`collector_command(*args)` that dies with SIGKILL at `moment` (collector/moments.py)."""
    return [sys.executable, "-m", "tests.daemon_process", moment, *args]


def inbox_source(name: str, path: Path, interval: float = 0.2, batch_size: int = 50) -> str:
    return f"""
[[sources]]
type = "inbox"
name = "{name}"
path = "{path}"
interval = {interval}
batch_size = {batch_size}

[sources.recipe]
name = "pairs"
"""


# Stack Exchange and GitHub as `--sandbox` emulates them (no token: the sandbox fills one in).
SANDBOX_SOURCES = """
[[sources]]
type = "stackexchange"
name = "se-workplace"
tags = ["resume", "cv"]
rate = { per_second = 50, burst = 5 }
recipe = { name = "qa" }

[[sources]]
type = "github"
name = "github-json-resume"
token_env = "RC_TEST_UNSET_GITHUB_TOKEN"
queries = ["topic:jsonresume"]
code_queries = ["filename:resume.json"]
rate = { per_second = 50, burst = 5 }
recipe = { name = "resume_json" }
"""


def write_pairs(path: Path, start: int, count: int, *, bad: int = 0) -> list[str]:
    """`count` distinct bullet pairs, then `bad` lines that are not JSON (dropped); returns
    the bullets, so tests can look for them in the output."""
    bullets = []
    with path.open("a") as handle:
        for i in range(start, start + count):
            bullet = f"Maintained service number {i} for the billing team"
            improved = f"Cut the error rate of billing service number {i} by half in a year"
            handle.write(json.dumps({"original": bullet, "improved": improved}) + "\n")
            bullets.append(bullet)
        for _ in range(bad):
            handle.write("{not json\n")
    return bullets


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a daemon's log (other lines, a traceback say, are skipped)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class Daemon:
    """A `resume-collector run` subprocess; stdout (JSON lines) goes to a file read back."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        command: Callable[..., list[str]] = collector_command,
    ) -> None:
        """`command(*args)` gives the command line (another entry point: tests/stall.py)."""
        self.log_path = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen(
            command("run", "--config", str(config), *args),
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env={**subprocess_env(), **(env or {})},
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log_path)

    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events()]

    def find(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == name]

    def wait_event(self, name: str, count: int = 1, timeout: float = 30) -> dict[str, Any]:
        wait_for(lambda: len(self.find(name)) >= count or self.process.poll() is not None, timeout)
        found = self.find(name)
        assert len(found) >= count, f"no {name!r} in the log; the daemon said:\n{self.text()}"
        return found[count - 1]

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.handle.close()


class NotifySocket:
    """The datagram socket systemd listens on: collects every message the daemon sends."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:  # the abstract namespace: "@name" in NOTIFY_SOCKET
            name = f"resume-collector-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def all(self) -> list[dict[str, str]]:
        with self._lock:
            return [fields for _, fields in self.messages]

    def since(self, moment: float) -> list[dict[str, str]]:
        with self._lock:
            return [fields for at, fields in self.messages if at >= moment]

    def lifecycle(self) -> list[str]:
        """The READY/RELOADING/STOPPING messages in order, e.g. ["READY", "RELOADING", ...]."""
        out = []
        for fields in self.all():
            for key in ("READY", "RELOADING", "STOPPING"):
                if fields.get(key) == "1":
                    out.append(key)
        return out

    def wait_lifecycle(self, expected: list[str], timeout: float = 20) -> None:
        try:
            wait_for(lambda: self.lifecycle() == expected, timeout)
        except AssertionError:
            raise AssertionError(f"expected {expected}, got {self.lifecycle()}") from None

    def pings_since(self, moment: float) -> int:
        return sum(1 for fields in self.since(moment) if fields.get("WATCHDOG") == "1")

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self.sock.close()


def notify_env(sock: NotifySocket, watchdog_usec: int | None = None) -> dict[str, str]:
    env = {"NOTIFY_SOCKET": sock.address}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return env


def crash_at(moment: str, args: list[str]) -> int:
    from collector import moments
    from collector.cli import main

    def kill_there(passed: str) -> None:
        if passed == moment:
            os.kill(os.getpid(), signal.SIGKILL)

    moments.WATCHERS.append(kill_there)
    return main(args)


if __name__ == "__main__":
    raise SystemExit(crash_at(sys.argv[1], sys.argv[2:]))
