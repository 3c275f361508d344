"""The rewrite stage in-process: the chat client against the emulator, the output checks, the
cache, the daily budget and the source that reads committed `__pairs` lines."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from collector.logging import get_logger
from collector.rewrite.budget import DailyBudget
from collector.rewrite.cache import cache_key
from collector.rewrite.client import (
    ChatClient,
    ChatRejected,
    ChatUnavailable,
    Message,
    estimate_tokens,
    parse_duration,
    retry_after,
)
from collector.rewrite.config import RewriteConfig
from collector.rewrite.rewriter import Pair, Rewriter
from collector.rewrite.source import RewriteSource
from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.faults import FaultConfig, FaultRule
from collector.sandbox.openai import CHAT, ChatEmulator, improve
from collector.sinks.files import NAMESPACE as FILES
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import RetryConfig
from collector.state.sqlite import SqliteStateStore
from processors.config import AnonymizeConfig, RecipeConfig, RewriteCheckConfig
from processors.grounding import figures, judge
from processors.records import RawRecord
from processors.rewrite import (
    BasicPiiScanner,
    RewriteChecker,
    RewrittenFormatter,
    clean_answer,
    pii_scanner,
)

FAST_RETRY = RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05)
BULLET = "Responsible for maintaining the billing service used by 3 teams since 2019"
Serve = Callable[..., Awaitable[RunningApp]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the OpenAI emulator (with faults and options); every one is stopped afterwards."""
    running: list[RunningApp] = []

    async def start(faults: FaultConfig | None = None, **options: Any) -> RunningApp:
        app = await start_emulator("openai", faults, **options)
        running.append(app)
        return app

    yield start
    for app in running:
        await app.stop()


def config_for(url: str, **fields: Any) -> RewriteConfig:
    base: dict[str, Any] = {
        "base_url": url,
        "requests_per_minute": 60_000,
        "retry": FAST_RETRY,
        "timeout": 2.0,
    }
    return RewriteConfig(**{**base, **fields})


def chat_of(app: RunningApp) -> ChatEmulator:
    return app.app[CHAT]


def ask(bullet: str) -> list[Message]:
    return [Message("system", "Rewrite it."), Message("user", f'Bullet: """{bullet}"""')]


# --- the client ------------------------------------------------------------------------------


async def test_client_posts_the_model_settings_and_key_and_reads_the_answer(serve: Serve) -> None:
    app = await serve(api_key="sk-test")
    client = ChatClient(
        config_for(app.url, model="m-1", temperature=0.7, max_tokens=99),
        get_logger(),
        api_key="sk-test",
    )
    try:
        answer = await client.complete(ask(BULLET))
    finally:
        await client.close()
    body = chat_of(app).bodies[0]
    assert body["model"] == "m-1"
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 99
    assert body["messages"][1] == {"role": "user", "content": f'Bullet: """{BULLET}"""'}
    assert answer.content == improve(BULLET)
    assert answer.finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


async def test_a_base_url_ending_in_v1_is_accepted(serve: Serve) -> None:
    app = await serve()
    client = ChatClient(config_for(f"{app.url}/v1/"), get_logger())
    try:
        assert (await client.complete(ask(BULLET))).content
    finally:
        await client.close()


async def test_a_wrong_key_is_refused_once_and_not_retried(serve: Serve) -> None:
    app = await serve(api_key="sk-right")
    client = ChatClient(config_for(app.url), get_logger(), api_key="sk-wrong")
    try:
        with pytest.raises(ChatRejected) as caught:
            await client.complete(ask(BULLET))
    finally:
        await client.close()
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"
    assert chat_of(app).requests == 1


async def test_a_429_with_retry_after_holds_the_next_attempt_back(serve: Serve) -> None:
    app = await serve(FaultConfig(sequence=[FaultRule("rate_limit", retry_after=0.6)]))
    client = ChatClient(config_for(app.url), get_logger())
    try:
        answer = await client.complete(ask(BULLET))
    finally:
        await client.close()
    first, second = app.faults.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.55
    assert answer.content == improve(BULLET)
    assert client.stats["retries"] == 1


async def test_500_malformed_json_and_a_slow_answer_are_retried(serve: Serve) -> None:
    faults = FaultConfig(
        slow_seconds=1.5,
        sequence=[
            FaultRule("server_error"),  # each rule takes the next request the one before let by
            FaultRule("truncated_json"),
            FaultRule("slow_body"),
        ],
    )
    app = await serve(faults)
    client = ChatClient(config_for(app.url, timeout=0.5), get_logger())
    try:
        answer = await client.complete(ask(BULLET))
    finally:
        await client.close()
    assert answer.content == improve(BULLET)
    assert app.faults.injected == {"server_error": 1, "truncated_json": 1, "slow_body": 1}
    assert client.stats["requests"] == 4
    assert client.stats["retries"] == 3


async def test_retries_run_out_into_chat_unavailable(serve: Serve) -> None:
    app = await serve(FaultConfig(sequence=[FaultRule("server_error", count=0)]))
    client = ChatClient(config_for(app.url, retry=FAST_RETRY), get_logger())
    try:
        with pytest.raises(ChatUnavailable, match="http_500, gave up after 4 attempts"):
            await client.complete(ask(BULLET))
    finally:
        await client.close()
    assert len(app.faults.requests) == 4


async def test_requests_per_minute_hold_across_concurrent_callers(serve: Serve) -> None:
    app = await serve()
    # 1200 a minute: 20 a second, at most one second's worth (20) at once.
    client = ChatClient(config_for(app.url, requests_per_minute=1200, concurrency=8), get_logger())
    started = time.monotonic()
    try:
        await asyncio.gather(*(client.complete(ask(f"{BULLET} {i}")) for i in range(50)))
    finally:
        await client.close()
    elapsed = time.monotonic() - started
    arrivals = chat_of(app).arrivals
    assert len(arrivals) == 50
    assert elapsed >= (50 - 20) / 20 - 0.1
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= 20 + 20 + 1  # burst + one second of refill, one of jitter


async def test_tokens_per_minute_hold(serve: Serve) -> None:
    app = await serve()
    messages = ask(BULLET)
    config = config_for(app.url, max_tokens=20)
    estimate = sum(len(m.content) for m in messages) // 4 + 4 * len(messages) + 20
    # Two requests' worth a second: four requests need one more second after the first two.
    client = ChatClient(
        msgspec.structs.replace(config, tokens_per_minute=2 * estimate * 60), get_logger()
    )
    started = time.monotonic()
    try:
        await asyncio.gather(*(client.complete(messages) for _ in range(4)))
    finally:
        await client.close()
    assert time.monotonic() - started >= 0.95


async def test_the_server_ratelimit_headers_pause_the_client_until_the_reset(
    serve: Serve,
) -> None:
    # The server allows 3 requests a second and says so in its headers; the client, with no
    # limit of its own, must wait for the reset instead of collecting 429s.
    app = await serve(requests_per_minute=3, window=1.0)
    client = ChatClient(config_for(app.url), get_logger())
    try:
        for i in range(6):
            await client.complete(ask(f"{BULLET} {i}"))
    finally:
        await client.close()
    chat = chat_of(app)
    assert chat.refused[429] == 0
    assert chat.completions == 6
    assert chat.arrivals[3] - chat.arrivals[0] >= 0.9
    assert client.stats["paused_requests"] >= 1


async def test_an_exhausted_account_429_is_not_retried(serve: Serve) -> None:
    app = await serve()
    chat_of(app).out_of_credit = True
    client = ChatClient(config_for(app.url), get_logger())
    try:
        with pytest.raises(ChatRejected) as caught:
            await client.complete(ask(BULLET))
    finally:
        await client.close()
    assert caught.value.status == 429
    assert caught.value.code == "insufficient_quota"
    assert chat_of(app).requests == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("2.5", 2.5)],
)
def test_reset_durations_are_read_as_go_prints_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_unreadable_durations_are_ignored() -> None:
    assert parse_duration("soon") is None
    assert parse_duration("6 minutes") is None


def test_retry_after_prefers_milliseconds_and_reads_http_dates() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    date = email.utils.format_datetime(
        datetime.datetime.fromtimestamp(time.time() + 10, datetime.UTC), usegmt=True
    )
    assert retry_after({"retry-after": date}) == pytest.approx(10, abs=1.5)
    assert retry_after({}) is None


# --- the output checks -----------------------------------------------------------------------

CHECKER = RewriteChecker(RewriteCheckConfig(allow_placeholders=True))


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "rewrite_empty"),
        ('""', "rewrite_empty"),
        ("I'm sorry, but I cannot rewrite this bullet.", "rewrite_refusal"),
        ("Owned the billing service\nCut costs", "rewrite_multiple_bullets"),
        (BULLET.lower() + ".", "rewrite_unchanged"),
        ("Owned billing.", "rewrite_too_short"),
        ("Owned the billing service " * 20, "rewrite_too_long"),
        ("Owned billing for 3 teams since 2019; jane@ex.com", "rewrite_pii_introduced"),
        ("Owned billing for 3 teams since 2019, +1 415 555 0132", "rewrite_pii_introduced"),
    ],
)  # fmt: skip
def test_invalid_rewrites_are_rejected_with_their_reason(answer: str, reason: str) -> None:
    assert CHECKER.check(BULLET, answer)[1] == reason


@pytest.mark.parametrize(
    "answer",
    [
        "Owned the billing service used by 3 teams since 2019",
        "Owned the billing service used by three teams since 2019",  # 3 in words
        "Owned the billing service of 3 teams since 2019, cutting incidents by [X]%",
        '- "Owned the billing service used by 3 teams since 2019."',
        "Improved bullet: Owned the billing service used by 3 teams since 2019",
        "Here is the improved bullet:\n\nOwned the billing service used by 3 teams since 2019",
    ],
)
def test_honest_rewrites_pass(answer: str) -> None:
    cleaned, reason = CHECKER.check(BULLET, answer)
    assert reason is None
    assert cleaned.startswith("Owned the billing service")


def test_a_truncated_answer_is_rejected() -> None:
    answer = "Owned the billing service used by 3 teams since"
    assert CHECKER.check(BULLET, answer, "length")[1] == "rewrite_truncated"


def test_placeholders_are_rejected_when_not_allowed() -> None:
    strict = RewriteChecker(RewriteCheckConfig(allow_placeholders=False))
    answer = "Owned the billing service of 3 teams since 2019, cutting incidents by [X]%"
    assert strict.check(BULLET, answer)[1] == "rewrite_placeholder_not_allowed"


def test_rejects_are_counted_by_reason() -> None:
    checker = RewriteChecker(RewriteCheckConfig())
    for answer in ("", "", "Owned billing.", "Owned the billing service for 3 teams at 99.9%"):
        checker.check(BULLET, answer)
    # An invented figure is the grounding check's to mask or drop (processors/grounding.py).
    assert checker.rejected == {"rewrite_empty": 2, "rewrite_too_short": 1}


@pytest.mark.parametrize(
    "answer",
    [
        "Owned billing for 3 teams since 2019, cutting costs 40%",
        "Owned billing for three teams since 2019, doubled uptime",
        "Owned the billing service for 3 teams from 2019 to 2023",
    ],
)
def test_invented_figures_are_left_to_the_grounding_check(answer: str) -> None:
    assert CHECKER.check(BULLET, answer)[1] is None
    assert judge(BULLET, answer).figures


def test_pii_already_in_the_original_is_not_counted_as_introduced() -> None:
    original = "Answered support tickets at help@example.com for 3 products"
    answer = "Resolved support tickets sent to help@example.com for 3 products"
    assert CHECKER.check(original, answer)[1] is None


def test_the_anonymizer_finds_names_the_basic_checks_miss() -> None:
    checker = RewriteChecker(RewriteCheckConfig(), pii_scanner(AnonymizeConfig()))
    answer = "Owned the billing service of 3 teams since 2019 with Jane Doe"
    assert checker.check(BULLET, answer)[1] == "rewrite_pii_introduced"
    assert CHECKER.check(BULLET, answer)[1] is None  # no name checks in the basic scanner


def test_year_ranges_versions_and_counts_are_not_phones() -> None:
    scanner = BasicPiiScanner()
    assert scanner.find("Led it 2019-2023, shipped v2.3.1 to 1,200,000 users") == []
    assert scanner.find("call +44 20 7946 0958") == ["phone:442079460958"]
    assert scanner.redact("mail a.b@c.org or 555-010-1234") == "mail [EMAIL] or [PHONE]"


def test_numbers_are_compared_by_value() -> None:
    assert {v for f in figures("$1,200 and 3.50x in 2019") for v in f.values} >= {
        "1200",
        "3.5",
        "2019",
    }
    assert figures("S3, EC2 and OAuth2") == []
    assert judge("five teams, doubled uptime", "5 teams, 2x uptime").grounded


@given(
    words=st.lists(st.sampled_from(["built", "the", "api", "for", "teams", "go"]), min_size=3),
    number=st.integers(min_value=2, max_value=999_999),  # seven digits: a phone to the basic checks
)  # fmt: skip
def test_a_number_missing_from_the_original_is_always_caught(words: list[str], number: int) -> None:
    original = " ".join(words)
    answer = f"Successfully {original}, saving {number} hours"
    assert [f.text for f in judge(original, answer).figures] == [str(number)]


def test_clean_answer_strips_wrappers_but_keeps_the_bullet() -> None:
    assert clean_answer('  * "Led the move to Go."  ') == "Led the move to Go."
    assert clean_answer("Rewritten: “Led the move to Go.”") == "Led the move to Go."
    assert clean_answer("1. Led the move to Go.") == "Led the move to Go."


def test_the_formatter_makes_a_rewritten_training_line_with_the_sources_prompts() -> None:
    recipe = RecipeConfig(
        name="pairs", system_prompt="Coach for {context}.", user_template="Fix: {bullet}"
    )
    formatter = RewrittenFormatter(CHECKER, {"src": recipe})
    answer = improve(BULLET)
    record = RawRecord(
        "src", "own/data", "r1",
        {"original": BULLET, "improved": answer, "context": "SRE", "finish_reason": "stop"},
    )  # fmt: skip
    (example,), drops = formatter.format(record)
    assert drops == []
    assert example.rewritten and example.kind == "train"
    assert [m.content for m in example.messages] == ["Coach for SRE.", f"Fix: {BULLET}", answer]
    bad = msgspec.structs.replace(record, payload={**record.payload, "improved": BULLET})
    assert formatter.format(bad)[1][0].reason == "rewrite_unchanged"


# --- cache, budget, rewriter and source ------------------------------------------------------


def test_the_cache_key_is_model_prompt_and_input() -> None:
    key = cache_key("m", ask(BULLET))
    assert key == cache_key("m", ask(BULLET))
    assert key != cache_key("other", ask(BULLET))
    assert key != cache_key("m", ask(BULLET + "!"))
    assert key != cache_key("m", [Message("system", "Other prompt."), ask(BULLET)[1]])


class Wall:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_budget_reserves_the_worst_case_and_renews_each_utc_day(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    wall = Wall(1_700_000_000.0)  # 2023-11-14 22:13:20 UTC
    config = RewriteConfig(max_tokens=100, daily_token_budget=450)
    budget = DailyBudget(config, state, wall)
    assert budget.reserve(100)  # 200 held
    assert budget.reserve(100)  # 400 held
    assert not budget.reserve(100)  # 600 > 450
    state.commit(budget.record(100, 90, 30))  # 120 used, 200 held
    assert budget.reserve(30)  # 120 + 200 + 130 = 450
    assert not budget.reserve(1)
    assert budget.seconds_until_reset() == pytest.approx(6400.0)
    # Another process (a restart) sees what was used today.
    again = DailyBudget(config, state, wall)
    assert again.reserve(100) and again.used.tokens == 120
    budget.release(100)
    budget.release(30)  # nothing in flight any more
    wall.now += 6400.0
    assert budget.day() == "2023-11-15"
    assert budget.reserve(100)
    assert budget.used.tokens == 0
    state.close()


def test_instances_sharing_a_store_share_one_budget(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    wall = Wall(1_700_000_000.0)
    config = RewriteConfig(max_tokens=100, daily_token_budget=500)
    one = DailyBudget(config, state, wall, instance="host-a")
    two = DailyBudget(config, state, wall, instance="host-b")
    assert one.reserve(100)
    state.commit(one.record(100, 150, 50))  # host-a used 200
    assert two.reserve(100)  # 200 + 200 held, before host-b knows of host-a
    two.release(100)
    two.refresh()
    assert two.others.tokens == 200
    assert two.reserve(100)  # 200 (host-a) + 200
    assert not two.reserve(100)  # 200 + 400 > 500
    state.commit(two.record(100, 150, 50))
    assert sorted(k for k, _ in state.scan("rewrite:budget")) == [
        "2023-11-14@host-a",
        "2023-11-14@host-b",
    ]
    state.close()


def test_a_spend_budget_prices_prompt_and_completion_tokens(tmp_path: Path) -> None:
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    config = RewriteConfig(
        max_tokens=1000,
        daily_spend_budget=0.01,
        input_price_per_million=1.0,
        output_price_per_million=4.0,
    )
    budget = DailyBudget(config, state)
    assert budget.price(1_000, 1_000) == pytest.approx(0.005)
    assert budget.reserve(1000)  # 0.005 held
    assert budget.reserve(1000)  # 0.010 held
    assert not budget.reserve(1000)
    state.close()


def context_for(tmp_path: Path, stop: asyncio.Event | None = None) -> SourceContext:
    return SourceContext(data_dir=tmp_path, log=get_logger(), stop=stop or asyncio.Event())


def rewriter_for(
    config: RewriteConfig, state: SqliteStateStore, wall: Wall | None = None
) -> Rewriter:
    client = ChatClient(config, get_logger())
    budget = DailyBudget(config, state, wall or time.time)
    return Rewriter(config, client, state, budget, get_logger())


def pairs_of(n: int, tag: str = "") -> list[Pair]:
    return [
        Pair(f"Responsible for maintaining service {i}{tag}", "SRE", "src", "own/data", f"r{i}")
        for i in range(n)
    ]


async def test_a_cached_answer_is_never_paid_for_again(serve: Serve, tmp_path: Path) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    config = config_for(app.url)
    pairs = pairs_of(5)
    first = rewriter_for(config, state)
    outcomes = await first.rewrite_many(pairs, asyncio.Event())
    await first.client.close()
    assert [o.cached for o in outcomes] == [False] * 5
    second = rewriter_for(config, state)  # a restart: a new process, the same state
    again = await second.rewrite_many([*pairs, pairs[0]], asyncio.Event())
    await second.client.close()
    assert [o.cached for o in again] == [True] * 6
    assert [o.answer for o in again[:5]] == [o.answer for o in outcomes]
    assert chat_of(app).completions == 5
    counts = {(s, d, w): n for s, d, w, n in state.counts()}
    assert counts[("src", "own/data", "rewrite_requests")] == 5
    assert counts[("src", "own/data", "rewrite_cache_hits")] == 6
    state.close()


async def test_the_same_bullet_twice_in_a_chunk_is_asked_once(serve: Serve, tmp_path: Path) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    rewriter = rewriter_for(config_for(app.url), state)
    pair = pairs_of(1)[0]
    outcomes = await rewriter.rewrite_many([pair, pair], asyncio.Event())
    await rewriter.client.close()
    assert outcomes[0].answer == outcomes[1].answer and outcomes[1].cached
    assert chat_of(app).completions == 1
    state.close()


def worst_case(config: RewriteConfig, state: SqliteStateStore) -> int:
    """What the budget holds for one request of `write_pairs_file`'s bullets."""
    pair = Pair("Responsible for maintaining service number 0", "SRE", "src", "own/data", "r0")
    messages = rewriter_for(config, state).messages(pair)
    return estimate_tokens(messages, 0) + config.max_tokens


def write_pairs_file(data_dir: Path, n: int, name: str = "own__data") -> Path:
    path = data_dir / "formatted" / f"{name}__pairs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i in range(n):
            line = {
                "bullet": f"Responsible for maintaining service number {i}",
                "context": "SRE",
                "source": "src",
                "dataset": "own/data",
                "record_id": f"r{i}",
                "split": "train",
            }
            handle.write(json.dumps(line) + "\n")
    return path


async def collect(
    source: RewriteSource, cursors: dict[str, str] | None = None
) -> list[SourceBatch]:
    return [batch async for batch in source.fetch(cursors or {})]


async def test_the_source_reads_only_the_committed_part_of_a_pairs_file(
    serve: Serve, tmp_path: Path
) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    path = write_pairs_file(tmp_path, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    committed = sum(len(line) for line in lines[:3])
    state.commit({FILES: {"formatted/own__data__pairs.jsonl": str(committed)}})
    config = config_for(app.url, batch_size=2)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source)
    await source.close()
    records = [r for b in batches for r in b.records]
    assert [r.id for r in records] == ["r0", "r1", "r2"]
    assert batches[-1].cursors == {"formatted/own__data__pairs.jsonl": str(committed)}
    assert records[0].source == "src" and records[0].dataset == "own/data"
    answer = improve("Responsible for maintaining service number 0", placeholders=True, role="SRE")
    assert records[0].payload["improved"] == answer
    assert chat_of(app).completions == 3
    telemetry = source.telemetry()
    assert telemetry["requests"] == 3 and telemetry["cache_hits"] == 0
    assert telemetry["budget_tokens_today"] > 0 and telemetry["budget_paused"] == 0
    state.close()


async def test_the_source_continues_from_its_cursor(serve: Serve, tmp_path: Path) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    path = write_pairs_file(tmp_path, 4)
    half = sum(len(line) for line in path.read_bytes().splitlines(keepends=True)[:2])
    config = config_for(app.url)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source, {"formatted/own__data__pairs.jsonl": str(half)})
    await source.close()
    assert [r.id for b in batches for r in b.records] == ["r2", "r3"]
    state.close()


async def test_a_spent_budget_pauses_the_source_until_the_next_day(
    serve: Serve, tmp_path: Path
) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    write_pairs_file(tmp_path, 6)
    wall = Wall(1_700_000_000.0)
    config = config_for(app.url, batch_size=6, max_tokens=50)
    # The worst case of three requests a day, not four (all six are asked at once).
    budget = 3 * worst_case(config, state)
    config = msgspec.structs.replace(config, daily_token_budget=budget)
    rewriter = rewriter_for(config, state, wall)
    stop = asyncio.Event()
    source = RewriteSource(
        config, rewriter, state, tmp_path, context_for(tmp_path, stop), budget_recheck=0.05
    )
    batches: list[SourceBatch] = []

    async def run() -> None:
        async for batch in source.fetch({}):
            batches.append(batch)

    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(run())
        await asyncio.sleep(0.5)
        paused = [e for e in logs if e["event"] == "rewrite_budget_exhausted"]
        assert len(paused) == 1 and paused[0]["requests"] == 3
        assert chat_of(app).completions == 3
        assert not task.done()  # paused, not crashed
        assert [r.id for b in batches for r in b.records] == ["r0", "r1", "r2"]
        wall.now += 86_400  # the next UTC day
        await asyncio.wait_for(task, 5)
    await source.close()
    assert [r.id for b in batches for r in b.records] == [f"r{i}" for i in range(6)]
    assert chat_of(app).completions == 6
    assert any(e["event"] == "rewrite_budget_renewed" for e in logs)
    state.close()


async def test_a_spent_budget_ends_the_pass_when_pausing_is_off(
    serve: Serve, tmp_path: Path
) -> None:
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    write_pairs_file(tmp_path, 4)
    config = config_for(app.url, max_tokens=50)
    config = msgspec.structs.replace(config, daily_token_budget=2 * worst_case(config, state))
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path),
        pause_on_budget=False,
    )  # fmt: skip
    batches = await collect(source)
    await source.close()
    assert source.halted == "budget"
    assert [r.id for b in batches for r in b.records] == ["r0", "r1"]
    state.close()


async def test_an_endpoint_that_is_down_ends_the_pass_and_keeps_the_cursor(
    serve: Serve, tmp_path: Path
) -> None:
    app = await serve(FaultConfig(sequence=[FaultRule("server_error", count=0, skip=2)]))
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    path = write_pairs_file(tmp_path, 12)
    config = config_for(app.url, batch_size=12, concurrency=1)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source)
    await source.close()
    assert source.halted == "unavailable"
    assert [r.id for b in batches for r in b.records] == ["r0", "r1"]
    two_lines = sum(len(line) for line in path.read_bytes().splitlines(keepends=True)[:2])
    assert batches[-1].cursors == {"formatted/own__data__pairs.jsonl": str(two_lines)}
    # The first bullet to find the endpoint down stops the chunk: the others stop retrying.
    seen = len(app.faults.requests)
    await asyncio.sleep(0.3)
    assert len(app.faults.requests) == seen
    state.close()


async def test_a_request_the_server_rejects_is_dropped_with_its_status(
    serve: Serve, tmp_path: Path
) -> None:
    app = await serve()
    chat_of(app).rejections["Responsible for maintaining service number 1"] = (
        400,
        "context_length_exceeded",
    )
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    path = write_pairs_file(tmp_path, 3)
    with path.open("a") as handle:
        handle.write("{not json\n")
    config = config_for(app.url)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source)
    await source.close()
    assert source.halted is None
    assert [r.id for b in batches for r in b.records] == ["r0", "r2"]
    drops = [(d.record_id, d.reason) for b in batches for d in b.drops]
    assert drops[0] == ("r1", "rewrite_api_400")
    assert drops[1][1] == "malformed_pair_line"
    assert batches[-1].cursors == {"formatted/own__data__pairs.jsonl": str(path.stat().st_size)}
    state.close()


async def test_a_stray_carriage_return_and_an_oversized_line_do_not_stall_a_file(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collector.rewrite.source.MAX_CHUNK_BYTES", 256)
    app = await serve()
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    path = tmp_path / "formatted" / "own__data__pairs.jsonl"
    path.parent.mkdir(parents=True)
    line = {"bullet": "Responsible for maintaining service 1", "source": "src", "record_id": "a"}
    huge = {"bullet": "Responsible for " + "x" * 600, "source": "src", "record_id": "b"}
    last = {"bullet": "Responsible for maintaining service 2", "source": "src", "record_id": "c"}
    data = b"".join(json.dumps(x).encode() + b"\n" for x in (line, huge, last))
    # JSON allows a raw CR between tokens: it must not be taken for the end of a line.
    path.write_bytes(data.replace(b'", "source"', b'",\r"source"', 1))
    config = config_for(app.url)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source)
    await source.close()
    assert [r.id for b in batches for r in b.records] == ["a", "c"]
    assert [d.reason for b in batches for d in b.drops] == ["pair_too_long"]
    assert batches[-1].cursors == {"formatted/own__data__pairs.jsonl": str(path.stat().st_size)}
    state.close()


async def test_an_account_without_credit_ends_the_pass(serve: Serve, tmp_path: Path) -> None:
    app = await serve()
    chat_of(app).out_of_credit = True
    state = SqliteStateStore(tmp_path / "s.sqlite3")
    write_pairs_file(tmp_path, 3)
    config = config_for(app.url)
    source = RewriteSource(
        config, rewriter_for(config, state), state, tmp_path, context_for(tmp_path)
    )
    batches = await collect(source)
    await source.close()
    assert source.halted == "refused"
    assert [r for b in batches for r in b.records] == []
    state.close()
