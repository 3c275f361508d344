"""Uploads: each chunk in the target exactly once, whatever fails, with a card that adds up.

The hub target is the real `huggingface_hub` client against the emulator; the folder target is
read back with `datasets.load_dataset`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from huggingface_hub import DatasetCard, set_client_factory
from huggingface_hub.utils._http import default_client_factory

from collector.config import Config, parse_config
from collector.logging import get_logger
from collector.sandbox.hub import LFS_THRESHOLD, HubEmulator, HubFault, git_blob_oid
from collector.sinks.lines import render
from collector.state.sqlite import SqliteStateStore
from collector.upload.chunks import ChunkRoller
from collector.upload.component import ChunksLock
from collector.upload.ledger import Ledger
from collector.upload.targets import FolderTarget, HubTarget, Target, build_target
from collector.upload.uploader import Uploader
from tests import redis_server
from tests.conftest import Clock, collector_command, subprocess_env, wait_for
from tests.daemon_process import crashing_command
from tests.hub_support import TOKEN, inbox_config, running_hub
from tests.test_chunks import example

REPO = "alice/resume-instructions"
redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix
TOKEN_ENV = "RESUME_COLLECTOR_TEST_HF_TOKEN"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubEmulator, str]]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running_hub() as running:
        yield running
    set_client_factory(default_client_factory)  # the uploader set a short timeout


def make_config(url: str = "", **upload: Any) -> Config:
    settings: dict[str, Any] = {
        "token_env": TOKEN_ENV,
        "timeout": 1.0,
        "retry": {"initial_wait": 0.01, "max_wait": 0.2},
        **upload,
    }
    if url:
        settings.setdefault("repo_id", REPO)
        settings["endpoint"] = url
    return parse_config(
        {
            "upload": settings,
            "sources": [
                {"type": "inbox", "name": "inbox", "license": "CC-BY-4.0"},
                {"type": "inbox", "name": "other", "license": "MIT"},
            ],
        }
    )


async def make_chunks(
    data_dir: Path,
    state: SqliteStateStore,
    chunks: int,
    per_chunk: int = 2,
    start: int = 0,
    size: int = 0,
) -> ChunkRoller:
    """`chunks` closed chunks of `per_chunk` records (`size` more bytes each), split
    train/validation/test in turn."""
    config = msgspec.structs.replace(make_config().upload, max_records=per_chunk)
    roller = ChunkRoller(data_dir, state, config, get_logger())
    await roller.open()
    splits = ["train", "validation", "test"]
    for i in range(start, start + chunks):
        examples = [
            example(i * 1000 + j, split=splits[i % 3], dataset=f"local/set-{i % 2}", size=size)
            for j in range(per_chunk)
        ]
        if i % 4 == 3:
            for item in examples:
                item.source = "other"
        roller.write(render(examples))
    state.commit(await roller.flush())
    await roller.committed()
    await roller.close()
    return roller


def uploader(
    config: Config, state: SqliteStateStore, data_dir: Path, clock: Clock | None = None
) -> Uploader:
    log = get_logger()
    target: Target
    if config.upload.resolved_target == "hub":
        target = HubTarget(config.upload, log)
    else:
        target = FolderTarget(data_dir / "published", log)
    return Uploader(
        config, target, state, log, chunks_root=data_dir / "chunks", clock=clock or time.time
    )


def chunk_paths(state: SqliteStateStore) -> list[str]:
    return sorted(e.path for e in Ledger(state).entries())


def assert_each_chunk_once(emulator: HubEmulator, state: SqliteStateStore) -> None:
    files = emulator.files(REPO)
    entries = Ledger(state).entries(folder=None)  # the chunks and the provenance beside them
    for entry in entries:
        assert entry.status == "committed", entry.path
        assert emulator.writes(REPO, entry.path) == [entry.commit], entry.path
        assert git_blob_oid(files[entry.path]) == entry.oid, entry.path
    data = [path for path in files if path.startswith("data/")]
    assert sorted(data) == chunk_paths(state)
    beside = sorted(path for path in files if path.startswith("provenance/"))
    assert beside == sorted("provenance/" + path.removeprefix("data/") for path in data)
    for path in data:
        ours = files["provenance/" + path.removeprefix("data/")]
        assert len(ours.splitlines()) == len(files[path].splitlines())


# Two records of 2.6 MB: every chunk is above the real Hub's LFS threshold.
LARGE = {"per_chunk": 2, "size": LFS_THRESHOLD // 2 + 100_000}


def assert_in_lfs(emulator: HubEmulator, state: SqliteStateStore) -> None:
    head = emulator.repo(REPO).commits[emulator.repo(REPO).head]
    for entry in Ledger(state).entries():
        assert entry.bytes > LFS_THRESHOLD
        assert emulator.pointers[head.tree[entry.path]].sha256 == entry.sha256


# --- the hub target ---------------------------------------------------------------------------


async def test_pending_chunks_go_in_bounded_commits_with_the_card(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    await make_chunks(tmp_path, state, 5)
    # Five files in a commit: the card, two chunks and the provenance beside each.
    config = make_config(url, max_files_per_commit=5)
    report = await uploader(config, state, tmp_path).run()
    assert (report.committed, report.commits, report.pending) == (5, 3, 0)
    commits = emulator.commits(REPO)
    assert [c.title for c in commits[:3]] == [
        "Add 1 chunk (2 records) with their provenance",
        "Add 2 chunks (4 records) with their provenance",
        "Add 2 chunks (4 records) with their provenance",
    ]
    assert all(len(c.tree) - len(commits[i + 1].tree) <= 5 for i, c in enumerate(commits[:3]))
    assert emulator.writes(REPO, "README.md") == [c.oid for c in reversed(commits[:3])]
    assert_each_chunk_once(emulator, state)
    assert not list((tmp_path / "chunks" / "data").rglob("*.jsonl"))  # committed: removed
    assert emulator.repo(REPO).private


def _fault_id(fault: HubFault) -> str:
    return f"{fault.kind}-{fault.status}-{fault.endpoint}"


INLINE_FAULTS = [
    HubFault(status=429, retry_after=0),
    HubFault(status=429, rate_limit_reset=0),  # the Hub's IETF header, no Retry-After
    HubFault(status=500, times=2),
    HubFault(status=503, endpoint="preupload"),
    HubFault(kind="hang_after", hang=10),
    HubFault(kind="hang_before", hang=10),
    HubFault(kind="concurrent_commit"),
    HubFault(status=500, endpoint="paths_info"),
]
LFS_FAULTS = [
    HubFault(kind="hang_after", hang=10),  # the commit landed, its answer was lost
    HubFault(kind="concurrent_commit"),  # 412: the retry re-reads the head
    HubFault(status=500, endpoint="lfs_upload"),  # storage failed: the client retries it
    HubFault(status=503, endpoint="lfs_batch"),
]


@pytest.mark.parametrize(
    ("fault", "large"),
    [pytest.param(f, False, id=_fault_id(f)) for f in INLINE_FAULTS]
    + [pytest.param(f, True, id="lfs-" + _fault_id(f)) for f in LFS_FAULTS],
)
async def test_each_chunk_lands_exactly_once_whatever_the_hub_does(
    tmp_path: Path,
    state: SqliteStateStore,
    hub: tuple[HubEmulator, str],
    fault: HubFault,
    large: bool,
) -> None:
    """Chunks above the LFS threshold too: found again by sha256, never a conflict."""
    emulator, url = hub
    await make_chunks(tmp_path, state, 3, **(LARGE if large else {}))
    emulator.create_repo(REPO)
    emulator.inject(fault)
    report = await uploader(make_config(url, timeout=3.0), state, tmp_path).run()
    assert (report.committed, report.pending, report.conflicts, report.error) == (3, 0, 0, "")
    assert emulator.faults == []
    assert_each_chunk_once(emulator, state)
    if large:
        assert_in_lfs(emulator, state)
    chunk_commits = [c for c in emulator.commits(REPO) if c.title.startswith("Add")]
    assert len(chunk_commits) == 1  # a retry never commits the chunks a second time


@pytest.mark.parametrize("large", [False, True], ids=["inline", "lfs"])
async def test_a_crash_between_commit_and_ledger_is_reconciled_at_start(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str], large: bool
) -> None:
    """A chunk in LFS is found by its sha256, not taken for a conflict."""
    emulator, url = hub
    await make_chunks(tmp_path, state, 2, **(LARGE if large else {}))
    config = make_config(url, timeout=3.0)
    first = uploader(config, state, tmp_path)

    def commit_then_die(*args: Any) -> Any:
        HubTarget.commit(first.target, *args)  # type: ignore[arg-type]
        raise KeyboardInterrupt("killed after the commit, before the ledger")

    first.target.commit = commit_then_die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        await first.run()
    assert [e.status for e in Ledger(state).entries()] == ["pending", "pending"]
    commits_before = len(emulator.commits(REPO))
    restarted = uploader(config, state, tmp_path)
    assert await restarted.reconcile() == 2
    report = await restarted.run()
    assert (report.committed, report.commits) == (0, 0)
    assert len(emulator.commits(REPO)) == commits_before
    assert_each_chunk_once(emulator, state)
    if large:
        assert_in_lfs(emulator, state)


async def test_a_chunk_in_lfs_is_matched_by_sha256_found_or_a_conflict(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    """Its own bytes are found (even by a ledger written before sha256 was kept: the local
    file gives it); other bytes under its name are a conflict, never overwritten."""
    emulator, url = hub
    await make_chunks(tmp_path, state, 2, **LARGE)
    ledger = Ledger(state)
    landed, taken = sorted(ledger.entries(), key=lambda e: e.path)
    other = b'{"messages": []}\n' * (LFS_THRESHOLD // 17 + 1)
    mine = (tmp_path / "chunks" / landed.path).read_bytes()
    emulator.commit_files(REPO, {landed.path: mine, taken.path: other}, title="Earlier")
    landed.sha256 = ""
    ledger.put([landed])
    assert await uploader(make_config(url), state, tmp_path).reconcile() == 1
    statuses = {e.path: e.status for e in ledger.entries()}
    assert statuses == {landed.path: "committed", taken.path: "conflict"}
    assert emulator.files(REPO)[taken.path] == other


async def test_the_commit_budget_holds_across_restarts(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    emulator.max_commits_per_hour = 2  # the Hub would refuse a third: it must never be asked
    await make_chunks(tmp_path, state, 4)
    # Three files in a commit: the card, one chunk and its provenance.
    config = make_config(url, max_files_per_commit=3, max_commits_per_hour=2)
    clock = Clock(2_000_000.0)
    emulator.clock = clock
    first = uploader(config, state, tmp_path, clock)
    report = await first.run()
    assert (report.commits, report.pending) == (2, 2)
    assert report.paused_until == pytest.approx(clock.now + 3600)
    metrics = first.telemetry()  # what /metrics exports as resume_collector_upload_*
    assert (metrics["pending_chunks"], metrics["commits"], metrics["failures"]) == (2, 2, 0)
    assert metrics["paused_seconds"] == pytest.approx(3600)
    clock.now += 1800
    again = await uploader(config, state, tmp_path, clock).run()  # a restart keeps the budget
    assert (again.commits, again.pending) == (0, 2)
    clock.now += 1801
    last = await uploader(config, state, tmp_path, clock).run()
    assert (last.commits, last.pending) == (2, 0)
    times = emulator.commit_times[("dataset", REPO)]
    assert all(len([t for t in times if s <= t < s + 3600]) <= 2 for s in times)
    assert emulator.requests.count(("commit", f"/api/datasets/{REPO}/commit/main")) == 4


async def test_a_hub_quota_refusal_pauses_the_uploader_instead_of_hammering(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    emulator.max_commits_per_hour = 1
    await make_chunks(tmp_path, state, 2)
    config = make_config(url, max_files_per_commit=2)
    up = uploader(config, state, tmp_path)
    report = await up.run()
    assert (report.committed, report.pending) == (1, 1)
    assert report.paused_until is not None and report.paused_until > time.time() + 3000
    assert "429" in report.error
    commits_asked = [r for r in emulator.requests if r[0] == "commit"]
    assert len(commits_asked) == 2  # the refused one was not retried
    assert (await up.run()).pending == 1  # still paused: nothing asked
    assert len([r for r in emulator.requests if r[0] == "commit"]) == 2


async def test_a_429_with_only_the_hubs_ratelimit_header_pauses_the_uploader(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    """`RateLimit: "api";r=0;t=250` and no `Retry-After`: longer than a retry wait, a pause."""
    emulator, url = hub
    await make_chunks(tmp_path, state, 1)
    emulator.create_repo(REPO)
    emulator.inject(HubFault(status=429, rate_limit_reset=250))
    up = uploader(make_config(url), state, tmp_path)
    report = await up.run()
    assert (report.committed, report.pending) == (0, 1)
    assert report.paused_until == pytest.approx(time.time() + 250, abs=5)
    assert [r[0] for r in emulator.requests].count("commit") == 1  # not retried
    assert (await up.run()).pending == 1  # still paused: nothing asked
    assert [r[0] for r in emulator.requests].count("commit") == 1


async def test_a_different_file_under_a_chunk_name_is_never_overwritten(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    await make_chunks(tmp_path, state, 2)
    taken = chunk_paths(state)[0]
    emulator.commit_files(REPO, {taken: b'{"messages": []}\n'}, title="Someone else")
    report = await uploader(make_config(url), state, tmp_path).run()
    assert (report.committed, report.conflicts) == (1, 1)
    assert emulator.files(REPO)[taken] == b'{"messages": []}\n'
    conflict = Ledger(state).get(taken)
    assert conflict is not None and conflict.status == "conflict"
    assert (tmp_path / "chunks" / taken).exists()  # kept on disk


async def test_instances_sharing_a_state_store_each_upload_their_own_chunks(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    config = make_config(url)
    folders = {name: tmp_path / name for name in ("one", "two")}
    for name, folder in folders.items():
        roller = ChunkRoller(folder, state, config.upload, get_logger(), instance=name)
        await roller.open()
        roller.write(render([example(i) for i in range(3)]))  # the same dataset on both
        await roller.close_now(everything=True)
    paths = chunk_paths(state)
    assert paths == [
        "data/train/local__advice__one-00001.jsonl",
        "data/train/local__advice__two-00001.jsonl",
    ]
    log = get_logger()
    for name, folder in folders.items():
        up = Uploader(
            config,
            HubTarget(config.upload, log),
            state,
            log,
            chunks_root=folder / "chunks",
            instance=name,
        )
        await up.reconcile()
        report = await up.run()
        assert (report.committed, report.error) == (1, "")  # its own, and the other's untouched
    assert_each_chunk_once(emulator, state)
    _, tables = read_card(emulator.files(REPO)["README.md"].decode())
    assert tables["Splits"][-1] == ["**total**", "2", "6"]  # the card counts both instances


def read_card(text: str) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    """The front matter, and each table of the body by its section title."""
    _, front, body = text.split("---\n", 2)
    tables: dict[str, list[list[str]]] = {}
    section = ""
    for line in body.splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("| ") and not line.startswith("| ---"):
            tables.setdefault(section, []).append([c.strip() for c in line.strip("|").split(" | ")])
    return yaml.safe_load(front), tables


async def test_the_card_counts_match_the_files(
    tmp_path: Path, state: SqliteStateStore, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    await make_chunks(tmp_path, state, 7, per_chunk=3)
    state.commit({}, {("inbox", "local/set-0", "drop:too_short"): 4})
    await uploader(make_config(url, max_files_per_commit=4), state, tmp_path).run()
    files = emulator.files(REPO)
    text = files["README.md"].decode()
    # Rendered without huggingface_hub's `DatasetCard` (which imports the whole API client):
    # the Hub's own class parses it and gives the same text back, byte for byte.
    assert str(DatasetCard(text)) == text
    meta, tables = read_card(text)
    records: Counter[str] = Counter()
    by_dataset: Counter[tuple[str, str]] = Counter()
    for path, data in files.items():
        if path.startswith("data/"):
            split, name = path.split("/")[1:]
            count = len(data.decode().splitlines())
            records[split] += count
            by_dataset[(name.rsplit("-", 1)[0].replace("__", "/"), split)] += count
    splits = {row[0]: (int(row[1]), int(row[2])) for row in tables["Splits"][1:]}
    assert splits["**total**"] == (7, sum(records.values()))
    for split in ("train", "validation", "test"):
        assert splits[split][1] == records[split]
    header, *rows = tables["Sources"]
    seen: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for split in ("train", "validation", "test"):
            seen[(row[1], split)] += int(row[header.index(split)])
    assert seen == by_dataset
    assert {row[0]: row[2] for row in rows} == {"inbox": "CC-BY-4.0", "other": "MIT"}
    assert meta["license"] == ["cc-by-4.0", "mit"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"] == [
        {"split": s, "path": f"data/{s}/*.jsonl"} for s in ("train", "validation", "test")
    ]
    assert ["inbox", "local/set-0", "too_short", "4"] in tables["Dropped records"]


# --- the folder target ------------------------------------------------------------------------


async def test_the_folder_target_loads_with_datasets_by_files_and_by_the_card(
    tmp_path: Path, state: SqliteStateStore
) -> None:
    from datasets import load_dataset

    await make_chunks(tmp_path, state, 6, per_chunk=4)
    report = await uploader(make_config(), state, tmp_path).run()
    assert report.committed == 6
    published = tmp_path / "published"
    expected = Counter()
    for entry in Ledger(state).entries():
        expected[entry.split] += entry.records
    splits = ("train", "validation", "test")
    by_files = load_dataset(
        "json",
        data_files={s: str(published / "data" / s / "*.jsonl") for s in splits},
        cache_dir=str(tmp_path / "hf-cache"),
    )
    by_card = load_dataset(str(published), cache_dir=str(tmp_path / "hf-cache"))
    for loaded in (by_files, by_card):
        assert {s: loaded[s].num_rows for s in splits} == dict(expected)
        assert loaded["train"].column_names == ["messages"]
    # Running again finds everything there: nothing is copied twice, the card is unchanged.
    card = (published / "README.md").read_bytes()
    again = await uploader(make_config(), state, tmp_path).run()
    assert (again.committed, again.commits) == (0, 0)
    assert (published / "README.md").read_bytes() == card


async def test_the_folder_target_links_the_closed_chunks_and_copies_across_file_systems(
    tmp_path: Path, state: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A closed chunk never changes: on the same file system it is published by a hard link,
    # without a byte copied, and stays when the local chunk goes.
    await make_chunks(tmp_path, state, 2, per_chunk=3)
    chunks = {p.relative_to(tmp_path / "chunks"): p for p in (tmp_path / "chunks").rglob("*.jsonl")}
    closed = {path: (file.stat().st_ino, file.read_bytes()) for path, file in chunks.items()}
    closed = {p: c for p, c in closed.items() if p.parts[0] in ("data", "provenance")}
    await uploader(make_config(), state, tmp_path).run()
    published = tmp_path / "published"
    for path, (inode, data) in closed.items():
        assert (published / path).stat().st_ino == inode, path
        assert (published / path).read_bytes() == data

    def no_link(source: object, target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    other = tmp_path / "other"
    other.mkdir()
    other_state = SqliteStateStore(other / "state.sqlite3")
    await make_chunks(other, other_state, 1, per_chunk=3)
    copied = {p: p.read_bytes() for p in (other / "chunks" / "data").rglob("*.jsonl")}
    await uploader(make_config(), other_state, other).run()
    for file, data in copied.items():
        assert (other / "published" / file.relative_to(other / "chunks")).read_bytes() == data


# --- the daemon and the command ---------------------------------------------------------------


def write_pairs(path: Path, count: int) -> None:
    with path.open("a") as handle:
        for i in range(count):
            handle.write(
                json.dumps(
                    {
                        "original": f"Maintained billing service number {i} for the team",
                        "improved": f"Cut billing errors of service number {i} by half in a year",
                    }
                )
                + "\n"
            )


def published_bullets(files: dict[str, bytes]) -> list[str]:
    out = []
    for path, data in files.items():
        if path.startswith("data/"):
            out += [json.loads(line)["messages"][1]["content"] for line in data.splitlines()]
    return out


def test_kill_9_between_commit_and_ledger_then_restart_publishes_each_chunk_once(
    tmp_path: Path, data_dir: Path, hub: tuple[HubEmulator, str]
) -> None:
    emulator, url = hub
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "pairs.jsonl", 40)
    config = inbox_config(
        tmp_path,
        data_dir,
        inbox,
        f'repo_id = "{REPO}"\nendpoint = "{url}"\ntoken_env = "{TOKEN_ENV}"\n'
        "max_records = 5\nmax_age = 1.0\ninterval = 0.3\nmax_files_per_commit = 3\n"
        "retry = { initial_wait = 0.05, max_wait = 0.5 }",
    )
    log = (tmp_path / "run.log").open("ab")
    crashed = subprocess.run(
        crashing_command("after_commit", "run", "--config", str(config)),
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    assert crashed.returncode == -signal.SIGKILL
    landed = [p for p in emulator.files(REPO) if p.startswith("data/")]
    assert landed, "the first commit landed before the kill"
    daemon = subprocess.Popen(
        collector_command("run", "--config", str(config)),
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Chunks close by count, the last ones by age (1 s): every record gets published.
        wait_for(lambda: len(published_bullets(emulator.files(REPO))) == 40, 40)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
    store = SqliteStateStore(Path(data_dir) / "state.sqlite3")
    try:
        ledger = Ledger(store).entries()
        assert all(e.status == "committed" for e in ledger)
        for path in landed:
            assert emulator.writes(REPO, path) == [Ledger(store).get(path).commit]  # type: ignore[union-attr]
    finally:
        store.close()
    for entry in ledger:
        assert len(emulator.writes(REPO, entry.path)) == 1
    bullets = published_bullets(emulator.files(REPO))
    assert len(bullets) == len(set(bullets))  # nothing twice
    open_records = sum(
        len(p.read_text().splitlines()) for p in (data_dir / "chunks" / "open").rglob("*.jsonl")
    )
    assert len(bullets) + open_records == 40  # nothing lost


def test_once_publishes_every_record_to_the_folder_and_load_dataset_reads_it(
    tmp_path: Path, data_dir: Path
) -> None:
    from datasets import load_dataset

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "pairs.jsonl", 120)
    config = inbox_config(tmp_path, data_dir, inbox, "max_records = 25")
    done = subprocess.run(
        collector_command("once", "--config", str(config)),
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode()[-2000:]
    published = data_dir / "published"
    dataset = load_dataset(str(published), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(dataset) == ["test", "train", "validation"]
    assert sum(d.num_rows for d in dataset.values()) == 120
    meta, _ = read_card((published / "README.md").read_text())
    assert meta["license"] == "cc-by-4.0"
    assert len(list((published / "data" / "train").glob("*.jsonl"))) >= 4


def run_on_a_terminal(command: list[str]) -> tuple[subprocess.CompletedProcess[bytes], str]:
    """Run with stderr on a pseudo-terminal (as a person at a shell would); what it drew."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    primary, secondary = pty.openpty()
    # A new pseudo-terminal is 0 columns wide: give it a person's 80x24.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    drawn: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(primary, 4096)
            except OSError:
                return
            if not data:
                return
            drawn.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        done = subprocess.run(
            command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=secondary, timeout=60
        )
    finally:
        os.close(secondary)
        reader.join(10)
        os.close(primary)
    return done, b"".join(drawn).decode(errors="replace")


def test_the_upload_command_closes_open_chunks_and_uploads_them(
    tmp_path: Path, data_dir: Path
) -> None:
    inbox = tmp_path / "inbox"
    config = inbox_config(tmp_path, data_dir, inbox, "max_records = 1000")
    store = SqliteStateStore(data_dir / "state.sqlite3")
    try:
        roller = ChunkRoller(data_dir, store, make_config().upload, get_logger())
        import asyncio

        async def fill() -> None:
            await roller.open()
            roller.write(render([example(i, split="train") for i in range(5)]))
            store.commit(await roller.flush())
            await roller.committed()

        asyncio.run(fill())
        lock = ChunksLock(data_dir / "chunks")
        lock.acquire()  # as the running daemon holds it
        busy = subprocess.run(
            collector_command("upload", "--config", str(config)),
            env=subprocess_env(),
            capture_output=True,
            timeout=60,
        )
        assert busy.returncode == 3 and b"in use" in busy.stderr
        lock.release()
    finally:
        store.close()
    done, terminal = run_on_a_terminal(collector_command("upload", "--config", str(config)))
    assert done.returncode == 0, terminal[-2000:]
    assert b"committed 1 chunks (5 records)" in done.stdout
    assert "1/1 [" in terminal  # the progress bar, drawn because stderr is a terminal
    assert "\r" not in busy.stderr.decode()  # none without a terminal
    chunk = data_dir / "published" / "data" / "train" / "local__advice-00001.jsonl"
    assert len(chunk.read_text().splitlines()) == 5
    assert not list((data_dir / "chunks").rglob("*.jsonl"))


def test_the_folder_target_publishes_under_the_data_folder_unless_upload_folder_says_where(
    tmp_path: Path,
) -> None:

    log = get_logger()
    default = parse_config({"service": {"data_dir": str(tmp_path / "data")}})
    assert default.layout().published == tmp_path / "data" / "published"
    target = build_target(default.upload, default.layout().data_dir, log)
    assert isinstance(target, FolderTarget) and target.root == tmp_path / "data" / "published"
    elsewhere = parse_config(
        {"service": {"data_dir": str(tmp_path / "data")}, "upload": {"folder": "/srv/out"}}
    )
    assert elsewhere.layout().published == Path("/srv/out")
    target = build_target(elsewhere.upload, elsewhere.layout().data_dir, log)
    assert isinstance(target, FolderTarget) and target.root == Path("/srv/out")


def test_a_bad_upload_config_names_the_field() -> None:
    from collector.config import ConfigError

    with pytest.raises(ConfigError) as error:
        parse_config({"upload": {"target": "hub"}})
    assert error.value.errors == ["upload: target 'hub' needs repo_id ('owner/name')"]
    with pytest.raises(ConfigError) as error:
        parse_config({"upload": {"max_files_per_commit": 101}})
    assert error.value.errors == ["upload.max_files_per_commit: expected int <= 100"]


async def test_without_a_token_nothing_is_marked_committed(
    tmp_path: Path,
    state: SqliteStateStore,
    hub: tuple[HubEmulator, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = hub
    monkeypatch.delenv(TOKEN_ENV)
    await make_chunks(tmp_path, state, 1)
    report = await uploader(make_config(url), state, tmp_path).run()
    assert "401" in report.error and report.pending == 1
    assert [e.status for e in Ledger(state).entries()] == ["pending"]
    assert (tmp_path / "chunks" / chunk_paths(state)[0]).exists()


async def test_the_upload_command_waits_its_turn_with_a_shared_state(
    tmp_path: Path, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.commands.upload import publish
    from collector.scaleout.upload_lease import UploadLease
    from collector.state.open import open_state_store
    from collector.upload.component import upload_instance

    data_dir = tmp_path / "data"
    config = parse_config(
        {
            "service": {"data_dir": str(data_dir)},
            "state": {"backend": "redis", "url": redis_url, "prefix": redis_prefix},
            "upload": {"target": "folder", "interval": 0.5, "max_records": 3},
            "sources": [{"type": "inbox", "name": "inbox", "license": "CC-BY-4.0"}],
        }
    )
    instance = upload_instance(config)
    state = open_state_store(config.state, instance)
    try:
        roller = ChunkRoller(data_dir, state, config.upload, get_logger(), instance=instance)
        await roller.open()
        roller.write(render([example(i, split="train") for i in range(3)]))
        state.commit(await roller.flush())
        await roller.committed()
        await roller.close()
    finally:
        state.close()
    other = UploadLease.for_config(config, "another-instance", get_logger())
    assert other is not None
    try:
        async with other.exclusive():  # another instance's daemon is uploading
            assert await publish(config, progress_bar=False) == 5
    finally:
        await other.close()
    assert "kept the upload lease" in capsys.readouterr().err
    assert not (data_dir / "published" / "data").exists()
    assert await publish(config, progress_bar=False) == 0
    assert "committed 1 chunks (3 records)" in capsys.readouterr().out
