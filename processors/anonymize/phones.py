"""Phones: a regex finds digit runs that could be phones (with an extension: `x41050`,
`ext. 12`, `#3`), cheap rules set aside what resumes are full of (year ranges, dates,
versions, IDs), and phonenumbers' metadata decides. A run is a phone when it is a valid
number of one of the configured regions (or, after `+`, `00` or `011`, of any region),
written as that region writes it: with the national prefix its format puts there (`020...`
in GB) unless the format says it is optional, and in digit groups one of its formats makes.
A run right after `Phone:`/`Tel`/`Mobile`, or with a written-out extension, is a phone
whatever its region.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from itertools import pairwise
from typing import NamedTuple

import phonenumbers
from phonenumbers import Leniency, NumberFormat, PhoneMetadata, PhoneNumberMatcher

from processors.anonymize.spans import PHONE, Context, Span

# A run of digits and phone punctuation (spaces of every width, dashes of every length), then
# perhaps an extension ("x41050", "ext. 12", "#3", "extension 4"). It starts with a character
# class (so the regex engine can skip ahead fast) and checks the character before it with
# lookbehinds after it: not in a word or a number, except right after a cue that PDF
# extraction glued to it ("Phone5551234567"). It may end glued to a capitalised word
# ("555-123-4567Email"), not inside a word, an amount or a longer number.
_SEPARATORS = r" \t\u00a0\u2007\u2009\u202f().\-\u2010-\u2013/"
_PHONE_CANDIDATE = re.compile(
    r"[+(\d](?:(?<![\w+.$€£/-][+(\d])|(?<=[eElL][+(\d]))"
    rf"[\d+{_SEPARATORS}]{{4,26}}\d"
    r"(?P<extension>[ \t\u00a0]*(?:(?P<mark>[xX]|(?i:ext\.?|extension))|#)[ \t\u00a0.:]*\d{1,6})?"
    r"(?!(?![A-Z][a-z])[\w%$€£+]|[.,]\d)"
)
_NOT_DIGIT = re.compile(r"\D")
# What dials out of a country before a country code: "+", and "00" (most of the world) or
# "011" (North America); "001" is 00 then the US code.
_INTERNATIONAL_PREFIXES = ("+", "00", "011")
# A phone has seven digits or more with only phone punctuation between them (`digits` in
# `_phone_span`): a text without such a run (most texts: years, amounts, counts) has no
# candidate worth reading.
_SEVEN_DIGITS = re.compile(rf"\d(?:[+{_SEPARATORS}]*\d){{6}}")
# On ASCII text, the same test without a regex (which tries every digit, and scans slowly):
# once the separators and `+` are deleted and every digit is written `0`, seven `0` in a row.
# The ASCII characters of `[+{_SEPARATORS}]`:
_ASCII_SEPARATORS = b"+ \t()./-"
_ASCII_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
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


class _Reading(NamedTuple):
    """One way to read a run of digits as a number of a region."""

    offset: int  # digits written before the national significant number
    nsn: str  # the national significant number
    # "bare": the number alone; "trunk": after the national (trunk) prefix ("020 ..." in GB);
    # "code": after the country code written without "+"; "carrier": Brazil's carrier code
    form: str
    code: int = 0  # how many digits of a country code come first (written as its own group)


def _valid_national(digits: str, region: str) -> bool:
    """`digits` are a valid number of `region` however they are read, as phonenumbers has it."""
    return any(True for _ in _national_readings(digits, region))


def _national_readings(digits: str, region: str) -> Iterator[_Reading]:
    """Each reading of `digits` that is a valid number of `region`, most likely first."""
    rule = _region_rule(region)
    if rule is None:
        return
    yield from _trunk_readings(digits, region, rule, 0)
    # A national number written with its country code but no "+" (5511 2000 0000 in Brazil):
    # phonenumbers takes the code off when what is left is valid.
    code = _COUNTRY_CODES.get(region, "")
    if code and digits.startswith(code):
        for reading in _trunk_readings(digits[len(code) :], region, rule, len(code)):
            yield reading._replace(form="code", code=len(code))


def _trunk_readings(digits: str, region: str, rule: _Rule, offset: int) -> Iterator[_Reading]:
    """Valid as written, or once the national (trunk) prefix is taken off."""
    prefix = rule[0]
    if prefix is not None:
        trunk = prefix.match(digits)
        if trunk is not None and trunk.end() > 0:
            if _valid_nsn(digits[trunk.end() :], rule):
                yield _Reading(offset + trunk.end(), digits[trunk.end() :], "trunk")
            # Brazil: "0 12 11 2000 0000" dials carrier 12; the number is what is left.
            transform = _TRANSFORMS.get(region)
            carrier = transform and trunk.groups() and trunk.groups()[-1] is not None
            if carrier:
                nsn = prefix.sub(transform or "", digits, count=1)
                if _valid_nsn(nsn, rule):
                    yield _Reading(offset, nsn, "carrier")
    if _valid_nsn(digits, rule):
        yield _Reading(offset, digits, "bare")


def _valid_international(digits: str) -> bool:
    """`digits` after the `+`: a country code, then a number valid in one of its regions."""
    return any(True for _ in _international_readings(digits))


def _international_readings(digits: str) -> Iterator[tuple[str, _Reading]]:
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size] or 0))
        if not regions:
            continue
        rest = digits[size:]
        for region in regions:
            rule = _region_rule(region)
            if rule is None:
                continue
            if _valid_nsn(rest, rule):
                yield region, _Reading(size, rest, "code", size)
            # "+44 (0)20 ...": a trunk zero written after the country code is not dialled.
            if rest.startswith("0") and _valid_nsn(rest[1:], rule):
                yield region, _Reading(size + 1, rest[1:], "code", size)
        return


# -- as written ----------------------------------------------------------------------------
# A valid number is a phone only when it is written the way the region writes its numbers:
# with the national prefix where the region's format puts one, and in digit groups that one
# of the region's formats makes (as phonenumbers' STRICT_GROUPING leniency has it). That is
# what sets "780 166 1994 transactions" apart from an Indian mobile (78016 61994).


class _Format(NamedTuple):
    leading: re.Pattern[str] | None  # the digits a number must start with for this format
    pattern: re.Pattern[str]
    splits: tuple[int, ...]  # the groups the format writes a separator after
    prefix_written: bool  # written nationally, the format puts the national prefix
    prefix_needed: bool  # ... and does not say it is optional


def _compile_formats(formats: list[NumberFormat], national_prefix: str) -> list[_Format]:
    compiled: list[_Format] = []
    for f in formats:
        if not f.pattern or not f.format or f.format == "NA":
            continue
        rule = (f.national_prefix_formatting_rule or "").replace("\\1", "")
        written = bool(national_prefix) and national_prefix in rule
        compiled.append(
            _Format(
                re.compile(f.leading_digits_pattern[-1]) if f.leading_digits_pattern else None,
                re.compile(f.pattern),
                _splits(f.format),
                written,
                written and not f.national_prefix_optional_when_formatting,
            )
        )
    return compiled


def _splits(format: str) -> tuple[int, ...]:
    """`(\\1) \\2-\\3` -> (1, 2): the groups followed by something else than a group."""
    parts = re.findall(r"\\(\d)|([^\\]+)", format)
    return tuple(int(group) for (group, _), (_, text) in pairwise(parts) if group and text)


@cache
def _formats(region: str) -> tuple[list[_Format], list[_Format]]:
    """A region's national and international formats (Canada's are those of the US)."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        return [], []
    source = meta
    if not meta.number_format and meta.country_code:
        main = phonenumbers.region_code_for_country_code(meta.country_code)
        source = PhoneMetadata.metadata_for_region(main) or meta
    national = _compile_formats(source.number_format, meta.national_prefix or "")
    intl = _compile_formats(source.intl_number_format, "") or national
    return national, intl


def _group_ends(written: str) -> frozenset[int]:
    """Where the digit groups of `written` end: digit counts before each inner separator."""
    ends: set[int] = set()
    count = 0
    apart = False
    for char in written:
        if char.isdigit():
            if apart and count:
                ends.add(count)
            count += 1
            apart = False
        else:
            apart = True
    return frozenset(ends)


def _matching(nsn: str, formats: list[_Format]) -> Iterator[tuple[_Format, re.Match[str]]]:
    for f in formats:
        if f.leading is not None and not f.leading.match(nsn):
            continue
        match = f.pattern.fullmatch(nsn)
        if match is not None:
            yield f, match


def _grouped(
    nsn: str, ends: frozenset[int], offset: int, formats: list[_Format], trunk: bool = False
) -> bool:
    """The written groups of `nsn` (ends counted from `offset`) are those of one format, or
    fewer: each written boundary is one of the format's, or splits its last group. Ungrouped
    digits always are. A
    trunk prefix is its own group unless the format writes it ("020" in GB, "1 415" in the
    US)."""
    inner = {end - offset for end in ends if end > offset}
    if not inner:
        return True
    found = False
    for f, match in _matching(nsn, formats):
        found = True
        if trunk and not f.prefix_written and offset not in ends:
            continue
        ends_of_format = {match.end(group) for group in f.splits}
        # The last group, the subscriber's digits, may be split further ("+49 30 1234 5678",
        # "+31 6 1234 5678"); the groups before it (area codes, mobile prefixes) may not.
        last = max(ends_of_format, default=len(nsn))
        if all(end in ends_of_format or end > last for end in inner):
            return True
    return not found  # a number no format matches is written as it comes


def _prefix_needed(nsn: str, formats: list[_Format]) -> bool:
    """The region writes this number nationally with its prefix (the format phonenumbers
    would choose says so, and not that the prefix is optional)."""
    for f, _match in _matching(nsn, formats):
        return f.prefix_needed
    return False


def _written_nationally(digits: str, ends: frozenset[int], region: str) -> bool:
    national, intl = _formats(region)
    for offset, nsn, form, code in _national_readings(digits, region):
        if form == "carrier":
            return True
        if form == "bare" and _prefix_needed(nsn, national):
            continue
        if ends and code and code not in ends:
            continue  # "1512 3456700" is no "1 512-345-6700"
        if _grouped(nsn, ends, offset, national, trunk=form == "trunk") or (
            form == "code" and _grouped(nsn, ends, offset, intl)
        ):
            return True
    return False


def _written_internationally(digits: str, ends: frozenset[int]) -> bool:
    for region, (offset, nsn, _form, code) in _international_readings(digits):
        if ends and code not in ends:
            continue
        national, intl = _formats(region)
        if _grouped(nsn, ends, offset, intl) or _grouped(nsn, ends, offset, national):
            return True
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


def _has_seven_digits(text: str) -> bool:
    """`_SEVEN_DIGITS` finds a run in `text`."""
    if text.isascii():
        return b"0000000" in text.encode().translate(_ASCII_DIGITS, _ASCII_SEPARATORS)
    return _SEVEN_DIGITS.search(text) is not None


class PhoneDetector:
    kind = PHONE

    def __init__(self, regions: list[str]) -> None:
        self.regions = [r.upper() for r in regions]
        unknown = [r for r in self.regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            hint = " (the United Kingdom is GB)" if "UK" in unknown else ""
            raise ValueError(f"unknown phone regions {unknown}{hint}")

    def find(self, text: str, context: Context) -> list[Span]:
        if not _has_seven_digits(text):
            return []
        spans: list[Span] = []
        for match in _PHONE_CANDIDATE.finditer(text):
            span = self._phone_span(text, match)
            if span is not None:
                spans.append(Span(span[0], span[1], PHONE))
        return spans

    def _phone_span(self, text: str, match: re.Match[str]) -> tuple[int, int] | None:
        extension = match.start("extension") >= 0
        number = text[match.start() : match.start("extension")] if extension else match.group()
        digits = _NOT_DIGIT.sub("", number)
        if not 7 <= len(digits) <= 18:  # 15 at most after "011" and a country code
            return None
        lead = len(number) - len(number.lstrip())
        opened = number.count("(") - number.count(")")
        while opened > 0 and number[lead] == "(":
            lead += 1  # "(+44 20 ...)": the bracket belongs to the sentence
            opened -= 1
        body = number[lead:].rstrip()
        start = match.start() + lead
        end = match.end() if extension else start + len(body)
        before = text[max(0, match.start() - 24) : match.start()]
        # An extension written out ("x41050", "ext. 12") is as sure a sign as a cue.
        cued = bool(_PHONE_CUE.search(before)) or match.start("mark") >= 0
        glued = before[-1:].isalpha()  # only a cue may be glued to a phone
        if not cued and (glued or _not_a_phone(body, before)):
            return None
        if cued or self._written_as_a_phone(body, digits):
            return start, end
        return self._glued_phone(number, match.start()) if len(digits) > 10 else None

    def _glued_phone(self, number: str, at: int) -> tuple[int, int] | None:
        """A phone glued to other digits ("2019 +1 415 ..."): phonenumbers' matcher finds
        where it is, and the part it cuts must be written as a phone."""
        for region in self.regions:
            for found in PhoneNumberMatcher(number, region, leniency=Leniency.VALID):
                raw = found.raw_string
                cut = 1 if raw.startswith("(") and raw.count("(") > raw.count(")") else 0
                raw = raw[cut:]
                if len(raw) < len(number.strip()) and self._written_as_a_phone(
                    raw, _NOT_DIGIT.sub("", raw)
                ):
                    return at + found.start + cut, at + found.end
        return None

    def _written_as_a_phone(self, body: str, digits: str) -> bool:
        """A valid number, written as the region of its reading writes its numbers."""
        ends = _group_ends(body)
        for idd in _INTERNATIONAL_PREFIXES:
            if body.startswith(idd):
                after = len(idd) - (idd == "+")
                shifted = frozenset(end - after for end in ends if end > after)
                if _written_internationally(digits[after:], shifted):
                    return True
                if idd != "011":  # 011 is also Delhi's area code, written nationally
                    return False
        return any(_written_nationally(digits, ends, region) for region in self.regions)

    # -- names -----------------------------------------------------------------------------
