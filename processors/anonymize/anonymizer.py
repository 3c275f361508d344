"""The anonymizer: runs the detectors over every message of a record, then removes each person
found anywhere from every message, and renders the tokens once.

    for each message:   emails, links, phones, addresses, names  -> spans (+ people found)
    for the record:     profile links and e-mail addresses       -> more people
    for each message:   every form of every person               -> spans
                        a kept link that spells a person         -> URL
                        merge, render; what a person still shows -> counted, replaced

Built for resume text, where precision matters as much as recall: `2019-2023`, `$1.2M`,
`v2.3.1`, `Q3 2021` are not phones and `New York`, `Full Stack`, `Google Cloud` are not names.
"""

from __future__ import annotations

from collections.abc import Iterable

from processors.anonymize.addresses import AddressDetector
from processors.anonymize.emails import EmailDetector
from processors.anonymize.lexicon import NameLexicon, load_lexicon
from processors.anonymize.links import LinkDetector
from processors.anonymize.names import NameDetector
from processors.anonymize.persons import PersonFinder, Variant
from processors.anonymize.phones import PhoneDetector
from processors.anonymize.spans import (
    LINK,
    NAME,
    URL,
    Context,
    RecordNames,
    Span,
    merge,
    render,
)
from processors.config import AnonymizeConfig
from processors.records import Example, Message

# Texts in which the detectors found nothing, remembered for records with no known names:
# detection reads nothing of a record but those names (the people found in its other messages
# are looked for after it, in every text, cached or not), so such a text finds nothing again;
# and records repeat their prompts and instructions. At most 4,096 texts of 1,000 characters
# (4 MB of ASCII text).
_CLEAN_TEXTS = 4096
_CLEAN_LENGTH = 1000


class Detector:
    """What every detector is: `find(text, context) -> spans` of its kind."""

    kind: str

    def find(self, text: str, context: Context) -> list[Span]:
        raise NotImplementedError


class Anonymizer:
    """Replaces personal information with tokens. Pure and thread-safe once built."""

    name = "anonymize"

    def __init__(self, config: AnonymizeConfig, lexicon: NameLexicon | None = None) -> None:
        self.config = config
        phones = PhoneDetector(config.phone_regions)  # checks the regions even when off
        self.lexicon = lexicon or (load_lexicon() if config.names or config.urls else None)
        self.contacts: list[EmailDetector | LinkDetector | PhoneDetector | AddressDetector] = []
        if config.emails:
            self.contacts.append(EmailDetector())
        if config.urls:
            self.contacts.append(LinkDetector(self.lexicon))
        if config.phones:
            self.contacts.append(phones)
        if config.addresses:
            self.contacts.append(AddressDetector())
        self.names: NameDetector | None = None
        self.persons: PersonFinder | None = None
        if config.names and self.lexicon is not None:
            self.names = NameDetector(self.lexicon)
            self.persons = PersonFinder(self.lexicon)
        # See `_CLEAN_TEXTS`. Each dict operation is atomic: threads may share it.
        self._clean: dict[str, None] = {}

    # -- public API ------------------------------------------------------------------------
    def anonymize(
        self,
        text: str,
        known_names: Iterable[str] = (),
        *,
        record: RecordNames | None = None,
    ) -> str:
        """One text, as a record of one message (`record` carries people across calls)."""
        if not self.config.enabled or not text:
            return text
        known = tuple(n for n in known_names if isinstance(n, str) and n.strip())
        record = record or RecordNames(numbered=self.config.consistent_names)
        return self._record([text], known, record)[0]

    def run(self, example: Example) -> None:
        """Anonymizes every message of the example (and a pending bullet) in place; never drops
        it."""
        if not self.config.enabled:
            return
        meta = example.meta
        known: tuple[str, ...] = ()
        bullet = None
        if meta:
            names = meta.get("person_names") or ()
            if isinstance(names, str):
                names = (names,)
            known = tuple(str(n) for n in names if n and str(n).strip())
            bullet = meta.get("bullet")
        texts = [m.content for m in example.messages]
        has_bullet = isinstance(bullet, str) and bool(bullet)
        if has_bullet:
            texts.append(str(bullet))
        record = RecordNames(numbered=self.config.consistent_names)
        residual: dict[str, int] = {}  # a plain dict: a Counter costs more to build than to fill
        out = self._record(texts, known, record, residual)
        if out is texts:
            return  # nothing found: the example stays as it is
        if residual:
            example.residual = residual
        if has_bullet:
            example.meta = {**example.meta, "bullet": out.pop()}
        # Messages are frozen: only a changed one is built again.
        example.messages = [
            m if c is m.content else Message(m.role, c)
            for m, c in zip(example.messages, out, strict=True)
        ]

    # -- one record ------------------------------------------------------------------------
    def _record(
        self,
        texts: list[str],
        known: tuple[str, ...],
        record: RecordNames,
        residual: dict[str, int] | None = None,
    ) -> list[str]:
        """The texts anonymized; `texts` itself where nothing is to be replaced in any."""
        context = Context(record, known)
        found = [self._detect(text, context) for text in texts]
        if not record.parts and not any(found):
            return texts  # nothing found, and no person of the record to look for
        persons = self.persons
        if persons is None:
            return [
                render(t, merge([s for s in spans if s.kind != LINK]), record) if spans else t
                for t, spans in zip(texts, found, strict=True)
            ]
        for text, spans in zip(texts, found, strict=True):
            if spans:
                persons.add_evidence(text, spans, record)
        variants = persons.variants(record) if record.parts else {}
        out: list[str] = []
        for text, spans in zip(texts, found, strict=True):
            if variants:
                spans = spans + persons.find(text, variants)
            if not spans:
                out.append(text)
                continue
            rendered = render(text, merge(_links_resolved(spans)), record)
            if variants:
                rendered = self._residual(rendered, variants, record, residual)
            out.append(rendered)
        return out

    def _detect(self, text: str, context: Context) -> list[Span]:
        if not text:
            return []
        cacheable = not context.known and len(text) <= _CLEAN_LENGTH
        if cacheable and text in self._clean:
            return []
        spans = self._detect_all(text, context)
        if cacheable and not spans:
            if len(self._clean) >= _CLEAN_TEXTS:
                self._clean.clear()  # rare; the prompts that repeat come back at once
            self._clean[text] = None
        return spans

    def _detect_all(self, text: str, context: Context) -> list[Span]:
        """Every detector on `text` (the path `_detect` caches a clean result of)."""
        spans: list[Span] = []
        for detector in self.contacts:
            spans += detector.find(text, context)
        if self.names is not None:
            context.contacts = tuple([s.start for s in spans]) if spans else ()
            spans += self.names.find(text, context)
            context.contacts = None
        return spans

    def _residual(
        self,
        text: str,
        variants: dict[str, Variant],
        record: RecordNames,
        residual: dict[str, int] | None,
    ) -> str:
        """The last check: no form of a person of the record survives the rendering (a span
        that lost to an overlapping one may have held it). What it finds is replaced and
        counted."""
        assert self.persons is not None
        left = self.persons.find(text, variants)
        if not left:
            return text
        if residual is not None:
            key = NAME.lower()
            residual[key] = residual.get(key, 0) + len(left)
        return render(text, merge(left), record)


def _links_resolved(spans: list[Span]) -> list[Span]:
    """A kept link with a person's name in it is personal (`URL`); other kept links stay."""
    links = [s for s in spans if s.kind == LINK]
    if not links:
        return spans
    names = [s for s in spans if s.kind == NAME]
    out = [s for s in spans if s.kind != LINK]
    for link in links:
        if any(link.start <= n.start and n.end <= link.end for n in names):
            out.append(Span(link.start, link.end, URL, link.detail))
    return out
