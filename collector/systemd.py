"""The systemd notification protocol (`sd_notify`), spoken directly over `$NOTIFY_SOCKET`.

systemd (with `Type=notify`) passes the address of a datagram unix socket in `NOTIFY_SOCKET`: a
path, or `@name` for the abstract namespace. The service sends newline-separated `KEY=VALUE`
assignments, one datagram per message; there is no reply. What this component sends:

- `READY=1` once every source runs (the unit leaves "activating");
- `RELOADING=1` with `MONOTONIC_USEC=` on SIGHUP, then `READY=1` when the new config is applied
  or refused (a refused config keeps the old one running: the reload itself is over);
- `STOPPING=1` when the drain starts;
- `WATCHDOG=1` every half `WATCHDOG_USEC`, only while the pipeline moves (see
  `collector.health`). The pings come from a task on the event loop, so a blocked loop stops
  them too; a stuck pipeline withholds them and systemd restarts the service;
- `STATUS=` a one-line summary (state, sources, fetched/written/dropped) with each of the above
  and after checkpoints (at most once a second).

No library: the protocol is a few lines, and `python-systemd` needs libsystemd to build.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from collector.components import Component, Event, Host
from collector.health import Health, PipelineMonitor
from collector.logging import Logger, get_logger

STATUS_EVERY = 1.0  # seconds between STATUS updates after checkpoints
MAX_STATUS_SOURCES = 5  # source names listed in STATUS before "+N more"


def notify_address(value: str) -> str | None:
    """The socket address for `NOTIFY_SOCKET`: a path, or `@name` (abstract namespace)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not supported


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of `WATCHDOG_USEC`), or None when no watchdog is asked for."""
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # meant for another process
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier(Component):
    name = "systemd"

    def __init__(self, address: str, interval: float | None, log: Logger | None = None) -> None:
        self.address = address
        self.interval = interval
        self.log = log or get_logger(component=self.name)
        self.host: Host | None = None
        self.monitor: PipelineMonitor | None = None
        self.state = "starting"
        self.pings = 0
        self._socket: socket.socket | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._withheld = False
        self._last_status = 0.0
        self._send_failed = False
        self._status_timer: asyncio.TimerHandle | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier | None:
        environ = os.environ if environ is None else environ
        value = environ.get("NOTIFY_SOCKET", "")
        if not value:
            return None
        log = get_logger(component=cls.name)
        address = notify_address(value)
        if address is None:
            log.warning("notify_socket_unsupported", notify_socket=value)
            return None
        return cls(address, watchdog_interval(environ, os.getpid()), log)

    # --- Component ---------------------------------------------------------------------------

    async def prepare(self, host: Host) -> None:
        self.host = host
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.setblocking(False)

    async def start(self, host: Host) -> None:
        stall_timeout = host.config.service.stall_timeout
        self.monitor = PipelineMonitor(host.snapshot, stall_timeout)
        if self.interval is not None:
            self._watchdog = asyncio.create_task(self._feed_watchdog(), name="systemd-watchdog")
        self.log.info(
            "systemd_notify_enabled",
            watchdog_interval=self.interval,
            stall_timeout=stall_timeout,
        )

    def on_event(self, event: Event, fields: Mapping[str, Any]) -> None:
        if event == "ready":
            self.state = "running"
            self.notify(READY="1", STATUS=self.status())
        elif event == "reloading":
            self.state = "reloading"
            self.notify(RELOADING="1", MONOTONIC_USEC=str(monotonic_usec()), STATUS=self.status())
        elif event == "reloaded":
            self.state = "running"
            self.notify(READY="1", STATUS=self.status())
        elif event == "reload_failed":
            self.state = "running"
            errors = len(fields.get("errors", []))
            note = f"reload failed ({errors} config errors), still on the previous config"
            self.notify(READY="1", STATUS=self.status(note))
        elif event == "stopping":
            self.state = "stopping"
            self.notify(STOPPING="1", STATUS=self.status())
        elif event == "checkpoint":
            self._status_soon()

    def _status_soon(self) -> None:
        """A STATUS update now, or (at most one pending) when STATUS_EVERY has passed."""
        if self._status_timer is not None:
            return
        due = self._last_status + STATUS_EVERY - time.monotonic()
        if due <= 0:
            self.notify(STATUS=self.status())
            return

        def send() -> None:
            self._status_timer = None
            if self.state != "stopped":
                self.notify(STATUS=self.status())

        self._status_timer = asyncio.get_running_loop().call_later(due, send)

    async def stop(self) -> None:
        if self._status_timer is not None:
            self._status_timer.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        self.state = "stopped"
        self.notify(STATUS=self.status())
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # --- the protocol ------------------------------------------------------------------------

    def notify(self, **assignments: str) -> bool:
        """Send one message; False if it could not be sent (systemd gone: nothing to do)."""
        if self._socket is None:
            return False
        if "STATUS" in assignments:
            self._last_status = time.monotonic()
        message = "\n".join(f"{key}={value}" for key, value in assignments.items())
        try:
            self._socket.sendto(message.encode(), self.address)
        except OSError as error:
            if not self._send_failed:  # said once: it would repeat at every ping
                self._send_failed = True
                self.log.warning("sd_notify_failed", error=str(error))
            return False
        return True

    def status(self, note: str = "") -> str:
        """One line: state, sources, what was fetched, written and dropped."""
        parts = [self.state]
        if note:
            parts.append(note)
        snapshot = None if self.host is None else self.host.snapshot()
        if snapshot is not None:
            names = [source.name for source in snapshot.sources]
            shown = ", ".join(names[:MAX_STATUS_SOURCES])
            if len(names) > MAX_STATUS_SOURCES:
                shown += f" +{len(names) - MAX_STATUS_SOURCES} more"
            parts.append(f"{len(names)} sources ({shown})" if names else "no sources")
            counts = snapshot.counts()
            dropped = sum(n for key, n in counts.items() if key.startswith("drop:"))
            parts.append(
                f"fetched {counts['fetched']}, written {counts['written']}, "
                f"pairs {counts['pairs']}, dropped {dropped}"
            )
        return "; ".join(parts)

    async def _feed_watchdog(self) -> None:
        assert self.interval is not None and self.monitor is not None
        while True:
            health = self.monitor.check()
            if health.stuck:
                self._withhold(health)
            else:
                if self._withheld:
                    self._withheld = False
                    self.log.info("watchdog_resumed")
                    self.notify(STATUS=self.status())
                if self.notify(WATCHDOG="1"):
                    self.pings += 1
            started = time.monotonic()
            await asyncio.sleep(self.interval)
            late = time.monotonic() - started - self.interval
            if late > self.interval:  # something blocked the event loop
                self.log.warning("event_loop_blocked", seconds=round(late, 3))

    def _withhold(self, health: Health) -> None:
        if self._withheld:
            return
        self._withheld = True
        self.log.error(
            "watchdog_withheld",
            waiting=health.waiting,
            stalled_for=round(health.stalled_for, 3),
        )
        note = (
            f"stuck: {health.waiting} batches waiting, nothing moved for {health.stalled_for:.0f}s"
        )
        self.notify(STATUS=self.status(note))
