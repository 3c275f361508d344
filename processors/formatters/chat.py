"""`chat`: records that already hold `messages`; and `pairs`: original/improved/context fields."""

from __future__ import annotations

from typing import Any

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, bullet_example, drop
from processors.formatters.fields import get_field, get_text
from processors.records import Example, Message, RawRecord


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
            role, content = _get(item, "role"), _get(item, "content")
            if role not in ("system", "user", "assistant"):
                return drop(record, "unrecognized_role", str(role)[:40])
            if not isinstance(content, str):
                return drop(record, "missing_content")
            messages.append(Message(role, content))
        example = Example(messages, record.source, record.dataset, record.id, meta=record.meta)
        return [example], []


class PairsFormatter:
    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.original = recipe.fields.get("original", "original")
        self.improved = recipe.fields.get("improved", "improved")
        self.context = recipe.fields.get("context", "context")

    def format(self, record: RawRecord) -> Formatted:
        bullet = get_text(record.payload, self.original)
        if not bullet:
            return drop(record, "missing_original")
        improved = get_text(record.payload, self.improved)
        context = get_text(record.payload, self.context)
        return [bullet_example(self.recipe, record, bullet, improved, context)], []


def _get(item: dict[str, Any], key: str) -> Any:
    # The exact key is the usual case: a dict look-up, then the case-insensitive search.
    value = item.get(key)
    return value if value is not None else get_field(item, key)
