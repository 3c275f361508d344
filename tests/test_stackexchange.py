"""The Stack Exchange source against the local emulator, through the real client code."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import itertools
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.http import HttpClient
from collector.logging import get_logger
from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.faults import FaultConfig, FaultRule
from collector.sandbox.stackexchange import STORE, StackExchangeStore
from collector.sources.base import SourceContext
from collector.sources.config import RateConfig, RetryConfig, StackExchangeSourceConfig
from collector.sources.stackexchange import Cursor, StackExchangeSource
from processors.config import RecipeConfig
from processors.formatters.qa import QaFormatter, html_to_text
from processors.records import RawRecord
from tests.passes import run_pass

RETRY = RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05, secondary_wait=0.05)


@pytest.fixture
async def emulator() -> AsyncIterator[RunningApp]:
    running = await start_emulator("stackexchange")
    yield running
    await running.stop()


def store_of(running: RunningApp) -> StackExchangeStore:
    return running.app[STORE]


def make_source(url: str, data_dir: Path, **overrides: Any) -> StackExchangeSource:
    fields: dict[str, Any] = {
        "name": "se-workplace",
        "site": "workplace",
        "tags": ["resume"],
        "base_url": f"{url}/2.3",
        "pagesize": 10,
        "rate": RateConfig(per_second=200, burst=5),
        "retry": RETRY,
        "timeout": 5.0,
    }
    fields.update(overrides)
    context = SourceContext(data_dir=data_dir, log=get_logger())
    return StackExchangeSource(StackExchangeSourceConfig(**fields), context)


def tagged(store: StackExchangeStore, tag: str) -> set[int]:
    return {q["question_id"] for q in store.questions["workplace"].values() if tag in q["tags"]}


def ids(records: list[RawRecord]) -> set[int]:
    return {int(r.id.rsplit("/", 1)[1]) for r in records}


async def test_pagination_reads_every_question_and_its_answers_to_the_end(
    emulator: RunningApp, data_dir: Path
) -> None:
    store = store_of(emulator)
    result = await run_pass(make_source(emulator.url, data_dir), {})
    expected = tagged(store, "resume")
    assert len(expected) > 20
    assert ids(result.records) == expected
    assert result.drops == []
    seen = emulator.faults.seen("/2.3/questions")
    question_pages = [r for r in seen if not r.path.endswith("/answers")]
    # Paged by key: after the first page, each one repeats the last question read (skipped).
    assert len(question_pages) == 1 + math.ceil((len(expected) - 10) / 9)
    for record in result.records:
        question = record.payload["question"]
        assert "body" in question  # filter=withbody
        want = {
            a["answer_id"]
            for a in store.answers["workplace"].values()
            if a["question_id"] == question["question_id"]
        }
        assert {a["answer_id"] for a in record.payload["answers"]} == want
        assert record.dataset == "stackexchange/workplace"
        assert question["owner"]["display_name"] in " ".join(record.meta["person_names"]) or (
            "&#39;" in question["owner"]["display_name"]
        )


async def test_answers_are_asked_for_many_questions_at_once(
    emulator: RunningApp, data_dir: Path
) -> None:
    await run_pass(make_source(emulator.url, data_dir, pagesize=100), {})
    calls = [r for r in emulator.faults.seen("/answers")]
    assert len(calls) == 1
    assert calls[0].path.count(";") >= 20


async def test_a_pass_resumes_from_its_saved_cursor(emulator: RunningApp, data_dir: Path) -> None:
    first = await run_pass(make_source(emulator.url, data_dir, max_pages=2), {})
    # The second page starts at the first one's last question, read already: 10 + 9.
    assert len(first.records) == 19
    cursor = Cursor.decode(first.cursors["workplace:resume"])
    assert cursor.until > 0 and 0 < cursor.upper < cursor.until and cursor.page == 1
    second = await run_pass(make_source(emulator.url, data_dir), first.cursors)
    assert ids(first.records).isdisjoint(ids(second.records))
    assert ids(first.records) | ids(second.records) == tagged(store_of(emulator), "resume")
    done = Cursor.decode(second.cursors["workplace:resume"])
    assert done.until == 0 and done.page == 1 and done.since > 0


async def test_a_question_active_again_mid_pass_makes_none_skipped(
    emulator: RunningApp, data_dir: Path
) -> None:
    # A page number would skip one here: the touched question leaves the pass's window and
    # every later question moves up a place, across the page boundary.
    store = store_of(emulator)
    first = await run_pass(make_source(emulator.url, data_dir, max_pages=1), {})
    assert len(first.records) == 10
    store.touch("workplace", min(ids(first.records)), int(time.time()) + 5)
    rest = await run_pass(make_source(emulator.url, data_dir), first.cursors)
    assert ids(first.records).isdisjoint(ids(rest.records))
    assert ids(first.records) | ids(rest.records) == tagged(store, "resume")


async def test_questions_sharing_one_second_are_each_read_once(
    emulator: RunningApp, data_dir: Path
) -> None:
    store = store_of(emulator)
    wanted = sorted(tagged(store, "resume"))[:25]
    for question_id in wanted:  # more than two pages (of 10) in the same second
        store.touch("workplace", question_id, 1_700_000_000)
    result = await run_pass(make_source(emulator.url, data_dir), {})
    got = [int(r.id.rsplit("/", 1)[1]) for r in result.records]
    assert len(got) == len(set(got))
    assert set(got) == tagged(store, "resume")


async def test_an_incremental_pass_fetches_only_new_activity(
    emulator: RunningApp, data_dir: Path
) -> None:
    store = store_of(emulator)
    full = await run_pass(make_source(emulator.url, data_dir), {})
    old_id = min(tagged(store, "resume"))
    store.touch("workplace", old_id, int(time.time()))
    new = dict(store.questions["workplace"][old_id], question_id=99_001, answer_count=0)
    new["last_activity_date"] = int(time.time())
    store.add_question("workplace", new)
    again = await run_pass(make_source(emulator.url, data_dir), full.cursors)
    assert ids(again.records) == {old_id, 99_001}
    pages = [r for r in emulator.faults.seen("/2.3/questions") if "/answers" not in r.path]
    params = pages[-1].query
    assert "min=" in params and "max=" in params


async def test_backoff_blocks_the_method_until_it_passes(data_dir: Path) -> None:
    running = await start_emulator("stackexchange", backoff_every=1, backoff_seconds=0.3)
    try:
        result = await run_pass(make_source(running.url, data_dir), {})
        store = store_of(running)
        assert store.violations == 0
        assert ids(result.records) == tagged(store, "resume")
        pages = [r for r in running.faults.seen("/2.3/questions") if "/answers" not in r.path]
        assert len(pages) >= 3
        gaps = [b.at - a.at for a, b in itertools.pairwise(pages)]
        assert min(gaps) >= 0.29
    finally:
        await running.stop()


async def test_a_throttle_violation_is_retried_after_the_seconds_it_names(
    emulator: RunningApp, data_dir: Path
) -> None:
    store = store_of(emulator)
    store.blocked_until["questions"] = time.monotonic() + 0.5  # a backoff we never heard of
    started = time.monotonic()
    result = await run_pass(make_source(emulator.url, data_dir), {})
    assert store.violations == 1
    assert time.monotonic() - started >= 1.0  # "more requests available in 1 seconds"
    assert ids(result.records) == tagged(store, "resume")


async def test_an_ip_ban_pauses_the_api_for_its_whole_length_and_is_logged_once(
    emulator: RunningApp, data_dir: Path
) -> None:
    """ "more requests available in 67194 seconds": beyond the client's one-hour cap, nothing
    more goes out, tag after tag and pass after pass, until the ban is over."""
    store = store_of(emulator)
    for method in ("questions", "answers"):
        store.blocked_until[method] = time.monotonic() + 67194
    source = make_source(emulator.url, data_dir, tags=["resume", "interviewing"])
    with structlog.testing.capture_logs() as logs:
        first = await run_pass(source, {})
        second = await run_pass(source, first.cursors)
    assert store.violations == 1  # one request refused, none after it
    assert first.records == second.records == []
    bans = [e for e in logs if e["event"] == "stackexchange_quota_exhausted"]
    assert len(bans) == 1 and "67194" in bans[0]["reason"]
    until = dt.datetime.fromisoformat(bans[0]["until"]).timestamp()
    assert until == pytest.approx(time.time() + 67194, abs=60)
    assert not [e for e in logs if e["event"] == "http_retry"]


async def test_an_exhausted_quota_ends_the_pass_and_keeps_the_cursor(data_dir: Path) -> None:
    running = await start_emulator("stackexchange", quota_without_key=4)
    try:
        source = make_source(running.url, data_dir)
        result = await run_pass(source, {})
        assert source.quota_remaining == 0
        # 4 requests: two pages of questions and their answers; then nothing more is sent
        assert len(running.faults.requests) == 4
        assert len(result.records) == 19  # 10, then 9 new (each page repeats the last one)
        saved = Cursor.decode(result.cursors["workplace:resume"])
        assert saved.until > 0 and saved.upper > 0 and len(saved.seen) == 1
    finally:
        await running.stop()


async def test_the_app_key_comes_from_the_environment(
    emulator: RunningApp, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_TEST_KEY", "sekrit-key-123")
    source = make_source(emulator.url, data_dir, key_env="SE_TEST_KEY")
    await run_pass(source, {})
    assert set(store_of(emulator).keys_seen) == {"sekrit-key-123"}
    assert source.quota_max == 10_000
    archive = list((data_dir / "raw" / "se-workplace").rglob("*.json.gz"))
    assert archive
    for path in archive:
        assert b"sekrit-key-123" not in gzip.decompress(path.read_bytes())


async def test_a_bad_parameter_is_counted_and_not_retried(
    emulator: RunningApp, data_dir: Path
) -> None:
    result = await run_pass(make_source(emulator.url, data_dir, site="nosuchsite"), {})
    assert result.records == []
    assert [d.reason for d in result.drops] == ["request_failed"]
    assert "bad_parameter" in result.drops[0].detail
    assert len(emulator.faults.requests) == 1


async def test_truncated_json_is_counted_and_skipped(emulator: RunningApp, data_dir: Path) -> None:
    # The second page of questions (and every retry of it) comes back cut short.
    rule = FaultRule(
        "truncated_json", path="/2.3/questions", query="tagged=", skip=1, count=RETRY.attempts
    )
    emulator.faults.add(rule)
    result = await run_pass(make_source(emulator.url, data_dir), {})
    assert [d.reason for d in result.drops] == ["malformed_response"]
    # Its new questions are lost (9: it repeats the first page's last one), the rest is read.
    assert len(result.records) == len(tagged(store_of(emulator), "resume")) - 9
    assert emulator.faults.injected["truncated_json"] == RETRY.attempts


async def test_random_faults_are_all_retried_and_nothing_is_lost(data_dir: Path) -> None:
    faults = FaultConfig(
        p_rate_limit=0.1,
        p_server_error=0.1,
        p_reset=0.05,
        p_truncated=0.05,
        retry_after=0.02,
        seed=11,
    )
    running = await start_emulator("stackexchange", faults)
    try:
        retry = RetryConfig(attempts=10, initial_wait=0.01, max_wait=0.05, secondary_wait=0.02)
        source = make_source(running.url, data_dir, retry=retry, pagesize=5)
        result = await run_pass(source, {})
        assert ids(result.records) == tagged(store_of(running), "resume")
        assert result.drops == []
        assert sum(running.faults.injected.values()) >= 2
    finally:
        await running.stop()


async def test_steady_state_at_the_allowed_rate_gets_no_429(data_dir: Path) -> None:
    running = await start_emulator("stackexchange", FaultConfig(rate_limit=20, rate_burst=2))
    try:
        source = make_source(
            running.url, data_dir, pagesize=5, rate=RateConfig(per_second=19, burst=1)
        )
        result = await run_pass(source, {})
        assert ids(result.records) == tagged(store_of(running), "resume")
        assert running.faults.injected["server_rate_limit"] == 0
        assert source.client.stats["retries"] == 0
    finally:
        await running.stop()


async def test_responses_are_gzip_compressed(emulator: RunningApp) -> None:
    config = StackExchangeSourceConfig(name="x", retry=RETRY)
    client = HttpClient(config, get_logger())
    try:
        response, data = await client.get_json(
            f"{emulator.url}/2.3/questions", params={"site": "workplace", "pagesize": 2}
        )
    finally:
        await client.close()
    assert response.headers["content-encoding"] == "gzip"
    assert len(data["items"]) == 2 and "body" not in data["items"][0]
    assert data["quota_remaining"] == data["quota_max"] - 1


async def test_records_rebuilt_from_the_archive_equal_the_live_ones(
    emulator: RunningApp, data_dir: Path
) -> None:
    source = make_source(emulator.url, data_dir)
    live = await run_pass(source, {})
    rebuilt: list[RawRecord] = []
    for _, entry in source.archive.entries():
        assert not isinstance(entry, Exception)
        records, drops = source.records_from_archive(entry)
        assert drops == []
        rebuilt += records
    key = lambda r: r.id  # noqa: E731
    assert [r.payload for r in sorted(rebuilt, key=key)] == [
        r.payload for r in sorted(live.records, key=key)
    ]


# --- the qa recipe -------------------------------------------------------------------------


def qa_record(question: dict[str, Any], answers: list[dict[str, Any]]) -> RawRecord:
    return RawRecord(
        "se", "stackexchange/workplace", "workplace/1", {"question": question, "answers": answers}
    )


QUESTION = {
    "title": "Should I use &quot;I&quot; in resume bullets?",
    "body": "<p>My bullets say <em>I</em>&nbsp;led&hellip;</p><ul><li>One</li><li>Two</li></ul>",
    "accepted_answer_id": 2,
    "tags": ["resume"],
}


def test_qa_uses_the_accepted_answer_when_it_scores_enough() -> None:
    answers = [
        {"answer_id": 1, "score": 50, "body": "<p>Best</p>"},
        {"answer_id": 2, "score": 3, "is_accepted": True, "body": "<p>Accepted</p>"},
    ]
    examples, drops = QaFormatter(RecipeConfig(name="qa", min_answer_score=2)).format(
        qa_record(QUESTION, answers)
    )
    assert drops == []
    (example,) = examples
    system, user, assistant = example.messages
    assert (
        user.content
        == 'Should I use "I" in resume bullets?\n\nMy bullets say I led…\n\n- One\n- Two'
    )
    assert assistant.content == "Accepted"
    assert "resume" in system.content


def test_qa_falls_back_to_the_best_scored_answer() -> None:
    answers = [
        {"answer_id": 1, "score": 5, "body": "<p>Five</p>"},
        {"answer_id": 2, "score": 0, "is_accepted": True, "body": "<p>Accepted but low</p>"},
        {"answer_id": 3, "score": 9, "body": "<p>Nine</p>"},
    ]
    examples, _ = QaFormatter(RecipeConfig(name="qa", min_answer_score=1)).format(
        qa_record(QUESTION, answers)
    )
    assert examples[0].messages[-1].content == "Nine"


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ([], "no_answers"),
        ([{"answer_id": 1, "score": 0, "body": "<p>meh</p>"}], "answer_score_too_low"),
        ([{"answer_id": 1, "score": 5, "body": "<p> </p>"}], "answer_empty"),
    ],
)
def test_qa_drops_with_a_reason(answers: list[dict[str, Any]], reason: str) -> None:
    examples, drops = QaFormatter(RecipeConfig(name="qa", min_answer_score=1)).format(
        qa_record(QUESTION, answers)
    )
    assert examples == [] and [d.reason for d in drops] == [reason]


def test_html_to_text_keeps_code_and_never_glues_words() -> None:
    html = (
        "<p>Use this:</p><pre><code>if x &lt; 3:\n    print(&quot;hi&quot;)\n</code></pre>"
        "<p>Then call <code>run()</code>and<a href='x'>link</a>text.<br>Next line</p>"
        "<p>Arrays such as <code>work</code>, <code>skills</code>.</p>"
        "<ol><li>First</li><li>Second</li></ol><blockquote><p>Quoted</p></blockquote>"
        "<p><b>S</b>ales went up</p><table><tr><td>a</td><td>b</td></tr></table>"
    )
    text = html_to_text(html)
    assert '```\nif x < 3:\n    print("hi")\n```' in text
    assert "call `run()` and link text." in text
    assert "\nNext line" in text
    assert "Arrays such as `work`, `skills`." in text
    assert "1. First\n2. Second" in text
    assert "Sales went up" in text
    assert "ab" not in text.split()


def test_the_sample_data_formats_into_training_lines() -> None:
    data = json.loads(
        (
            Path(__file__).parent.parent / "collector/sandbox/data/stackexchange/workplace.json"
        ).read_text()
    )
    formatter = QaFormatter(RecipeConfig(name="qa", min_answer_score=1))
    written = 0
    for question in data["questions"]:
        answers = [a for a in data["answers"] if a["question_id"] == question["question_id"]]
        examples, _ = formatter.format(qa_record(question, answers))
        for example in examples:
            written += 1
            for message in example.messages:
                assert "&quot;" not in message.content and "<p>" not in message.content
    assert written >= 25


async def test_the_source_is_registered_for_its_type(emulator: RunningApp, data_dir: Path) -> None:
    from collector.sources import build_source

    config = StackExchangeSourceConfig(name="se", base_url=f"{emulator.url}/2.3")
    source = build_source(config, SourceContext(data_dir=data_dir, log=get_logger()))
    assert isinstance(source, StackExchangeSource)
    await source.close()
    await asyncio.sleep(0)
