"""Grounding: an answer that transforms a user's text states no fact the text did not give.

A model trained on our lines will write people's resumes. An example that answers "Answered
support tickets." with "Resolved 1,200+ tickets a quarter with a 96% satisfaction score" teaches
it to make achievements up. So every answer of a task that transforms a user's text (improve,
rewrite, tailor, summarize, fix) is compared with its input (the system and user messages):

- a **figure** (a number, amount, percentage, duration or count, in digits or words: `1,200+`,
  `96%`, `3 TB/day`, `$2.4M`, `two thirds`, `twice`) is grounded when the input states the same
  value (`3,000` is `3k`, `five` is `5`, `half` is `50%`) or one that follows from two of its
  figures (a date range gives a number of years, `from 900 ms to 250 ms` gives `72%` or `3.6x`);
- a **named entity** (a tool, employer, product or certification: `Airflow`, `Snowflake`, `AWS`,
  `PMP`, `at Acme`) is grounded when the input names it;
- placeholders (`[X]%`, `[N]+`, `$[X]M`) and the anonymizer's tokens (`[NAME]`) are neither.

What happens to an ungrounded answer is the source's `recipe.grounding`:

    mask    each invented figure becomes a placeholder the user fills in (`[N]+ tickets`,
            `[X]%`); an invented entity, or a figure no placeholder can stand for (`halved`,
            `doubled`), drops the line as `invented_fact`: a name cannot be masked
    drop    the line is dropped as `invented_fact`
    keep    the line is written as it is; only counted

Question-answer tasks (recipe `qa`, and chat lines whose user asks a question) give facts of
their own by nature and are not checked. `GroundingCheck.outcomes` counts `masked`, `dropped`
and `kept`; an example it masked or kept carries `grounding = "masked" | "kept"`, which the
writer counts per dataset (`invented_fact:masked`, `invented_fact:kept`) beside the
`drop:invented_fact` drops.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations, pairwise
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from processors.config import GroundingAction, RecipeConfig
from processors.records import Example, Message

DROP_REASON = "invented_fact"
# The counters of one dataset: `drop:invented_fact`, `invented_fact:masked`, `invented_fact:kept`.
COUNTER_PREFIX = f"{DROP_REASON}:"
DATA = Path(__file__).parent / "data"

# --- placeholders ----------------------------------------------------------------------------

# What stands for a figure the input does not give: [X], [N], [X]%, $[N]K, [#], [...]. The
# anonymizer's tokens ([NAME], [EMAIL_2]) are longer and never figures either.
PLACEHOLDER = re.compile(r"\[(?:[A-Z]{1,2}|#|\.\.\.)\]")
_TOKEN = re.compile(r"\[[A-Z][A-Z_]*(?:_\d+)?\]")

# --- figures ---------------------------------------------------------------------------------

# How many of an input's distinct values are paired to find those that follow from two of them.
_PAIRED_VALUES = 40

_SCALES = {
    "k": 1e3,
    "K": 1e3,
    "thousand": 1e3,
    "M": 1e6,
    "mn": 1e6,
    "MM": 1e6,
    "million": 1e6,
    "B": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "trillion": 1e12,
}
# A figure in digits: `1,200+`, `96%`, `$2.4M`, `40k`, `3 TB`, `2-week`, `0.91`, `1st`. Not the
# digits of a name (`S3`, `EC2`, `p95`, `OAuth2`, `[NAME_1]`) nor of a version after a dot.
# It opens with the first digit, and looks behind it only then, so that the regex engine skips
# to a text's digits instead of trying the pattern at every position. A scale or a percentage
# is tried only after a character one opens with (a lookahead that fails at once after most
# figures, where trying each of them took a third of the time of a match).
_DIGITS = re.compile(
    r"(?P<num>\d(?<![A-Za-z0-9_.,]\d)(?:\d{0,2}(?:,\d{3})+(?!\d)|\d*))(?P<frac>\.\d+)?"
    r"(?:(?=[kKMBbmpt%]|\s[tmbp%])"
    r"(?:(?P<glued>k|K|M|MM|B|bn|mn)\b|\s?(?P<word>thousand|million|billion|trillion)\b)?"
    r"(?P<pct>\s?%|\s?percent\b|\s?per\s?cent\b)?)?"
)
_MONEY = frozenset("$€£¥")  # the signs before an amount
# A quarter (`Q3`) is a date, hence a figure; other letter-digit words are names (`S3`).
_QUARTER = re.compile(r"\bQ(?P<num>[1-4])\b")
# Figures that are idioms, not facts: 24/7 support, a 1:1, 360-degree feedback, 2FA, 3D, 5G.
# (?<![\w/])(?:24/7|24x7|1:1|1-on-1|360(?:-degree|°)|2FA|[2-5]G|3D|2D)(?!\w), written to open
# with a digit so that the regex engine skips to the digits 1-5 instead of trying every position:
# a lookbehind then checks the character before it, and another each idiom's first digit, once
# its second character is matched (a digit is mostly followed by none of those: it fails at once).
_IDIOMS = re.compile(
    r"[1-5](?<![\w/].)(?:4(?<=24)/7|4(?<=24)x7|:(?<=1:)1|-(?<=1-)on-1|6(?<=36)0(?:-degree|°)"
    r"|F(?<=2F)A|G(?<=[2-5]G)|D(?<=[23]D))(?!\w)"
)

_UNITS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "dozen": 12,
}
_WORD_SCALES = {"hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9}
_UNIT_WORDS = "|".join(sorted(_UNITS, key=len, reverse=True))
_SCALE_WORDS = "hundred|thousand|million|billion"
# `twenty-five`, `two hundred`, `three thousand`, `a dozen`; `one` alone is too common a word
# to be a figure (`one of the`, `one page`), but `one hundred` is one.
_NUMBER_WORDS = re.compile(
    rf"\b(?P<words>(?:(?:{_UNIT_WORDS})(?:[-\s](?:{_UNIT_WORDS}))?|one|a)"
    rf"(?:[-\s](?:{_SCALE_WORDS}))+"
    rf"|(?:{_UNIT_WORDS})(?:-(?:{_UNIT_WORDS}))?)\b",
    re.IGNORECASE,
)
# Fractions: `half`, `a third`, `two thirds`, `three quarters of`, `a quarter of` (a quarter
# alone is a period of time).
_FRACTIONS = re.compile(
    r"\b(?P<frac>half"
    r"|(?:a|one)\s+third(?!\s*-?\s*part)"
    r"|(?:two|2)\s+thirds"
    r"|(?:three|3)\s+quarters(?=\s+of\b)"
    r"|(?:a|one)\s+quarter(?=\s+of\b))\b",
    re.IGNORECASE,
)
_FRACTION_VALUES = {"half": 0.5, "third": 1 / 3, "thirds": 2 / 3, "quarter": 0.25, "quarters": 0.75}
# Multiples: `twice` can become `[N] times`; a verb (`doubled`, `halved`) or `threefold` can
# stand for no placeholder, so an invented one drops the line even when masking.
_MULTIPLES = re.compile(
    r"\b(?P<mult>twice|double[ds]?|doubling|triple[ds]?|tripling|quadruple[ds]?|halve[ds]?|"
    r"halving|(?:two|three|four|five|ten)fold)\b",
    re.IGNORECASE,
)
_MULTIPLE_VALUES = {"twi": 2, "dou": 2, "tri": 3, "qua": 4, "hal": 0.5, "two": 2, "thr": 3}
_FOLD_VALUES = {"four": 4, "five": 5, "ten": 10}
# The words without which the three patterns above cannot match: a text that has none of them
# (most have none) is not scanned by them, which took the most of `figures`' time. `one` (and
# `a`) alone is no figure, and with a scale word, the scale word is looked for. An ASCII text's
# words are read as bytes: a table that turns all but small letters into spaces, and a split,
# cost a fifth of what a regex does.
_LETTERS_ONLY = bytes(c if chr(c) in string.ascii_lowercase else ord(" ") for c in range(256))


def _vocabulary(words: Iterable[str]) -> frozenset[bytes]:
    return frozenset(word.encode() for word in words)


_NUMBER_VOCABULARY = _vocabulary((_UNITS.keys() - {"one"}) | _WORD_SCALES.keys())
_FRACTION_VOCABULARY = _vocabulary(_FRACTION_VALUES)
_MULTIPLE_VOCABULARY = _vocabulary(
    ["twice", "doubling", "tripling", "halving"]
    + [
        f"{word}{end}"
        for word in ("double", "triple", "quadruple", "halve")
        for end in ("", "d", "s")
    ]
    + [f"{word}fold" for word in ("two", "three", "four", "five", "ten")]
)
_WORD_VOCABULARY = _NUMBER_VOCABULARY | _FRACTION_VOCABULARY | _MULTIPLE_VOCABULARY
_MORE_FRACTIONS = _FRACTION_VOCABULARY - {b"half"}
# The three word patterns without IGNORECASE, for an ASCII text matched in lower case (an ASCII
# letter equals a pattern's letter, case aside, just when its lower case does): matching without
# the flag costs the regex engine a third less.
_NUMBER_WORDS_LOWER = re.compile(_NUMBER_WORDS.pattern)
_FRACTIONS_LOWER = re.compile(_FRACTIONS.pattern)
_MULTIPLES_LOWER = re.compile(_MULTIPLES.pattern)
# What _FRACTIONS_LOWER finds in a text with no fraction word but `half`: \bhalf\b, written to
# open with the word (a lookbehind then stands for the `\b`), which the regex engine looks for
# as a string.
_HALF = re.compile(r"(?P<frac>half)(?<!\w....)\b")
# _DIGITS for an ASCII text, in which `\d` is [0-9]: a range, tested at a fraction of the cost
# of the Unicode category.
_DIGITS_ASCII = re.compile(_DIGITS.pattern.replace(r"\d", "[0-9]"))


# A named tuple rather than a frozen dataclass, whose __init__ costs four times as much: one is
# made for every figure of every text checked.
class Figure(NamedTuple):
    """A figure stated in a text: where it is, the values it may mean, how to mask it."""

    start: int
    end: int
    text: str
    values: frozenset[str]
    # What replaces the figure when it is masked (None: no placeholder can stand for it); the
    # span [mask_start, mask_end) is what the placeholder replaces, unit and sign stay.
    placeholder: str | None
    mask_start: int
    mask_end: int


def _canon(value: float) -> str:
    # A whole number under a million, as most values are, is written by `:g` as `str` writes
    # it, at a fifth of the cost of rounding and formatting.
    if -1e6 < value < 1e6:
        whole = int(value)
        if whole == value:
            return str(whole)
    return f"{round(value, 6):g}"


# Cached: the same few values (years, small counts, percentages, `half`) come back in text after
# text, and a hit costs a fifth of formatting them again.
@lru_cache(maxsize=4096)
def _values(value: float, percent: bool = False) -> frozenset[str]:
    """The canonical strings a value may be compared as (a fraction is also a percentage)."""
    if not (percent or 0 < value < 1):  # most values: only one
        return frozenset((_canon(value),))
    out = {_canon(value)}
    if percent:
        out.add(_canon(value / 100))
    elif 0 < value < 1:
        out.update({_canon(value * 100), _canon(round(value * 100)), _canon(round(value * 100, 1))})
    return frozenset(out)


def _word_value(words: str) -> float:
    total, current = 0.0, 0.0
    for word in re.split(r"[-\s]+", words.lower()):
        if word in ("a", "one"):
            current = 1
        elif word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _WORD_SCALES:
            total += max(current, 1) * _WORD_SCALES[word]
            current = 0
    return total + current


def figures(text: str) -> list[Figure]:
    """Every figure `text` states, in order; placeholders, tokens and idioms are none."""
    return _figures(_blank(text))


# Cached for one text: `judge` reads an answer's words for its figures, then for its names.
@lru_cache(maxsize=1)
def _letter_runs(text: str) -> tuple[bytes, ...]:
    """The runs of letters of an ASCII `text` in lower case, as bytes (see `_LETTERS_ONLY`)."""
    return tuple(text.lower().encode().translate(_LETTERS_ONLY).split())


def _figures(blank: str) -> list[Figure]:
    """`figures` of a text already blanked (`judge` blanks an answer once for figures and names)."""
    found: list[Figure] = []
    # tuple.__new__ makes a Figure at half the cost of calling Figure, whose __new__ is Python.
    new = tuple.__new__
    digits = _DIGITS
    number_words: re.Pattern[str] | None
    fractions: re.Pattern[str] | None
    multiples: re.Pattern[str] | None
    placeholder: str | None
    if blank.isascii():
        digits = _DIGITS_ASCII
        text = blank
        runs = _letter_runs(blank)
        number_words = fractions = multiples = None
        if not _WORD_VOCABULARY.isdisjoint(runs):  # most texts have none of the words
            # The word patterns read the text in lower case (same length: the spans hold).
            text = blank.lower()
            present = set(runs)
            if not _NUMBER_VOCABULARY.isdisjoint(present):
                number_words = _NUMBER_WORDS_LOWER
            if not _FRACTION_VOCABULARY.isdisjoint(present):
                # `half` is the fraction most texts state, and the only one they can when they
                # have none of the other words: found as a literal, it is found at a third of
                # the cost of the full pattern.
                halves = _MORE_FRACTIONS.isdisjoint(present)
                fractions = _HALF if halves else _FRACTIONS_LOWER
            if not _MULTIPLE_VOCABULARY.isdisjoint(present):
                multiples = _MULTIPLES_LOWER
    else:  # case-insensitive matching may equate letters that lower() does not
        text = blank
        number_words, fractions, multiples = _NUMBER_WORDS, _FRACTIONS, _MULTIPLES
    for match in digits.finditer(blank):
        start, end = match.span()
        if match.lastindex == 1:  # `num` alone, as in most figures: a whole number, no unit
            num = match.group()
            placeholder = "[X]" if start > 0 and blank[start - 1] in _MONEY else "[N]"
            values = _values(float(num.replace(",", "")), False)
            found.append(new(Figure, (start, end, num, values, placeholder, start, end)))
            continue
        num, frac, glued, word, pct = match.group("num", "frac", "glued", "word", "pct")
        number = num.replace(",", "") + (frac or "")
        value = float(number)
        scale = glued or word
        if scale:
            value *= _SCALES[scale]
        percent = bool(pct)
        # An integer count is an [N]; a percentage, an amount, a decimal or a scale is an [X].
        money = start > 0 and blank[start - 1] in _MONEY
        exact = not (percent or scale or frac or money)
        values = _values(value, percent)
        if scale:  # `2M` is also the 2 of `2 million` written the other way
            values |= {_canon(float(number))}
        # The placeholder stands for the digits (`num`, `frac`), which open the match.
        mask_end = start + len(num) + len(frac or "")
        placeholder = "[N]" if exact else "[X]"
        found.append(
            new(Figure, (start, end, match.group(0), values, placeholder, start, mask_end))
        )
    digit_figures = len(found)
    for match in _QUARTER.finditer(blank) if "Q" in blank else ():
        values = frozenset({f"q{match.group('num')}"})
        found.append(
            new(Figure, (*match.span(), match.group(0), values, "[N]", *match.span("num")))
        )
    # The word patterns' matches are of `text`; a figure's text is the blanked answer's own.
    for match in number_words.finditer(text) if number_words else ():
        words = match.group("words")
        if words.lower() in ("a", "one"):
            continue
        start, end = match.span()  # the group's: `\b` opens and closes the pattern
        value = _word_value(words)
        found.append(new(Figure, (start, end, blank[start:end], _values(value), "[N]", start, end)))
    for match in fractions.finditer(text) if fractions else ():
        value = _FRACTION_VALUES[match.group("frac").lower().split()[-1]]
        start, end = match.span()
        found.append(
            new(Figure, (start, end, blank[start:end], _values(value), "[X]%", start, end))
        )
    for match in multiples.finditer(text) if multiples else ():
        word = match.group("mult").lower()
        if word.endswith("fold"):
            value = float(_FOLD_VALUES.get(word[:-4], _MULTIPLE_VALUES.get(word[:3], 2)))
        else:
            value = float(_MULTIPLE_VALUES[word[:3]])
        placeholder = "[N] times" if word == "twice" else None
        start, end = match.span()
        found.append(
            new(Figure, (start, end, blank[start:end], _values(value), placeholder, start, end))
        )
    if len(found) == digit_figures:  # the digits' figures alone are in order, none overlapping
        return found
    if all(a.end <= b.start for a, b in pairwise(found)):  # as most texts' figures are
        return found
    # A number word inside a fraction (`two thirds`) is the fraction's, not a figure of its own:
    # of overlapping figures the one that starts first, then the longest, is kept.
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    out: list[Figure] = []
    for figure in found:
        if not out or figure.start >= out[-1].end:
            out.append(figure)
    return out


def _spaces(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _blank(text: str) -> str:
    """`text` with placeholders, tokens and idioms blanked out (same length, so spans hold)."""
    if "[" in text:  # most texts have no placeholder nor token
        text = _TOKEN.sub(_spaces, PLACEHOLDER.sub(_spaces, text))
    return _IDIOMS.sub(_spaces, text)


def grounded_values(text: str, limit: int = _PAIRED_VALUES) -> set[str]:
    """The values `text` states, and those that follow from two of them.

    A difference gives a duration (`2019 - 2023` is 4 years) or a saving; a ratio gives a
    multiple (`900 ms to 250 ms` is 3.6x); a relative change gives a percentage (72%). Only the
    first `limit` distinct values are paired, so a long text stays cheap.
    """
    values, numbers = _stated_values(figures(text))
    return values | _derived_values(numbers[:limit])


def _stated_values(stated: list[Figure]) -> tuple[set[str], list[float]]:
    """The values of `stated`, and its distinct numbers in the order they come."""
    values: set[str] = set()
    numbers: list[float] = []
    for figure in stated:
        values |= figure.values
        for value in figure.values:
            if not value.startswith("q"):
                number = float(value)
                if number not in numbers:
                    numbers.append(number)
    return values, numbers


def _derived_values(numbers: list[float]) -> set[str]:
    """The values that follow from two of `numbers` (see `grounded_values`)."""
    values: set[str] = set()
    for a, b in combinations(numbers, 2):
        high, low = max(a, b), min(a, b)
        derived = [high - low]
        if low > 0:
            derived += [high / low, (high - low) / high * 100, (high - low) / low * 100]
        for change in derived:
            if math.isfinite(change):
                values |= {_canon(change), _canon(round(change)), _canon(round(change, 1))}
    return values


# --- named entities --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def known_entities() -> frozenset[str]:
    """`data/known_entities.txt`: names of tools, products, employers and certifications."""
    words: set[str] = set()
    for line in (DATA / "known_entities.txt").read_text(encoding="utf-8").splitlines():
        words.update(line.split("#", 1)[0].split())
    return frozenset(words)


# Acronyms that name a kind of thing, not a product or an employer: an answer may use them.
def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


GENERIC_ACRONYMS = _word_set(
    """
    API APIs REST SDK CLI UI UX QA CI CD ETL ELT KPI KPIs OKR OKRs ROI SLA SLAs SLO SLOs SLI
    MVP PoC POC B2B B2C SaaS PaaS IaaS HR IT PR CRM ERP SEO SEM PPC CTR CPC CAC LTV ARR MRR
    GMV NPS CSAT P&L YoY QoQ MoM FAQ PDF CSV JSON XML YAML HTML CSS SQL NoSQL HTTP HTTPS TCP
    DNS VPN SSO MFA RBAC PII GDPR HIPAA SOC AI ML NLP LLM OCR BI DB DBA VM VMs OS iOS
    CEO CTO CFO COO CIO CMO VP SVP EVP PM TPM EM IC US UK EU USD EUR GBP ASAP TBD N/A OK
    A/B R&D E2E ID IDs URL URLs MBA BSc MSc BA MA PhD FTE FTEs SME SMEs RFP RFPs SOP SOPs
    ATS AR AP GL KYC AML QC QA/QC CI/CD DevOps SRE MLOps DataOps FinOps SecOps
    KB MB GB TB PB Mbps Gbps ms RPS QPS TPS MAU DAU WAU AUC F1 RMSE MAE LCP FCP TTFB CPU GPU
    RAM SSD IOPS
    """
)
_ENTITY_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[.&+#][A-Za-z0-9]+)*(?:\+\+|#)?")
# Words after which a capitalised word names an employer, a tool or a product.
_NAMING = _word_set(
    "at for with using in into on via from to by joined built migrated adopted deployed"
)
_OPENING_MARKS = " \t\"'“‘([*•-"
_LOWER_ABBREVIATION = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens the text, a line or a sentence (`. `, `: `, `; `)."""
    index = start
    while index > 0 and text[index - 1] in _OPENING_MARKS:
        index -= 1
    return index == 0 or text[index - 1] in ".!?:;\n"


def _word_forms(word: str) -> set[str]:
    folded = word.casefold().removesuffix("'s").removesuffix("’s")
    forms = {folded}
    if folded.endswith("es"):
        forms.add(folded[:-2])
    if folded.endswith("s"):
        forms.add(folded[:-1])
    return forms


_WORD_PARTS = re.compile(r"[.&+#/]")


def input_words(text: str) -> set[str]:
    """Every word of `text` (and its singular), case-folded: what an answer's names must be."""
    words: set[str] = set()
    for word in set(_ENTITY_WORD.findall(text)):  # a text says most of its words many times
        words |= _word_forms(word)
        if not word.isalnum():  # `Node.js`, `R&D`, `C++`: each part is a word too
            for part in _WORD_PARTS.split(word):
                if part:
                    words |= _word_forms(part)
    return words


def entities(text: str) -> list[str]:
    """Names of tools, employers, products and certifications `text` mentions, in order.

    A word is a name when it is a known one (`data/known_entities.txt`, exact spelling), when
    its shape says so (`GitHub`, `AWS`, `iOS`, `Node.js`, `C++`; not a generic acronym such as
    `API` or `KPI`), or when it is capitalised after a word that introduces a name (`at Acme`,
    `using Zapier`). A word that opens a sentence is only a name when it is a known one.
    """
    return _entities(_blank(text))


# The shapes of a text's bytes for `_names_nothing`: small letters, capitals, digits, and the
# marks that join a name's parts (`Node.js`, `R&D`; `C++`, `C#`); a space for all else.
_SHAPES = bytes(
    ord("a")
    if chr(c) in string.ascii_lowercase
    else ord("A")
    if chr(c) in string.ascii_uppercase
    else ord("0")
    if chr(c) in string.digits
    else ord(".")
    if chr(c) in ".&"
    else ord("+")
    if chr(c) in "+#"
    else ord(" ")
    for c in range(256)
)


@lru_cache(maxsize=1)
def _known_lower() -> frozenset[bytes]:
    """The known names written in small letters only (`pandas`, `dbt`), as bytes."""
    return frozenset(w.encode() for w in known_entities() if w.isalpha() and w.islower())


def _names_nothing(blank: str, known: frozenset[str]) -> bool:
    """Whether `_entities(blank)` finds nothing because every word of `blank` is a lower-case one
    that is not a known name, but the first, which may be capitalised (`Cut the error...`).

    Such a word is passed over by `_entities`, and so is that first one: no word before it can
    introduce it, and its shape is a plain word's. Most answers are such texts, told here by a
    few tests of the whole text at once, in C, not word by word.
    """
    first = _ENTITY_WORD.search(blank)
    if first is None:
        return True
    word = first.group()
    if not (word.isalpha() and (word.islower() or word.istitle())) or word in known:
        return False
    # Every letter is in a word: the words after the first are lower-case ones when the text
    # after it has none of the shapes only another has: a capital, a digit after a letter (`S3`,
    # `p95`), or a mark after a letter that `_ENTITY_WORD` takes in (`Node.js`, `R&D`, `C++`,
    # `C#`; and `a+ b`, which it does not: a safe guess). In a `str`, where `in` costs a third
    # of what it does in `bytes`. (UTF-8: a character outside ASCII is no letter, nor a mark.)
    rest = blank[first.end() :].encode().translate(_SHAPES).decode()
    if "A" in rest or "a0" in rest or "a.a" in rest or "a.0" in rest or "a+" in rest:
        return False
    # A lower-case word is a run of small letters, bounded by no letter: one of the text's
    # (in lower case too, for an ASCII text: lowering it joins no letters).
    if blank.isascii():
        return _known_lower().isdisjoint(_letter_runs(blank))
    return _known_lower().isdisjoint(blank.encode().translate(_LETTERS_ONLY).split())


def _entities(blank: str) -> list[str]:
    """`entities` of a text already blanked."""
    known = known_entities()
    if _names_nothing(blank, known):  # most answers
        return []
    found: list[str] = []
    previous = ""
    # Whether the text is written in capitals, worked out at its first all-caps word (most
    # texts have none): every word is then all-caps, and only mixed case tells a name.
    shouting: bool | None = None
    for match in _ENTITY_WORD.finditer(blank):
        word = match.group(0)
        before, previous = previous, word
        # Most words: lower-case, a name only if a known one; nothing below is needed for them.
        plain = word.islower() and word.isalpha()
        if plain and word not in known:
            continue
        start = match.start()
        if start > 0 and blank[start - 1] in "-'’":  # `field-service`, `don't`
            continue
        if word in GENERIC_ACRONYMS or word.removesuffix("s") in GENERIC_ACRONYMS:
            continue
        if plain:
            found.append(word)
            continue
        opening = _opens_sentence(blank, start)
        rest = word[1:]  # ASCII, as every word the pattern finds
        inner_capital = rest != rest.lower()
        if inner_capital and word.isupper():
            if shouting is None:
                letters = "".join(filter(str.isalpha, blank))
                shouting = sum(map(str.isupper, letters)) > 0.6 * len(letters)
            inner_capital = not shouting
        dotted = "." in word and not _LOWER_ABBREVIATION.fullmatch(word)
        shaped = len(word) > 1 and (inner_capital or dotted or word[-1] in "+#")
        # A capitalised word after `at`, `using`, `into`... names something (`at Acme`).
        introduced = (
            not opening and word.istitle() and word.isalpha() and before.casefold() in _NAMING
        )
        if shaped or (introduced and len(word) > 1):
            found.append(word)
        elif word in known and not (opening and word[0].isupper()):
            found.append(word)  # `Next, ...` or `Spring ...` opening a sentence are words
    return found


def outcome_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """How many answers of a dataset were masked, dropped and kept for stating invented facts,
    from its counters (what the clean report and `stats` show)."""
    return {
        "masked": counts.get(f"{COUNTER_PREFIX}masked", 0),
        "dropped": counts.get(f"drop:{DROP_REASON}", 0),
        "kept": counts.get(f"{COUNTER_PREFIX}kept", 0),
    }


# --- the check -------------------------------------------------------------------------------

# An instruction to transform a text: what a chat line's user message opens with when its answer
# is a rewrite of the user's own text (`Improve this bullet:`, `Can you rewrite my summary`).
_TRANSFORM = re.compile(
    r"^\s*(?:please[,\s]+)?(?:(?:can|could|would|will) you\s+(?:please\s+)?|help me\s+)?"
    r"(?:improve|rewrite|re-write|rephrase|reword|tailor|summari[sz]e|fix|polish|proofread|"
    r"edit|revise|tighten|shorten|strengthen|enhance|optimi[sz]e|condense|convert|turn|"
    r"make\s+(?:this|these|it|my)|adapt|adjust|correct|clean\s+up)\b",
    re.IGNORECASE,
)


def asks_for_transformation(example: Example) -> bool:
    """Whether the first user message asks to transform a text (not a question to answer)."""
    for message in example.messages:
        if message.role == "user":
            return bool(_TRANSFORM.match(message.content))
    return False


@dataclass
class Verdict:
    """What the check found in one answer: invented figures and names."""

    figures: list[Figure]
    entities: list[str]

    @property
    def grounded(self) -> bool:
        return not self.figures and not self.entities

    @property
    def maskable(self) -> bool:
        return not self.entities and all(f.placeholder is not None for f in self.figures)


def judge(source: str, answer: str) -> Verdict:
    """The figures and names of `answer` that `source` (its input) does not give."""
    return _judge(_Input((source,)), answer)


def _judge(given: _Input, answer: str) -> Verdict:
    # The input is read only for what the answer states: most answers name nothing, and
    # reading every word of the input was a fifth of the whole chain's time.
    blank = _blank(answer)
    invented = _figures(blank)
    names = _entities(blank)  # before the input is read: it reuses the answer's `_letter_runs`
    if invented:
        invented = given.unstated(invented)
    if names:
        names = given.unnamed(names)
    return Verdict(invented, names)


# How many texts the values and the words they state are kept for: the system prompts come from
# a few templates, and are the same texts in line after line.
_CACHED_TEXTS = 512
# The words after which a figure may go on past a line break (see `_figure_may_go_on`): a
# number word (`twenty\nfive hundred`, `two hundred\nthousand`), a fraction's (`a\nthird`, `a
# third\npart`, `three quarters\nof`), a scale (`5 thousand\n%`) and `per` (`5 per\ncent`).
_GOING_ON = frozenset(
    [*_UNITS, *_WORD_SCALES, "trillion", "one", "a", "third", "quarter", "quarters", "per"]
)
_ASCII_WORD = string.ascii_letters + string.digits + "_"


def _figure_may_go_on(text: str) -> bool:
    """Whether a figure that `text` ends with may go on into a line put after it.

    The patterns take in a line break only in the space after a digit or a word of `_GOING_ON`
    (or the `-` of `a third -\npart`): after any other end (`.`, `?`, `"`, `bullet`), what
    `"\n".join` puts after a text states figures of its own. Not an exact test, a safe one.
    """
    tail = text.rstrip()  # the spaces `\s` matches
    if not tail or tail[-1] == "-":
        return True
    if not (tail[-1].isalnum() or tail[-1] == "_"):  # not `\w`
        return False
    word = tail.rsplit(None, 1)[-1]
    if not word.isascii():  # case-insensitive matching may equate letters that lower() does not
        return True
    word = word[len(word.rstrip(_ASCII_WORD)) :].lower()  # the `\w+` the text ends with
    return not word.isalpha() or word in _GOING_ON  # a digit or `_`: as good as a digit


@lru_cache(maxsize=_CACHED_TEXTS)
def _text_values(text: str) -> tuple[frozenset[str], tuple[float, ...]]:
    """`_stated_values(figures(text))`, but for its first `_PAIRED_VALUES` numbers only: only
    those can be among the first that many of a longer text that begins with this one."""
    values, numbers = _stated_values(figures(text))
    return frozenset(values), tuple(numbers[:_PAIRED_VALUES])


@lru_cache(maxsize=_CACHED_TEXTS)
def _text_words(text: str) -> frozenset[str]:
    return frozenset(input_words(text))


_NO_VALUES: tuple[frozenset[str], tuple[float, ...]] = (frozenset(), ())


def _add_numbers(numbers: list[float], more: Iterable[float]) -> None:
    """Appends the numbers of `more` that `numbers` lacks, up to `_PAIRED_VALUES` in all."""
    for number in more:
        if len(numbers) == _PAIRED_VALUES:
            return
        if number not in numbers:
            numbers.append(number)


class _Input:
    """The input of an answer, `"\n".join(texts)`, read a text at a time.

    A text's values and words are cached by the text (a system prompt is read once for many
    lines), and a chat's later answers read only the texts that came after the earlier ones:
    joined and read again for each answer, the input of a long chat took time quadratic in its
    length. A figure can go on from one text into the next (`a\nthird`, `50\n%`): such texts
    are read together, as one part (read again when a text is added to it).
    """

    __slots__ = ("_numbers", "_parts", "_read", "_read_words", "_values", "_words")

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._parts: list[str] = []  # the input, cut at line breaks no figure goes over
        # What the parts before the last state, read up to `_read` and `_read_words`.
        self._read = self._read_words = 0
        self._values: set[str] = set()
        self._numbers: list[float] = []  # the first `_PAIRED_VALUES` distinct ones
        self._words: set[str] = set()
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        parts = self._parts
        if parts and _figure_may_go_on(parts[-1]):
            parts[-1] += "\n" + text
        else:
            parts.append(text)

    def unstated(self, found: list[Figure]) -> list[Figure]:
        """The figures of `found` whose values the input neither states nor gives from two of
        its numbers (`grounded_values`)."""
        parts = self._parts
        while self._read < len(parts) - 1:
            values, numbers = _text_values(parts[self._read])
            self._values |= values
            if numbers:
                _add_numbers(self._numbers, numbers)
            self._read += 1
        values, numbers = _text_values(parts[-1]) if parts else _NO_VALUES
        stated = self._values
        invented = [f for f in found if f.values.isdisjoint(values) and f.values.isdisjoint(stated)]
        # The values the input states ground most answers' figures, and pairing its numbers
        # (quadratic in their number) is then not needed.
        if invented and len(self._numbers) + len(numbers) > 1:
            paired = self._numbers.copy()
            _add_numbers(paired, numbers)
            if len(paired) > 1:
                derived = _derived_values(paired)
                invented = [f for f in invented if f.values.isdisjoint(derived)]
        return invented

    def unnamed(self, names: list[str]) -> list[str]:
        """The names of `names` the input does not give."""
        parts = self._parts
        while self._read_words < len(parts) - 1:
            self._words |= _text_words(parts[self._read_words])
            self._read_words += 1
        words = _text_words(parts[-1]) if parts else frozenset()
        stated = self._words
        return [
            name
            for name in names
            if (forms := _word_forms(name)).isdisjoint(words) and forms.isdisjoint(stated)
        ]


_MASK_START = attrgetter("mask_start")  # a third of what a lambda costs


def mask(answer: str, invented: Iterable[Figure]) -> str:
    """`answer` with each invented figure replaced by its placeholder (`[N]+`, `[X]%`)."""
    out = answer
    for figure in sorted(invented, key=_MASK_START, reverse=True):
        assert figure.placeholder is not None
        out = out[: figure.mask_start] + figure.placeholder + out[figure.mask_end :]
    return out


def recipe_grounding(recipe: RecipeConfig) -> GroundingAction | None:
    """What a recipe does with ungrounded answers; None for question answering (unchecked)."""
    if recipe.name == "qa":
        return None
    return recipe.grounding or "mask"


class GroundingCheck:
    """Masks, drops or counts the answers that state facts their input does not give.

    `action` applies to every example, or `per_source` names one for each source (the rewrite
    stage's lines come from many). With `detect_task`, only the lines whose user asks for a
    transformation are checked (the `chat` recipe holds questions and rewrites alike); without
    it every line is (a bullet recipe's lines all ask for one).
    """

    name = "grounding"

    def __init__(
        self,
        action: GroundingAction,
        *,
        detect_task: bool = False,
        per_source: Mapping[str, GroundingAction] | None = None,
    ) -> None:
        self.action = action
        self.detect_task = detect_task
        self.per_source = dict(per_source or {})
        self.outcomes: Counter[str] = Counter()  # checked, masked, dropped, kept

    @classmethod
    def for_recipe(cls, recipe: RecipeConfig) -> GroundingCheck | None:
        action = recipe_grounding(recipe)
        if action is None:
            return None
        return cls(action, detect_task=recipe.name == "chat")

    def run(self, example: Example) -> str | None:
        """Checks (and masks) the example in place; the drop reason, or None to keep it."""
        if example.kind != "train":
            return None
        for message in example.messages:
            if message.role == "assistant":
                break
        else:
            return None  # nothing to check
        if self.detect_task and not asks_for_transformation(example):
            return None
        self.outcomes["checked"] += 1
        action = self.per_source.get(example.source, self.action)
        given = _Input()
        masked: list[Message] | None = None  # a copy, made at the first answer masked
        ungrounded = False
        for index, message in enumerate(example.messages):
            if message.role != "assistant":
                given.add(message.content)
                continue
            verdict = _judge(given, message.content)
            if verdict.grounded:
                continue
            ungrounded = True
            if action == "drop" or (action == "mask" and not verdict.maskable):
                self.outcomes["dropped"] += 1
                return DROP_REASON
            if action == "mask":
                if masked is None:
                    masked = list(example.messages)
                masked[index] = Message("assistant", mask(message.content, verdict.figures))
        if not ungrounded:
            return None
        outcome = "masked" if action == "mask" else "kept"
        self.outcomes[outcome] += 1
        example.grounding = outcome
        if masked is not None:
            example.messages = masked
        return None
