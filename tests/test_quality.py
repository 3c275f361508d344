"""Answers that teach nothing are dropped with a reason: trivial rewrites and near copies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.config import ConfigError, parse_config
from processors.config import QualityConfig
from processors.quality import QualityCheck, input_text, new_words
from processors.records import Example, Message
from tests.conftest import ROOT, collector_command, subprocess_env

CHECK = QualityCheck(QualityConfig())
BULLETS = st.sampled_from(
    [
        "Prepared test cases from functional requirement documents",
        "Executed regression test suites before every release",
        "Responsible for maintaining the billing service",
        "Worked on the payments API",
        "Handled customer escalations for the EMEA region",
    ]
)
INSTRUCTIONS = st.sampled_from(
    [
        'Improve this resume bullet:\n"{b}"',
        "Rewrite this bullet so it reads stronger: {b}",
        "Please improve: {b}",
        'Can you rephrase "{b}"?',
    ]
)
# What an LLM that teaches nothing does to a bullet.
TRIVIAL = st.sampled_from(
    [
        "Successfully {l}.",
        "Effectively {l}, improving results by [X]%.",
        "{b}.",
        "Successfully and efficiently {l}, resulting in [N]% improved results.",
    ]
)


def example(user: str, answer: str) -> Example:
    messages = [Message("system", "You write resumes."), Message("user", user)]
    return Example([*messages, Message("assistant", answer)], "s", "d", "1")


@given(bullet=BULLETS, instruction=INSTRUCTIONS, trivial=TRIVIAL)
@settings(max_examples=100, deadline=None)
def test_a_rewrite_that_only_adds_stock_words_is_trivial(
    bullet: str, instruction: str, trivial: str
) -> None:
    answer = trivial.format(b=bullet, l=bullet[0].lower() + bullet[1:])
    assert CHECK.run(example(instruction.format(b=bullet), answer)) == "trivial_rewrite"


@given(bullet=BULLETS, instruction=INSTRUCTIONS)
@settings(max_examples=50, deadline=None)
def test_a_rewrite_that_says_more_is_kept(bullet: str, instruction: str) -> None:
    answer = (
        f"{bullet}, automating the nightly checks and cutting manual review from [N] hours "
        "to [N] minutes"
    )
    assert CHECK.run(example(instruction.format(b=bullet), answer)) is None


def test_a_near_copy_of_a_long_text_is_dropped() -> None:
    text = (
        "Led the migration of twelve customer facing services from the data center to the "
        "cloud while keeping every release on schedule and training the support team"
    )
    answer = text.replace("Led", "Drove").replace("keeping", "holding") + " on runbooks"
    assert CHECK.run(example(f'Improve this summary: "{text}"', answer)) == "near_copy"


@pytest.mark.parametrize(
    "user",
    [
        "How do I explain a two year gap on my resume?",
        'Write a professional summary for this resume:\n"Jane Doe, data engineer"',
        "Tailor these bullets to the posting below:\nBuilt ETL jobs.",
    ],
)
def test_questions_summaries_and_tailoring_are_not_rewrites(user: str) -> None:
    assert CHECK.run(example(user, "Built ETL jobs.")) is None


def test_the_input_is_the_quoted_text_or_what_follows_the_instruction() -> None:
    assert input_text('Improve this resume bullet:\n"Worked on the API"') == "Worked on the API"
    assert input_text("Improve: worked on the API") == " worked on the API"
    assert new_words("Worked on the API", "Successfully worked on the API.") == []


def test_the_thresholds_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"processing\.quality\.near_copy_ratio"):
        parse_config({"processing": {"quality": {"near_copy_ratio": 0}}})
    with pytest.raises(ConfigError, match=r"processing\.quality\.min_new_words"):
        parse_config({"processing": {"quality": {"min_new_words": -1}}})
    off = QualityCheck(QualityConfig(enabled=False))
    assert off.run(example("Improve: worked on the API", "Successfully worked on the API.")) is None


def test_the_demo_publishes_no_trivial_rewrite(tmp_path: Path) -> None:
    """The sandbox LLM only prefixes "Successfully": none of that is published."""
    out = tmp_path / "demo-output"
    demo = (ROOT / "examples" / "demo.toml").read_text().replace('"demo-output/', f'"{out}/')
    demo = demo.replace("requests_per_minute = 1200", "requests_per_minute = 60000")
    config = tmp_path / "demo.toml"
    config.write_text(demo)
    done = subprocess.run(
        collector_command("once", "--sandbox", "--config", str(config)),
        env=subprocess_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    published = sorted((out / "training-data" / "published" / "data").glob("*/*.jsonl"))
    rewrites = 0
    for path in published:
        for raw in path.read_text().splitlines():
            line = example("", "")
            messages = json.loads(raw)["messages"]
            line.messages = [Message(m["role"], m["content"]) for m in messages]
            user = next(m["content"] for m in messages if m["role"] == "user")
            answer = messages[-1]["content"]
            if user.startswith("Improve"):
                rewrites += 1
                assert not answer.startswith("Successfully "), (path.name, answer)
                assert len(new_words(input_text(user), answer)) >= 3, (path.name, answer)
    assert rewrites > 0
    reports = [
        json.loads(p.read_text())
        for p in (out / "training-data" / "formatted").glob("*__clean_report.json")
    ]
    assert sum(r["drop_reasons"].get("trivial_rewrite", 0) for r in reports) > 0
