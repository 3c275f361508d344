"""The GitHub source against the local emulator, through the real client code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector.logging import get_logger
from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.faults import FaultConfig, FaultRule
from collector.sandbox.github import ABUSE_DETECTION, SECONDARY_LIMIT, STORE, GitHubStore
from collector.sources import build_source
from collector.sources.base import SourceContext
from collector.sources.config import GitHubSourceConfig, RateConfig, RetryConfig
from collector.sources.github import GitHubSource, SearchCursor
from processors.records import RawRecord
from tests.passes import run_pass

RETRY = RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05, secondary_wait=0.05)
ALL_RESUMES = 10  # the sample data has 11 repositories; one holds a package.json, not a resume


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GH_TEST_TOKEN", "ghp_test_token")
    return "ghp_test_token"


@pytest.fixture
async def emulator() -> AsyncIterator[RunningApp]:
    running = await start_emulator("github")
    yield running
    await running.stop()


def store_of(running: RunningApp) -> GitHubStore:
    return running.app[STORE]


def make_source(url: str, data_dir: Path, **overrides: Any) -> GitHubSource:
    fields: dict[str, Any] = {
        "name": "gh-resumes",
        "base_url": url,
        "token_env": "GH_TEST_TOKEN",
        "per_page": 3,
        "rate": RateConfig(per_second=500, burst=10),
        "retry": RETRY,
        "timeout": 5.0,
        "recipe": {"name": "resume_json"},
    }
    fields.update(overrides)
    context = SourceContext(data_dir=data_dir, log=get_logger())
    source = build_source(msgspec_convert(fields), context)
    assert isinstance(source, GitHubSource)
    return source


def msgspec_convert(fields: dict[str, Any]) -> GitHubSourceConfig:
    import msgspec

    return msgspec.convert(fields, GitHubSourceConfig, from_attributes=True)


def searches(running: RunningApp, kind: str = "repositories") -> list[str]:
    return [r.query for r in running.faults.seen(f"/search/{kind}")]


async def test_repository_search_follows_link_pages_to_the_end(
    emulator: RunningApp, data_dir: Path
) -> None:
    result = await run_pass(make_source(emulator.url, data_dir, queries=["topic:jsonresume"]))
    assert len(result.records) == ALL_RESUMES
    assert [d.reason for d in result.drops] == ["not_json_resume"]
    queries = searches(emulator)
    # one probe, then page 1 (no page parameter: we never build page URLs), then Link pages
    assert len(queries) == 1 + 4
    assert "&page=" not in queries[1] and all("&page=" in q for q in queries[2:])
    record = next(r for r in result.records if r.id == "jdoe-dev/resume/resume.json")
    assert record.payload["work"][0]["highlights"]
    assert record.dataset == "github/json-resume"
    assert record.meta["person_names"] == ["jdoe-dev", "Jane Doe"]
    assert record.meta["license"] in ("MIT", "unknown")


async def test_code_search_sends_the_token_and_reads_every_file(
    emulator: RunningApp, data_dir: Path, token: str
) -> None:
    source = make_source(emulator.url, data_dir, code_queries=["filename:resume.json"])
    result = await run_pass(source)
    assert len(result.records) == ALL_RESUMES
    assert set(store_of(emulator).tokens_seen) == {token}


async def test_code_search_without_a_token_is_a_counted_failure(
    emulator: RunningApp, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GH_TEST_TOKEN")
    result = await run_pass(
        make_source(emulator.url, data_dir, code_queries=["filename:resume.json"])
    )
    assert result.records == []
    assert [d.reason for d in result.drops] == ["request_failed"]
    assert "401" in result.drops[0].detail


@pytest.mark.parametrize(
    ("field", "query", "qualifier"),
    [
        ("queries", "topic:jsonresume", "created:"),
        ("code_queries", "filename:resume.json", "size:"),
    ],
)
async def test_a_query_over_the_search_cap_is_split_into_ranges(
    data_dir: Path, field: str, query: str, qualifier: str
) -> None:
    # Splitting costs a probe per range: raise the per-minute search limits for this test.
    running = await start_emulator(
        "github", search_cap=4, search_limit=1000, code_search_limit=1000
    )
    try:
        source = make_source(
            running.url, data_dir, search_cap=4, split_queries=True, **{field: [query]}
        )
        result = await run_pass(source)
        assert len(result.records) == ALL_RESUMES
        kind = "repositories" if field == "queries" else "code"
        assert any(qualifier in q for q in searches(running, kind))
        assert all(r.status == 200 for r in running.faults.requests)  # never past the cap
    finally:
        await running.stop()


async def test_without_splitting_only_the_reachable_results_are_read(data_dir: Path) -> None:
    running = await start_emulator("github", search_cap=4)
    try:
        source = make_source(running.url, data_dir, search_cap=4, queries=["topic:jsonresume"])
        result = await run_pass(source)
        assert len(result.records) + len(result.drops) == 4
    finally:
        await running.stop()


async def test_a_pass_resumes_from_its_saved_cursor(emulator: RunningApp, data_dir: Path) -> None:
    first = await run_pass(
        make_source(emulator.url, data_dir, queries=["topic:jsonresume"]), max_batches=2
    )
    cursor = SearchCursor.decode(first.cursors["repositories:topic:jsonresume"])
    assert cursor.next and cursor.pending
    rest = await run_pass(
        make_source(emulator.url, data_dir, queries=["topic:jsonresume"]), first.cursors
    )
    first_ids = {r.id for r in first.records}
    rest_ids = {r.id for r in rest.records}
    assert first_ids.isdisjoint(rest_ids)
    assert len(first_ids | rest_ids) == ALL_RESUMES
    done = SearchCursor.decode(rest.cursors["repositories:topic:jsonresume"])
    assert done.since and not done.pending and not done.next


async def test_incremental_passes_use_pushed_and_etags(
    emulator: RunningApp, data_dir: Path
) -> None:
    store = store_of(emulator)
    config = {"queries": ["topic:jsonresume"], "code_queries": ["filename:resume.json"]}
    full = await run_pass(make_source(emulator.url, data_dir, **config))
    assert len(full.records) == ALL_RESUMES  # each file once, though both searches find it
    assert sum(1 for k in full.cursors if k.startswith("etag:")) == ALL_RESUMES + 1
    store.add_file(
        "newbie/resume",
        "resume.json",
        b'{"basics": {"name": "New Person"}, "work": []}',
        topics=["jsonresume"],
        pushed=time.time() + 10,
    )
    again = await run_pass(make_source(emulator.url, data_dir, **config), full.cursors)
    assert any("pushed:>" in q for q in searches(emulator))
    # only the new repository; every old file the code search finds again is a free 304
    assert [r.id for r in again.records] == ["newbie/resume/resume.json"]
    assert store.not_modified == ALL_RESUMES + 1


async def test_large_files_are_read_through_download_url(data_dir: Path) -> None:
    running = await start_emulator("github", inline_limit=100)
    try:
        result = await run_pass(
            make_source(running.url, data_dir, code_queries=["filename:resume.json"])
        )
        assert len(result.records) == ALL_RESUMES
        assert len(running.faults.seen("/raw/")) == ALL_RESUMES  # the package.json is inline
    finally:
        await running.stop()


async def test_an_exhausted_search_limit_waits_for_the_reset_instead_of_failing(
    data_dir: Path,
) -> None:
    running = await start_emulator("github", search_limit=3, window_seconds=1.0)
    try:
        result = await run_pass(make_source(running.url, data_dir, queries=["topic:jsonresume"]))
        assert len(result.records) == ALL_RESUMES
        assert store_of(running).refused["search"] == 0  # paused on remaining 0, never refused
    finally:
        await running.stop()


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule("rate_limit", path="/search", count=2, status=403, retry_after=0.05),
        FaultRule("rate_limit", path="/search", count=2, status=403, retry_after=None),
        FaultRule("rate_limit", path="/search", count=2, status=429, retry_after=0.05),
        FaultRule("rate_limit", path="/search", count=2, status=429, retry_after=None),
        FaultRule("server_error", path="/contents", count=2),
        FaultRule("reset", path="/contents", count=1),
    ],
    ids=lambda r: f"{r.fault}-{r.status}-{r.retry_after}",
)
async def test_secondary_limits_and_faults_are_retried(data_dir: Path, rule: FaultRule) -> None:
    running = await start_emulator("github", FaultConfig(sequence=[rule]))
    try:
        source = make_source(running.url, data_dir, queries=["topic:jsonresume"])
        result = await run_pass(source)
        assert len(result.records) == ALL_RESUMES
        assert running.faults.injected[rule.fault] == rule.count
    finally:
        await running.stop()


@pytest.mark.parametrize("message", [ABUSE_DETECTION, SECONDARY_LIMIT])
async def test_an_abuse_detection_403_without_retry_after_is_a_secondary_limit_waited_out(
    emulator: RunningApp, data_dir: Path, message: str
) -> None:
    store_of(emulator).secondary_refusals += [message, message]
    retry = RetryConfig(attempts=4, initial_wait=0.001, max_wait=0.001, secondary_wait=0.1)
    source = make_source(emulator.url, data_dir, queries=["topic:jsonresume"], retry=retry)
    result = await run_pass(source)
    assert len(result.records) == ALL_RESUMES
    assert store_of(emulator).secondary_refused == 2
    first, second, third = emulator.faults.seen("/search/repositories")[:3]
    assert (first.status, second.status, third.status) == (403, 403, 200)
    assert second.at - first.at >= 0.1  # the secondary wait, then doubled
    assert third.at - second.at >= 0.2


async def test_a_403_that_is_no_rate_limit_is_not_retried(
    emulator: RunningApp, data_dir: Path
) -> None:
    store_of(emulator).secondary_refusals.append("Resource not accessible by integration")
    result = await run_pass(make_source(emulator.url, data_dir, queries=["topic:jsonresume"]))
    assert [r.status for r in emulator.faults.seen("/search/repositories")] == [403]
    assert result.records == []


async def test_a_truncated_file_is_counted_and_the_rest_proceeds(
    emulator: RunningApp, data_dir: Path
) -> None:
    emulator.faults.add(FaultRule("truncated_json", path="/repos/jdoe-dev/", count=0))
    result = await run_pass(make_source(emulator.url, data_dir, queries=["topic:jsonresume"]))
    assert len(result.records) == ALL_RESUMES - 1
    assert sorted(d.reason for d in result.drops) == ["malformed_response", "not_json_resume"]


async def test_the_token_goes_only_to_the_api_origin(data_dir: Path) -> None:
    source = make_source("http://127.0.0.1:9", data_dir)
    assert source._auth("http://127.0.0.1:9/repos/a/b") == {
        "Authorization": "Bearer ghp_test_token"
    }
    assert source._auth("https://raw.example.com/a/b") == {}
    await source.close()


async def test_records_rebuilt_from_the_archive_equal_the_live_ones(
    emulator: RunningApp, data_dir: Path
) -> None:
    source = make_source(emulator.url, data_dir, code_queries=["filename:resume.json"])
    live = await run_pass(source)
    rebuilt: list[RawRecord] = []
    for _, entry in source.archive.entries():
        assert not isinstance(entry, Exception)
        records, _ = source.records_from_archive(entry)
        rebuilt += records
    assert sorted(rebuilt, key=lambda r: r.id) == sorted(live.records, key=lambda r: r.id) or [
        r.payload for r in sorted(rebuilt, key=lambda r: r.id)
    ] == [r.payload for r in sorted(live.records, key=lambda r: r.id)]
    assert len(rebuilt) == ALL_RESUMES
