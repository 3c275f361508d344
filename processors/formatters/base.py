"""The formatter protocol: one raw record in, training examples (or drops) out."""

from __future__ import annotations

from typing import Protocol

from processors.config import RecipeConfig
from processors.formatters.prompts import bullet_task, system_prompt, user_prompt
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
    *,
    posting: str = "",
) -> Example:
    """A training line for one bullet, or a `pairs` line when no improved version exists yet.

    Its task (`processors/formatters/prompts.py`): `tailor_to_posting` when a job posting is
    given, else `improve_bullet` or, when the answer states a result the bullet lacks,
    `star_bullet`; its phrasings are chosen by the bullet's hash.
    """
    task = bullet_task(recipe, bullet, improved, posting)
    system = system_prompt(recipe, task, context, bullet)
    values = {"bullet": bullet, "posting": posting, "context": context or recipe.default_context}
    user = user_prompt(recipe, task, values, bullet)
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
        meta={"bullet": bullet, "context": context or recipe.default_context, **record.meta},
        task=task,
    )
