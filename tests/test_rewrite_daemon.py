"""The rewrite stage as a user runs it: `resume-collector run` / `once` with `[rewrite]` enabled,
and `resume-collector rewrite FILE`, as subprocesses against the OpenAI emulator."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import signal
import sqlite3
import struct
import termios
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.cli import main
from collector.rewrite.client import estimate_tokens
from collector.rewrite.config import RewriteConfig
from collector.rewrite.rewriter import Pair, render_prompt
from collector.rewrite.stage import StageLock
from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.openai import CHAT, ChatEmulator, improve
from processors.config import ValidateConfig
from processors.records import Example, Message
from processors.validate import Validator
from tests.conftest import collector_command, run_python, subprocess_env, write_config

NAME = "local__bullets"


def bullets(n: int, start: int = 0) -> list[str]:
    return [f"Responsible for maintaining billing service number {i}" for i in range(start, n)]


def write_inbox(inbox: Path, texts: list[str]) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    with (inbox / "bullets.jsonl").open("a") as handle:
        for text in texts:
            handle.write(json.dumps({"original": text, "context": "Site reliability"}) + "\n")


def config_file(
    tmp_path: Path, data_dir: Path, url: str, rewrite: str = "", enabled: bool = True
) -> Path:
    body = f"""
[rewrite]
enabled = {"true" if enabled else "false"}
base_url = "{url}"
model = "emulated"
requests_per_minute = 6000
interval = 0.2
batch_size = 8
concurrency = 2
timeout = 5
retry = {{ attempts = 3, initial_wait = 0.05, max_wait = 0.2 }}
{rewrite}

# The emulator's rewrites only restate the bullet: these tests are about the stage's mechanics,
# not whether its answers are worth publishing (tests/test_quality.py is).
[processing.quality]
enabled = false

[[sources]]
type = "inbox"
name = "inbox"
path = "{tmp_path / "inbox"}"
interval = 0.2

[sources.recipe]
name = "pairs"
"""
    return write_config(tmp_path / "config.toml", body, data_dir)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningApp]:
    app = await start_emulator("openai")
    yield app
    app.app[CHAT].release()
    await app.stop()


def chat(app: RunningApp) -> ChatEmulator:
    return app.app[CHAT]


class Process:
    """A `resume-collector` subprocess (asyncio: the emulator shares this event loop)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @classmethod
    async def start(cls, log: Path, *args: str, **env: str) -> Process:
        handle = log.open("ab")
        process = await asyncio.create_subprocess_exec(
            *collector_command(*args),
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
            env={**subprocess_env(), **env},
        )
        handle.close()
        return cls(process, log)

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    found.append(event)
        return found

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


async def wait_until(predicate: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def originals(rewritten: list[dict[str, Any]]) -> list[str]:
    """The bullets of rewritten training lines (the user turn is `Improve ...:\\n"bullet"`)."""
    return [line["messages"][1]["content"].split('"')[1] for line in rewritten]


def cached_answers(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT count(*) FROM kv WHERE namespace = 'rewrite:cache'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def counts(state: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT what, sum(n) FROM counts GROUP BY what").fetchall()
    return {str(what): int(n) for what, n in rows}


def assert_valid(rewritten: list[dict[str, Any]]) -> None:
    validator = Validator(ValidateConfig())
    for line in rewritten:
        messages = [Message(m["role"], m["content"]) for m in line["messages"]]
        example = Example(messages, "inbox", "local/bullets", "x", rewritten=True)
        assert validator.run(example) is None, line


async def test_every_pair_is_rewritten_exactly_once_across_kill_9_and_restart(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    texts = bullets(30)
    write_inbox(tmp_path / "inbox", texts)
    config = config_file(tmp_path, data_dir, emulator.url)
    state = data_dir / "state.sqlite3"
    rewritten = data_dir / "formatted" / f"{NAME}__rewritten.jsonl"
    # Twelve answers, then every request hangs: the kill lands with twelve answers paid and
    # cached, the first chunk of eight perhaps written, the next four not (their chunk waits).
    chat(emulator).hold_after = 12
    first = await Process.start(tmp_path / "run1.log", "run", "--config", str(config))
    await wait_until(lambda: cached_answers(state) == 12, what="12 answers cached")
    await wait_until(lambda: chat(emulator).requests >= 14, what="two requests held")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    chat(emulator).hold_after = None
    chat(emulator).release()
    second = await Process.start(tmp_path / "run2.log", "run", "--config", str(config))
    await wait_until(lambda: len(lines(rewritten)) == 30, what="30 rewritten lines")
    await asyncio.sleep(0.5)  # one more pass: nothing more may come
    assert await second.stop() == 0

    out = lines(rewritten)
    assert sorted(originals(out)) == sorted(texts)  # every pair, once
    assert [line["messages"][2]["content"] for line in out] == [
        improve(text, placeholders=True, role="Site reliability") for text in originals(out)
    ]
    answered = chat(emulator).answered
    assert sum(answered.values()) == 30  # paid once each: the held two were never answered
    assert set(answered.values()) == {1}
    assert chat(emulator).abandoned == 2
    totals = counts(state)
    assert totals["rewrite_requests"] == 30
    assert totals["rewrite_cache_hits"] >= 4
    assert second.events("rewrite_started")
    assert_valid(out)


async def test_once_rewrites_the_pairs_of_the_same_run_drops_invalid_answers_and_masks_figures(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    texts = bullets(8)
    write_inbox(tmp_path / "inbox", texts)
    fake = chat(emulator)
    fake.answers[texts[0]] = "Maintained billing service number 0, cutting costs by 40%"
    fake.answers[texts[1]] = texts[1]
    fake.answers[texts[2]] = "Maintained billing service number 2; reach me at jane@example.com"
    fake.finish_reasons[texts[3]] = "length"
    config = config_file(tmp_path, data_dir, emulator.url)
    process = await Process.start(tmp_path / "once.log", "once", "--config", str(config))
    assert await asyncio.wait_for(process.process.wait(), 60) == 0

    out = lines(data_dir / "formatted" / f"{NAME}__rewritten.jsonl")
    assert sorted(originals(out)) == sorted([texts[0], *texts[4:]])
    assert_valid(out)
    # The invented 40% became a placeholder (processors/grounding.py), counted as masked.
    answers = [line["messages"][-1]["content"] for line in out]
    assert "Maintained billing service number 0, cutting costs by [X]%" in answers
    report = json.loads((data_dir / "formatted" / f"{NAME}__clean_report.json").read_text())
    assert report["drop_reasons"] == {
        "rewrite_unchanged": 1,
        "rewrite_pii_introduced": 1,
        "rewrite_truncated": 1,
    }
    assert report["invented_facts"] == {"masked": 1, "dropped": 0, "kept": 0}
    assert report["pairs"] == 8
    provenance = lines(data_dir / "formatted" / f"{NAME}__rewritten__provenance.jsonl")
    assert [p["source"] for p in provenance] == ["inbox"] * 5
    # A rewritten line keeps its bullet's licence (and would keep its credit).
    bullets_licence = lines(data_dir / "formatted" / f"{NAME}__pairs.jsonl")[0]["license"]
    assert bullets_licence and {p["license"] for p in provenance} == {bullets_licence}
    assert fake.completions == 8
    # The training line uses the source recipe's prompts, not the rewrite prompt.
    assert out[0]["messages"][0]["content"].endswith("Context: Site reliability")


async def test_a_spent_budget_pauses_the_daemon_stage_which_still_stops_cleanly(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    texts = bullets(6)
    write_inbox(tmp_path / "inbox", texts)
    pair = Pair(texts[0], "Site reliability", "inbox", "local/bullets", "x")
    worst = estimate_tokens(render_prompt(RewriteConfig(max_tokens=60), pair), 0) + 60
    rewrite = f"max_tokens = 60\ndaily_token_budget = {2 * worst}"
    config = config_file(tmp_path, data_dir, emulator.url, rewrite)
    process = await Process.start(tmp_path / "run.log", "run", "--config", str(config))
    await wait_until(lambda: bool(process.events("rewrite_budget_exhausted")), what="paused")
    event = process.events("rewrite_budget_exhausted")[0]
    assert event["requests"] == 2 and event["token_budget"] == 2 * worst
    await asyncio.sleep(0.6)  # three passes of the other source: still paused, still running
    assert process.process.returncode is None
    assert chat(emulator).completions == 2
    assert await process.stop(timeout=15) == 0
    assert len(lines(data_dir / "formatted" / f"{NAME}__rewritten.jsonl")) == 2


async def test_forget_with_the_stage_running_is_served_and_every_other_pair_is_rewritten_once(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    email = "jane.doe@example.com"
    texts = bullets(12)
    texts[3] = f"Responsible for maintaining billing service number 3 with Jane Doe ({email})"
    write_inbox(tmp_path / "inbox", texts)
    config = config_file(tmp_path, data_dir, emulator.url)
    formatted = data_dir / "formatted"
    rewritten = formatted / f"{NAME}__rewritten.jsonl"
    daemon = await Process.start(tmp_path / "run.log", "run", "--config", str(config))
    try:
        await wait_until(lambda: len(lines(rewritten)) == 12, what="12 rewritten lines")
        code, out, err = await run_cli("forget", "--config", str(config), "--match", email)
        assert code == 0, out + err
        assert "done by the service" in out
        assert daemon.events("forget_applied")[0]["records"] == 1
        # The stage was suspended for the erasure and goes on from its moved cursor: the
        # pairs after hers, and new ones, are rewritten once each, none skipped or repeated.
        more = bullets(20, start=12)
        write_inbox(tmp_path / "inbox", more)
        await wait_until(lambda: len(lines(rewritten)) == 19, what="19 rewritten lines")
        await asyncio.sleep(0.6)  # more passes: nothing more may come
    finally:
        assert await daemon.stop() == 0
    kept = [text for text in texts if text != texts[3]] + more
    assert sorted(originals(lines(rewritten))) == sorted(kept)
    for path in formatted.glob(f"{NAME}*.jsonl"):
        assert "number 3 " not in path.read_text(), path.name
    assert_valid(lines(rewritten))


# --- resume-collector rewrite FILE -----------------------------------------------------------


async def run_cli(*args: str, stderr: int | None = asyncio.subprocess.PIPE) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *collector_command(*args),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=subprocess_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), (err or b"").decode()


async def pairs_file(tmp_path: Path, data_dir: Path, url: str, n: int) -> tuple[Path, Path]:
    """A config with the stage off, and a `__pairs` file as the sink writes it.

    The anonymizer is off (the basic PII checks run): it saves each command a second of
    start-up; the daemon tests above run the stage with it.
    """
    config = config_file(tmp_path, data_dir, url, enabled=False)
    with config.open("a") as handle:
        handle.write("\n[processing.anonymize]\nenabled = false\n")
    path = data_dir / "formatted" / f"{NAME}__pairs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i, text in enumerate(bullets(n)):
            line = {
                "bullet": text,
                "context": "Site reliability",
                "source": "inbox",
                "dataset": "local/bullets",
                "record_id": f"bullets.jsonl:{i}",
                "split": "train",
            }
            handle.write(json.dumps(line) + "\n")
    return config, path


async def test_the_rewrite_command_rewrites_a_pairs_file_and_never_pays_twice(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    config, pairs = await pairs_file(tmp_path, data_dir, emulator.url, 10)
    rewritten = data_dir / "formatted" / f"{NAME}__rewritten.jsonl"
    chat(emulator).out_of_credit = True
    code, out, _ = await run_cli("rewrite", str(pairs), "--config", str(config))
    assert code == 3  # stopped early, and says so: run it again later
    assert "stopped early: the endpoint refused the requests" in out
    assert not rewritten.exists()

    chat(emulator).out_of_credit = False
    code, out, err = await run_cli("rewrite", str(pairs), "--config", str(config))
    assert code == 0, err
    assert "rewritten: 10" in out and "requests: 10, cache hits: 0" in out
    assert "%|" not in err  # no progress bar without a terminal
    assert sorted(originals(lines(rewritten))) == sorted(bullets(10))
    assert_valid(lines(rewritten))

    code, out, _ = await run_cli("rewrite", str(pairs), "--config", str(config))
    assert code == 0 and "0 pairs read" in out  # the cursor: nothing left to do

    code, out, _ = await run_cli("rewrite", str(pairs), "--config", str(config), "--restart")
    assert code == 0
    assert "requests: 0, cache hits: 10" in out  # a reprocess pays nothing
    assert "duplicate_exact: 10" in out  # and writes nothing twice
    assert len(lines(rewritten)) == 10
    assert chat(emulator).completions == 10


def test_the_rewrite_command_refuses_bad_arguments_and_a_running_stage(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, data_dir, "http://127.0.0.1:9", enabled=False)
    missing = tmp_path / "missing__pairs.jsonl"
    assert main(["rewrite", str(missing), "-c", str(config)]) == 2
    assert "no such file" in capsys.readouterr().err
    other = data_dir / "formatted" / f"{NAME}.jsonl"
    other.parent.mkdir(parents=True)
    other.write_text("")
    assert main(["rewrite", str(other), "-c", str(config)]) == 2
    assert "expected a {name}__pairs.jsonl file" in capsys.readouterr().err
    pairs = data_dir / "formatted" / f"{NAME}__pairs.jsonl"
    pairs.write_text("")
    lock = StageLock(data_dir)
    lock.acquire()  # as the daemon's stage holds it
    try:
        assert main(["rewrite", str(pairs), "-c", str(config)]) == 2
    finally:
        lock.release()
        structlog.reset_defaults()  # the command set up logging for itself
    assert "the daemon's rewrite stage is running" in capsys.readouterr().err


async def test_the_rewrite_command_draws_a_progress_bar_on_a_terminal(
    tmp_path: Path, data_dir: Path, emulator: RunningApp
) -> None:
    config, pairs = await pairs_file(tmp_path, data_dir, emulator.url, 4)
    leader, follower = pty.openpty()
    # A terminal 100 columns wide (a new pty has 0, and tqdm draws nothing in 0 columns).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    try:
        code, out, _ = await run_cli("rewrite", str(pairs), "-c", str(config), stderr=follower)
        os.close(follower)
        drawn = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 65536):
                drawn += chunk
    finally:
        os.close(leader)
    assert code == 0 and "rewritten: 4" in out
    assert b"100%|" in drawn and NAME.encode() in drawn


def test_a_service_loads_the_rewrite_stage_only_when_it_starts_one() -> None:
    # Every service builds its components; the stage (its LLM client, the rewriter, a chain of
    # its own) is imported by the component's start, so a service without one never loads it.
    script = (
        "import sys\n"
        "import collector.service\n"
        "stage = ('collector.rewrite.stage', 'processors.rewrite')\n"
        "loaded = [m for m in stage if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    run_python(script)
