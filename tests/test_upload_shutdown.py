"""SIGTERM while a Hub commit hangs: the daemon exits within `shutdown_timeout`.

The commit is left unfinished, as a crash would leave it: its chunks stay pending in the ledger,
and the next start finds them in the Hub (the commit had landed) or commits them (it had not).
Either way each chunk is on the Hub exactly once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory

from collector.sandbox.hub import HubEmulator, HubFault
from collector.state.sqlite import SqliteStateStore
from collector.upload.ledger import Ledger
from tests.conftest import wait_for
from tests.daemon_process import Daemon, write_pairs
from tests.hub_support import TOKEN, inbox_config, running_hub

REPO = "alice/resume-instructions"
TOKEN_ENV = "RESUME_COLLECTOR_TEST_HF_TOKEN"
SHUTDOWN_TIMEOUT = 3.0
# What the exit may take beyond `shutdown_timeout` (the clock starts at SIGTERM): closing the
# state store and the worker pool, and the interpreter's own exit. A bound, not a benchmark:
# before the fix the exit waited for the hanging request (300 s, the default request timeout).
MARGIN = 5.0
COUNT = 8


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubEmulator, str]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running_hub() as running:
        yield running
    set_client_factory(default_client_factory)


def make_config(tmp_path: Path, data_dir: Path, url: str) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    # The request timeout is the default (300 s): what an operator has, and far longer than
    # the drain. A retry would wait 0.05 s: the deadline, not the backoff, is under test.
    upload = f"""
repo_id = "{REPO}"
endpoint = "{url}"
token_env = "{TOKEN_ENV}"
max_records = 4
max_age = 0.5
interval = 0.3
retry = {{ initial_wait = 0.05, max_wait = 0.5 }}
"""
    path = inbox_config(tmp_path, data_dir, inbox, upload)
    text = path.read_text().replace(
        "shutdown_timeout = 20", f"shutdown_timeout = {SHUTDOWN_TIMEOUT}"
    )
    path.write_text(text)
    return path


def hub_lines(emulator: HubEmulator) -> list[str]:
    """Every training line in the Hub's chunks, sorted (a line twice is there twice)."""
    return sorted(
        line
        for path, data in emulator.files(REPO).items()
        if path.startswith("data/")
        for line in data.decode().splitlines()
    )


def written_lines(data_dir: Path) -> list[str]:
    """What the daemon wrote, sorted: what the Hub must hold, once each."""
    return sorted((data_dir / "formatted" / "local__pairs.jsonl").read_text().splitlines())


def ledger_statuses(data_dir: Path) -> list[str]:
    store = SqliteStateStore(data_dir / "state.sqlite3")
    try:
        return sorted(e.status for e in Ledger(store).entries())
    finally:
        store.close()


def requests_to(emulator: HubEmulator, endpoint: str) -> int:
    return sum(1 for served, _ in emulator.requests if served == endpoint)


def stop_during_a_hanging_request(
    tmp_path: Path, emulator: HubEmulator, config: Path, endpoint: str
) -> int:
    """Start the daemon, SIGTERM it once `endpoint` was requested (and hangs); its exit code,
    once it is known to have come within the deadline, the upload alone abandoned."""
    daemon = Daemon(config, tmp_path / "first.log")
    try:
        wait_for(lambda: requests_to(emulator, endpoint) >= 1, timeout=60)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.process.wait(SHUTDOWN_TIMEOUT + 60)
        seconds = time.monotonic() - started
    finally:
        daemon.kill()
    assert seconds < SHUTDOWN_TIMEOUT + MARGIN, daemon.text()[-4000:]
    abandoned = daemon.find("upload_abandoned")
    assert abandoned and abandoned[0]["chunks"], daemon.text()[-4000:]
    assert daemon.find("service_stopped")  # everything but the upload drained
    return code


def restart_publishes_each_line_once(
    tmp_path: Path, data_dir: Path, emulator: HubEmulator, config: Path
) -> None:
    left = ledger_statuses(data_dir)
    assert left and set(left) == {"pending"}  # the unfinished commit was not recorded
    second = Daemon(config, tmp_path / "second.log")
    try:
        wait_for(lambda: set(ledger_statuses(data_dir)) == {"committed"}, timeout=60)
        assert second.stop() == 0, second.text()[-4000:]
    finally:
        second.kill()
    expected = written_lines(data_dir)
    assert len(expected) == COUNT
    assert hub_lines(emulator) == expected


@pytest.mark.parametrize(
    "fault",
    [HubFault(kind="hang_before", hang=600), HubFault(kind="hang_after", hang=600)],
    ids=["hang_before", "hang_after"],
)
def test_sigterm_during_a_hanging_commit_exits_within_the_shutdown_timeout(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str], fault: HubFault
) -> None:
    """hang_before: the commit never lands, the next start makes it; hang_after: it landed,
    its answer never came, the next start's reconcile finds it. Each line once on the Hub."""
    emulator, url = hub
    config = make_config(tmp_path, data_dir, url)
    write_pairs(tmp_path / "inbox" / "pairs.jsonl", 0, COUNT)
    emulator.create_repo(REPO)
    emulator.inject(fault)
    assert stop_during_a_hanging_request(tmp_path, emulator, config, "commit") == 0
    restart_publishes_each_line_once(tmp_path, data_dir, emulator, config)


def test_sigterm_during_a_hanging_lfs_upload_exits_within_the_shutdown_timeout(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file above the LFS threshold: several LFS uploads in one commit, the first hangs
    (the client would upload them from a thread pool that the interpreter joins at exit)."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running_hub(HubEmulator(token=TOKEN, lfs_threshold=64)) as (emulator, url):
        config = make_config(tmp_path, data_dir, url)
        write_pairs(tmp_path / "inbox" / "pairs.jsonl", 0, COUNT)
        emulator.create_repo(REPO)
        emulator.inject(HubFault(kind="hang_before", endpoint="lfs_upload", hang=600))
        assert stop_during_a_hanging_request(tmp_path, emulator, config, "lfs_upload") == 0
        restart_publishes_each_line_once(tmp_path, data_dir, emulator, config)
    set_client_factory(default_client_factory)
