"""`resume_json` and `resume_text`: whole resumes in, one example per bullet out.

Neither dataset holds an improved version of its bullets, so every bullet becomes a `pairs`
example (written to `{name}__pairs.jsonl` for the rewrite stage), never a training line with an
empty answer. A bullet becomes a training line only when the record itself carries an improved
version of it (a `resume_json` bullet object with the configured `improved` field).

Field names come from `recipe.fields`; each value is a case-insensitive dotted path, or several
separated by `|` of which the first present one is used (the documented defaults below cover the
datasets of `DATASETS.md`).
"""

from __future__ import annotations

from typing import Any

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, bullet_example, drop
from processors.formatters.bullets import (
    clean_bullet,
    first_field,
    first_text,
    html_to_text,
    humanize_label,
    is_bullet_like,
    normalize_text,
    split_bullets,
)
from processors.records import Drop, Example, RawRecord

RESUME_JSON_FIELDS = {
    # the list of jobs: datasetmaster/resumes `experience`, JSON Resume `work`
    "experience": "experience|work",
    # the bullets of one job: `responsibilities` (datasetmaster), `highlights` (JSON Resume)
    "bullets": "responsibilities|highlights|achievements",
    # the job's title, used as the context of its bullets
    "title": "title|position|role|job_title",
    # sections that identify the person: never copied, but their names go to the anonymizer
    "personal": "personal_info|basics",
    "name": "name|full_name",
    # when a bullet is an object rather than a string: its text and its improved version
    "bullet_text": "text|bullet|original|description",
    "improved": "improved|rewritten",
}

RESUME_TEXT_FIELDS = {
    # the whole resume as HTML (preferred when present: its blocks give clean line breaks)
    "html": "Resume_html",
    # ... or as text: snehaanbhawal `Resume_str`, gauravduttakiit `Resume`
    "text": "Resume_str|Resume|resume_text|text",
    # the context of every bullet: the dataset's category column
    "context": "Category",
}

# In structured resumes a bullet is labelled as one: two words ("Managed budgets") are enough.
JSON_MIN_WORDS = 2


def _fields(recipe: RecipeConfig, defaults: dict[str, str]) -> dict[str, str]:
    return {**defaults, **recipe.fields}


def person_names(section: Any, name_spec: str) -> list[str]:
    """Names found in a personal-info section: full name, first/last names, profile handles."""
    if not isinstance(section, dict):
        return []
    names: list[str] = []
    full = first_text(section, name_spec)
    if full:
        names.append(full)
    first = first_text(section, "first_name|firstname|given_name")
    last = first_text(section, "last_name|lastname|family_name|surname")
    if first or last:
        names.append(" ".join(part for part in (first, last) if part))
    profiles = first_field(section, "profiles")
    if isinstance(profiles, list):
        for profile in profiles:
            handle = first_text(profile, "username") if isinstance(profile, dict) else ""
            if handle:
                names.append(handle)
    return list(dict.fromkeys(names))


def _with_names(example: Example, record: RawRecord, names: list[str], group: str) -> Example:
    known = record.meta.get("person_names", [])
    merged = list(dict.fromkeys([*(known if isinstance(known, list) else []), *names]))
    if merged:
        example.meta["person_names"] = merged
    example.group_key = group
    return example


class ResumeJsonFormatter:
    """Nested resume objects: bullets from each job, the job title as context."""

    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.fields = _fields(recipe, RESUME_JSON_FIELDS)

    def format(self, record: RawRecord) -> Formatted:
        f = self.fields
        jobs = first_field(record.payload, f["experience"])
        if isinstance(jobs, dict):
            jobs = [jobs]
        if not isinstance(jobs, list) or not jobs:
            return drop(record, "no_experience")
        names = person_names(first_field(record.payload, f["personal"]), f["name"])
        group = f"{record.dataset}\x1f{record.id}"
        examples: list[Example] = []
        drops: list[Drop] = []
        index = 0
        for job in jobs:
            if not isinstance(job, dict):
                drops.append(Drop(record.source, record.dataset, record.id, "job_not_an_object"))
                continue
            context = normalize_text(first_text(job, f["title"])).strip()
            bullets = first_field(job, f["bullets"])
            if isinstance(bullets, str):
                bullets = [bullets]
            if not isinstance(bullets, list):
                continue
            for item in bullets:
                index += 1
                bullet, improved = self._bullet(item)
                if not bullet:
                    text_like = isinstance(item, (str, dict))
                    reason = "bullet_not_bullet_like" if text_like else "bullet_not_text"
                    drops.append(
                        Drop(record.source, record.dataset, f"{record.id}/{index}", reason)
                    )
                    continue
                example = bullet_example(self.recipe, record, bullet, improved, context, index)
                examples.append(_with_names(example, record, names, group))
        if not examples and not drops:
            return drop(record, "no_bullets")
        return examples, drops

    def _bullet(self, item: Any) -> tuple[str, str]:
        if isinstance(item, dict):
            text = first_text(item, self.fields["bullet_text"])
            improved = first_text(item, self.fields["improved"])
        elif isinstance(item, str):
            text, improved = item, ""
        else:
            return "", ""
        text = clean_bullet(normalize_text(text))
        if not is_bullet_like(text, min_words=JSON_MIN_WORDS):
            return "", ""
        return text, clean_bullet(normalize_text(improved)) if improved else ""


class ResumeTextFormatter:
    """A whole resume in one text or HTML column, split into bullets; the category as context."""

    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.fields = _fields(recipe, RESUME_TEXT_FIELDS)

    def format(self, record: RawRecord) -> Formatted:
        f = self.fields
        html = first_text(record.payload, f["html"]) if f["html"] else ""
        text = html_to_text(html) if html else first_text(record.payload, f["text"])
        if not text:
            return drop(record, "missing_resume_text")
        bullets = split_bullets(text)
        if not bullets:
            return drop(record, "no_bullets")
        context = humanize_label(normalize_text(first_text(record.payload, f["context"])).strip())
        group = f"{record.dataset}\x1f{record.id}"
        examples = [
            _with_names(
                bullet_example(self.recipe, record, bullet, "", context, i), record, [], group
            )
            for i, bullet in enumerate(bullets, start=1)
        ]
        return examples, []
