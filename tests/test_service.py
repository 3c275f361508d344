"""The daemon as a user runs it: a real `resume-collector run` subprocess over an inbox."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import collector_command, run_python, subprocess_env, wait_for, write_config
from tests.daemon_process import SANDBOX_SOURCES, Daemon, inbox_source, write_pairs


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def training_lines(data_dir: Path, name: str) -> list[dict[str, object]]:
    path = data_dir / "formatted" / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def bullets_written(data_dir: Path, name: str) -> list[str]:
    out = []
    for line in training_lines(data_dir, name):
        user = line["messages"][1]["content"]  # type: ignore[index]
        out.append(str(user).split('"')[1])
    return out


def inbox_daemon(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> tuple[Path, Path, Daemon]:
    """A daemon over one inbox source "box" that has written its first 10 records (a.jsonl)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "a.jsonl", 0, 10)
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    daemons.append(daemon)
    wait_for(lambda: len(training_lines(data_dir, "local__a")) == 10)
    return inbox, config, daemon


def test_inbox_records_appear_exactly_once_and_sigterm_flushes(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = write_pairs(inbox / "first.jsonl", 0, 50)
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    daemons.append(daemon)
    wait_for(lambda: len(bullets_written(data_dir, "local__first")) == 50)
    # A file that grows is read from where the last pass stopped.
    expected += write_pairs(inbox / "first.jsonl", 50, 25)
    wait_for(lambda: len(bullets_written(data_dir, "local__first")) == 75)
    assert daemon.stop() == 0
    assert sorted(bullets_written(data_dir, "local__first")) == sorted(expected)
    names = daemon.names()
    assert names.index("service_draining") < names.index("service_stopped")
    report = json.loads((data_dir / "formatted" / "local__first__clean_report.json").read_text())
    assert report["written"] == 75


def test_sighup_adding_a_source_starts_it_without_restarting_the_others(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    write_pairs(one / "a.jsonl", 0, 10)
    write_pairs(two / "b.jsonl", 100, 10)
    config = write_config(tmp_path / "c.toml", inbox_source("one", one), data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    daemons.append(daemon)
    wait_for(lambda: len(training_lines(data_dir, "local__a")) == 10)
    write_config(config, inbox_source("one", one) + inbox_source("two", two), data_dir)
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    wait_for(lambda: len(training_lines(data_dir, "local__b")) == 10)
    reloaded = next(e for e in daemon.events() if e["event"] == "config_reloaded")
    assert reloaded["added"] == ["two"]
    assert reloaded["unchanged"] == ["one"]
    started = [e["source"] for e in daemon.events() if e["event"] == "source_started"]
    assert started == ["one", "two"]  # "one" was not restarted
    assert daemon.stop() == 0


def test_sighup_removing_and_changing_sources_drains_and_restarts_them(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    write_pairs(one / "a.jsonl", 0, 10)
    write_pairs(two / "b.jsonl", 100, 10)
    config = write_config(
        tmp_path / "c.toml", inbox_source("one", one) + inbox_source("two", two), data_dir
    )
    daemon = Daemon(config, tmp_path / "log.jsonl")
    daemons.append(daemon)
    wait_for(lambda: len(training_lines(data_dir, "local__b")) == 10)
    write_config(config, inbox_source("one", one, interval=0.3), data_dir)
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reloaded")
    reloaded = next(e for e in daemon.events() if e["event"] == "config_reloaded")
    assert reloaded["removed"] == ["two"]
    assert reloaded["changed"] == ["one"]
    # The restarted source continues from its cursor: nothing is written twice.
    write_pairs(one / "a.jsonl", 10, 5)
    wait_for(lambda: len(training_lines(data_dir, "local__a")) == 15)
    assert daemon.stop() == 0
    assert len(training_lines(data_dir, "local__a")) == 15


def test_sighup_with_invalid_config_keeps_running_sources(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    inbox, config, daemon = inbox_daemon(tmp_path, data_dir, daemons)
    good = config.read_text()
    config.write_text(good.replace("\ninterval = 0.2", '\ninterval = "soon"'))
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("config_reload_failed")
    failed = next(e for e in daemon.events() if e["event"] == "config_reload_failed")
    assert failed["errors"] == ["sources[0].interval: expected float, got str"]
    # Still running on the old config: new records keep arriving.
    write_pairs(inbox / "a.jsonl", 10, 10)
    wait_for(lambda: len(training_lines(data_dir, "local__a")) == 20)
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def sandbox_sources(interval: float) -> str:
    return SANDBOX_SOURCES.replace(
        "rate = { per_second = 50", f"interval = {interval}\nrate = {{ per_second = 50"
    )


def test_sighup_under_sandbox_keeps_the_sources_on_the_emulators_and_changes_nothing_unasked(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    upload = '\n[upload]\nenabled = true\nrepo_id = "someone/resumes"\n'
    config = write_config(tmp_path / "c.toml", upload + sandbox_sources(0.5), data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl", args=("--sandbox",))
    daemons.append(daemon)
    daemon.wait_event("service_started")
    daemon.wait_event("source_pass_done")
    # The file as it was: nothing changed, nothing needs a restart.
    daemon.signal(signal.SIGHUP)
    same = daemon.wait_event("config_reloaded")
    assert same["changed"] == [] and same["added"] == [] and same["removed"] == []
    assert sorted(same["unchanged"]) == ["github-json-resume", "se-workplace"]
    assert same["needs_restart"] == [] and same["applied"] == []
    # A changed source restarts, still aimed at its emulator: its passes keep succeeding.
    write_config(config, upload + sandbox_sources(0.3), data_dir)
    daemon.signal(signal.SIGHUP)
    changed = daemon.wait_event("config_reloaded", count=2)
    assert sorted(changed["changed"]) == ["github-json-resume", "se-workplace"]
    assert changed["needs_restart"] == []
    # Counted from the reload itself: the restarted sources' first passes may end before
    # this line runs.
    events = daemon.events()
    reloaded_at = [i for i, e in enumerate(events) if e["event"] == "config_reloaded"][1]
    wait_for(
        lambda: (
            {
                e.get("source")
                for e in daemon.events()[reloaded_at:]
                if e["event"] == "source_pass_done"
            }
            >= {"se-workplace", "github-json-resume"}
        )
    )
    assert daemon.find("source_pass_failed") == []
    assert daemon.stop() == 0


def test_sighup_applies_log_level_metrics_and_processing_and_names_what_needs_a_restart(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    inbox, config, daemon = inbox_daemon(tmp_path, data_dir, daemons)
    body = (
        "\n[metrics]\nenabled = true\nport = 0\n"
        "\n[processing.validate]\nmin_chars = { system = 1, user = 10, assistant = 5 }\n"
        "\n[processing.dedupe]\nthreshold = 0.9\n" + inbox_source("box", inbox)
    )
    write_config(config, body, data_dir, service='log_level = "warning"\nqueue_size = 4')
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_event("config_reloaded")
    assert reloaded["applied"] == ["service.log_level", "processing.validate", "metrics"]
    assert reloaded["needs_restart"] == ["service.queue_size", "processing.dedupe"]
    assert reloaded["changed"] == ["box"]  # restarted with the new chain
    port = daemon.wait_event("metrics_listening")["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"resume_collector" in response.read()
    # The restarted source continues from its cursor.
    write_pairs(inbox / "a.jsonl", 10, 5)
    wait_for(lambda: len(training_lines(data_dir, "local__a")) == 15)
    assert daemon.stop() == 0
    assert len(training_lines(data_dir, "local__a")) == 15
    # The new level applied to loggers bound long before the reload: no info line after it.
    names = daemon.names()
    after = daemon.events()[names.index("config_reloaded") + 1 :]
    assert all(e["level"] != "info" for e in after)  # though passes went on and wrote


def test_kill_9_at_random_moments_then_restart_writes_every_record_exactly_once(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected: list[str] = []
    for n in range(4):
        expected += write_pairs(inbox / f"part{n}.jsonl", n * 10_000, 5_000)
    body = inbox_source("box", inbox)
    config = write_config(tmp_path / "c.toml", body, data_dir)
    config.write_text(config.read_text().replace("flush_interval = 0.2", "flush_interval = 0.05"))
    rng = random.Random(2024)
    for attempt in range(4):
        daemon = Daemon(config, tmp_path / f"log{attempt}.jsonl")
        daemons.append(daemon)
        daemon.wait_event("service_started")
        wait_for(lambda d=daemon: d.names().count("source_started") >= 1)
        # Somewhere in the middle of the work, before it can finish.
        target = rng.uniform(0.1, 0.6)
        with contextlib.suppress(AssertionError):
            wait_for(lambda d=daemon: d.process.poll() is not None, timeout=target)
        daemon.kill()
    final = subprocess.run(
        collector_command("once", "--config", str(config)),
        capture_output=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stdout[-2000:]
    written: list[str] = []
    for n in range(4):
        written += bullets_written(data_dir, f"local__part{n}")
    assert len(written) == len(expected)
    assert sorted(written) == sorted(expected)
    # Provenance stays line-aligned with the training lines.
    for n in range(4):
        provenance = (data_dir / "formatted" / f"local__part{n}__provenance.jsonl").read_text()
        assert len(provenance.splitlines()) == len(training_lines(data_dir, f"local__part{n}"))


def test_a_torn_last_line_is_repaired_on_start(tmp_path: Path, data_dir: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "a.jsonl", 0, 5)
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    once = collector_command("once", "--config", str(config))
    subprocess.run(once, check=True, capture_output=True, env=subprocess_env())
    out = data_dir / "formatted" / "local__a.jsonl"
    clean = out.read_bytes()
    with out.open("ab") as handle:  # a crash in the middle of a write
        handle.write(b'{"messages": [{"role": "sys')
    write_pairs(inbox / "a.jsonl", 5, 1)
    result = subprocess.run(once, check=True, capture_output=True, env=subprocess_env())
    assert b"output_repaired" in result.stdout
    lines = out.read_bytes()
    assert lines.startswith(clean)
    assert len(lines.splitlines()) == 6
    for line in lines.splitlines():
        json.loads(line)


def test_a_torn_line_in_a_file_the_state_does_not_know_is_cut(
    tmp_path: Path, data_dir: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stray = data_dir / "formatted" / "hand__made.jsonl"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b'{"messages": []}\n{"messa')
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    subprocess.run(
        collector_command("once", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    assert stray.read_bytes() == b'{"messages": []}\n'


def test_bad_input_is_counted_with_a_reason_and_the_rest_of_the_file_proceeds(
    tmp_path: Path, data_dir: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = json.dumps(
        {
            "original": "Wrote reports for finance",
            "improved": "Automated the monthly finance reports, freeing analysts for forecasting",
        }
    )
    (inbox / "mixed.jsonl").write_bytes(
        b"\n".join(
            [
                good.encode(),
                b'{"original": "broken',
                b'{"original": "caf\xe9 owner", "improved": "ran a caf\xe9 with 9 staff"}',
                b"[1, 2, 3]",
                json.dumps(
                    {
                        "original": "Led the data team",
                        "improved": "Led the data team through a warehouse rebuild, mentoring "
                        "analysts and setting review standards",
                    }
                ).encode(),
            ]
        )
        + b"\n"
    )
    (inbox / "table.csv").write_text(
        "original,improved\n"
        '"Fixed bugs","Fixed 40 crash bugs, lifting the crash-free rate to 99.9%"\n'
        "only,three,fields\n"
        '"Shipped features","Shipped 8 features used by 30k customers, from spec to rollout"\n'
    )
    (inbox / "pointer.jsonl").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    )
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    subprocess.run(
        collector_command("once", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    assert len(training_lines(data_dir, "local__mixed")) == 2
    assert len(training_lines(data_dir, "local__table")) == 2
    stats = subprocess.run(
        collector_command("stats", "--json", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    rows = {row["dataset"]: row for row in json.loads(stats.stdout)}
    assert rows["local/mixed"]["drop:malformed_json"] == 1
    assert rows["local/mixed"]["drop:invalid_utf8"] == 1
    assert rows["local/mixed"]["drop:not_an_object"] == 1
    assert rows["local/table"]["drop:csv_ragged_row"] == 1
    assert rows["local/pointer"]["drop:lfs_pointer"] == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_counted_and_the_others_proceed(
    tmp_path: Path, data_dir: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "ok.jsonl", 0, 3)
    locked = inbox / "locked.jsonl"
    write_pairs(locked, 10, 3)
    locked.chmod(0)
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    subprocess.run(
        collector_command("once", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    assert len(training_lines(data_dir, "local__ok")) == 3


def test_a_second_signal_exits_at_once_and_a_restart_loses_nothing(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected = write_pairs(inbox / "big.jsonl", 0, 20_000)
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    daemons.append(daemon)
    wait_for(lambda: (data_dir / "formatted" / "local__big.jsonl").exists())
    daemon.signal(signal.SIGTERM)
    daemon.signal(signal.SIGTERM)
    code = daemon.process.wait(20)
    assert code in (0, 128 + signal.SIGTERM)  # at once, or it had already drained
    subprocess.run(
        collector_command("once", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    assert sorted(bullets_written(data_dir, "local__big")) == sorted(expected)


def test_sigterm_cuts_a_retry_backoff_short_and_exits_0(tmp_path: Path, data_dir: Path) -> None:
    """A source retrying an unreachable host with a minute between attempts does not hold the
    drain: SIGTERM wakes its backoff, the pass ends quietly, the daemon exits 0 at once."""
    with socket.socket() as sock:  # a port nobody listens on: every attempt is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    body = f"""
[[sources]]
type = "stackexchange"
name = "se-unreachable"
base_url = "http://127.0.0.1:{port}/2.3"
interval = 3600
retry = {{ attempts = 10, initial_wait = 60, max_wait = 60 }}
"""
    config = write_config(tmp_path / "collector.toml", body, data_dir)  # shutdown_timeout 20
    daemon = Daemon(config, tmp_path / "log")
    try:
        assert daemon.wait_event("http_retry")["wait"] >= 30
        started = time.monotonic()
        assert daemon.stop(timeout=30) == 0
        assert time.monotonic() - started < 5  # not half the shutdown_timeout, nor the backoff
    finally:
        daemon.kill()
    assert daemon.find("source_pass_stopped")
    names = daemon.names()
    assert "source_pass_failed" not in names
    assert "stackexchange_request_failed" not in names  # nothing failed: it stopped


def test_an_inbox_service_starts_without_the_http_client_the_hub_or_the_document_readers() -> None:
    # The service's imports are its start's critical path (the workers wait for them): aiohttp
    # comes with an HTTP source or the metrics listener, huggingface_hub with the first card,
    # the document readers' text tools with the first document.
    script = (
        "import sys\n"
        "import collector.service, collector.sources.inbox\n"
        "unneeded = ('aiohttp', 'huggingface_hub', 'collector.http', 'processors.formatters')\n"
        "loaded = [m for m in unneeded if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    run_python(script)
