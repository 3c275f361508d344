"""The command line as an operator and a cron job meet it: exit codes that say what happened,
check-config, --version, --log-level and one source at a time."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_collector, run_python, wait_for, write_config
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


def test_check_config_reports_every_error_with_its_field_and_the_allowed_values(
    tmp_path: Path, data_dir: Path
) -> None:
    body = '[[sources]]\ntype = "inbox"\nname = "box"\ninterval = "soon"\nbatch_size = 0\n'
    body += 'recipe = { name = "poem" }\n'
    config = write_config(tmp_path / "c.toml", body, data_dir, service='log_level = "loud"')
    for args in (("--config", str(config)), (str(config),)):  # the positional form still works
        done = run_collector("check-config", *args)
        assert done.returncode == 2
        lines = done.stderr.splitlines()
        assert (
            f"{config}: service.log_level: invalid enum value 'loud' (allowed: 'debug',"
            in (lines[0])
        )
        assert sorted(line.split(": ")[1] for line in lines) == [
            "service.log_level",
            "sources[0].batch_size",
            "sources[0].interval",
            "sources[0].recipe.name",
        ]
        assert "'resume_json'" in next(line for line in lines if "recipe.name" in line)


UPLOAD_TO_HUB = '\n[upload]\nenabled = true\nrepo_id = "someone/resumes"\n'


def test_check_config_refuses_an_upload_to_the_hub_without_a_token_and_warns_of_unset_ones(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no token saved by `hf auth login`
    monkeypatch.delenv("HF_TOKEN", raising=False)
    github = '[[sources]]\ntype = "github"\nname = "gh"\ntoken_env = "RC_TEST_UNSET_TOKEN"\n'
    config = write_config(tmp_path / "c.toml", UPLOAD_TO_HUB + github, data_dir)
    done = run_collector("check-config", "--config", str(config))
    assert done.returncode == 2
    assert "sources[0].token_env: $RC_TEST_UNSET_TOKEN is not set" in done.stderr
    assert "upload.token_env: the target is the Hub (someone/resumes) but there is no token" in (
        done.stderr
    )


def test_check_config_online_says_where_tokens_come_from_which_endpoints_answer_and_writes(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_saved_by_login\n")  # what `hf auth login` saves
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = f"http://127.0.0.1:{server.server_address[1]}"
        answering = unreachable_source("se-up").replace(
            'base_url = "http://127.0.0.1:', f'base_url = "{up}"\n# was: "'
        )
        body = UPLOAD_TO_HUB + f'endpoint = "{up}"\n'
        config = write_config(
            tmp_path / "c.toml", body + answering + unreachable_source("se-down"), data_dir
        )
        done = run_collector("check-config", "--config", str(config), "--online", "--timeout", "2")
    finally:
        server.shutdown()
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"upload: token {tmp_path / 'hf' / 'token'} (hf auth login)" in done.stdout
    assert f"sources[0] se-up: {up} answers" in done.stdout
    assert "sources[1] se-down: http://127.0.0.1:" in done.stderr and "does not answer" in (
        done.stderr
    )
    assert f"service.data_dir: {data_dir} is writable" in done.stdout
    assert "hf_saved_by_login" not in done.stdout + done.stderr


def test_version_says_which_release_runs() -> None:
    from collector import __version__

    done = run_collector("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"resume-collector {__version__}"


def test_once_source_runs_only_the_named_sources_and_names_the_ones_it_does_not_know(
    tmp_path: Path, data_dir: Path
) -> None:
    body = inbox_source("box", an_inbox(tmp_path)) + unreachable_source("se-down")
    config = write_config(tmp_path / "c.toml", body, data_dir)
    done = run_collector("once", "--config", str(config), "--source", "box")
    assert done.returncode == 0, done.stdout[-3000:]  # the unreachable one did not run
    assert finished(done.stdout)["ok"] == ["box"]
    wrong = run_collector("once", "--config", str(config), "--source", "nope")
    assert wrong.returncode == 2
    assert "--source: no source named 'nope'; the config has: box, se-down" in wrong.stderr


def test_log_level_on_the_command_line_overrides_the_config(tmp_path: Path, data_dir: Path) -> None:
    config = write_config(tmp_path / "c.toml", inbox_source("box", an_inbox(tmp_path)), data_dir)
    quiet = run_collector("once", "--config", str(config), "--log-level", "warning")
    assert quiet.returncode == 0
    assert [e for e in log_events_of(quiet.stdout) if e.get("level") == "info"] == []
    assert (data_dir / "formatted" / "local__a.jsonl").read_text().count("\n") == 5
    # --log-level debug: see the idle-pass test below, whose daemon logs at debug.


def test_the_config_defaults_to_the_system_path_or_the_environment(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESUME_COLLECTOR_CONFIG", raising=False)
    done = run_collector("stats")
    assert done.returncode == 2 and "/etc/resume-collector/collector.toml" in done.stderr
    config = write_config(tmp_path / "c.toml", inbox_source("box", an_inbox(tmp_path)), data_dir)
    monkeypatch.setenv("RESUME_COLLECTOR_CONFIG", str(config))
    assert run_collector("once").returncode == 0
    assert "box" in run_collector("stats").stdout


def test_a_quiet_source_logs_one_idle_pass_at_info_and_the_rest_at_debug(
    tmp_path: Path, data_dir: Path
) -> None:
    from tests.daemon_process import Daemon

    config = write_config(
        tmp_path / "c.toml", inbox_source("box", an_inbox(tmp_path), interval=0.05), data_dir
    )
    daemon = Daemon(config, tmp_path / "log.jsonl", args=("--log-level", "debug"))
    try:
        wait_for(lambda: len(daemon.find("source_pass_done")) >= 8)
    finally:
        assert daemon.stop() == 0
    passes = daemon.find("source_pass_done")
    at_info = [e for e in passes if e["level"] == "info"]
    # The pass that wrote the five records, then the first idle one; the rest are debug.
    assert [e["fetched"] for e in at_info] == [5, 5]
    assert len(passes) - len(at_info) >= 6


def test_the_command_line_registers_its_commands_without_loading_what_they_run() -> None:
    # Every start builds the whole parser (`--help` lists every command): the processors, the
    # raw archive and the HTTP client load with the command that runs them, not before.
    script = (
        "import sys\n"
        "from collector.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ['aiohttp', 'processors.chain', 'processors.anonymize.anonymizer',\n"
        "         'collector.sources.archive', 'collector.service']\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    run_python(script)
