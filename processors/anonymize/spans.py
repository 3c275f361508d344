"""What the detectors find, and the one place where it becomes tokens.

Each detector returns `Span`s over the text it was given; `merge` keeps a set that does not
overlap and `render` writes the text with each span replaced by its token (`[EMAIL]`,
`[PHONE]`, `[URL]`, `[ADDRESS]`, `[NAME]`, or `[NAME_1]`, `[NAME_2]`... per person of a record
with `consistent_names`). `TOKEN_PATTERN` is the one definition of what a token looks like
(dedupe and the rewrite checks import it).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

EMAIL, PHONE, URL, ADDRESS, NAME = "EMAIL", "PHONE", "URL", "ADDRESS", "NAME"
# A link that is not personal by itself: kept, unless a name of the record's people is in it
# (then it is a `URL`). Never rendered as it is.
LINK = "LINK"
KINDS = (EMAIL, PHONE, URL, ADDRESS, NAME)
TOKEN_PATTERN = re.compile(r"\[(?:EMAIL|PHONE|URL|ADDRESS|NAME)(?:_\d+)?\]")


class Span(NamedTuple):
    start: int
    end: int
    kind: str
    # NAME: the person it names (a key of `RecordNames`); URL, LINK: the user name in a
    # profile link (`jane-doe` of `linkedin.com/in/jane-doe-6102`), the evidence of a name
    detail: str = ""


@dataclass(slots=True)  # slots: one of each is built per record
class RecordNames:
    """The people of one record: each name part found so far, and `[NAME_n]` numbers."""

    numbered: bool = False
    keys: dict[str, int] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # "Jane" -> the person "jane doe"

    def token(self, key: str) -> str:
        if not self.numbered:
            return "[NAME]"
        n = self.keys.setdefault(key, len(self.keys) + 1)
        return f"[NAME_{n}]"


@dataclass(slots=True)
class Context:
    """What a detector may know of the text beyond itself: the record it belongs to."""

    record: RecordNames
    known: tuple[str, ...] = ()  # names from the source's metadata (an author, a login)
    # Where the contact detectors found something in the text at hand (e-mails, phones,
    # links): the name line of a resume sits just above such a line. None: not known yet.
    contacts: tuple[int, ...] | None = None


def merge(spans: list[Span]) -> list[Span]:
    """Spans that do not overlap, in text order.

    Contacts (emails, links, phones, addresses) are exact and win over names; among spans of
    the same rank the earlier one wins, and at the same start the longer one.
    """
    if len(spans) < 2:
        return spans
    order = sorted(spans, key=lambda s: (s.kind == NAME, s.start, s.start - s.end))
    starts: list[int] = []
    taken: list[Span] = []
    for span in order:
        at = bisect_right(starts, span.start)
        if at and taken[at - 1].end > span.start:
            continue  # overlaps the span before it
        if at < len(taken) and taken[at].start < span.end:
            continue  # overlaps the span after it
        starts.insert(at, span.start)
        taken.insert(at, span)
    return taken


def render(text: str, spans: list[Span], record: RecordNames) -> str:
    """`text` with every span (merged: none overlap) replaced by its token."""
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end, kind, detail in spans:
        out.append(text[last:start])
        out.append(record.token(detail) if kind == NAME else f"[{kind}]")
        last = end
    out.append(text[last:])
    return "".join(out)


def lines_of(text: str) -> Iterator[tuple[int, str]]:
    """(offset, line) for each line of `text`. Contacts never span lines, and a detector that
    scans only the lines its cheap test lets through skips most of a long document."""
    at = 0
    for line in text.split("\n"):
        yield at, line
        at += len(line) + 1
