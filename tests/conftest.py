"""Shared fixtures: a config on a temporary data folder, the collector as a subprocess, a
SQLite state store, and a clock that tests move by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.state.sqlite import SqliteStateStore

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # The name lexicon's cache (processors/anonymize/lexicon.py) in a folder of this run, not
    # the user's: set before the test modules, some of which build an anonymizer on import,
    # and passed on to the collector subprocesses.
    os.environ["RESUME_COLLECTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="resume-collector-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop("RESUME_COLLECTOR_CACHE_DIR", ""), ignore_errors=True)


def write_config(path: Path, body: str, data_dir: Path, service: str = "") -> Path:
    """A config on `data_dir` with quick flushes; `service` adds lines to `[service]`."""
    path.write_text(
        f"""
[service]
data_dir = "{data_dir}"
flush_interval = 0.2
shutdown_timeout = 20
{service}

[state]
path = "{data_dir}/state.sqlite3"
"""
        + body
    )
    return path


def collector_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "collector", *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_python(script: str) -> None:
    """`script` in a fresh interpreter (what it imports, a process-wide pool or forkserver: its
    own), which must succeed."""
    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), timeout=90, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def run_collector(
    *args: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`resume-collector ARGS` to its end, output captured as text."""
    return subprocess.run(
        collector_command(*args),
        env=subprocess_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "training-data"
    path.mkdir()
    yield path


class Clock:
    """A clock that stands still until a test moves `now`."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteStateStore]:
    """A SQLite state store in the test's folder, closed when the test ends."""
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    yield store
    store.close()


def run_demo(folder: Path) -> tuple[Path, Path]:
    """`resume-collector once --sandbox` on examples/demo.toml, its output under `folder`
    (rewrites unthrottled): (the config it ran, its data folder)."""
    out = folder / "demo-output"
    text = (ROOT / "examples" / "demo.toml").read_text().replace('"demo-output/', f'"{out}/')
    text = text.replace("requests_per_minute = 1200", "requests_per_minute = 60000")
    config = folder / "demo.toml"
    config.write_text(text)
    done = subprocess.run(
        collector_command("once", "--sandbox", "--config", str(config)),
        env=subprocess_env(),
        cwd=ROOT,  # the demo's inbox paths are relative to the repository
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return config, out / "training-data"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo, run once for the whole session (each run takes half a minute): (its config, its
    data folder). Tests only read what it wrote."""
    return run_demo(tmp_path_factory.mktemp("demo"))


def formatted_tasks(data_dir: Path) -> dict[str, str]:
    """Each formatted training line (its JSON text) -> its task, from the provenance line
    beside it (`{name}__provenance.jsonl`, same order)."""
    task_of: dict[str, str] = {}
    for path in (data_dir / "formatted").glob("*.jsonl"):
        if path.stem.endswith(("__provenance", "__pairs")):
            continue
        origins = path.with_name(f"{path.stem}__provenance.jsonl").read_text().splitlines()
        lines = path.read_text().splitlines()
        assert len(origins) == len(lines), path.name
        for line, origin in zip(lines, origins, strict=True):
            task_of[line] = json.loads(origin)["task"]
    return task_of
