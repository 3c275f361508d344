"""Whole resume documents (PDF, DOCX, text files of the inbox) in, examples out.

A document record's payload is `{"resume_document": ResumeDocument}` (made by
`collector/sources/documents.py`): the text as read, its sections and the bullets of its
achievement sections. Whatever recipe its source names, a document is formatted here
(`WithResumeDocuments` hands it over), with the recipe's prompts:

- each bullet of an achievement section (experience, projects, achievements, volunteer) that
  reads like a bullet becomes a `pairs` example for the rewrite stage, the header's job title
  (or the recipe's `default_context`) as its context;
- a summary section becomes a `summary_from_resume` training line: the user asks (in one of
  the template set's phrasings) for a summary of the rest of the document (every other
  section, header included), the assistant answers with the summary the person wrote. Only a
  document with both a summary and an experience section makes one.

The header's name line is never an answer: it goes to `meta.person_names`, so the anonymizer
removes every form of that person from every example of the document, as it does for the
names a JSON resume's `basics` holds. The text keeps its line breaks, so the name line stays a
line of its own where the anonymizer looks for it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, Formatter, bullet_example, drop
from processors.formatters.bullets import is_bullet_like
from processors.formatters.prompts import system_prompt, user_prompt
from processors.formatters.sections import Section, header_headline, header_name
from processors.records import Drop, Example, Message, RawRecord
from processors.templates import TaskName

DOCUMENT_KEY = "resume_document"
# A summary shorter than this many words is a heading's leftover, not a summary.
SUMMARY_MIN_WORDS = 12


class ResumeDocument(msgspec.Struct, frozen=True):
    """One document file read whole."""

    file: str  # its path inside the inbox: the record's id
    format: str  # pdf | docx | text | markdown | html
    pages: int  # PDF pages (0 for other formats)
    text: str  # the whole text in reading order, line breaks kept
    sections: list[Section]
    bullets: list[str]  # the bullets of its achievement sections, in order


class ResumeDocumentFormatter:
    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe

    def format(self, record: RawRecord) -> Formatted:
        try:
            document = msgspec.convert(record.payload.get(DOCUMENT_KEY), ResumeDocument)
        except msgspec.ValidationError as error:
            return drop(record, "document_malformed", str(error))
        names = [header_name(document.sections)]
        known = record.meta.get("person_names", [])
        names = [n for n in [*(known if isinstance(known, list) else []), *names] if n]
        context = header_headline(document.sections)
        group = f"{record.dataset}\x1f{record.id}"
        examples: list[Example] = []
        drops: list[Drop] = []
        for index, bullet in enumerate(document.bullets, start=1):
            if not is_bullet_like(bullet):
                drops.append(
                    Drop(record.source, record.dataset, f"{record.id}/{index}", "not_bullet_like")
                )
                continue
            example = bullet_example(self.recipe, record, bullet, "", context, index)
            examples.append(_owned(example, names, group))
        summary = self._summary(record, document, context)
        if summary is not None:
            examples.append(_owned(summary, names, group))
        if not examples:
            return drop(record, "document_without_bullets", f"{len(document.sections)} sections")
        return examples, drops

    def _summary(self, record: RawRecord, document: ResumeDocument, context: str) -> Example | None:
        kinds = [s.kind for s in document.sections]
        if "summary" not in kinds or "experience" not in kinds:
            return None
        summary = next(s for s in document.sections if s.kind == "summary")
        if len(summary.text.split()) < SUMMARY_MIN_WORDS:
            return None
        rest = "\n\n".join(_section_text(s) for s in document.sections if s is not summary)
        task: TaskName = "summary_from_resume"
        messages = [
            Message("system", system_prompt(self.recipe, task, context, rest)),
            Message("user", user_prompt(self.recipe, task, {"resume": rest}, rest)),
            Message("assistant", " ".join(summary.text.split())),
        ]
        return Example(
            messages=messages,
            source=record.source,
            dataset=record.dataset,
            record_id=f"{record.id}/summary",
            meta=dict(record.meta),
            task=task,
        )


def _section_text(section: Section) -> str:
    return f"{section.heading}\n{section.text}" if section.heading else section.text


def _owned(example: Example, names: list[str], group: str) -> Example:
    if names:
        example.meta["person_names"] = list(dict.fromkeys(names))
    example.group_key = group
    return example


class WithResumeDocuments:
    """A recipe's formatter for its own records; a resume document to the document formatter."""

    def __init__(self, formatter: Formatter) -> None:
        self.formatter = formatter
        self.recipe = formatter.recipe
        self.documents = ResumeDocumentFormatter(formatter.recipe)

    def format(self, record: RawRecord) -> Formatted:
        if is_document(record.payload):
            return self.documents.format(record)
        return self.formatter.format(record)


def is_document(payload: dict[str, Any]) -> bool:
    return DOCUMENT_KEY in payload and len(payload) == 1
