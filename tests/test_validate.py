"""Validation: repair what ftfy can, then every failure is a drop with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from processors.config import ValidateConfig
from processors.records import Example, Message
from processors.validate import EncodingRepair, Validator

SYSTEM = Message("system", "You are a world-class tech resume writer.")
USER = Message("user", 'Improve this resume bullet:\n"Did API work"')
ASSISTANT = Message("assistant", "Built a REST API serving 2M requests a day.")
VALIDATOR = Validator(ValidateConfig())


def example(*messages: Message, kind: str = "train") -> Example:
    return Example(
        list(messages), "s", "d", "1", kind="pairs" if kind == "pairs" else "train", meta={}
    )


def test_a_well_formed_example_passes() -> None:
    assert VALIDATOR.run(example(SYSTEM, USER, ASSISTANT)) is None
    assert VALIDATOR.run(example(USER, ASSISTANT, USER, ASSISTANT)) is None


def test_a_pairs_example_ends_with_the_user_turn() -> None:
    assert VALIDATOR.run(example(SYSTEM, USER, kind="pairs")) is None
    assert VALIDATOR.run(example(SYSTEM, USER, ASSISTANT, kind="pairs")) == "bad_role_order"


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ((), "missing_messages"),
        ((SYSTEM, USER), "no_assistant_message"),
        ((SYSTEM, ASSISTANT, USER, ASSISTANT), "bad_role_order"),
        ((USER, USER, ASSISTANT), "bad_role_order"),
        ((USER, ASSISTANT, USER), "bad_role_order"),
        ((USER, SYSTEM, ASSISTANT), "bad_role_order"),
        ((SYSTEM, USER, Message("assistant", "   \n")), "assistant_empty"),
        ((SYSTEM, USER, Message("assistant", "")), "assistant_empty"),
        ((SYSTEM, Message("user", "too short"), ASSISTANT), "user_too_short"),
        ((SYSTEM, USER, Message("assistant", "x" * 16001)), "assistant_too_long"),
        ((SYSTEM, USER, Message("assistant", "Broken \ufffd text here")), "encoding_error"),
        ((SYSTEM, USER, Message("assistant", "Bell \x07 in the text")), "control_characters"),
    ],
)
def test_each_failure_has_its_reason(messages: tuple[Message, ...], reason: str) -> None:
    assert VALIDATOR.run(example(*messages)) == reason


def test_lengths_are_configurable_per_role() -> None:
    strict = Validator(ValidateConfig(min_chars={"assistant": 100}, max_chars={"user": 20}))
    assert strict.run(example(USER, ASSISTANT)) == "user_too_long"
    short_user = Message("user", "Improve: did API")
    assert strict.run(example(short_user, ASSISTANT)) == "assistant_too_short"


def test_too_many_tokens_is_counted_over_all_messages() -> None:
    validator = Validator(ValidateConfig(max_total_tokens=20))
    assert validator.run(example(SYSTEM, USER, ASSISTANT)) == "too_many_tokens"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ([], "data_type"),
        ({}, "missing_messages"),
        ({"messages": []}, "missing_messages"),
        ({"messages": "hi"}, "missing_messages"),
        ({"messages": ["hi"]}, "message_not_an_object"),
        ({"messages": [{"role": "user"}]}, "message_missing_key"),
        ({"messages": [{"content": "x"}]}, "message_missing_key"),
        ({"messages": [{"role": "user", "content": "x", "mood": 1}]}, "message_unrecognized_key"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": None}]}, "missing_content"),
    ],
)
def test_schema_errors_of_a_jsonl_line_follow_openais_checks(line: Any, reason: str) -> None:
    example_, error = VALIDATOR.check_line(line)
    assert example_ is None and error == reason


def test_a_jsonl_line_with_accepted_extra_keys_is_read() -> None:
    line = {
        "messages": [
            {"role": "user", "content": USER.content, "name": "u"},
            {"role": "assistant", "content": ASSISTANT.content, "weight": 1},
        ]
    }
    read, error = VALIDATOR.check_line(line)
    assert error is None and read is not None and VALIDATOR.run(read) is None


@pytest.mark.parametrize(
    ("broken", "repaired"),
    [
        ("Didnâ€™t stop: cut costs 20%", "Didn’t stop: cut costs 20%"),
        ("Managed teamÂ of 5 engineers", "Managed team of 5 engineers"),
        ("Companyâ€‹ Name, City", "Company Name, City"),
        ("â€¢ Led the cafÃ© rollout", "• Led the café rollout"),
    ],
)
def test_mojibake_is_repaired_in_the_example(broken: str, repaired: str) -> None:
    repair = EncodingRepair(ValidateConfig())
    ex = example(USER, Message("assistant", broken))
    repair.run(ex)
    assert ex.messages[1].content == repaired
    assert repair.repaired == 1
    assert VALIDATOR.run(ex) is None


@pytest.mark.parametrize(
    "kept",
    [
        "“Curly quotes” and it’s fine",
        "Full width ＡＢＣ（テスト）kept",
        "Line one\r\nline two\n\nthree",
        "Résumé of Zoë, naïve café",
        "Efficient ﬁle handling",
        "Tom &amp; Jerry stays escaped",
    ],
)
def test_repair_keeps_what_llm_data_needs(kept: str) -> None:
    repair = EncodingRepair(ValidateConfig())
    assert repair.fix_text(kept) == kept


def test_repair_switched_off_leaves_mojibake_in_place() -> None:
    repair = EncodingRepair(ValidateConfig(fix_encoding=False))
    ex = example(USER, Message("assistant", "Didnâ€™t stop"))
    repair.run(ex)
    assert ex.messages[1].content == "Didnâ€™t stop"


def test_repair_fixes_a_pending_bullet_too() -> None:
    repair = EncodingRepair(ValidateConfig())
    ex = example(SYSTEM, USER, kind="pairs")
    ex.meta = {"bullet": "Didnâ€™t stop"}
    repair.run(ex)
    assert ex.meta["bullet"] == "Didn’t stop"
