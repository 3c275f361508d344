"""`job_posting`: a posting is context, never an answer.

The original collector turned postings into "Improve this resume bullet" lines with the posting
as the improved bullet: a made-up pair. A posting holds no resume bullet and no improvement of
one, so this recipe never writes a training line. What it can honestly give is the posting's
duty lines (the items of its responsibilities list, e.g. `- Build ETL pipelines in Airflow`),
which read like a first-draft resume bullet for that role: each becomes a `pairs` line for the
rewrite stage with the posting's title as context. Prose descriptions, requirement lines
(`5+ years of Python`, `Strong communication skills`) and questions yield nothing, and a posting
with no duty line is dropped with the reason `posting_without_duty_lines`.
"""

from __future__ import annotations

import re

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, bullet_example, drop
from processors.formatters.bullets import (
    first_text,
    html_to_text,
    humanize_label,
    list_items,
    looks_like_html,
    normalize_text,
)
from processors.records import RawRecord

JOB_POSTING_FIELDS = {
    "title": "title|job_title|gig_title|name",
    "description": "description|job_description|gig_description|details|desc",
}

# First words of requirement lines: what a candidate must have, not something they did.
REQUIREMENT_OPENERS = frozenset(
    [
        "experience",
        "experienced",
        "knowledge",
        "strong",
        "excellent",
        "good",
        "great",
        "proficiency",
        "proficient",
        "familiarity",
        "familiar",
        "ability",
        "able",
        "bachelor",
        "bachelor's",
        "bachelors",
        "degree",
        "master's",
        "masters",
        "must",
        "should",
        "minimum",
        "min",
        "at",
        "years",
        "year",
        "certification",
        "certified",
        "understanding",
        "solid",
        "proven",
        "fluent",
        "fluency",
        "preferred",
        "plus",
        "nice",
        "bonus",
        "required",
        "requirement",
        "requirements",
        "expertise",
        "expert",
        "hands-on",
        "working",
        "demonstrated",
        "deep",
        "we",
        "our",
        "you're",
        "are",
        "is",
    ]
)
_POSTING_VOICE = re.compile(r"^(?:you will|you'll|you’ll|will|to)\s+", re.IGNORECASE)


def duty_line(item: str) -> str:
    """The item as a duty in a resume's voice, or "" for requirements and questions."""
    if item.endswith("?") or item[:1].isdigit():
        return ""
    first = item.split()[0].casefold().strip(",.:;()")
    if first in REQUIREMENT_OPENERS:
        return ""
    duty = _POSTING_VOICE.sub("", item, count=1)
    return duty[:1].upper() + duty[1:]


class JobPostingFormatter:
    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.fields = {**JOB_POSTING_FIELDS, **recipe.fields}

    def format(self, record: RawRecord) -> Formatted:
        description = first_text(record.payload, self.fields["description"])
        if not description:
            return drop(record, "missing_description")
        if looks_like_html(description):
            description = html_to_text(description)
        duties = [d for d in (duty_line(item) for item in list_items(description)) if d]
        if not duties:
            return drop(record, "posting_without_duty_lines")
        title = humanize_label(normalize_text(first_text(record.payload, self.fields["title"])))
        group = f"{record.dataset}\x1f{record.id}"
        examples = []
        for index, duty in enumerate(duties, start=1):
            example = bullet_example(self.recipe, record, duty, "", title.strip(), index)
            example.meta["origin"] = "job_posting"
            example.group_key = group
            examples.append(example)
        return examples, []
