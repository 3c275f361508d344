"""The opt-out list: people who asked not to be in the dataset, matched on records as fetched.

One entry per line of the list (`#` starts a comment):

    github:jdoe-dev            a GitHub login: every record from that account's repositories
    stackexchange:4242         a Stack Exchange user id: every question they asked or answered
    jane.doe@example.com       any other line: literal text (an e-mail, a name, a profile URL)

Text entries match case-insensitively, as whole words, anywhere in the record as it was fetched
(its payload and the metadata its source added), before anonymization: a name the output shows
as `[NAME]` is still found. A matching record is dropped as `opted_out`; the drop's detail says
which kind of entry matched, never the entry itself (it is personal data).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from processors.records import Drop, RawRecord

REASON = "opted_out"


class OptOutList:
    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.logins: set[str] = set()
        self.user_ids: set[str] = set()
        texts: list[str] = []
        for raw in entries:
            entry = raw.split(" #", 1)[0].strip()  # "jane@example.com  # asked 2026-01-05"
            if not entry or entry.startswith("#"):
                continue
            kind, _, value = entry.partition(":")
            if kind.casefold() == "github" and value.strip():
                self.logins.add(value.strip().casefold())
            elif kind.casefold() == "stackexchange" and value.strip().isdigit():
                self.user_ids.add(value.strip())
            else:
                texts.append(entry)
        self.texts = len(texts)
        # Longest first, so that of two entries sharing a start the longer one is tried first.
        alternatives = "|".join(re.escape(t) for t in sorted(set(texts), key=len, reverse=True))
        self._text = (
            re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if texts else None
        )
        self._encode = msgspec.json.Encoder().encode

    @classmethod
    def parse(cls, text: str) -> OptOutList:
        return cls(text.splitlines())

    def __len__(self) -> int:
        return len(self.logins) + len(self.user_ids) + self.texts

    def match(self, record: RawRecord) -> str:
        """Which kind of entry the record matches ("github login", "stackexchange user",
        "text"), or "" if none."""
        if self.logins and _github_owner(record) in self.logins:
            return "github login"
        if self.user_ids and self.user_ids & _stackexchange_users(record.payload):
            return "stackexchange user"
        if self._text is not None:
            text = self._encode([record.payload, record.meta]).decode("utf-8", "replace")
            if self._text.search(text):
                return "text"
        return ""

    def split(self, records: list[RawRecord]) -> tuple[list[RawRecord], list[Drop]]:
        """(records to keep, an `opted_out` drop for each of the others)."""
        if not len(self):
            return records, []
        kept: list[RawRecord] = []
        drops: list[Drop] = []
        for record in records:
            kind = self.match(record)
            if kind:
                drops.append(Drop(record.source, record.dataset, record.id, REASON, kind))
            else:
                kept.append(record)
        return kept, drops


def _github_owner(record: RawRecord) -> str:
    """The login that owns the repository a GitHub record came from ("" for other sources)."""
    repo = record.meta.get("repo")
    return repo.partition("/")[0].casefold() if isinstance(repo, str) else ""


def _stackexchange_users(payload: dict[str, Any]) -> set[str]:
    """The user ids of a Stack Exchange question's author and of its answers' authors."""
    posts = [payload.get("question"), *(payload.get("answers") or [])]
    found = set()
    for post in posts:
        owner = post.get("owner") if isinstance(post, dict) else None
        if isinstance(owner, dict) and owner.get("user_id") is not None:
            found.add(str(owner["user_id"]))
    return found
