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
from functools import cache, lru_cache
from pathlib import Path

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

from processors.config import AnonymizeConfig
from processors.names import NameLexicon, load_lexicon
from processors.records import Example, Message

EMAIL, PHONE, URL, ADDRESS, NAME = "[EMAIL]", "[PHONE]", "[URL]", "[ADDRESS]", "[NAME]"
_DATA = Path(__file__).parent / "data"

_split = str.split
# The contact passes, as bits.
_EMAILS, _OBFUSCATED, _URLS, _PHONES, _ADDRESSES = 1, 2, 4, 8, 16

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
# Written in every obfuscated email (a bracket, " at ", " dot "...): plain substring tests.
# Run the obfuscated-email regex only where one of these shows (on lowercased text).
_OBFUSCATION_HINT = re.compile(
    r"\[at\]|\(at\)|\{at\}|<at>| dot |_at_|_dot_|\(@\)| @ |\[dot\]|\(dot\)|\{dot\}"
    r"| at (?:gmail|googlemail|yahoo|hotmail|outlook|proton|icloud|aol|gmx|yandex|zoho|msn|live|"
    r"mail|web)\b"
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
_DOT_LETTER = re.compile(r"\.[A-Za-z]")
# A host-like word: a known profile site, or a word, a dot and a personal-site ending.
_HOST_HINT = re.compile(
    r"(?:linkedin|github|gitlab|bitbucket|twitter|x\.com|facebook|instagram|medium|behance|"
    r"dribbble|kaggle|stackoverflow|about\.me|angel\.co|wellfound|leetcode|hackerrank|codepen|"
    r"dev\.to|substack|netlify|vercel|pages\.dev|herokuapp|wordpress|blogspot|wixsite|carrd)|"
    r"[a-z0-9]\.(?:me|dev|name|page|site|website|portfolio|blog)\b"
)
_PERSONAL_TLD = re.compile(r"\.(?:me|dev|name|page|site|website|portfolio|blog)$")
_URL_CUE = re.compile(
    r"(?:portfolio|website|web site|homepage|home page|personal site|blog|site|web)\s*[:\-–]\s*$",
    re.IGNORECASE,
)
_HOST = re.compile(r"^(?:https?://)?(?:www\.)?([^/:?#\s]+)", re.IGNORECASE)

# ---------------------------------------------------------------------------------------------
# phones
# A run of digits and phone punctuation. It starts with a character class (so the regex engine
# can skip ahead fast) and checks the character before it with a lookbehind after it.
_PHONE_CANDIDATE = re.compile(
    r"[+(\d](?<![\w+.$€£/-][+(\d])[\d \t().\-/+]{4,26}\d(?![\w%$€£+]|[.,]\d)"
)
_DIGIT = re.compile(r"\d")
_YEAR_RUN = re.compile(r"^(?:(?:19|20)\d\d[\s\-–/.]*)+$")
_MONTH_YEAR = re.compile(r"(?:^|\D)(?:0?[1-9]|1[0-2])/(?:19|20)\d\d$")
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

_TYPE_DESCS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
_Rule = tuple[
    re.Pattern[str] | None,
    re.Pattern[str],
    frozenset[int],
    list[tuple[re.Pattern[str], frozenset[int]]],
]


_COUNTRY_CODES = {
    region: str(code)
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
    for region in regions
}


_TRANSFORMS: dict[str, str] = {}


@cache
def _region_rule(region: str) -> _Rule | None:
    """A region's validity rule from phonenumbers' metadata, compiled once.

    The same test `phonenumbers.is_valid_number_for_region` makes: the national significant
    number matches the general description and one number type (fixed line, mobile, toll free,
    ...), pattern and possible length both. A test holds them equal on generated numbers.
    """
    meta = PhoneMetadata.metadata_for_region(region)
    if (
        meta is None
        or meta.general_desc is None
        or meta.general_desc.national_number_pattern is None
    ):
        return None
    general = meta.general_desc
    general_lengths = frozenset(general.possible_length or ())
    types: list[tuple[re.Pattern[str], frozenset[int]]] = []
    for name in _TYPE_DESCS:
        desc = getattr(meta, name, None)
        if desc is None or desc.national_number_pattern is None:
            continue
        lengths = desc.possible_length or general.possible_length or ()
        if tuple(lengths) == (-1,):
            continue
        types.append((re.compile(desc.national_number_pattern), frozenset(lengths)))
    prefix = meta.national_prefix_for_parsing or meta.national_prefix
    if meta.national_prefix_transform_rule:
        _TRANSFORMS[region] = meta.national_prefix_transform_rule
    return (
        re.compile(prefix) if prefix else None,
        re.compile(general.national_number_pattern or r"\d+"),
        general_lengths,
        types,
    )


def _valid_nsn(nsn: str, rule: _Rule) -> bool:
    _, general, lengths, types = rule
    if len(nsn) not in lengths or not general.fullmatch(nsn):
        return False
    return any(len(nsn) in ls and pattern.fullmatch(nsn) for pattern, ls in types)


def _valid_national(digits: str, region: str) -> bool:
    rule = _region_rule(region)
    if rule is None:
        return False
    if _valid_with_trunk(digits, region, rule):
        return True
    # A national number written with its country code but no "+" (5511 2000 0000 in Brazil):
    # phonenumbers takes the code off when what is left is valid.
    code = _COUNTRY_CODES.get(region, "")
    return (
        bool(code)
        and digits.startswith(code)
        and _valid_with_trunk(digits[len(code) :], region, rule)
    )


def _valid_with_trunk(digits: str, region: str, rule: _Rule) -> bool:
    """Valid as written, or once the national (trunk) prefix is taken off."""
    prefix = rule[0]
    if prefix is not None:
        trunk = prefix.match(digits)
        if trunk is not None and trunk.end() > 0:
            if _valid_nsn(digits[trunk.end() :], rule):
                return True
            # Brazil: "0 12 11 2000 0000" dials carrier 12; the number is what is left.
            transform = _TRANSFORMS.get(region)
            carrier = transform and trunk.groups() and trunk.groups()[-1] is not None
            if carrier and _valid_nsn(prefix.sub(transform or "", digits, count=1), rule):
                return True
    return _valid_nsn(digits, rule)


def _valid_international(digits: str) -> bool:
    """`digits` after the `+`: a country code, then a number valid in one of its regions."""
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size] or 0))
        if not regions:
            continue
        rest = digits[size:]
        for region in regions:
            rule = _region_rule(region)
            if rule is None:
                continue
            # "+44 (0)20 ...": a trunk zero written after the country code is not dialled.
            if _valid_nsn(rest, rule) or (rest.startswith("0") and _valid_nsn(rest[1:], rule)):
                return True
        return False
    return False


def _not_a_phone(body: str, before: str) -> bool:
    """Digit runs resumes are full of: year ranges, dates, versions, IPs, IDs."""
    shape = body.strip("()")
    if _YEAR_RUN.match(shape) or _DATE.match(shape) or _MONTH_YEAR.search(shape):
        return True
    if _VERSION.match(shape) or _IPV4.match(shape):
        return True
    if body.count("(") != body.count(")"):  # "500 (07/2016": two things, not one number
        return True
    return before.rstrip().endswith(("v", "V")) or _ID_CUE.search(before) is not None


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
# What every address form below holds: a street word (221B Baker Street, Hauptstraße 5,
# 12 rue de la Paix, Calle Mayor 5, P.O. Box 12) or a UK postcode. The address regex runs only
# on texts with a digit and one of these.
# One leading character class, so the regex engine skips from capital to capital.
_POSTCODE = re.compile(r"[A-Z](?:\d[A-Z\d]?\s\d[A-Z]{2}|IR\s?0AA)")
_STREET_WORDS = frozenset(
    _split(
        "street st avenue ave road rd boulevard blvd lane ln drive dr court ct way place pl "
        "terrace parkway pkwy circle cir highway hwy square sq trail crescent close grove "
        "gardens mews row plaza rue av bd allée chemin impasse quai route calle avenida carrer "
        "paseo via viale piazza corso rua travessa largo box weg gasse platz allee damm ring"
    )
)

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
# Both start with the capital letter itself and look behind it after it, so the regex engine
# can skip from capital to capital (a leading lookbehind makes it try every position).
_SEQUENCE = re.compile(
    rf"{_U}(?<![\w@/#.\[].){_L}*(?:['’\-]{_U}?{_L}+)*"
    rf"(?:{_GAP}(?:{_INITIAL}{_GAP})?{_WORD}){{1,3}}(?![\w@\]])"
)
_TOKEN = re.compile(rf"{_INITIAL}|{_WORD}")
_LONE_WORD = re.compile(rf"{_U}(?<![\w@/.\[].){_L}*(?:['’\-]{_U}?{_L}+)*(?![\w@\]])")
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
_CUE_HINT = re.compile(
    r"Name|Contact|Supervisor|Manager|Refere|Mentor|Advis|Report|Prepared|Written|Author|"
    r"Candidate|Applicant|Submitted|Signed|Attn|Attention|POC|Point"
)
_DASH_HINT = re.compile(r"(?:^|\n)[ \t]*(?:--|—|–|~)")
_DASH_SIGNATURE = re.compile(rf"(?:^|\n)[ \t]*(?:--|—|–|~)[ \t]*{_NAME_AFTER}[ \t]*(?=\n|$)")
# The first line of a text that has more lines.
_FIRST_LINE = re.compile(
    rf"[ \t]*((?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)"
    rf"(?:{_GAP}(?:{_INITIAL}{_GAP})?(?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)){{1,3}})[ \t]*\r?\n"
)
_TOKENS_IN_TEXT = re.compile(r"\[(?:EMAIL|PHONE|URL|ADDRESS|NAME)(?:_\d+)?\]")


def _title(word: str) -> str:
    return word.capitalize()


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
        self._cache: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

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
        names = (
            tuple(n for n in known_names if isinstance(n, str) and n.strip()) if known_names else ()
        )
        return self._anonymize(text, names, record)

    def _repeated(self, text: str, record: RecordNames) -> str:
        """A text that comes back again and again (a recipe's system prompt): from a cache."""
        hit = self._cache.get(text)
        if hit is None:
            found = RecordNames()
            hit = (self._anonymize(text, (), found), tuple(found.parts.items()))
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[text] = hit
        for part, person in hit[1]:
            record.parts.setdefault(part, person)
        return hit[0]

    def _anonymize(self, text: str, names: tuple[str, ...], record: RecordNames | None) -> str:
        config = self.config
        passes = self._contact_passes(text)
        if passes:
            # Emails, URLs, phones and addresses never span lines: each pass runs on the lines
            # that can hold what it looks for (a resume has a dozen lines, few with contacts).
            if "\n" in text:
                lines = text.split("\n")
                changed = False
                for index, line in enumerate(lines):
                    new = self._contact_line(line, names, passes)
                    if new is not line:
                        lines[index] = new
                        changed = True
                if changed:
                    text = "\n".join(lines)
            else:
                text = self._contact_line(text, names, passes)
        if config.names:
            if record is None:
                record = RecordNames(numbered=config.consistent_names)
            # Every rule that finds a name on its own needs a capital letter after the text's
            # first character (two capitalised words, a cue and a name, a signature on a line
            # of its own); names from the metadata and mentions of a part found earlier are
            # matched whatever the case.
            rest = text[1:]
            if names or record.parts or rest != rest.lower():
                text = self._names(text, names, record)
        return text

    def anonymize_example(self, example: Example) -> Example:
        """The example with every message (and a pending bullet) anonymized, in place."""
        if not self.config.enabled:
            return example
        meta = example.meta
        names: tuple[str, ...] = ()
        bullet = None
        if meta:
            known = meta.get("person_names") or ()
            if isinstance(known, str):
                known = (known,)
            names = tuple(str(n) for n in known if n and str(n).strip())
            bullet = meta.get("bullet")
        record = RecordNames(numbered=self.config.consistent_names)
        messages = example.messages
        contents = [
            self._repeated(m.content, record)
            if m.role == "system" and not names and not record.parts and len(m.content) < 4096
            else self._anonymize(m.content, names, record)
            for m in messages
        ]
        if isinstance(bullet, str) and bullet:
            bullet = self._anonymize(bullet, names, record)
        if record.parts:  # a person named in a later message, mentioned in an earlier one
            contents = [self._mentions(c, record) for c in contents]
            if isinstance(bullet, str) and bullet:
                bullet = self._mentions(bullet, record)
        # Messages are frozen: only a changed one is built again.
        example.messages = [
            m if c is m.content else Message(m.role, c)
            for m, c in zip(messages, contents, strict=True)
        ]
        if isinstance(bullet, str) and bullet:
            example.meta = {**example.meta, "bullet": bullet}
        return example

    # -- URLs ------------------------------------------------------------------------------

    def _contact_passes(self, text: str) -> int:
        """The passes worth running on this text, from cheap tests on the whole of it."""
        config = self.config
        passes = 0
        digits = _DIGIT.search(text) is not None
        # A candidate never spans lines, so one search over the text says whether any line
        # has one: most digits in resume text (a year, a percentage) are not even candidates.
        if config.phones and digits and _PHONE_CANDIDATE.search(text) is not None:
            passes |= _PHONES
        if config.emails and "@" in text:
            passes |= _EMAILS
        low = text.lower()
        # Cheap substring and set tests first; the hint regexes only where they pass.
        marked = (
            " at " in low
            or "dot" in low
            or "_at_" in low
            or "[" in text
            or "(" in text
            or "{" in text
            or "<" in text
        )
        if config.emails and marked and _OBFUSCATION_HINT.search(low):
            passes |= _OBFUSCATED
        # A host needs a dot before a letter.
        hosted = "." in text and ("://" in text or _DOT_LETTER.search(text) is not None)
        if config.urls and hosted and ("://" in low or "www." in low or _HOST_HINT.search(low)):
            passes |= _URLS
        if (
            config.addresses
            and digits
            and (
                "str" in low
                or not _STREET_WORDS.isdisjoint(low.replace(",", " ").replace(".", " ").split())
                or _POSTCODE.search(text)
            )
        ):
            passes |= _ADDRESSES
        return passes

    def _contact_line(self, line: str, names: Sequence[str], passes: int) -> str:
        if passes & _EMAILS and "@" in line:
            line = _EMAIL.sub(EMAIL, line)
        if passes & _OBFUSCATED and _OBFUSCATION_HINT.search(line.lower()):
            line = _OBFUSCATED_EMAIL.sub(_obfuscated_email, line)
        if passes & _URLS and "." in line:
            line = self._urls(line, names)
        if passes & (_PHONES | _ADDRESSES) and _DIGIT.search(line):
            if passes & _PHONES:
                line = self._phones(line)
            if passes & _ADDRESSES:
                line = _ADDRESS.sub(ADDRESS, line)
        return line

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
        if not _DIGIT.search(text):
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
        digits = "".join(c for c in candidate if c.isdigit())
        if not 7 <= len(digits) <= 15:
            return None
        lead = len(candidate) - len(candidate.lstrip())
        opened = candidate.count("(") - candidate.count(")")
        while opened > 0 and candidate[lead] == "(":
            lead += 1  # "(+44 20 ...)": the bracket belongs to the sentence
            opened -= 1
        body = candidate[lead:].rstrip()
        start, end = match.start() + lead, match.start() + lead + len(body)
        before = text[max(0, match.start() - 24) : match.start()]
        cued = bool(_PHONE_CUE.search(before))
        if not cued and _not_a_phone(body, before):
            return None
        if body.startswith("+") or body.startswith("00"):
            valid = _valid_international(digits[2:] if body.startswith("00") else digits)
        else:
            valid = any(_valid_national(digits, region) for region in self.regions)
        if valid:
            return start, end
        if (
            len(digits) > 10
        ):  # a phone glued to other digits ("2019 +1 415 ..."): let the matcher cut
            for region in self.regions:
                for found in PhoneNumberMatcher(candidate, region, leniency=Leniency.VALID):
                    raw = found.raw_string
                    cut = 1 if raw.startswith("(") and raw.count("(") > raw.count(")") else 0
                    return match.start() + found.start + cut, match.start() + found.end
        return (start, end) if cued else None

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
        name_words = lexicon.name_words
        for m in _SEQUENCE.finditer(text):
            # Most capitalised runs (Machine Learning, Product Manager) hold no name at all.
            if any(w.capitalize() in name_words for w in m.group(0).split()):
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
            parts = record.parts
            for m in _LONE_WORD.finditer(text):
                person = parts.get(m.group(0))
                if person is not None:
                    spans.append((m.start(), m.end(), person))
        if not spans:
            return text
        return self._render(text, spans, record)

    def _mentions(self, text: str, record: RecordNames) -> str:
        parts = record.parts

        def replace(match: re.Match[str]) -> str:
            key = parts.get(match.group(0))
            return match.group(0) if key is None else record.token(key)

        return _LONE_WORD.sub(replace, text)

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
        if _CUE_HINT.search(text):
            for m in _CUE.finditer(text):
                with_colon = m.group(1).strip() != ""
                self._cued(m, 2, spans, require_first=not with_colon)
        if "\n" in text:
            first = _FIRST_LINE.match(text)
            if first is not None:
                self._first_line(first, spans)
            low = text.lower()
            if (
                "thank" in low
                or "best" in low
                or "regards" in low
                or "sincerely" in low
                or "cheers" in low
                or "yours" in low
                or "respectfully" in low
                or "cordially" in low
            ):
                for m in _SIGN_OFF.finditer(text):
                    self._cued(m, 1, spans, require_first=False)
        if ("--" in text or "—" in text or "–" in text or "~" in text) and _DASH_HINT.search(text):
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
        vocabulary = [t for t in titled if t in lexicon.vocabulary and t not in lexicon.last]
        if len(vocabulary) == len(titled) or self._phrase_inside(line):
            return
        if not any(t in lexicon.name_words for t in titled) and (
            # A header of two or three words none of which is a known word: a name the lists
            # do not know (Siobhán Ní Bhriain), not a title (Senior Engineer, Résumé).
            vocabulary or len(words) > 3
        ):
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
        titled = [w[2].capitalize() for w in words]
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
                is_name = b in last and not b_vocab and not a_vocab and not words[i][2].isupper()
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
