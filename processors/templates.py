"""Task types and the phrasings their training lines are written with.

One kind of material can teach several tasks: a bullet and its improved version is an
`improve_bullet` line, or a `star_bullet` line when the answer shows an action and its result;
with a job posting it is a `tailor_to_posting` line. Each task has several system and user
phrasings (`processors/data/templates.toml`, extended or replaced per recipe); a record gets one
of each, chosen by a hash of its input, so a rerun writes the same line and the same text met
twice is written the same way (dedupe compares the user and assistant messages).

The task is kept beside the line (`Example.task`, written to the provenance file), never in it.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from functools import cache
from importlib import resources
from typing import Literal, get_args

import msgspec

TaskName = Literal[
    "improve_bullet",
    "star_bullet",
    "tailor_to_posting",
    "summary_from_resume",
    "critique_section",
    "answer_question",
    "chat",
]
TASKS: tuple[str, ...] = get_args(TaskName)
# What each task's user phrasings must name (all of them) and may name; system phrasings may
# name {context} only. `chat` lines keep the messages they came with: no phrasings.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "improve_bullet": ("bullet",),
    "star_bullet": ("bullet",),
    "tailor_to_posting": ("bullet", "posting"),
    "summary_from_resume": ("resume",),
    "critique_section": ("section",),
    "answer_question": ("question",),
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class TaskTemplates(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The phrasings of one task."""

    system: list[str] = []
    user: list[str] = []


class Templates(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Phrasings per task (a task left out has none here), and Stack Exchange tag -> field."""

    improve_bullet: TaskTemplates = TaskTemplates()
    star_bullet: TaskTemplates = TaskTemplates()
    tailor_to_posting: TaskTemplates = TaskTemplates()
    summary_from_resume: TaskTemplates = TaskTemplates()
    critique_section: TaskTemplates = TaskTemplates()
    answer_question: TaskTemplates = TaskTemplates()
    fields: dict[str, str] = {}

    def __post_init__(self) -> None:
        for task, needed in PLACEHOLDERS.items():
            phrasings: TaskTemplates = getattr(self, task)
            for role, texts, allowed in (
                ("system", phrasings.system, ("context",)),
                ("user", phrasings.user, (*needed, "context")),
            ):
                for index, text in enumerate(texts):
                    where = f"{task}.{role}[{index}]"
                    if not text.strip():
                        raise ValueError(f"{where}: an empty phrasing")
                    named = _PLACEHOLDER.findall(text)
                    unknown = [n for n in named if n not in allowed]
                    if unknown:
                        raise ValueError(
                            f"{where}: unknown placeholder {{{unknown[0]}}}; "
                            f"{role} phrasings of {task} may name "
                            + ", ".join(f"{{{a}}}" for a in allowed)
                        )
                    missing = [n for n in needed if n not in named] if role == "user" else []
                    if missing:
                        raise ValueError(
                            f"{where}: does not name {{{missing[0]}}}; every user phrasing of"
                            f" {task} names " + ", ".join(f"{{{n}}}" for n in needed)
                        )

    def of(self, task: str) -> TaskTemplates:
        value: TaskTemplates = getattr(self, task)
        return value

    def merged(self, extra: Templates, *, replace: bool = False) -> Templates:
        """These phrasings with `extra`'s added (or, with `replace`, `extra`'s alone for each
        task it gives phrasings of; a task it leaves out keeps these)."""
        parts: dict[str, TaskTemplates] = {}
        for task in PLACEHOLDERS:
            mine, theirs = self.of(task), extra.of(task)
            system = theirs.system if replace and theirs.system else mine.system + theirs.system
            user = theirs.user if replace and theirs.user else mine.user + theirs.user
            parts[task] = TaskTemplates(system=_unique(system), user=_unique(user))
        fields = (
            {**self.fields, **extra.fields} if not replace or not extra.fields else extra.fields
        )
        return Templates(**parts, fields=fields)


def _unique(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


@cache
def default_templates() -> Templates:
    """The packaged set (`processors/data/templates.toml`), read once."""
    text = resources.files("processors").joinpath("data/templates.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return msgspec.convert({**data.get("tasks", {}), "fields": data.get("fields", {})}, Templates)


def pick(texts: list[str], seed: str, salt: str) -> str:
    """One of `texts`, the same for the same seed every time (blake2b, not Python's hash)."""
    digest = hashlib.blake2b(f"{salt}\x1f{seed}".encode(), digest_size=8).digest()
    return texts[int.from_bytes(digest, "big") % len(texts)]


def render(text: str, values: dict[str, str]) -> str:
    """`text` with its placeholders filled in one pass (a value's own braces stay as written)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def system_phrasing(phrasings: list[str], context: str, default_context: str, seed: str) -> str:
    """A system phrasing for a record: one naming {context} when it gives a job title or field,
    one that names none when it gives none (else {context} becomes `default_context`)."""
    if not phrasings:
        return ""
    if context:
        return render(pick(phrasings, seed, "system"), {"context": context})
    without = [p for p in phrasings if "{context}" not in p]
    return render(pick(without or phrasings, seed, "system"), {"context": default_context})


def field_of_tags(tags: list[str], fields: dict[str, str]) -> str:
    """The field a tagged question is about: the mapping of its first mapped tag, else ""."""
    for tag in tags:
        field = fields.get(tag.casefold())
        if field:
            return field
    return ""
