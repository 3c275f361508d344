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
from collections.abc import Sequence
from functools import cache, lru_cache
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


# blake2b's state after `{salt}\x1f`, per salt: a copy of it hashes a seed in half the time a new
# hasher takes (the salts are a handful of fixed names; bounded all the same).
_SALTED: dict[str, hashlib.blake2b] = {}


def pick(texts: Sequence[str], seed: str, salt: str) -> str:
    """One of `texts`, the same for the same seed every time (blake2b, not Python's hash)."""
    data = seed.encode()  # before the shortcut: a seed UTF-8 cannot encode raises either way
    if len(texts) == 1:  # any digest picks it: no need to hash
        return texts[0]
    state = _SALTED.get(salt)
    if state is None:
        if len(_SALTED) >= 256:
            _SALTED.clear()
        state = _SALTED[salt] = hashlib.blake2b(f"{salt}\x1f".encode(), digest_size=8)
    hasher = state.copy()
    hasher.update(data)  # the digest of `{salt}\x1f{seed}`, as one blake2b call would give
    return texts[int.from_bytes(hasher.digest(), "big") % len(texts)]


@lru_cache(maxsize=1024)
def _pieces(text: str) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    """A phrasing cut at its placeholders once: its head, then (name, the placeholder as written,
    the text up to the next one) for each (the phrasings are a fixed set: they recur)."""
    parts = _PLACEHOLDER.split(text)  # text, name, text, name, ..., text
    names = range(1, len(parts), 2)
    return parts[0], tuple((parts[i], "{" + parts[i] + "}", parts[i + 1]) for i in names)


def render(text: str, values: dict[str, str]) -> str:
    """`text` with its placeholders filled in one pass (a value's own braces stay as written)."""
    # Joined from the cut phrasing: what _PLACEHOLDER.sub would give, without a pattern and a
    # call of Python per placeholder.
    out, rest = _pieces(text)
    for name, written, tail in rest:
        out += values.get(name, written) + tail
    return out


def system_phrasing(phrasings: list[str], context: str, default_context: str, seed: str) -> str:
    """A system phrasing for a record: one naming {context} when it gives a job title or field,
    one that names none when it gives none (else {context} becomes `default_context`)."""
    if not phrasings:
        return ""
    if context:
        return render(pick(phrasings, seed, "system"), {"context": context})
    without = _without_context(tuple(phrasings))
    return render(pick(without or phrasings, seed, "system"), {"context": default_context})


@lru_cache(maxsize=256)
def _without_context(phrasings: tuple[str, ...]) -> tuple[str, ...]:
    """The phrasings that name no {context}: once per set (they are the template set's)."""
    return tuple(p for p in phrasings if "{context}" not in p)


def field_of_tags(tags: list[str], fields: dict[str, str]) -> str:
    """The field a tagged question is about: the mapping of its first mapped tag, else ""."""
    for tag in tags:
        field = fields.get(tag.casefold())
        if field:
            return field
    return ""
