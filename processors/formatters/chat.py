"""`chat`: records that already hold `messages`; and `pairs`: a bullet and its improved version
(improve, STAR or, with a posting, tailoring), or a resume section and its critique."""

from __future__ import annotations

import re
from typing import Any

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, bullet_example, drop
from processors.formatters.fields import get_field, get_text
from processors.formatters.prompts import system_prompt, user_prompt
from processors.records import Example, Message, RawRecord
from processors.templates import TaskName


class ChatFormatter:
    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.field = recipe.fields.get("messages", "messages")

    def format(self, record: RawRecord) -> Formatted:
        raw = _get(record.payload, self.field)
        if not isinstance(raw, list) or not raw:
            return drop(record, "missing_messages")
        messages: list[Message] = []
        for item in raw:
            if not isinstance(item, dict):
                return drop(record, "message_not_an_object")
            # _get's exact keys inline: three messages a record, two look-ups each.
            role, content = item.get("role"), item.get("content")
            if role is None:
                role = get_field(item, "role")
            if content is None:
                content = get_field(item, "content")
            if role not in ("system", "user", "assistant"):
                return drop(record, "unrecognized_role", str(role)[:40])
            if not isinstance(content, str):
                return drop(record, "missing_content")
            messages.append(Message(role, content))
        example = Example(
            messages,
            record.source,
            record.dataset,
            record.id,
            meta=record.meta,
            task=chat_task(messages),
        )
        return [example], []


_IMPROVE_BULLET = re.compile(r"^(?:improve|rewrite|strengthen|polish)\b[^\n]*\bbullet", re.I)


def chat_task(messages: list[Message]) -> str:
    """A chat line's task as its first user message shows it: a request to improve a bullet is
    `improve_bullet`, a one-line question `answer_question`; anything else stays `chat`."""
    user = ""
    for message in messages:  # the first user message (a loop: cheaper than next() of a generator)
        if message.role == "user":
            user = message.content.strip()
            break
    if _IMPROVE_BULLET.match(user):
        return "improve_bullet"
    return "answer_question" if user.endswith("?") and "\n" not in user else "chat"


class PairsFormatter:
    """`original` (+ `improved`, `context`, and `posting` for a bullet tailored to it), or a
    resume `section` and its `critique` (a `critique_section` line)."""

    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.original = recipe.fields.get("original", "original")
        self.improved = recipe.fields.get("improved", "improved")
        self.context = recipe.fields.get("context", "context")
        self.posting = recipe.fields.get("posting", "posting")
        self.section = recipe.fields.get("section", "section")
        self.critique = recipe.fields.get("critique", "critique")

    def format(self, record: RawRecord) -> Formatted:
        context = get_text(record.payload, self.context)
        section = get_text(record.payload, self.section)
        if section:
            critique = get_text(record.payload, self.critique)
            if not critique:
                return drop(record, "missing_critique")
            return [self._critique(record, section, critique, context)], []
        bullet = get_text(record.payload, self.original)
        if not bullet:
            return drop(record, "missing_original")
        improved = get_text(record.payload, self.improved)
        posting = get_text(record.payload, self.posting)
        example = bullet_example(self.recipe, record, bullet, improved, context, posting=posting)
        return [example], []

    def _critique(self, record: RawRecord, section: str, critique: str, context: str) -> Example:
        task: TaskName = "critique_section"
        values = {"section": section, "context": context or self.recipe.default_context}
        messages = [
            Message("system", system_prompt(self.recipe, task, context, section)),
            Message("user", user_prompt(self.recipe, task, values, section)),
            Message("assistant", critique),
        ]
        return Example(
            messages, record.source, record.dataset, record.id, meta=dict(record.meta), task=task
        )


def _get(item: dict[str, Any], key: str) -> Any:
    # The exact key is the usual case: a dict look-up, then the case-insensitive search.
    value = item.get(key)
    return value if value is not None else get_field(item, key)
