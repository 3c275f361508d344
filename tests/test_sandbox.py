"""The sandbox: emulators on port 0, `resume-collector sandbox` and `once --sandbox`."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import aiohttp

from collector.config import load_config
from collector.sandbox import EMULATORS, Sandbox
from collector.sandbox.faults import FaultConfig
from collector.sandbox.openai import SANDBOX_REQUESTS_PER_MINUTE
from tests.conftest import ROOT, collector_command, run_collector, subprocess_env, write_config
from tests.daemon_process import SANDBOX_SOURCES


async def test_the_sandbox_starts_every_registered_emulator_on_its_own_port() -> None:
    async with Sandbox() as sandbox:
        urls = sandbox.urls
        assert set(urls) == set(EMULATORS)
        assert len(set(urls.values())) == len(urls)
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
    assert sandbox.urls == {}


async def test_faults_apply_per_emulator() -> None:
    faults = {"stackexchange": FaultConfig(latency=0.01)}
    async with Sandbox(["stackexchange", "github"], faults) as sandbox:
        assert sandbox.apps["stackexchange"].faults.config.latency == 0.01
        assert sandbox.apps["github"].faults.config.latency == 0.0
        async with aiohttp.ClientSession() as session:
            url = f"{sandbox.urls['github']}/search/repositories?q=topic:jsonresume"
            async with session.get(url) as response:
                assert response.status == 200
                assert response.headers["x-ratelimit-resource"] == "search"


def test_the_sandbox_command_prints_urls_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        collector_command("sandbox", "--only", "stackexchange", "--only", "github", "--json"),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"stackexchange", "github"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_once_with_sandbox_collects_from_the_emulated_apis(tmp_path: Path, data_dir: Path) -> None:
    config = write_config(tmp_path / "config.toml", SANDBOX_SOURCES, data_dir)
    done = subprocess.run(
        collector_command("once", "--sandbox", "--config", str(config)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    formatted = data_dir / "formatted"
    qa = (formatted / "stackexchange__workplace.jsonl").read_text().splitlines()
    assert len(qa) >= 25
    bullets = (formatted / "github__json-resume__pairs.jsonl").read_text().splitlines()
    assert len(bullets) >= 20
    assert (data_dir / "raw" / "se-workplace").is_dir()
    assert (data_dir / "raw" / "github-json-resume").is_dir()


def test_an_unknown_emulator_name_is_a_clear_error(tmp_path: Path, data_dir: Path) -> None:
    config = write_config(tmp_path / "config.toml", "", data_dir)
    done = subprocess.run(
        collector_command("sandbox", "--once", "--only", "nope", "--config", str(config)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no emulator named 'nope'" in done.stderr


def test_the_demo_shows_the_rewrite_limiter_at_work_without_a_minutes_wait(
    tmp_path: Path,
) -> None:
    """examples/demo.toml as shipped (its own folders aside): the LLM stage's client-side limit
    holds requests back, the sandbox's quota never refuses one, and rewriting every bullet
    takes seconds, not the minute and a half 60 requests a minute took."""
    demo = (ROOT / "examples" / "demo.toml").read_text()
    demo = demo.replace('"demo-output/', f'"{tmp_path / "demo-output"}/')
    demo = demo.replace('log_format = "console"', 'log_format = "json"')
    config = tmp_path / "demo.toml"
    config.write_text(demo)
    rate = load_config(config).rewrite.requests_per_minute
    assert rate < SANDBOX_REQUESTS_PER_MINUTE

    # cwd: the demo's inbox paths are relative to the repository
    done = run_collector("once", "--sandbox", "--config", str(config), timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    summary = events["rewrite_pass_summary"]
    assert summary["requests"] > 60  # more bullets than a minute of the old limit sends at once
    assert summary["rate_limited"] > 0  # the limiter held some of them back
    assert "http_retry" not in events  # and the server never had to refuse
    started = datetime.fromisoformat(events["rewrite_started"]["timestamp"])
    seconds = (datetime.fromisoformat(summary["timestamp"]) - started).total_seconds()
    assert seconds < 30
    per_second = rate / 60  # also the bucket's burst
    assert seconds >= (summary["requests"] - per_second) / per_second * 0.9  # the limit held
