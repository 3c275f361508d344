"""Task types and templates: several tasks from the same material, varied phrasings chosen per
record, the task kept beside the line, and the context a job title or a field."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.config import ConfigError, parse_config
from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, QualityConfig, RecipeConfig
from processors.formatters import build_formatter
from processors.quality import QualityCheck
from processors.records import Example, Message, RawRecord
from processors.templates import PLACEHOLDERS, TASKS, Templates, default_templates
from tests.conftest import formatted_tasks

AREAS = ["billing", "payments", "ledger", "search", "reports", "pipeline", "alerts", "onboarding"]
WORDS = st.sampled_from([*AREAS, "dashboard", "checkout"])
BULLET = st.builds(
    lambda verb, a, b: f"{verb} the {a} and {b} services for the team",
    st.sampled_from(["Maintained", "Worked on", "Helped with", "Supported", "Ran"]),
    WORDS,
    WORDS,
)


def pairs(payload: dict[str, Any], recipe: RecipeConfig | None = None, rid: str = "1") -> Example:
    formatter = build_formatter(recipe or RecipeConfig(name="pairs"))
    examples, drops = formatter.format(RawRecord("box", "local/pairs", rid, payload))
    assert not drops and len(examples) == 1
    return examples[0]


def source(recipe: dict[str, Any]) -> dict[str, Any]:
    return {"sources": [{"type": "inbox", "name": "box", "recipe": recipe}]}


# --- the template set ------------------------------------------------------------------------


def test_the_packaged_set_has_several_phrasings_of_every_task() -> None:
    templates = default_templates()
    for task in PLACEHOLDERS:
        assert len(templates.of(task).system) >= 3, task
        if task != "answer_question":  # the question itself is the user message
            assert len(templates.of(task).user) >= 3, task
        # a record without a job title or field still has a phrasing that needs none
        assert any("{context}" not in p for p in templates.of(task).system), task
    assert set(PLACEHOLDERS) < set(TASKS)


def test_every_rewrite_phrasing_is_still_checked_for_trivial_rewrites() -> None:
    """The quality check knows a rewrite by its instruction: every phrasing of the rewrite
    tasks must let it find the sandbox LLM's `Successfully` + the input."""
    check = QualityCheck(QualityConfig())
    bullet = "Maintained the billing service for the payments team"
    templates = default_templates()
    for task in ("improve_bullet", "star_bullet"):
        for phrasing in templates.of(task).user:
            user = phrasing.replace("{bullet}", bullet)
            line = Example(
                [Message("user", user), Message("assistant", f"Successfully {bullet.lower()}.")],
                "s",
                "d",
                "1",
            )
            assert check.run(line) == "trivial_rewrite", phrasing


@given(bullet=BULLET)
@settings(max_examples=50, deadline=None)
def test_the_same_input_is_written_the_same_way_whatever_its_record(bullet: str) -> None:
    """A rerun writes the same line, and the same bullet in two records is the same line, so
    exact dedupe (user and assistant messages) still catches it."""
    payload = {"original": bullet, "improved": f"Rebuilt the {bullet.split()[-3]} service"}
    first, again, other = pairs(payload), pairs(payload), pairs(payload, rid="other-record")
    assert first.messages == again.messages == other.messages
    assert first.task == other.task


def test_phrasings_vary_across_records() -> None:
    lines = [
        pairs({"original": f"Kept the {a} and {b} services", "improved": f"Ran {a}", "context": c})
        for c in ("", "Data Engineer")
        for a in ["billing", "payments", "ledger", "search", "reports", "pipeline"]
        for b in ["alerts", "onboarding", "checkout", "dashboard"]
    ]
    systems = Counter(e.messages[0].content for e in lines)
    users = Counter(e.messages[1].content.split("\n")[0] for e in lines)
    assert len(systems) >= 4 and len(users) >= 4
    assert max(systems.values()) <= len(lines) * 0.4


def test_the_task_is_a_column_beside_the_line_never_in_it() -> None:
    line = pairs({"original": "Maintained the billing service", "improved": "Ran billing"})
    assert line.task == "improve_bullet"
    assert msgspec.json.decode(msgspec.json.encode(line.training_line())).keys() == {"messages"}


# --- tasks from the material -----------------------------------------------------------------


def test_a_weak_bullet_whose_answer_states_a_result_may_be_a_star_line() -> None:
    tasks = Counter(
        pairs(
            {
                "original": f"Responsible for the {a} service",
                "improved": f"Rebuilt the {a} service, cutting its error rate by [X]%",
            }
        ).task
        for a in AREAS
    )
    assert set(tasks) == {"improve_bullet", "star_bullet"}
    # no result in the answer, or one already in the bullet: never STAR
    plain = pairs({"original": "Responsible for billing", "improved": "Owned the billing service"})
    assert plain.task == "improve_bullet"
    for a in ["billing", "payments", "ledger", "search", "reports"]:
        had = pairs({"original": f"Cut {a} costs by 10%", "improved": f"Cut {a} costs by 10%."})
        assert had.task == "improve_bullet"
    # a recipe may turn STAR off
    only = RecipeConfig(name="pairs", tasks=["improve_bullet"])
    for a in ["billing", "payments", "ledger", "search", "reports"]:
        line = pairs({"original": f"Ran {a}", "improved": f"Ran {a}, cutting costs by [X]%"}, only)
        assert line.task == "improve_bullet"


def test_a_bullet_with_a_posting_is_tailored_to_it_and_grounded_by_it() -> None:
    posting = "Data Engineer\n- Build batch pipelines in Airflow\n- Partner with analysts"
    record = RawRecord(
        "box",
        "local/tailored",
        "1",
        {
            "original": "Wrote Python jobs that load sales data every night.",
            "improved": "Built nightly Python batch pipelines in Airflow for the analysts.",
            "posting": posting,
            "context": "Data Engineer",
        },
    )
    batch = ProcessorChain(RecipeConfig(name="pairs"), ProcessingConfig()).run([record])
    [line] = batch.examples
    assert line.task == "tailor_to_posting"
    assert posting in line.messages[1].content
    # `Airflow` is the posting's word, not invented: the answer is kept as written
    assert line.messages[2].content.endswith("in Airflow for the analysts.")
    assert line.grounding == ""


def test_a_section_and_its_critique_make_a_critique_line() -> None:
    section = "Skills\nMicrosoft Office, Email, Jira, Leadership"
    critique = "Keep the tools the role needs, such as Jira, and show leadership in your bullets."
    line = pairs({"section": section, "critique": critique, "context": "Project Manager"})
    assert line.task == "critique_section"
    assert section in line.messages[1].content and line.messages[2].content == critique
    formatter = build_formatter(RecipeConfig(name="pairs"))
    _, drops = formatter.format(RawRecord("box", "d", "2", {"section": section}))
    assert [d.reason for d in drops] == ["missing_critique"]


def qa_record(tags: list[str]) -> RawRecord:
    question = {
        "title": "Should my resume list hobbies?",
        "body": "<p>I have a few.</p>",
        "tags": tags,
    }
    answers = [{"answer_id": 1, "score": 3, "body": "<p>Only when they show a skill.</p>"}]
    return RawRecord(
        "se", "stackexchange/workplace", "7", {"question": question, "answers": answers}
    )


def test_a_questions_context_is_the_field_its_tags_name_never_the_tags() -> None:
    formatter = build_formatter(RecipeConfig(name="qa"))
    [line], _ = formatter.format(qa_record(["job-search", "resume", "cv"]))
    assert line.task == "answer_question"
    system = line.messages[0].content
    assert "job-search" not in system and "resume, cv" not in system
    assert system in [
        p.replace("{context}", "job search") for p in default_templates().answer_question.system
    ]
    # tags that name no field: a phrasing that needs no context, no "general"
    [plain], _ = formatter.format(qa_record(["germany", "latex"]))
    system = plain.messages[0].content
    assert "germany" not in system and "latex" not in system and "general" not in system
    assert system in default_templates().answer_question.system


def test_chat_lines_keep_their_messages_and_get_the_task_they_show() -> None:
    formatter = build_formatter(RecipeConfig(name="chat"))

    def task(user: str) -> str:
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": "A."}]
        [line], _ = formatter.format(RawRecord("c", "d", "1", {"messages": messages}))
        return line.task

    assert task('Improve this resume bullet:\n"Ran billing"') == "improve_bullet"
    assert task("Should I list hobbies?") == "answer_question"
    assert task("Here is my resume. Thoughts") == "chat"


# --- configuration ---------------------------------------------------------------------------


def test_a_recipe_extends_or_replaces_the_phrasings() -> None:
    extra = {"improve_bullet": {"user": ['Sharpen: "{bullet}"'], "system": ["Coach."]}}
    config = parse_config(source({"name": "pairs", "templates": extra}))
    recipe = config.sources[0].recipe
    users = {
        pairs({"original": f"Ran the {a} service", "improved": f"Owned {a}"}, recipe)
        .messages[1]
        .content.split("\n")[0]
        .split(":")[0]
        for a in AREAS
    }
    assert len(users) > 1  # added to the packaged set
    replaced = parse_config(
        source({"name": "pairs", "templates": extra, "replace_templates": True})
    )
    recipe = replaced.sources[0].recipe
    line = pairs({"original": "Ran billing", "improved": "Owned the billing service"}, recipe)
    assert [m.content for m in line.messages[:2]] == ["Coach.", 'Sharpen: "Ran billing"']
    # a recipe's own prompts win
    own = RecipeConfig(name="pairs", system_prompt="For {context}.", user_template="Fix: {bullet}")
    line = pairs({"original": "Ran billing", "improved": "Owned it all", "context": "SRE"}, own)
    assert [m.content for m in line.messages[:2]] == ["For SRE.", "Fix: Ran billing"]


@pytest.mark.parametrize(
    ("recipe", "field", "says"),
    [
        (
            {"templates": {"improve_bullet": {"user": ["Improve {bulet}"]}}},
            "sources[0].recipe.templates",
            r"improve_bullet\.user\[0\]: unknown placeholder \{bulet\}",
        ),
        (
            {"templates": {"tailor_to_posting": {"user": ['Tailor "{bullet}"']}}},
            "sources[0].recipe.templates",
            r"tailor_to_posting\.user\[0\]: does not name \{posting\}",
        ),
        (
            {"templates": {"answer_question": {"system": ["About {question}"]}}},
            "sources[0].recipe.templates",
            r"answer_question\.system\[0\]: unknown placeholder",
        ),
        ({"templates": {"write_poem": {}}}, "sources[0].recipe.templates", "write_poem"),
        ({"tasks": ["write_poem"]}, "sources[0].recipe.tasks[0]", "write_poem"),
        ({"user_template": "Improve this"}, "sources[0].recipe", r"\{bullet\}"),
    ],
)
def test_bad_templates_fail_at_load_naming_the_field(
    recipe: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config(source({"name": "pairs", **recipe}))
    assert field in str(bad.value)
    assert re.search(says, str(bad.value)), str(bad.value)


def test_the_packaged_file_is_what_the_loader_validates() -> None:
    assert msgspec.convert(msgspec.to_builtins(default_templates()), Templates) == (
        default_templates()
    )


# --- the demo --------------------------------------------------------------------------------


def template_of(system: str, templates: Templates) -> str:
    """The phrasing a system message was rendered from (its text when none: a chat line's)."""
    for task in PLACEHOLDERS:
        for phrasing in templates.of(task).system:
            pattern = re.escape(phrasing).replace(re.escape("{context}"), ".+")
            if re.fullmatch(pattern, system, re.DOTALL):
                return phrasing
    return re.sub(r"\s*Context:.*$", "", system)


@pytest.mark.slow
def test_the_demo_publishes_five_task_types_and_no_system_prompt_over_30_percent(
    demo: tuple[Path, Path],
) -> None:
    _, data = demo
    task_of = formatted_tasks(data)
    tasks: Counter[str] = Counter()
    systems: Counter[str] = Counter()
    templates = default_templates()
    published = sorted((data / "published" / "data").glob("*/*.jsonl"))
    for path in published:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert row.keys() == {"messages"}  # the task is beside the line, never in it
            tasks[task_of[line]] += 1
            system = next((m["content"] for m in row["messages"] if m["role"] == "system"), "")
            systems[template_of(system, templates)] += 1
    rows = sum(tasks.values())
    assert rows >= 50
    assert "" not in tasks
    assert len(tasks) >= 5, tasks
    for task in ("improve_bullet", "summary_from_resume", "tailor_to_posting", "answer_question"):
        assert tasks[task] >= 1, tasks
    prompt, most = systems.most_common(1)[0]
    assert most / rows <= 0.30, (prompt, most, rows)
