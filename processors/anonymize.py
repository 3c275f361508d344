"""Anonymization: personal information in training text becomes `[EMAIL]`, `[PHONE]`, `[URL]`,
`[ADDRESS]` and `[NAME]` (or `[NAME_1]`, `[NAME_2]`... per record with `consistent_names`).

Built for resume text, where precision matters as much as recall: `2019-2023`, `$1.2M`,
`v2.3.1`, `Q3 2021` are not phones and `New York`, `Full Stack`, `Google Cloud` are not names.

- Emails: one regex for the usual form, one for obfuscated forms (`jane dot doe at gmail dot
  com`, `jane[at]mail.com`), run only when a cheap test finds a hint of obfuscation.
- Phones: a regex finds digit runs that could be phones, cheap rules set aside what resumes are
  full of (year ranges, dates, versions, IDs), and the `phonenumbers` library decides: a run is a
  phone when `PhoneNumberMatcher` (leniency VALID) finds a valid number of one of the configured
  regions in it. A run right after `Phone:`/`Tel`/`Mobile` is a phone whatever its region.
- Names: set look-ups in the name lexicon (`processors/names.py`), context cues (`Name:`,
  `Contact`, `Supervisor:`, the first line of a document, a signature), names known from the
  source's metadata, and every further mention of a part of a name found.
- URLs: profile links (LinkedIn, GitHub, ...), personal sites (`janedoe.dev`, a domain made of a
  first and last name, a link after `Portfolio:`); other links stay.
- Addresses: street addresses (US/UK style, German `...straße 5`, French `12 rue ...`, Spanish
  and Italian `Calle`/`Via`), UK postcodes and PO boxes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from processors.config import AnonymizeConfig
from processors.names import NameLexicon, load_lexicon
from processors.records import Example, Message

EMAIL, PHONE, URL, ADDRESS, NAME = "[EMAIL]", "[PHONE]", "[URL]", "[ADDRESS]", "[NAME]"
_DATA = Path(__file__).parent / "data"

# ---------------------------------------------------------------------------------------------
# emails
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]*\w@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
_TLDS = (
    "com|org|net|edu|gov|mil|int|io|co|us|uk|de|fr|in|ca|au|es|it|nl|br|me|dev|info|biz|ai|"
    "app|ch|se|no|dk|fi|pl|ru|jp|cn|mx|ie|nz|za|be|pt|ar|cl|tech|xyz|email|name|online"
)
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s*_at_\s*|\s+@\s+|\s*\(@\)\s*)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\s*_dot_\s*|\.)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w+-]+(?:{_DOT}[\w+-]+)*{_AT}"
    rf"[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}(?:{_TLDS})(?![\w-])",
    re.IGNORECASE,
)
_OBFUSCATION_HINT = re.compile(
    r"[\[({<]\s*(?:at|dot)\s*[\])}>]|\bdot\b|\s@\s|_at_|\(@\)|\sat\s+(?:gmail|yahoo|hotmail|"
    r"outlook|protonmail|proton|icloud|aol|live|msn|gmx|yandex|zoho|mail)\b",
    re.IGNORECASE,
)
_MAIL_PROVIDERS = frozenset(
    [
        "gmail",
        "googlemail",
        "yahoo",
        "hotmail",
        "outlook",
        "protonmail",
        "proton",
        "icloud",
        "me",
        "aol",
        "live",
        "msn",
        "gmx",
        "yandex",
        "zoho",
        "mail",
        "web",
    ]
)
_MARKED = re.compile(r"[\[({<]\s*(?:at|dot)\s*[\])}>]|\sdot\s|_at_|_dot_|@", re.IGNORECASE)
_AT_WORD = re.compile(r"\s+at\s+", re.IGNORECASE)


def _obfuscated_email(match: re.Match[str]) -> str:
    text = match.group(0)
    if _MARKED.search(text):
        return EMAIL
    # "jane at gmail.com" only with a mail provider: "worked at Amazon.com" is resume text.
    domain = _AT_WORD.split(text, maxsplit=1)[-1]
    first_label = re.split(r"\W", domain, maxsplit=1)[0].lower()
    return EMAIL if first_label in _MAIL_PROVIDERS else text


# ---------------------------------------------------------------------------------------------
# URLs
_URL = re.compile(
    r"(?<![\w@/.])(?:(?:https?://|www\.)[^\s<>\"'`)\]}]+"
    r"|(?:[a-z0-9-]+\.)*(?:linkedin\.com|github\.com|gitlab\.com|bitbucket\.org|twitter\.com|"
    r"x\.com|facebook\.com|instagram\.com|medium\.com|behance\.net|dribbble\.com|kaggle\.com|"
    r"stackoverflow\.com|about\.me|angel\.co|wellfound\.com|leetcode\.com|hackerrank\.com|"
    r"codepen\.io|dev\.to|substack\.com|github\.io|gitlab\.io|netlify\.app|vercel\.app|"
    r"pages\.dev|herokuapp\.com|wordpress\.com|blogspot\.com|wixsite\.com|carrd\.co)"
    r"(?:/[^\s<>\"'`)\]}]*)?"
    r"|[a-z0-9][a-z0-9-]{1,40}\.(?:me|dev|name|page|site|website|portfolio|blog)"
    r"(?:/[^\s<>\"'`)\]}]*)?)"
    r"(?<![.,;:!?])",
    re.IGNORECASE,
)
_PROFILE_HOSTS = re.compile(
    r"(?:^|\.)(?:linkedin\.com|github\.com|gitlab\.com|bitbucket\.org|twitter\.com|x\.com|"
    r"facebook\.com|fb\.com|instagram\.com|medium\.com|behance\.net|dribbble\.com|kaggle\.com|"
    r"stackoverflow\.com|stackexchange\.com|about\.me|angel\.co|wellfound\.com|leetcode\.com|"
    r"hackerrank\.com|codepen\.io|dev\.to|substack\.com|github\.io|gitlab\.io|netlify\.app|"
    r"vercel\.app|pages\.dev|herokuapp\.com|wordpress\.com|blogspot\.com|wixsite\.com|"
    r"carrd\.co|tiktok\.com|youtube\.com|threads\.net|mastodon\.social|linktr\.ee|calendly\.com)$"
)
_PERSONAL_TLD = re.compile(r"\.(?:me|dev|name|page|site|website|portfolio|blog)$")
_URL_CUE = re.compile(
    r"(?:portfolio|website|web site|homepage|home page|personal site|blog|site|web)\s*[:\-–]\s*$",
    re.IGNORECASE,
)
_HOST = re.compile(r"^(?:https?://)?(?:www\.)?([^/:?#\s]+)", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# phones
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+.$€£/-])(?:\+|00)?\s?\(?\+?\d[\d \t().\-/]{4,24}\d(?![\w%$€£+]|[.,]\d)"
)
_YEAR_RUN = re.compile(r"^(?:(?:19|20)\d\d[\s\-–/.]*)+$")
_DATE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")
# A version (1.2.3) or an IPv4 address: dotted groups of at most three digits.
_VERSION = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")
_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$")
_PHONE_CUE = re.compile(
    r"(?<!\w)(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|text|contact|ph|mob|m)\b\.?"
    r"[\s:#.\-–]*(?:no\.?|number|nr\.?)?[\s:#.\-–]*$",
    re.IGNORECASE,
)
_ID_CUE = re.compile(
    r"(?:\bid|\bno\.?|#|number|certificate|certification|credential|licen[cs]e|isbn|issn|"
    r"order|invoice|patent|serial|ref\.?|account|acct|ticket|case|badge|employee|student|"
    r"version|build|release|doi|arxiv|pmid|sku|part)\W{0,3}$",
    re.IGNORECASE,
)

# ---------------------------------------------------------------------------------------------
# addresses
_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Grove|"
    r"Gardens|Mews|Row|Plaza"
)
_CAP = r"[A-Z][\w'’.-]*"
_ADDRESS = re.compile(
    # 221B Baker Street, Apt 4, Springfield, IL 62704
    rf"\b\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:[NSEW]\.?\s+)?(?:{_CAP}\s+){{1,3}}"
    rf"(?:{_STREET_TYPES})\b\.?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s*[\w-]+)?"
    r"(?:,\s*[A-Z][A-Za-z .'-]{1,30},\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
    # Hauptstraße 12a, 10115 Berlin
    r"|\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|ring)\s+"
    r"\d{1,4}[a-z]?\b(?:,\s*\d{5}\s+[A-ZÄÖÜ][\wäöüß-]+)?"
    # 12 rue de la Paix, 75002 Paris
    r"|\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|allée|place|chemin|"
    r"impasse|quai|route)\s+(?:(?:de|du|des|la|le|l’|l'|d’|d')\s*)*[A-ZÉÈ][\w'’-]*"
    r"(?:\s+[A-ZÉÈ][\w'’-]*){0,3}(?:,\s*\d{5}\s+[A-ZÉÈ][\w'’-]+)?"
    # Calle Mayor 5 / Via Roma, 10 / Rua Augusta 123
    r"|\b(?:Calle|Avenida|Carrer|Paseo|Plaza|Via|Viale|Piazza|Corso|Rua|Travessa|Largo)\s+"
    r"(?:(?:de|del|la|los|las|da|do|dos|das|di|della)\s+)*[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2}"
    r",?\s+(?:n[º°o]\.?\s*)?\d{1,4}\b"
    # UK postcode, PO box
    r"|\b(?:GIR\s?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]?\s\d[ABD-HJLNP-UW-Z]{2})\b"
    r"|\bP\.?\s?O\.?\s+Box\s+\d+\b",
)
_ADDRESS_HINT = re.compile(r"\d|stra(?:ß|ss)e|P\.?\s?O\.?\s+Box", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# names
_UPPER = "".join(
    chr(c)
    for c in (*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x370, 0x530))
    if chr(c).isupper()
)
_U = f"[{re.escape(_UPPER)}]"
_L = r"[^\W\d_]"
_WORD = rf"{_U}{_L}*(?:['’\-]{_U}?{_L}+)*"
_INITIAL = rf"{_U}\."
_GAP = r"[ \t]+"
# Two to four capitalised words in a row, with an optional middle initial.
_SEQUENCE = re.compile(
    rf"(?<![\w@/#.\[])(?:{_WORD})(?:{_GAP}(?:{_INITIAL}{_GAP})?{_WORD}){{1,3}}(?![\w@\]])"
)
_TOKEN = re.compile(rf"{_INITIAL}|{_WORD}")
_NAME_AFTER = rf"((?:{_WORD})(?:{_GAP}(?:{_INITIAL}{_GAP})?{_WORD}){{0,3}})"
_CUE = re.compile(
    r"\b(?:(?:Full[ \t]+)?Name|Contact(?:[ \t]+(?:Person|Name))?|Supervisor|Manager|Reference|"
    r"Referee|Mentor|Advisor|Adviser|Reports?[ \t]+to|Reporting[ \t]+to|Prepared[ \t]+by|"
    r"Written[ \t]+by|Author|Candidate|Applicant|Submitted[ \t]+by|Signed|Attn|Attention|"
    r"Emergency[ \t]+Contact|Point[ \t]+of[ \t]+Contact|POC)"
    rf"([ \t]*[:\-–—][ \t]*|[ \t]+){_NAME_AFTER}"
)
_SIGN_OFF = re.compile(
    r"(?:^|\n)[ \t]*(?:Thanks|Thank you|Many thanks|Best|Best regards|Kind regards|"
    r"Warm regards|Regards|Sincerely|Cheers|Yours truly|Yours sincerely|Respectfully|"
    r"Cordially|Best wishes|All the best)[ \t]*[,.!]?[ \t]*(?:\n[ \t]*)+"
    rf"{_NAME_AFTER}[ \t]*(?=\n|$)",
    re.IGNORECASE,
)
_DASH_SIGNATURE = re.compile(rf"(?:^|\n)[ \t]*(?:--|—|–|~)[ \t]*{_NAME_AFTER}[ \t]*$")
_FIRST_LINE = re.compile(
    rf"^[ \t]*((?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)"
    rf"(?:{_GAP}(?:{_INITIAL}{_GAP})?(?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)){{1,3}})[ \t]*\r?\n"
)
_TOKENS_IN_TEXT = re.compile(r"\[(?:EMAIL|PHONE|URL|ADDRESS|NAME)(?:_\d+)?\]")


def _title(word: str) -> str:
    return word[:1].upper() + word[1:].lower()


def _load_phrases() -> re.Pattern[str]:
    phrases = [
        line.strip()
        for line in (_DATA / "not_name_phrases.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    phrases.sort(key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b")


@dataclass
class RecordNames:
    """The people found so far in one record: their parts, and their `[NAME_n]` numbers."""

    numbered: bool = False
    keys: dict[str, int] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)  # "Jane" -> the person "jane doe"

    def token(self, key: str) -> str:
        if not self.numbered:
            return NAME
        n = self.keys.setdefault(key, len(self.keys) + 1)
        return f"[NAME_{n}]"


@dataclass(frozen=True)
class _KnownNames:
    pattern: re.Pattern[str] | None
    key_of: dict[str, str]  # casefolded matched text -> the person it belongs to


class Anonymizer:
    """Replaces personal information with tokens. Pure and thread-safe once built."""

    def __init__(self, config: AnonymizeConfig, lexicon: NameLexicon | None = None) -> None:
        self.config = config
        self.regions = [r.upper() for r in config.phone_regions]
        unknown = [r for r in self.regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            hint = " (the United Kingdom is GB)" if "UK" in unknown else ""
            raise ValueError(f"unknown phone regions {unknown}{hint}")
        self.lexicon = lexicon or (load_lexicon() if config.names else None)
        self._phrases = _load_phrases() if config.names else None
        self._known = lru_cache(maxsize=4096)(self._compile_known)

    # -- public API ------------------------------------------------------------------------
    def anonymize(
        self,
        text: str,
        known_names: Iterable[str] = (),
        *,
        record: RecordNames | None = None,
    ) -> str:
        config = self.config
        if not config.enabled or not text:
            return text
        if config.emails and "@" in text:
            text = _EMAIL.sub(EMAIL, text)
        if config.emails and _OBFUSCATION_HINT.search(text):
            text = _OBFUSCATED_EMAIL.sub(_obfuscated_email, text)
        names = tuple(n for n in known_names if isinstance(n, str) and n.strip())
        if config.urls and ("." in text):
            text = self._urls(text, names)
        if config.phones:
            text = self._phones(text)
        if config.addresses and _ADDRESS_HINT.search(text):
            text = _ADDRESS.sub(ADDRESS, text)
        if config.names:
            if record is None:
                record = RecordNames(numbered=config.consistent_names)
            text = self._names(text, names, record)
        return text

    def anonymize_example(self, example: Example) -> Example:
        """The example with every message (and a pending bullet) anonymized, in place."""
        if not self.config.enabled:
            return example
        known = example.meta.get("person_names") or ()
        if isinstance(known, str):
            known = (known,)
        names = tuple(str(n) for n in known)
        record = RecordNames(numbered=self.config.consistent_names)
        contents = [self.anonymize(m.content, names, record=record) for m in example.messages]
        bullet = example.meta.get("bullet")
        if isinstance(bullet, str) and bullet:
            bullet = self.anonymize(bullet, names, record=record)
        if record.parts:  # a person named in a later message, mentioned in an earlier one
            contents = [self._mentions(c, record) for c in contents]
            if isinstance(bullet, str) and bullet:
                bullet = self._mentions(bullet, record)
        example.messages = [
            Message(m.role, c) for m, c in zip(example.messages, contents, strict=True)
        ]
        if isinstance(bullet, str) and bullet:
            example.meta = {**example.meta, "bullet": bullet}
        return example

    # -- URLs ------------------------------------------------------------------------------
    def _urls(self, text: str, names: Sequence[str]) -> str:
        def replace(match: re.Match[str]) -> str:
            url = match.group(0)
            host_match = _HOST.match(url)
            host = host_match.group(1).lower() if host_match else ""
            if _PROFILE_HOSTS.search(host) or _PERSONAL_TLD.search(host):
                return URL
            if _URL_CUE.search(text, max(0, match.start() - 20), match.start()):
                return URL
            if self._personal_host(host, names):
                return URL
            return url

        return _URL.sub(replace, text)

    def _personal_host(self, host: str, names: Sequence[str]) -> bool:
        labels = host.split(".")
        label = labels[-2] if len(labels) >= 2 else host
        letters = label.replace("-", "").replace("_", "")
        for name in names:
            squashed = re.sub(r"\W", "", name).lower()
            if len(squashed) >= 4 and squashed in letters:
                return True
        lexicon = self.lexicon
        if lexicon is None or not letters.isalpha() or not 5 <= len(letters) <= 30:
            return False
        if "-" in label:
            first, _, last = label.partition("-")
            return _title(first) in lexicon.first and _title(last) in lexicon.last
        for cut in range(3, len(letters) - 2):
            if _title(letters[:cut]) in lexicon.first and _title(letters[cut:]) in lexicon.last:
                return True
        return False

    # -- phones ----------------------------------------------------------------------------
    def _phones(self, text: str) -> str:
        if sum(c.isdigit() for c in text[:4096]) < 7 and not any(c.isdigit() for c in text[4096:]):
            return text
        out: list[str] = []
        last = 0
        for match in _PHONE_CANDIDATE.finditer(text):
            span = self._phone_span(text, match)
            if span is None:
                continue
            start, end = span
            out.append(text[last:start])
            out.append(PHONE)
            last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _phone_span(self, text: str, match: re.Match[str]) -> tuple[int, int] | None:
        candidate = match.group(0)
        digits = sum(c.isdigit() for c in candidate)
        if not 7 <= digits <= 15:
            return None
        stripped = candidate.strip()
        before = text[max(0, match.start() - 24) : match.start()]
        cued = bool(_PHONE_CUE.search(before))
        if not cued:
            if _YEAR_RUN.match(stripped) or _DATE.match(stripped):
                return None
            if (
                _VERSION.match(stripped)
                or _IPV4.match(stripped)
                or before.rstrip().endswith(("v", "V"))
            ):
                return None
            if _ID_CUE.search(before):
                return None
        offset = match.start()
        international = stripped.startswith(("+", "00", "(+"))
        for region in self.regions[:1] if international else self.regions:
            for found in PhoneNumberMatcher(candidate, region, leniency=Leniency.VALID):
                found_digits = sum(c.isdigit() for c in found.raw_string)
                if found_digits >= digits - 1:
                    start, raw = offset + found.start, found.raw_string
                    if raw.startswith("(") and raw.count("(") > raw.count(")"):
                        start += 1  # "(+44 20 ...)": the bracket belongs to the sentence
                    return start, offset + found.end
        if cued:
            lead = len(candidate) - len(candidate.lstrip())
            return offset + lead, offset + len(candidate.rstrip())
        return None

    # -- names -----------------------------------------------------------------------------
    def _compile_known(self, names: tuple[str, ...]) -> _KnownNames:
        lexicon = self.lexicon
        alternatives: dict[str, str] = {}
        for name in names:
            full = " ".join(name.split())
            key = full.casefold()
            if len(full) >= 3:
                alternatives.setdefault(full.casefold(), key)
            for part in re.split(r"[\s_.]+", full):
                if len(part) < 3 or not part[:1].isalpha():
                    continue
                titled = _title(part)
                if lexicon is not None and (
                    titled in lexicon.not_names
                    or (titled in lexicon.vocabulary and titled not in lexicon.last)
                ):
                    continue
                alternatives.setdefault(part.casefold(), key)
        if not alternatives:
            return _KnownNames(None, {})
        ordered = sorted(alternatives, key=len, reverse=True)
        body = "|".join(re.escape(a).replace(r"\ ", r"\s+") for a in ordered)
        pattern = re.compile(rf"(?<![\w@/.\[])(?:{body})(?![\w@\]])", re.IGNORECASE)
        return _KnownNames(pattern, alternatives)

    def _names(self, text: str, known: tuple[str, ...], record: RecordNames) -> str:
        lexicon = self.lexicon
        assert lexicon is not None
        spans: list[tuple[int, int, str]] = []  # (start, end, person key)
        if known:
            compiled = self._known(known)
            if compiled.pattern is not None:
                for m in compiled.pattern.finditer(text):
                    key = compiled.key_of.get(" ".join(m.group(0).split()).casefold(), "")
                    spans.append((m.start(), m.end(), key or m.group(0).casefold()))
        self._cued_names(text, spans)
        for m in _SEQUENCE.finditer(text):
            self._sequence_names(m, spans)
        # Every further mention of a part of a name found ("Jane" after "Jane Doe").
        for start, end, key in spans:
            for token in _TOKEN.findall(text[start:end]):
                titled = _title(token)
                if (
                    len(token) >= 3
                    and not token.endswith(".")
                    and titled not in lexicon.not_names
                    and titled not in lexicon.vocabulary
                ):
                    record.parts.setdefault(token, key)
        if record.parts:
            for m in self._parts_pattern(record).finditer(text):
                spans.append((m.start(), m.end(), record.parts[m.group(0)]))
        if not spans:
            return text
        return self._render(text, spans, record)

    def _parts_pattern(self, record: RecordNames) -> re.Pattern[str]:
        alternation = "|".join(re.escape(p) for p in sorted(record.parts, key=len, reverse=True))
        return re.compile(rf"(?<![\w@/.\[])(?:{alternation})(?![\w@\]])")

    def _mentions(self, text: str, record: RecordNames) -> str:
        pattern = self._parts_pattern(record)
        return pattern.sub(lambda m: record.token(record.parts[m.group(0)]), text)

    def _render(self, text: str, spans: list[tuple[int, int, str]], record: RecordNames) -> str:
        spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        out: list[str] = []
        last = 0
        for start, end, key in spans:
            if start < last:
                continue
            out.append(text[last:start])
            out.append(record.token(key))
            last = end
        out.append(text[last:])
        return "".join(out)

    def _cued_names(self, text: str, spans: list[tuple[int, int, str]]) -> None:
        lexicon = self.lexicon
        assert lexicon is not None
        if ":" in text or "Contact" in text or "\n" in text:
            for m in _CUE.finditer(text):
                with_colon = m.group(1).strip() != ""
                self._cued(m, 2, spans, require_first=not with_colon)
        if "\n" in text:
            first = _FIRST_LINE.match(text)
            if first is not None:
                self._first_line(first, spans)
            for m in _SIGN_OFF.finditer(text):
                self._cued(m, 1, spans, require_first=False)
        if "-" in text or "—" in text or "–" in text or "~" in text:
            for m in _DASH_SIGNATURE.finditer(text):
                self._cued(m, 1, spans, require_first=True)

    def _cued(
        self,
        match: re.Match[str],
        group: int,
        spans: list[tuple[int, int, str]],
        *,
        require_first: bool,
    ) -> None:
        """Names right after a cue: take words until one that cannot be part of a name."""
        lexicon = self.lexicon
        assert lexicon is not None
        start = match.start(group)
        end = start
        taken: list[str] = []
        for token in _TOKEN.finditer(match.group(group)):
            word = token.group(0)
            titled = _title(word)
            if titled in lexicon.not_names:
                break
            if (
                titled in lexicon.vocabulary
                and titled not in lexicon.first
                and titled not in lexicon.last
            ):
                break
            taken.append(word)
            end = start + token.end()
        words = [w for w in taken if not w.endswith(".")]
        if not words:
            return
        if require_first and _title(words[0]) not in lexicon.first:
            return
        if self._phrase_inside(match.group(group)):
            return
        spans.append((start, end, " ".join(words).casefold()))

    def _first_line(self, match: re.Match[str], spans: list[tuple[int, int, str]]) -> None:
        lexicon = self.lexicon
        assert lexicon is not None
        line = match.group(1)
        words = [w for w in re.split(r"[ \t]+", line) if not w.endswith(".")]
        titled = [_title(w) for w in words]
        if any(t in lexicon.not_names for t in titled):
            return
        if not any(t in lexicon.first or t in lexicon.last for t in titled):
            return
        vocabulary = [t for t in titled if t in lexicon.vocabulary and t not in lexicon.last]
        if len(vocabulary) == len(titled) or self._phrase_inside(line):
            return
        spans.append((match.start(1), match.end(1), " ".join(words).casefold()))

    def _phrase_inside(self, text: str) -> bool:
        return self._phrases is not None and self._phrases.search(text) is not None

    def _sequence_names(self, match: re.Match[str], spans: list[tuple[int, int, str]]) -> None:
        lexicon = self.lexicon
        assert lexicon is not None
        first, last = lexicon.first, lexicon.last
        vocabulary, not_names = lexicon.vocabulary, lexicon.not_names
        tokens = [(t.start(), t.end(), t.group(0)) for t in _TOKEN.finditer(match.group(0))]
        words = [t for t in tokens if not t[2].endswith(".")]
        if len(words) < 2:
            return
        if self._phrases is not None and self._phrases.search(match.group(0)):
            blocked = {
                i
                for m in self._phrases.finditer(match.group(0))
                for i, w in enumerate(words)
                if m.start() <= w[0] < m.end()
            }
        else:
            blocked = set()
        titled = [_title(w[2]) for w in words]
        base = match.start()
        i = 0
        while i < len(words) - 1:
            a, b = titled[i], titled[i + 1]
            if i in blocked or i + 1 in blocked or a in not_names or b in not_names:
                i += 1
                continue
            a_first, a_vocab = a in first, a in vocabulary
            b_known = b in last or b in first
            b_vocab = b in vocabulary
            if a_first and not a_vocab:  # a strong first name
                is_name = b_known or (not b_vocab and not words[i + 1][2].isupper())
            elif a_first:  # a first name that is also a word: Will, Grant, Chase
                is_name = b in last and not b_vocab
            else:  # an unknown word before a known surname: Chidi Okonkwo
                is_name = (
                    b in last
                    and not b_vocab
                    and b not in first
                    and not a_vocab
                    and not words[i][2].isupper()
                )
            if not is_name:
                i += 1
                continue
            j = i + 1
            if (
                j + 1 < len(words)
                and j + 1 not in blocked
                and titled[j + 1] in last
                and titled[j + 1] not in vocabulary
                and titled[j + 1] not in not_names
            ):
                j += 1
            start, end = base + words[i][0], base + words[j][1]
            spans.append((start, end, " ".join(w[2] for w in words[i : j + 1]).casefold()))
            i = j + 1


def strip_tokens(text: str) -> str:
    """Text without the anonymizer's tokens (for dedupe normalisation and tests)."""
    return _TOKENS_IN_TEXT.sub(" ", text)
