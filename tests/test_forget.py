"""Erasure on request: `resume-collector forget` against the local Hub emulator.

A person's record is fetched and published, then forgotten: gone from the raw archive, the
formatted files, the state and the Hub's files at the next upload round; fetched again, it is
dropped as `opted_out`; a `forget` killed with SIGKILL at its worst moments and run again
finishes, and nothing else is lost or written twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory

from collector.erasure import ForgottenList
from collector.sandbox.hub import HubEmulator
from collector.state.sqlite import SqliteStateStore
from collector.upload.ledger import Ledger
from processors.records import RawRecord
from tests.conftest import collector_command, subprocess_env, write_config
from tests.daemon_process import SANDBOX_SOURCES, Daemon, crashing_command
from tests.hub_support import TOKEN, inbox_config, running_hub

REPO = "alice/resume-instructions"
TOKEN_ENV = "RESUME_COLLECTOR_TEST_HF_TOKEN"
EMAIL = "jane.doe@example.com"
COUNT = 30
JANE = 7  # the line of the inbox that names her


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubEmulator, str]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running_hub() as running:
        yield running
    set_client_factory(default_client_factory)


def bullet(i: int) -> str:
    if i == JANE:
        return f"Maintained billing service number {i} with Jane Doe ({EMAIL}) for the team"
    return f"Maintained billing service number {i} for the team"


def write_inbox(path: Path, numbers: range) -> None:
    with path.open("a") as handle:
        for i in numbers:
            improved = f"Cut billing errors of service number {i} by half in a year"
            handle.write(json.dumps({"original": bullet(i), "improved": improved}) + "\n")


def make_config(tmp_path: Path, data_dir: Path, url: str, *, github: bool = False) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    upload = f"""
repo_id = "{REPO}"
endpoint = "{url}"
token_env = "{TOKEN_ENV}"
max_records = 4
max_age = 1.0  # the few lines written after a forget are published without waiting
interval = 0.3
retry = {{ initial_wait = 0.05, max_wait = 0.5 }}
"""
    more = "\n[[sources]]" + SANDBOX_SOURCES.split("[[sources]]")[2] if github else ""
    return inbox_config(tmp_path, data_dir, inbox, upload, more)


def run(*args: str, crash_at: str = "") -> subprocess.CompletedProcess[str]:
    """`resume-collector ARGS`; killed at the moment `crash_at` names, if any."""
    return subprocess.run(
        crashing_command(crash_at, *args) if crash_at else collector_command(*args),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def config_with_inbox(tmp_path: Path, data_dir: Path, url: str) -> Path:
    """`make_config`'s config, its inbox holding COUNT records."""
    config = make_config(tmp_path, data_dir, url)
    write_inbox(tmp_path / "inbox" / "inbox.jsonl", range(COUNT))
    return config


def once(config: Path, *, sandbox: bool = False) -> None:
    done = run("once", *(["--sandbox"] if sandbox else []), "--config", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def hub_lines(emulator: HubEmulator) -> list[str]:
    return [
        json.loads(line)["messages"][1]["content"]
        for path, data in emulator.files(REPO).items()
        if path.startswith("data/")
        for line in data.decode().splitlines()
    ]


def formatted_lines(data_dir: Path) -> list[str]:
    path = data_dir / "formatted" / "local__inbox.jsonl"
    return [json.loads(line)["messages"][1]["content"] for line in path.read_text().splitlines()]


def provenance(data_dir: Path) -> list[str]:
    path = data_dir / "formatted" / "local__inbox__provenance.jsonl"
    return [json.loads(line)["record_id"] for line in path.read_text().splitlines()]


def state_of(data_dir: Path) -> SqliteStateStore:
    return SqliteStateStore(data_dir / "state.sqlite3")


def numbers_in(lines: list[str]) -> list[int]:
    return sorted(int(line.split("service number ")[1].split()[0]) for line in lines)


def assert_forgotten(data_dir: Path, emulator: HubEmulator | None = None) -> None:
    """Every line but Jane's, once each, in the formatted files (and in the Hub)."""
    expected = [i for i in range(COUNT) if i != JANE]
    assert numbers_in(formatted_lines(data_dir)) == expected
    assert len(provenance(data_dir)) == len(expected)
    assert all("jane" not in line.casefold() for line in formatted_lines(data_dir))
    store = state_of(data_dir)
    try:
        committed = int(store.get("files", "formatted/local__inbox.jsonl") or -1)
        assert committed == (data_dir / "formatted" / "local__inbox.jsonl").stat().st_size
        keys = [k for k, _ in store.scan("forgotten")]
        assert f"text:{EMAIL}" in keys
        assert len([k for k in keys if k.startswith("record:box\x1f")]) == 1
        assert not list(store.scan("files_replace"))
        counts = {(what): n for s, d, what, n in store.counts() if s == "box"}
        assert counts["written"] == len(expected)
        assert counts["drop:forgotten"] == 1
    finally:
        store.close()
    if emulator is not None:
        assert numbers_in(hub_lines(emulator)) == expected
        card = emulator.files(REPO)["README.md"].decode()
        assert "## Removed on request" in card and "1 record was removed" in card


def test_a_published_record_forgotten_is_gone_everywhere_and_stays_out(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    config = config_with_inbox(tmp_path, data_dir, url)
    once(config)
    assert numbers_in(hub_lines(emulator)) == list(range(COUNT))
    assert any("[EMAIL]" in line for line in hub_lines(emulator))  # anonymized, yet found below
    before = {p: emulator.writes(REPO, p) for p in emulator.files(REPO) if p.startswith("data/")}

    dry = run("forget", "--config", str(config), "--match", EMAIL.upper(), "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "would remove 1 line(s) from formatted/local__inbox.jsonl" in dry.stdout
    assert "would remove 1 line(s) from chunk data/" in dry.stdout
    assert numbers_in(formatted_lines(data_dir)) == list(range(COUNT))  # nothing changed

    done = run("forget", "--config", str(config), "--match", EMAIL.upper())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    once(config)  # the next upload round
    assert_forgotten(data_dir, emulator)
    after = {p: emulator.writes(REPO, p) for p in emulator.files(REPO) if p.startswith("data/")}
    revised = [p for p in after if after[p] != before[p]]
    assert len(revised) == 1 and len(after[revised[0]]) == 2  # one new version, committed once
    store = state_of(data_dir)
    try:
        entries = Ledger(store).entries()
        assert all(e.status == "committed" for e in entries)
        assert sum(e.removed for e in entries) == 1
    finally:
        store.close()

    # Fetched again, in a new file: dropped as opted_out, written nowhere.
    write_inbox(tmp_path / "inbox" / "again.jsonl", range(JANE, JANE + 1))
    once(config)
    assert_forgotten(data_dir, emulator)
    formatted = data_dir / "formatted"
    again = json.loads((formatted / "local__again__clean_report.json").read_text())
    assert again["drop_reasons"] == {"opted_out": 1} and again["written"] == 0
    report = json.loads((formatted / "local__inbox__clean_report.json").read_text())
    assert report["drop_reasons"] == {"forgotten": 1} and report["written"] == COUNT - 1


def test_a_github_record_is_found_in_raw_before_anonymization_and_removed(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    _, url = hub
    config = make_config(tmp_path, data_dir, url, github=True)
    once(config, sandbox=True)
    pairs = data_dir / "formatted" / "github__json-resume__pairs.jsonl"
    owners = [json.loads(line)["record_id"].split("/")[0] for line in pairs.open()]
    assert "emma-b" in owners
    raw = list((data_dir / "raw").rglob("*.json.gz"))
    # The resume is base64 in the archived response: found by the source's own parsing code.
    dry = run("forget", "--config", str(config), "--match", "Emma Brown", "--dry-run")
    theirs = [
        Path(line.split("raw entry ")[1]) for line in dry.stdout.splitlines() if "raw entry" in line
    ]
    assert len(theirs) == 1 and theirs[0] in raw
    done = run("forget", "--config", str(config), "--match", "Emma Brown")  # the name as written
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    left = [json.loads(line)["record_id"].split("/")[0] for line in pairs.open()]
    assert "emma-b" not in left and len(left) == len(owners) - owners.count("emma-b")
    assert not any(p.exists() for p in theirs)
    assert all(p.exists() for p in raw if p not in theirs)
    # What the service checks each fetched record against: the record, and the name.
    store = state_of(data_dir)
    try:
        forgotten = ForgottenList.load(store)
    finally:
        store.close()
    again = RawRecord("github-json-resume", "github/json-resume", "emma-b/resume/resume.json", {})
    assert forgotten.match(again) == "forgotten record"
    renamed = RawRecord("github-json-resume", "github/json-resume", "x/y", {"n": "EMMA BROWN"})
    assert forgotten.match(renamed) == "forgotten text"


@pytest.mark.parametrize(
    "crash_at", ["forget_after_remember", "forget_before_commit", "forget_after_commit"]
)
def test_forget_killed_midway_and_run_again_finishes_and_loses_nothing(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str], crash_at: str
) -> None:
    emulator, url = hub
    config = config_with_inbox(tmp_path, data_dir, url)
    once(config)
    killed = run("forget", "--config", str(config), "--match", EMAIL, crash_at=crash_at)
    assert killed.returncode == -signal.SIGKILL
    done = run("forget", "--config", str(config), "--match", EMAIL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    once(config)
    assert_forgotten(data_dir, emulator)
    for path in emulator.files(REPO):
        if path != "README.md":  # the card changes with every commit
            assert len(emulator.writes(REPO, path)) <= 2  # a revised chunk: once more, no more


def test_forget_on_a_state_store_another_process_keeps_locked_says_so_and_exits_3(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    # A service stopped (SIGSTOP) inside a checkpoint holds the store's write lock this way.
    emulator, url = hub
    config = config_with_inbox(tmp_path, data_dir, url)
    once(config)
    holder = sqlite3.connect(data_dir / "state.sqlite3", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        refused = run("forget", "--config", str(config), "--match", EMAIL)
    finally:
        holder.close()
    assert refused.returncode == 3, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "stayed locked by another process" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = run("forget", "--config", str(config), "--match", EMAIL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    once(config)
    assert_forgotten(data_dir, emulator)


def test_forget_queues_the_request_when_the_data_folder_is_held_and_names_the_holder(
    tmp_path: Path, data_dir: Path
) -> None:
    from collector.datalock import DataDirLock
    from collector.erasure_requests import pending

    config = write_config(tmp_path / "c.toml", "", data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        done = run("forget", "--config", str(config), "--match", EMAIL, "--wait", "0")
    finally:
        lock.release()
    assert done.returncode == 75, done.stdout + done.stderr
    assert "is queued" in done.stdout and f"pid {os.getpid()}" in done.stdout
    store = state_of(data_dir)
    try:
        [(_, request)] = pending(store)
    finally:
        store.close()
    assert request.texts == [EMAIL]
    # With the data folder free, `forget` serves what was queued too.
    done = run("forget", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    store = state_of(data_dir)
    try:
        assert not pending(store)
        assert f"text:{EMAIL}" in [k for k, _ in store.scan("forgotten")]
    finally:
        store.close()


def wait_until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def published(emulator: HubEmulator) -> list[int]:
    """The numbers of the lines on the Hub; none before the first commit made the repo."""
    try:
        return numbers_in(hub_lines(emulator))
    except KeyError:
        return []


def test_forget_with_the_daemon_running_is_served_in_it_and_the_daemon_goes_on(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    config = config_with_inbox(tmp_path, data_dir, url)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    try:
        daemon.wait_event("service_started")
        wait_until(lambda: JANE in published(emulator))
        dry = run("forget", "--config", str(config), "--match", EMAIL, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "would remove 1 line(s) from formatted/local__inbox.jsonl" in dry.stdout
        assert JANE in numbers_in(formatted_lines(data_dir))  # a dry run changes nothing

        done = run("forget", "--config", str(config), "--match", EMAIL)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"the service (pid {daemon.process.pid})" in done.stdout
        assert "done by the service" in done.stdout
        applied = daemon.wait_event("forget_applied")
        assert applied["records"] == 1
        assert JANE not in numbers_in(formatted_lines(data_dir))

        # It goes on writing: new lines arrive, and the next rounds publish without her.
        write_inbox(tmp_path / "inbox" / "more.jsonl", range(COUNT, COUNT + 4))
        wait_until(lambda: COUNT + 3 in published(emulator))
        wait_until(lambda: JANE not in published(emulator))
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0, daemon.text()[-3000:]
    expected = [i for i in range(COUNT + 4) if i != JANE]
    more = (data_dir / "formatted" / "local__more.jsonl").read_text().splitlines()
    more_numbers = numbers_in([json.loads(line)["messages"][1]["content"] for line in more])
    # Once each, nothing else lost.
    assert numbers_in(formatted_lines(data_dir)) + more_numbers == expected
    assert len(provenance(data_dir)) == COUNT - 1
    on_hub = published(emulator)
    assert len(on_hub) == len(set(on_hub)) and set(on_hub) <= set(expected)
    assert all("jane" not in line.casefold() for line in hub_lines(emulator))
    store = state_of(data_dir)
    try:
        committed = int(store.get("files", "formatted/local__inbox.jsonl") or -1)
        assert committed == (data_dir / "formatted" / "local__inbox.jsonl").stat().st_size
        counts = {what: n for s, d, what, n in store.counts() if d == "local/inbox"}
        assert counts["drop:forgotten"] == 1 and counts["written"] == COUNT - 1
    finally:
        store.close()


def test_a_request_queued_before_the_daemon_is_killed_is_served_when_it_starts_again(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    config = config_with_inbox(tmp_path, data_dir, url)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    try:
        daemon.wait_event("service_started")
        written = data_dir / "formatted" / "local__inbox.jsonl"
        wait_until(lambda: written.is_file() and len(formatted_lines(data_dir)) == COUNT)
        for _ in range(20):
            daemon.signal(signal.SIGSTOP)  # it holds the data folder, and serves nothing
            queued = run("forget", "--config", str(config), "--match", EMAIL, "--wait", "0")
            if "database is locked" not in queued.stderr:
                break
            # Stopped in the middle of a commit, it held the state store's write lock too:
            # let it finish that commit and stop it again.
            daemon.signal(signal.SIGCONT)
            time.sleep(0.2)
        assert queued.returncode == 75, queued.stdout + queued.stderr
        daemon.signal(signal.SIGKILL)
        daemon.process.wait()
    finally:
        daemon.kill()
    again = Daemon(config, tmp_path / "log2.jsonl")
    try:
        assert again.wait_event("forget_applied")["records"] == 1
        wait_until(lambda: JANE not in published(emulator))
    finally:
        assert again.stop() == 0, again.text()[-3000:]
    assert numbers_in(formatted_lines(data_dir)) == [i for i in range(COUNT) if i != JANE]
    on_hub = published(emulator)
    assert len(on_hub) == len(set(on_hub)) and JANE not in on_hub
