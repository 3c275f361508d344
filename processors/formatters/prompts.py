"""A recipe's prompts: the task a record becomes and the phrasings its line is written with.

The phrasings come from the template set (`processors/templates.py`), extended or replaced by
the recipe's `templates`; a recipe's own `system_prompt` or `user_template`, when set, is used
instead. The seed of every choice is the record's input text (a bullet, a question, a section),
so the same input is always written the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import msgspec

from processors.config import BULLET_TASKS, BulletTask, RecipeConfig
from processors.templates import (
    TaskName,
    Templates,
    default_templates,
    pick,
    render,
    system_phrasing,
)

_NO_TEMPLATES = Templates()
_NOT_STAR: tuple[BulletTask, ...] = tuple(t for t in BULLET_TASKS if t != "star_bullet")

# What a result looks like in a bullet: a figure, a placeholder for one, or a verb of change
# (`cutting p99 latency`, `which caught regressions`, `so that releases...`).
_RESULT_WORDS = (
    r"(?:cut|cutting|reduc\w*|rais\w*|increas\w*|improv\w*|sav(?:ed|ing)|"
    r"grew|grow\w*|boost\w*|lower\w*|shorten\w*|doubl\w*|halv\w*|prevent\w*|caught|"
    r"resulting|leading to|so that|enabling|eliminat\w*|speed\w* up|sped up)\b"
)
_RESULT = re.compile(r"\d|\[(?:X|N)\]|\b" + _RESULT_WORDS, re.IGNORECASE)
# The same in lower-case ASCII text, where it needs no IGNORECASE, searched with a space in
# front: every match then opens with a character that is no letter (a figure, the `[` of a
# placeholder, or the one before a word: \b), and re skips to those in C rather than trying the
# pattern at each position. Twice to five times faster.
_RESULT_LOWER = re.compile(r"[^a-z_](?:(?<=[0-9])|(?<=\[)[xn]\]|(?<![0-9])" + _RESULT_WORDS + ")")


@lru_cache(maxsize=64)
def _merged(extra: bytes, replace: bool) -> Templates:
    return default_templates().merged(msgspec.json.decode(extra, type=Templates), replace=replace)


def templates_of(recipe: RecipeConfig) -> Templates:
    """The packaged set with the recipe's additions (merged once per distinct addition)."""
    if recipe.templates == _NO_TEMPLATES and not recipe.replace_templates:
        return default_templates()
    return _merged(msgspec.json.encode(recipe.templates), recipe.replace_templates)


def shows_result(text: str) -> bool:
    if text.isascii():
        return _RESULT_LOWER.search(" " + text.lower()) is not None
    return _RESULT.search(text) is not None


def bullet_task(recipe: RecipeConfig, bullet: str, improved: str, posting: str = "") -> TaskName:
    """What a bullet line teaches: tailoring when a posting and a tailored answer are given;
    STAR when the answer states a result the weak bullet lacks (chosen by hash beside improve
    when both apply); else improve."""
    if posting and improved:
        return "tailor_to_posting"
    if recipe.user_template or not improved:
        return "improve_bullet"
    star = shows_result(improved) and not shows_result(bullet)
    eligible: Sequence[BulletTask]
    if not recipe.tasks:  # every task allowed (the usual): one of two fixed lists
        eligible = BULLET_TASKS if star else _NOT_STAR
    else:  # one pass over the tasks, the two filters at once
        eligible = [t for t in BULLET_TASKS if t in recipe.tasks and (star or t != "star_bullet")]
    if not eligible:
        return "improve_bullet"
    task: TaskName = pick(eligible, bullet, "task")  # type: ignore[assignment]
    return task


def system_prompt(recipe: RecipeConfig, task: TaskName, context: str, seed: str) -> str:
    if recipe.system_prompt:
        return render(recipe.system_prompt, {"context": context or recipe.default_context})
    phrasings = templates_of(recipe).of(task).system
    return system_phrasing(phrasings, context, recipe.default_context, seed)


def user_prompt(recipe: RecipeConfig, task: TaskName, values: dict[str, str], seed: str) -> str:
    if recipe.user_template and task == "improve_bullet":
        return render(recipe.user_template, values)
    phrasings = templates_of(recipe).of(task).user
    if not phrasings:
        raise ValueError(f"the template set has no user phrasing of {task}")
    return render(pick(phrasings, seed, f"user:{task}"), values)
