"""The formatter protocol: one raw record in, training examples (or drops) out."""

from __future__ import annotations

from typing import Protocol

from processors.config import RecipeConfig
from processors.records import Drop, Example, Message, RawRecord

Formatted = tuple[list[Example], list[Drop]]


class Formatter(Protocol):
    recipe: RecipeConfig

    def format(self, record: RawRecord) -> Formatted: ...


def drop(record: RawRecord, reason: str, detail: str = "") -> Formatted:
    return [], [Drop(record.source, record.dataset, record.id, reason, detail)]


def bullet_example(
    recipe: RecipeConfig,
    record: RawRecord,
    bullet: str,
    improved: str,
    context: str,
    index: int | None = None,
) -> Example:
    """A training line for one bullet, or a `pairs` line when no improved version exists yet."""
    context = context or recipe.default_context
    system = recipe.system_prompt.replace("{context}", context)
    user = recipe.user_template.replace("{bullet}", bullet)
    messages = [Message("system", system), Message("user", user)]
    if improved:
        messages.append(Message("assistant", improved))
    record_id = record.id if index is None else f"{record.id}/{index}"
    return Example(
        messages=messages,
        source=record.source,
        dataset=record.dataset,
        record_id=record_id,
        kind="train" if improved else "pairs",
        meta={"bullet": bullet, "context": context, **record.meta},
    )
