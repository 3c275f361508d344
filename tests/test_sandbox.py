"""The sandbox: emulators on port 0, `resume-collector sandbox` and `once --sandbox`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import aiohttp

from collector.sandbox import EMULATORS, Sandbox
from collector.sandbox.faults import FaultConfig
from tests.conftest import collector_command, subprocess_env, write_config
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
