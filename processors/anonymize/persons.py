"""A person, once found, is gone everywhere.

The detectors record each person found in a record (a name line, a cue, a signature, the
source's metadata) as parts in `RecordNames`. Profile links and e-mail addresses add evidence:
`linkedin.com/in/jane-doe-6102` and `indeed.com/r/Jane-Doe/...` name their user, and
`jane.doe@...` spells a name whose first part the lexicon knows. `PersonFinder.find` then finds
every one of those parts in every message of the record, whatever the case and however joined
(`Jane Doe`, `DOE, Jane`, `jane-doe`, `jane.doe`, `janedoe`, `jdoe`), inside links, handles and
file names too: only letters may not touch a match on either side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from processors.anonymize.lexicon import NameLexicon
from processors.anonymize.spans import EMAIL, LINK, NAME, URL, RecordNames, Span

Variant = tuple[str, bool]  # (the person, whether the form must start with a capital)
_LETTERS = re.compile(r"[^\W\d_]+")
_PERSON_SPLIT = re.compile(r"[\s,.]+")  # the words of a person's key
# Paths whose user segment is a person's name by construction: two or more words there are a
# name even when no list knows them.
_NAMED_BY_SITE = re.compile(r"(?:linkedin\.com/(?:in|pub)|indeed\.com/r)/", re.IGNORECASE)


class PersonFinder:
    def __init__(self, lexicon: NameLexicon) -> None:
        self.lexicon = lexicon

    # -- evidence --------------------------------------------------------------------------
    def add_evidence(self, text: str, spans: Iterable[Span], record: RecordNames) -> None:
        """People that profile links and e-mail addresses of `text` spell."""
        for span in spans:
            if span.kind in (URL, LINK) and span.detail:
                by_site = _NAMED_BY_SITE.search(text, span.start, span.end) is not None
                self._user(span.detail, record, named=by_site)
            elif span.kind == EMAIL:
                local = text[span.start : span.end].split("@", 1)[0]
                if "@" in text[span.start : span.end]:
                    self._user(local, record, named=False)

    def _user(self, user: str, record: RecordNames, *, named: bool) -> None:
        words = [w for w in _LETTERS.findall(user) if len(w) >= 2]
        if not words:
            return
        lexicon = self.lexicon
        known = {part.lower(): person for part, person in record.parts.items()}
        titled = [w.capitalize() for w in words]
        if len(words) >= 2:
            common = [t in lexicon.vocabulary or t in lexicon.not_names for t in titled]
            if all(common):
                return
            if (
                named
                or any(w.lower() in known for w in words)
                or any(t in lexicon.first and not c for t, c in zip(titled, common, strict=True))
            ):
                self._add(words, record)
            return
        # One word: a joined first and last name (janedoe), or the initial and surname (jdoe).
        word = words[0].lower()
        if word in known or not 5 <= len(word) <= 30:
            return
        for part, person in known.items():
            if len(part) >= 3 and word.endswith(part) and (len(word) - len(part) <= 1):
                self._add([word], record, person=person)  # jdoe: the initial and a surname
                return
        for cut in range(3, len(word) - 2):
            head, tail = word[:cut].capitalize(), word[cut:].capitalize()
            if (
                head in lexicon.first
                and tail in lexicon.last
                and head not in lexicon.vocabulary
                and tail not in lexicon.vocabulary
            ):
                self._add([head, tail], record)
                return

    def _add(self, words: list[str], record: RecordNames, person: str = "") -> None:
        key = person or " ".join(words).casefold()
        for word in words:
            if len(word) >= 3 or (len(word) == 2 and len(words) > 1):
                record.parts.setdefault(word.capitalize(), key)

    # -- every mention ---------------------------------------------------------------------
    def variants(self, record: RecordNames) -> dict[str, Variant]:
        """Every form a person of the record may take, lowercased -> (person, needs a capital).

        A part of two letters (`GV` of `Karthik GV`) is matched only where it starts with a
        capital; every other form whatever its case.
        """
        found: dict[str, Variant] = {}
        people: dict[str, list[str]] = {}
        lexicon = self.lexicon
        for part, person in record.parts.items():
            low = part.lower()
            if len(low) >= 3:
                found.setdefault(low, (person, False))
            elif len(low) == 2 and part.capitalize() not in lexicon.vocabulary:
                found.setdefault(low, (person, True))
            people.setdefault(person, []).append(low)
        vocabulary = lexicon.vocabulary
        for person, parts in people.items():
            words = [w for w in _PERSON_SPLIT.split(person) if w.isalpha()] or parts
            if len(words) < 2:
                continue
            first, last = words[0].lower(), words[-1].lower()
            joined = [first + last, last + first, "".join(w.lower() for w in words)]
            joined.append(first[0] + last)  # jdoe
            joined.append(first + last[0])  # janed
            for form in joined:
                if len(form) >= 4 and form.capitalize() not in vocabulary:
                    found.setdefault(form, (person, False))
        return found

    def find(self, text: str, variants: dict[str, Variant]) -> list[Span]:
        """Every mention of a variant in `text`, with no letter touching it on either side."""
        if not variants:
            return []
        low = text.lower()
        if len(low) != len(text):  # a few letters change length when lowered: match them one by one
            return self._find_slowly(text, variants)
        spans: list[Span] = []
        size = len(text)
        for form, (person, capital) in variants.items():
            start = low.find(form)
            while start != -1:
                end = start + len(form)
                if (
                    (start == 0 or not text[start - 1].isalpha())
                    and (end == size or not text[end].isalpha())
                    and (not capital or text[start].isupper())
                ):
                    spans.append(Span(start, end, NAME, person))
                start = low.find(form, end)
        return spans

    def _find_slowly(self, text: str, variants: dict[str, Variant]) -> list[Span]:
        ordered = sorted(variants, key=len, reverse=True)
        pattern = re.compile(
            r"(?<![^\W\d_])(?:" + "|".join(re.escape(v) for v in ordered) + r")(?![^\W\d_])",
            re.IGNORECASE,
        )
        spans: list[Span] = []
        for m in pattern.finditer(text):
            person, capital = variants.get(m.group(0).lower(), ("", False))
            if not capital or m.group(0)[0].isupper():
                spans.append(Span(m.start(), m.end(), NAME, person))
        return spans
