"""The command line as an operator and a cron job meet it: exit codes that say what happened,
check-config, --version, --log-level and one source at a time."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from tests.conftest import run_collector, write_config
from tests.daemon_process import inbox_source, write_pairs


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_source(name: str) -> str:
    return f"""
[[sources]]
type = "stackexchange"
name = "{name}"
base_url = "http://127.0.0.1:{closed_port()}"
retry = {{ attempts = 1, initial_wait = 0 }}
recipe = {{ name = "qa" }}
"""


def finished(stdout: str) -> dict[str, Any]:
    events = [e for e in log_events_of(stdout) if e.get("event") == "once_finished"]
    assert len(events) == 1, stdout[-3000:]
    return events[0]


def log_events_of(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def an_inbox(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "a.jsonl", 0, 5)
    return inbox


def test_once_exits_0_when_every_source_went_well(tmp_path: Path, data_dir: Path) -> None:
    config = write_config(tmp_path / "c.toml", inbox_source("box", an_inbox(tmp_path)), data_dir)
    done = run_collector("once", "--config", str(config))
    assert done.returncode == 0, done.stdout[-3000:]
    summary = finished(done.stdout)
    assert summary["outcome"] == "ok" and summary["ok"] == ["box"] and summary["fetched"] == 5


def test_once_exits_4_when_some_sources_failed_and_names_them(
    tmp_path: Path, data_dir: Path
) -> None:
    body = inbox_source("box", an_inbox(tmp_path)) + unreachable_source("se-down")
    config = write_config(tmp_path / "c.toml", body, data_dir)
    done = run_collector("once", "--config", str(config))
    assert done.returncode == 4, done.stdout[-3000:]
    summary = finished(done.stdout)
    assert summary["outcome"] == "some_sources_failed"
    assert summary["failed"] == ["se-down"] and summary["ok"] == ["box"]
    assert (data_dir / "formatted" / "local__a.jsonl").read_text().count("\n") == 5


def test_once_exits_5_when_nothing_could_be_fetched_also_on_the_next_run(
    tmp_path: Path, data_dir: Path
) -> None:
    body = unreachable_source("se-down") + unreachable_source("se-also-down")
    config = write_config(tmp_path / "c.toml", body, data_dir)
    for _ in range(2):  # a failure already counted stays a failure for the cron job
        done = run_collector("once", "--config", str(config))
        assert done.returncode == 5, done.stdout[-3000:]
        summary = finished(done.stdout)
        assert summary["outcome"] == "nothing_fetched"
        assert sorted(summary["failed"]) == ["se-also-down", "se-down"]
