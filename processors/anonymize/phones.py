"""Phones: a regex finds digit runs that could be phones, cheap rules set aside what resumes
are full of (year ranges, dates, versions, IDs), and phonenumbers' metadata decides: a run is a
phone when it is a valid number of one of the configured regions (or, after `+`/`00`, of any
region). A run right after `Phone:`/`Tel`/`Mobile` is a phone whatever its region.
"""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher

from processors.anonymize.spans import PHONE, Context, Span

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


class PhoneDetector:
    kind = PHONE

    def __init__(self, regions: list[str]) -> None:
        self.regions = [r.upper() for r in regions]
        unknown = [r for r in self.regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            hint = " (the United Kingdom is GB)" if "UK" in unknown else ""
            raise ValueError(f"unknown phone regions {unknown}{hint}")

    def find(self, text: str, context: Context) -> list[Span]:
        if not _DIGIT.search(text):
            return []
        spans: list[Span] = []
        for match in _PHONE_CANDIDATE.finditer(text):
            span = self._phone_span(text, match)
            if span is not None:
                spans.append(Span(span[0], span[1], PHONE))
        return spans

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
