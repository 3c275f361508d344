"""sd_notify: the daemon tells systemd when it is ready, reloading, stopping, and alive."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import Config
from collector.health import PipelineSnapshot, StallDetector
from collector.service import build_components
from collector.systemd import SystemdNotifier, notify_address, watchdog_interval
from tests.conftest import wait_for, write_config
from tests.daemon_process import Daemon, NotifySocket, inbox_source, notify_env, write_pairs
from tests.stall import stalling_daemon


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def last_status(sock: NotifySocket) -> str:
    statuses = [m["STATUS"] for m in sock.all() if "STATUS" in m]
    return statuses[-1] if statuses else ""


def test_notifications_follow_start_reload_and_stop(
    tmp_path: Path, data_dir: Path, notify_socket: NotifySocket, daemons: list[Daemon]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_pairs(first / "a.jsonl", 0, 20)
    config = write_config(tmp_path / "collector.toml", inbox_source("first", first), data_dir)
    daemon = Daemon(config, tmp_path / "log", notify_env(notify_socket, watchdog_usec=300_000))
    daemons.append(daemon)

    notify_socket.wait_lifecycle(["READY"])
    ready = next(m for m in notify_socket.all() if m.get("READY") == "1")
    assert ready["STATUS"].startswith("running; 1 sources (first)")
    wait_for(lambda: "written 20" in last_status(notify_socket))
    wait_for(lambda: notify_socket.pings_since(0) >= 3)

    # SIGHUP with a valid config: RELOADING=1 (with the monotonic time), then READY=1.
    config.write_text(config.read_text() + inbox_source("second", second))
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_lifecycle(["READY", "RELOADING", "READY"])
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading = next(m for m in notify_socket.all() if m.get("RELOADING") == "1")
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    reloaded = [m for m in notify_socket.all() if m.get("READY") == "1"][-1]
    assert reloaded["STATUS"].startswith("running; 2 sources (first, second)")

    # SIGHUP with a broken config: the reload is over (READY=1) and says it failed.
    good = config.read_text()
    config.write_text(good + '\n[[sources]]\ntype = "carrier-pigeon"\nname = "x"\n')
    daemon.signal(signal.SIGHUP)
    notify_socket.wait_lifecycle(["READY", "RELOADING", "READY", "RELOADING", "READY"])
    refused = [m for m in notify_socket.all() if m.get("READY") == "1"][-1]
    assert "reload failed (1 config errors)" in refused["STATUS"]
    assert "2 sources (first, second)" in refused["STATUS"]
    daemon.wait_event("config_reload_failed")
    still_alive = time.monotonic()
    wait_for(lambda: notify_socket.pings_since(still_alive) >= 2)

    # SIGTERM: STOPPING=1 when the drain starts, a clean exit after it.
    assert daemon.stop() == 0
    assert notify_socket.lifecycle() == [
        "READY",
        "RELOADING",
        "READY",
        "RELOADING",
        "READY",
        "STOPPING",
    ]
    assert last_status(notify_socket).startswith("stopped; 2 sources")


def test_watchdog_pings_stop_while_the_writer_is_stalled_and_resume_after(
    tmp_path: Path, data_dir: Path, notify_socket: NotifySocket, daemons: list[Daemon]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stall = tmp_path / "stall"
    config = write_config(
        tmp_path / "collector.toml", inbox_source("inbox", inbox), data_dir, "stall_timeout = 0.6"
    )
    env = notify_env(notify_socket, watchdog_usec=200_000)
    daemon = stalling_daemon(config, tmp_path / "log", stall, env)
    daemons.append(daemon)
    notify_socket.wait_lifecycle(["READY"])

    # Idle for longer than stall_timeout: nothing waits, so the watchdog is still fed.
    idle = time.monotonic()
    time.sleep(1.5)
    assert notify_socket.pings_since(idle) >= 5  # one every 0.1 s; a busy machine is slower

    # The writer stalls with work waiting: after stall_timeout the pings stop.
    stall.touch()
    write_pairs(inbox / "a.jsonl", 0, 10)
    withheld = daemon.wait_event("watchdog_withheld")
    assert withheld["waiting"] >= 1
    assert "stuck: " in last_status(notify_socket)
    quiet = time.monotonic()
    time.sleep(0.8)
    assert notify_socket.pings_since(quiet) == 0
    assert daemon.process.poll() is None

    # The writer moves again: so does the watchdog.
    stall.unlink()
    resumed = time.monotonic()
    wait_for(lambda: notify_socket.pings_since(resumed) >= 3)
    daemon.wait_event("watchdog_resumed")
    assert daemon.stop() == 0
    written = (data_dir / "formatted" / "local__a.jsonl").read_text().splitlines()
    assert len(written) == 10


def test_a_path_socket_without_watchdog_gets_lifecycle_messages_but_no_pings(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    # sockaddr_un paths are short (108 bytes): pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="rc-", dir="/tmp") as short:
        sock = NotifySocket(Path(short) / "notify")
        try:
            inbox = tmp_path / "inbox"
            inbox.mkdir()
            config = write_config(
                tmp_path / "collector.toml", inbox_source("inbox", inbox), data_dir
            )
            daemon = Daemon(config, tmp_path / "log", notify_env(sock))
            daemons.append(daemon)
            sock.wait_lifecycle(["READY"])
            time.sleep(0.5)
            assert daemon.stop() == 0
            assert sock.lifecycle() == ["READY", "STOPPING"]
            assert sock.pings_since(0) == 0
        finally:
            sock.close()


# --- units ---------------------------------------------------------------------------------


def test_notify_socket_addresses() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@name") == "\0name"
    assert notify_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 42) is None


def test_the_notifier_runs_only_when_notify_socket_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not any(isinstance(c, SystemdNotifier) for c in build_components(Config(), "run"))
    monkeypatch.setenv("NOTIFY_SOCKET", "@somewhere")
    assert any(isinstance(c, SystemdNotifier) for c in build_components(Config(), "run"))


def snap(waiting: int, last_move: float) -> PipelineSnapshot:
    return PipelineSnapshot(waiting=waiting, work_queue=0, ordered_queue=0, last_move=last_move)


def test_an_idle_pipeline_is_never_stuck() -> None:
    detector = StallDetector(timeout=10)
    assert not detector.check(snap(0, last_move=0), now=1000).stuck


def test_waiting_work_with_nothing_moving_is_stuck_after_the_timeout() -> None:
    detector = StallDetector(timeout=10)
    # Work arrives after an hour of idling: measured from when it was first seen waiting.
    assert not detector.check(snap(2, last_move=0), now=3600).stuck
    assert not detector.check(snap(2, last_move=0), now=3609).stuck
    health = detector.check(snap(2, last_move=0), now=3611)
    assert health.stuck and health.waiting == 2 and health.stalled_for == 11


def test_waiting_work_that_moves_is_not_stuck() -> None:
    detector = StallDetector(timeout=10)
    for now in range(0, 100, 5):
        assert not detector.check(snap(3, last_move=now - 1), now=now).stuck


def test_a_stuck_pipeline_recovers_when_it_moves() -> None:
    detector = StallDetector(timeout=10)
    detector.check(snap(1, last_move=0), now=0)
    assert detector.check(snap(1, last_move=0), now=20).stuck
    assert not detector.check(snap(1, last_move=21), now=22).stuck
    assert not detector.check(snap(0, last_move=23), now=40).stuck
