"""Records whose credit would name the person they are about.

A licence such as CC BY asks whoever republishes a work to credit its author, and the published
provenance does (collector/sinks/formatted.py `PublishedProvenance`). When the author is the
person the record is about, a resume under CC BY in its owner's own repository, that credit
would give back the name and profile the anonymizer took out. Nothing can honour both the
licence and the person's privacy, so such a record is not published: it is dropped before it is
formatted, counted as `credit_would_identify`.

A source whose records are written by the people they are about (a resume in its owner's
repository) says so with `meta["about_author"] = True`; the person is then named in
`meta["person_names"]` (a login, a profile name, the name in the resume). Elsewhere those are
only names to anonymize (a question's author on Stack Exchange is credited and is nobody's
subject). The credit is `meta["authors"]` and `meta["url"]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REASON = "credit_would_identify"
_WORD = re.compile(r"[^\W_]+")


def requires_attribution(license: str) -> bool:
    """Whether reusing the content requires crediting its authors (CC BY*, ODC-By). The one
    home of the rule: the published provenance and the card use it too (collector/licences.py)."""
    lowered = license.lower()
    return lowered.startswith("cc-by") or lowered.startswith("odc-by")


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def _texts(meta: Mapping[str, Any]) -> Iterable[str]:
    authors = meta.get("authors")
    for author in authors if isinstance(authors, list) else ():
        if isinstance(author, Mapping):
            yield str(author.get("name") or "")
            yield str(author.get("url") or "")
    yield str(meta.get("url") or meta.get("link") or "")


def credit_identifies_subject(meta: Mapping[str, Any]) -> bool:
    """Whether publishing the credit the record's licence requires would name its subject: a
    name of the person (every word of it, each of two letters or more) is among the words of
    an author's name, profile link or the record's link."""
    licence = str(meta.get("license") or "")
    if meta.get("about_author") is not True or not requires_attribution(licence):
        return False
    names = meta.get("person_names")
    subjects = [
        words
        for name in (names if isinstance(names, list) else ())
        if (words := {w for w in _words(str(name)) if len(w) >= 2})
    ]
    if not subjects:
        return False
    credited = set().union(*(_words(text) for text in _texts(meta)))
    return any(words <= credited for words in subjects)
