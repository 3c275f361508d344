"""The Hugging Face source against the Hub emulator and the rows-API emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from huggingface_hub import HfApi

from collector.logging import get_logger
from collector.sandbox import RunningApp, start_app
from collector.sandbox import hf_rows as rows_emulator
from collector.sandbox import hub as hub_emulator
from collector.sandbox.faults import FAULTS, FaultConfig, FaultRule
from collector.sandbox.hf_rows import ROWS, RowsStore
from collector.sandbox.hub import HUB, HubEmulator
from collector.sources.archive import RawArchive
from collector.sources.base import SourceContext
from collector.sources.config import HuggingFaceSourceConfig, RateConfig, RetryConfig
from collector.sources.datasets import DatasetCursor
from collector.sources.huggingface import HuggingFaceSource
from processors.records import RawRecord
from tests.passes import run_pass

RETRY = RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05, secondary_wait=0.05)
CHAT = "MikePfunk28/resume-training-dataset"
RESUMES = "datasetmaster/resumes"
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:e7502eedaf0cba4bdd21d85813cb0d09b134b4abb53355c97c75cc76b5425ae4\nsize 4588\n"
)


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)


async def serve_hub(faults: FaultConfig | None = None, **options: Any) -> RunningApp:
    return await start_app(hub_emulator.create_app(faults, **options), "huggingface")


@pytest.fixture
async def hub() -> AsyncIterator[RunningApp]:
    running = await serve_hub()
    yield running
    await running.stop()


@pytest.fixture
async def rows_api() -> AsyncIterator[RunningApp]:
    running = await start_app(rows_emulator.create_app(), "huggingface_rows")
    yield running
    await running.stop()


def hub_of(running: RunningApp) -> HubEmulator:
    return running.app[HUB]


def make_source(
    hub_url: str,
    data_dir: Path,
    repo_id: str,
    rows_url: str = "http://127.0.0.1:9",
    **overrides: Any,
) -> HuggingFaceSource:
    fields: dict[str, Any] = {
        "name": "hf",
        "repo_id": repo_id,
        "base_url": hub_url,
        "rows_url": rows_url,
        "rate": RateConfig(per_second=500, burst=20),
        "retry": RETRY,
        "timeout": 5.0,
        "batch_size": 100,
    }
    fields.update(overrides)
    context = SourceContext(data_dir=data_dir, log=get_logger())
    return HuggingFaceSource(HuggingFaceSourceConfig(**fields), context)


def paths(running: RunningApp, part: str = "") -> list[str]:
    return [r.path for r in running.app[FAULTS].seen(part)]


# --- files ---------------------------------------------------------------------------------


async def test_the_data_files_of_a_repo_are_read_at_its_commit(
    hub: RunningApp, tmp_path: Path
) -> None:
    result = await run_pass(make_source(hub.url, tmp_path, CHAT))
    assert [r.id for r in result.records] == [f"training_data.jsonl#{i}" for i in range(1, 6)]
    assert {r.dataset for r in result.records} == {CHAT}
    assert result.records[0].payload["messages"][0]["role"] == "system"
    sha = hub_of(hub).repo(CHAT).head
    assert result.records[0].meta["hf_sha"] == sha
    assert f"/datasets/{CHAT}/resolve/{sha}/training_data.jsonl" in paths(hub, "/resolve/")
    assert not any("README.md" in p or ".gitattributes" in p for p in paths(hub, "/resolve/"))
    cursor = DatasetCursor.decode(result.cursors[CHAT])
    assert cursor.version == sha and cursor.complete


async def test_nested_resumes_are_read_whole(hub: RunningApp, tmp_path: Path) -> None:
    result = await run_pass(make_source(hub.url, tmp_path, RESUMES))
    assert len(result.records) == 3
    assert result.records[0].payload["experience"][0]["responsibilities"][0].startswith("Designed")


async def test_an_unchanged_sha_fetches_nothing(hub: RunningApp, tmp_path: Path) -> None:
    first = await run_pass(make_source(hub.url, tmp_path, CHAT))
    hub.app[FAULTS].clear()
    again = await run_pass(make_source(hub.url, tmp_path, CHAT), first.cursors)
    assert again.batches == 0
    assert paths(hub) == [f"/api/datasets/{CHAT}"]


async def test_a_new_commit_is_read_again_with_the_same_record_ids(
    hub: RunningApp, tmp_path: Path
) -> None:
    first = await run_pass(make_source(hub.url, tmp_path, CHAT))
    emulator = hub_of(hub)
    lines = emulator.files(CHAT)["training_data.jsonl"]
    extra = b'{"messages": [{"role": "user", "content": "Improve: did sales"}]}\n'
    emulator.commit_files(CHAT, {"training_data.jsonl": lines + extra})
    second = await run_pass(make_source(hub.url, tmp_path, CHAT), first.cursors)
    assert [r.id for r in second.records] == [f"training_data.jsonl#{i}" for i in range(1, 7)]
    assert DatasetCursor.decode(second.cursors[CHAT]).version == emulator.repo(CHAT).head
    folder = tmp_path / "raw/hf/huggingface" / CHAT
    assert [p.name for p in folder.iterdir()] == [emulator.repo(CHAT).head]


@pytest.mark.parametrize("ref", ["refs/convert/parquet", "refs/pr/3"])
async def test_a_revision_with_slashes_is_asked_for_as_one_quoted_segment_like_the_client(
    hub: RunningApp, tmp_path: Path, ref: str
) -> None:
    emulator = hub_of(hub)
    pinned = emulator.repo(CHAT).head
    emulator.name_ref(CHAT, ref, pinned)
    emulator.commit_files(CHAT, {"later.jsonl": b'{"messages": []}\n'})  # main moves on
    result = await run_pass(make_source(hub.url, tmp_path, CHAT, revision=ref))
    assert result.drops == []
    assert {r.meta["hf_sha"] for r in result.records} == {pinned}
    assert DatasetCursor.decode(result.cursors[CHAT]).version == pinned
    # The real client asks for the same URL and gets the same commit.
    client = HfApi(endpoint=hub.url, token=False)
    info = await asyncio.to_thread(client.dataset_info, CHAT, revision=ref)
    assert info.sha == pinned
    quoted = ref.replace("/", "%2F")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{hub.url}/api/datasets/{CHAT}/revision/{quoted}") as answer:
            assert answer.status == 200
        async with session.get(f"{hub.url}/api/datasets/{CHAT}/revision/{ref}") as answer:
            assert answer.status == 404  # unquoted, the ref is no revision at all


async def test_a_restart_mid_file_resumes_at_the_next_row(hub: RunningApp, tmp_path: Path) -> None:
    full = await run_pass(make_source(hub.url, tmp_path / "full", CHAT))
    before = await run_pass(
        make_source(hub.url, tmp_path / "run", CHAT, batch_size=2), max_batches=1
    )
    assert DatasetCursor.decode(before.cursors[CHAT]).row == 2
    resolves = len(paths(hub, "/resolve/"))
    after = await run_pass(
        make_source(hub.url, tmp_path / "run", CHAT, batch_size=2), before.cursors
    )
    assert [r.id for r in before.records + after.records] == [r.id for r in full.records]
    assert len(paths(hub, "/resolve/")) == resolves  # the file on disk was reused


async def test_the_tree_is_followed_through_its_link_pages(tmp_path: Path) -> None:
    running = await serve_hub(tree_page_size=2, seed=None)
    emulator = hub_of(running)
    files = {f"data/part-{i}.jsonl": f'{{"n": {i}}}\n'.encode() for i in range(5)}
    emulator.commit_files("someone/parts", {**files, "README.md": b"# parts\n"})
    try:
        result = await run_pass(make_source(running.url, tmp_path, "someone/parts"))
        tree_pages = len(paths(running, "/tree/"))
    finally:
        await running.stop()
    assert sorted(r.payload["n"] for r in result.records) == [0, 1, 2, 3, 4]
    assert tree_pages >= 3


def parquet_bytes(table: list[dict[str, Any]]) -> bytes:
    import io

    import pyarrow
    import pyarrow.parquet

    out = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(table), out, row_group_size=2)
    return out.getvalue()


async def test_files_are_chosen_by_glob_from_the_config(tmp_path: Path) -> None:
    running = await serve_hub(seed=None)
    emulator = hub_of(running)
    table = [{"original": f"bullet {i}", "improved": f"better bullet {i}"} for i in range(5)]
    emulator.commit_files(
        "someone/mixed",
        {
            "train.jsonl": b'{"a": 1}\n',
            "test.jsonl": b'{"a": 2}\n',
            "data/train-00000.parquet": parquet_bytes(table),
            "broken.parquet": b"PAR1",
            "notes.txt": b"not data",
        },
    )
    try:
        picked = await run_pass(
            make_source(running.url, tmp_path, "someone/mixed", files=["train*"])
        )
        parquet = await run_pass(
            make_source(running.url, tmp_path / "p", "someone/mixed", files=["*.parquet"])
        )
        other = await run_pass(
            make_source(running.url, tmp_path / "o", "someone/mixed", files=["*.txt"])
        )
    finally:
        await running.stop()
    assert [r.payload for r in picked.records] == [{"a": 1}]
    # Parquet (the format most Hub datasets are in) is read a row group at a time.
    assert [r.payload for r in parquet.records] == table
    assert parquet.records[0].id == "data/train-00000.parquet#1"
    assert [(d.record_id, d.reason) for d in parquet.drops] == [
        ("broken.parquet#1", "malformed_parquet")
    ]
    assert other.reasons() == ["unsupported_format"]


async def test_a_git_lfs_pointer_and_truncated_json_are_counted(tmp_path: Path) -> None:
    running = await serve_hub(seed=None)
    hub_of(running).commit_files(
        "someone/broken",
        {
            "big.jsonl": LFS_POINTER,
            "cut.jsonl": b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut he',
        },
    )
    try:
        result = await run_pass(make_source(running.url, tmp_path, "someone/broken"))
    finally:
        await running.stop()
    assert [r.payload for r in result.records] == [{"a": 1}, {"a": 2}]
    assert [(d.record_id, d.reason) for d in result.drops] == [
        ("big.jsonl", "lfs_pointer"),
        ("cut.jsonl#3", "truncated_json"),
    ]


async def test_every_injected_fault_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    faults = FaultConfig(
        sequence=[
            FaultRule("rate_limit", path="/api/datasets", count=1, retry_after=0.05),
            FaultRule("truncated_json", path=f"/api/datasets/{CHAT}", count=1),
            FaultRule("server_error", path="/tree/", count=2),
            FaultRule("reset", path="/resolve/", count=1),
            FaultRule("truncated_json", path="/resolve/", count=1),  # a body cut short
            FaultRule("slow_body", path="/resolve/", count=1),
        ],
        slow_seconds=0.2,
    )
    running = await serve_hub(faults)
    try:
        result = await run_pass(make_source(running.url, tmp_path, CHAT))
        injected = dict(running.app[FAULTS].injected)
    finally:
        await running.stop()
    assert [r.id for r in result.records] == [f"training_data.jsonl#{i}" for i in range(1, 6)]
    assert result.drops == []
    assert injected == {
        "rate_limit": 1,
        "truncated_json": 2,
        "server_error": 2,
        "reset": 1,
        "slow_body": 1,
    }


async def test_a_429_with_only_the_hubs_ratelimit_header_is_waited_out(tmp_path: Path) -> None:
    """The Hub may answer 429 with `RateLimit: "api";r=0;t=1` and no `Retry-After`."""
    faults = FaultConfig(sequence=[FaultRule("rate_limit", path="/api/datasets", count=1)])
    running = await serve_hub(faults)
    try:
        result = await run_pass(make_source(running.url, tmp_path, CHAT))
        first, second = running.app[FAULTS].seen("/api/datasets")[:2]
    finally:
        await running.stop()
    assert first.status == 429
    assert second.at - first.at >= 1.0  # t=1, not the 0.01 s backoff of RETRY
    assert len(result.records) == 5


async def test_an_unknown_or_private_repo_is_reported_once(
    hub: RunningApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await run_pass(make_source(hub.url, tmp_path, "nobody/nothing"))
    assert first.reasons() == ["dataset_not_found"]
    again = await run_pass(make_source(hub.url, tmp_path, "nobody/nothing"), first.cursors)
    assert again.drops == []
    emulator = hub_of(hub)
    emulator.create_repo("someone/secret", private=True)
    emulator.commit_files("someone/secret", {"x.jsonl": b'{"a": 1}\n'})
    hidden = await run_pass(make_source(hub.url, tmp_path / "s", "someone/secret"))
    assert hidden.reasons() == ["dataset_not_found"]
    monkeypatch.setenv("HF_TOKEN", "hf_any_token")
    shown = await run_pass(make_source(hub.url, tmp_path / "t", "someone/secret"))
    assert [r.payload for r in shown.records] == [{"a": 1}]


def test_a_repo_id_that_is_not_owner_slash_name_fails_at_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="owner/dataset"):
        make_source("http://127.0.0.1:9", tmp_path, "no-owner")


# --- the rows API --------------------------------------------------------------------------


async def test_the_rows_api_pages_by_100_to_the_last_row(
    hub: RunningApp, rows_api: RunningApp, tmp_path: Path
) -> None:
    store: RowsStore = rows_api.app[ROWS]
    store.set_rows(RESUMES, [{"n": i, "text": f"row {i}"} for i in range(250)])
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    result = await run_pass(source)
    assert [r.payload["n"] for r in result.records] == list(range(250))
    assert result.records[0].id == "rows:default/train#1"
    queries = [r.query for r in rows_api.app[FAULTS].seen("/rows")]
    assert len(queries) == 3 and all("length=100" in q for q in queries)
    assert DatasetCursor.decode(result.cursors[RESUMES]).complete


async def test_rows_of_a_partial_conversion_are_kept_counted_and_logged_once_a_pass(
    hub: RunningApp, rows_api: RunningApp, tmp_path: Path
) -> None:
    store: RowsStore = rows_api.app[ROWS]
    store.set_rows(RESUMES, [{"n": i, "text": f"row {i}"} for i in range(150)])
    store.partial.add(RESUMES)
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    with structlog.testing.capture_logs() as logs:
        result = await run_pass(source)
    assert [r.payload["n"] for r in result.records] == list(range(150))
    assert source.telemetry() == {"rows_partial_pages": 2.0}
    warned = [e for e in logs if e["event"] == "hf_rows_partial"]
    assert len(warned) == 1 and warned[0]["num_rows_total"] == 150
    assert [e["partial"] for e in logs if e["event"] == "hf_rows_read"] == [True]


async def test_rows_api_pages_are_archived_and_rebuild_the_same_records(
    hub: RunningApp, rows_api: RunningApp, tmp_path: Path
) -> None:
    store: RowsStore = rows_api.app[ROWS]
    store.set_rows(RESUMES, [{"n": i, "text": f"row {i}"} for i in range(150)])
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    live = await run_pass(source)
    rebuilt = []
    entries = [entry for _, entry in source.archive.entries()]
    assert len(entries) == 2  # one per page of the viewer
    for entry in entries:
        assert not isinstance(entry, Exception)
        records, drops = source.records_from_archive(entry)
        assert drops == []
        rebuilt += records
    assert sorted((r.id, r.payload["n"]) for r in rebuilt) == sorted(
        (r.id, r.payload["n"]) for r in live.records
    )


async def test_rows_api_resumes_from_its_offset_and_skips_an_unchanged_sha(
    hub: RunningApp, rows_api: RunningApp, tmp_path: Path
) -> None:
    rows_api.app[ROWS].set_rows(RESUMES, [{"n": i} for i in range(230)])
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    before = await run_pass(source, max_batches=1)
    assert DatasetCursor.decode(before.cursors[RESUMES]).offset == 100
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    after = await run_pass(source, before.cursors)
    assert [r.payload["n"] for r in before.records + after.records] == list(range(230))
    rows_api.app[FAULTS].clear()
    source = make_source(hub.url, tmp_path, RESUMES, rows_url=rows_api.url, use_rows_api=True)
    assert (await run_pass(source, after.cursors)).batches == 0
    assert rows_api.app[FAULTS].seen("/rows") == []


async def test_rows_with_truncated_cells_are_dropped_not_half_read(
    hub: RunningApp, tmp_path: Path
) -> None:
    running = await start_app(rows_emulator.create_app(max_cell_chars=40), "huggingface_rows")
    try:
        source = make_source(hub.url, tmp_path, CHAT, rows_url=running.url, use_rows_api=True)
        result = await run_pass(source)
    finally:
        await running.stop()
    assert result.records == []
    assert set(result.reasons()) == {"truncated_cell"} and len(result.drops) == 5
    assert result.drops[0].detail == "the viewer truncated messages"


async def test_a_gated_dataset_needs_the_token(
    hub: RunningApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await start_app(rows_emulator.create_app(gated=[RESUMES]), "huggingface_rows")
    try:
        source = make_source(hub.url, tmp_path, RESUMES, rows_url=running.url, use_rows_api=True)
        refused = await run_pass(source)
        monkeypatch.setenv("HF_TOKEN", "hf_sandbox_token")
        source = make_source(hub.url, tmp_path, RESUMES, rows_url=running.url, use_rows_api=True)
        allowed = await run_pass(source, refused.cursors)
    finally:
        await running.stop()
    assert refused.reasons() == ["unauthorized"]
    assert len(allowed.records) == 3


async def test_rows_api_faults_are_retried(hub: RunningApp, tmp_path: Path) -> None:
    faults = FaultConfig(
        sequence=[
            FaultRule("rate_limit", path="/rows", count=1, retry_after=0.05),
            FaultRule("truncated_json", path="/rows", count=1),
            FaultRule("server_error", path="/rows", count=1),
        ]
    )
    running = await start_app(rows_emulator.create_app(faults), "huggingface_rows")
    try:
        source = make_source(hub.url, tmp_path, CHAT, rows_url=running.url, use_rows_api=True)
        result = await run_pass(source)
    finally:
        await running.stop()
    assert len(result.records) == 5 and result.drops == []


async def test_records_rebuilt_from_the_raw_archive_equal_the_live_ones(
    hub: RunningApp, tmp_path: Path
) -> None:
    live = await run_pass(make_source(hub.url, tmp_path, CHAT))
    source = make_source(hub.url, tmp_path, CHAT)
    rebuilt: list[RawRecord] = []
    for _, entry in RawArchive(tmp_path / "raw", "hf").entries():
        assert not isinstance(entry, Exception)
        records, _ = source.records_from_archive(entry)
        rebuilt += records
    await source.close()
    assert [(r.id, r.payload) for r in rebuilt] == [(r.id, r.payload) for r in live.records]
