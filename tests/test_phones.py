"""Phones: every region's numbers as people write them (with extensions, international
prefixes, the shapes PDF extraction leaves), and the numbers resumes are full of, which stay."""

from __future__ import annotations

import re

import phonenumbers
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberFormat, PhoneNumberType

from processors.anonymize.phones import PhoneDetector
from processors.anonymize.spans import Context, RecordNames, merge, render
from processors.config import AnonymizeConfig

CONFIG = AnonymizeConfig()
DETECTOR = PhoneDetector(CONFIG.phone_regions)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Regions of every continent, written with their country code wherever they are read.
WORLD = [
    *CONFIG.phone_regions,
    *("MX", "AR", "CO", "CL", "PE", "NG", "KE", "ZA", "GH", "EG", "MA", "JP", "CN", "KR"),
    *("TW", "HK", "SG", "MY", "PH", "ID", "VN", "TH", "PK", "BD", "LK", "NP", "AE", "SA"),
    *("IL", "TR", "RU", "UA", "PL", "SE", "NO", "DK", "FI", "IE", "PT", "CH", "AT", "BE"),
    *("CZ", "RO", "GR", "NZ"),
]
KINDS = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]


def redact(text: str) -> str:
    return render(text, merge(DETECTOR.find(text, Context(RecordNames()))), RecordNames())


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


# ----------------------------------------------------------------------------- generators
@st.composite
def numbers(draw: st.DrawFn, regions: list[str]) -> PhoneNumber:
    """A valid number of one of `regions`: its example number with other last digits."""
    region = draw(st.sampled_from(regions))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(KINDS)))
    assume(example is not None)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.integers(min_value=2, max_value=min(4, len(national) - 3)))
    digits = draw(st.text(alphabet="0123456789", min_size=tail, max_size=tail))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-tail]}{digits}")
    assume(phonenumbers.is_valid_number(number))
    return number


# Spaces and dashes as text extraction leaves them: no-break and thin spaces, en dashes.
SEPARATORS = st.sampled_from([" ", "-", ".", "\u00a0", "\u2013", "\u202f"])


@st.composite
def written(draw: st.DrawFn, regions: list[str], national: bool = True) -> tuple[str, str]:
    """(a valid number as phonenumbers formats it, its national significant number)."""
    number = draw(numbers(regions))
    styles = ["e164", "international", "00", "separators", "split"] + ["national"] * national
    style = draw(st.sampled_from(styles))
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "e164":
        text = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    elif style == "international":
        text = intl
    elif style == "00":
        # From Europe "00", from North America "011": "001-..." is 00 then the US code.
        idd = "011" if number.country_code != 1 and draw(st.booleans()) else "00"
        text = idd + draw(st.sampled_from([" ", "-", ""])) + intl[1:]
    elif style == "national":
        text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    elif style == "separators":  # the international groups joined by another separator
        text = "+" + draw(SEPARATORS).join(re.findall(r"\d+", intl))
    else:  # the subscriber's digits split further: "+49 30 1234 5678", "+31 6 1234 5678"
        last = list(re.finditer(r"\d+", intl))[-1]
        assume(len(last.group()) >= 4)
        cut = last.start() + draw(st.integers(2, len(last.group()) - 2))
        text = f"{intl[:cut]} {intl[cut:]}"
    return text, str(number.national_number)


EXTENSIONS = st.sampled_from(
    ["x", " x", " x ", " ext. ", " ext ", "ext.", " #", " # ", " extension "]
)
# Where a phone sits on a resume: alone on a line, between the separators of a contact line.
CONTACT_LINES = st.sampled_from(
    ["{}", "\n{}\n", "Jane | {} | jane@x.com", "• {} •", "{}, London", "a; {}; b", "\t{}\t", "({})"]
)


@PROPERTY
@given(written(CONFIG.phone_regions), EXTENSIONS, st.integers(1, 99999), CONTACT_LINES)
def test_a_phone_with_its_extension_is_one_phone(
    phone: tuple[str, str], mark: str, extension: int, line: str
) -> None:
    text, _nsn = phone
    out = redact(line.format(f"{text}{mark}{extension}"))
    assert out == line.format("[PHONE]"), (text, out)


@PROPERTY
@given(
    # Nationally in the configured regions; with its country code from anywhere.
    st.one_of(written(CONFIG.phone_regions), written(WORLD, national=False)),
    CONTACT_LINES,
)
def test_no_phone_survives_on_a_contact_line(phone: tuple[str, str], line: str) -> None:
    text, nsn = phone
    out = redact(line.format(text))
    assert "[PHONE]" in out and nsn not in digits_of(out), (text, out)


def test_the_extensions_of_the_issue_are_gone_with_their_number() -> None:
    for text in [
        "001-687-638-2142x41050",
        "367-557-9475x0027",
        "+1 415 555 2671 ext. 12",
        "(020) 7946 0958 #3",
        "+1 415 555 2671 extension 4",
    ]:
        assert redact(f"Jane Doe\n{text}\njane@x.com") == "Jane Doe\n[PHONE]\njane@x.com", text


# ----------------------------------------------------------------------- US, as extracted
@st.composite
def us_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(a US or Canadian number as real resumes' extracted text has it, its 10 digits)."""
    number = draw(numbers(["US", "CA"]))
    ten = str(number.national_number)
    area, exchange, line = ten[:3], ten[3:6], ten[6:]
    sep = draw(SEPARATORS)
    shape = draw(
        st.sampled_from(
            [
                f"({area}) {exchange}-{line}",
                f"({area}){exchange}-{line}",
                f"({area}) {exchange}{sep}{line}",
                f"{area}{sep}{exchange}{sep}{line}",
                f"{area}.{exchange}.{line}",
                f"{area}/{exchange}-{line}",
                f"1 ({area}) {exchange}-{line}",
                f"1-{area}-{exchange}-{line}",
                f"+1-{area}-{exchange}-{line}",
                f"+1 ({area}) {exchange}-{line}",
                f"+1{ten}",
                f"1{ten}",
                ten,
            ]
        )
    )
    return shape, ten


# Cues and neighbours as PDF extraction glues them.
US_CONTEXTS = st.sampled_from(
    [
        "Phone{}",
        "Cell:{}",
        "Mobile:{}",
        "Tel{}",
        "{}Email",
        "{}Linkedin",
        "Phone: {}Email: jane@x.com",
        "Cell: {} | Email",
        "San Jose, CA {}",
        "{} · jane@x.com",
        "C: {}",
        "{}\n",
        "Contact\n{}",
    ]
)


@PROPERTY
@given(us_phones(), US_CONTEXTS)
def test_no_us_phone_survives_text_extraction(phone: tuple[str, str], context: str) -> None:
    text, ten = phone
    out = redact(context.format(text))
    assert "[PHONE]" in out and ten not in digits_of(out), (context.format(text), out)


# ------------------------------------------------------------------- what is not a phone
def test_a_number_no_region_writes_that_way_stays() -> None:
    text = "780 166 1994 transactions processed"
    assert redact(text) == text


def written_as_by_a_region(text: str) -> bool:
    """phonenumbers reads `text` as a valid number of a configured region, and formats it
    in the same digits (perhaps without a national prefix its format says is optional) with
    the same groups or more (`text` groups some of them)."""
    ends = group_ends(text)
    for region in CONFIG.phone_regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number_for_region(number, region):
            continue
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        prefix = PhoneMetadata.metadata_for_region(region).national_prefix  # type: ignore[union-attr]
        if prefix and prefix_optional(number, region) and not text.startswith(prefix):
            national = re.sub(rf"^\(?{prefix}", "", national)
        if digits_of(national) == digits_of(text) and ends <= group_ends(national):
            return True
    return False


def prefix_optional(number: PhoneNumber, region: str) -> bool:
    """The region's format for `number` says its national prefix is optional."""
    nsn = phonenumbers.national_significant_number(number)
    meta = PhoneMetadata.metadata_for_region(region)
    for f in meta.number_format if meta else []:
        leading = f.leading_digits_pattern
        if (not leading or re.match(leading[-1], nsn)) and re.fullmatch(f.pattern or "", nsn):
            return bool(f.national_prefix_optional_when_formatting)
    return False


def group_ends(text: str) -> set[int]:
    """How many digits come before each separator between digits."""
    return {len(digits_of(text[: m.end()])) for m in re.finditer(r"\d(?=\D+\d)", text)}


@PROPERTY
@given(
    st.sampled_from("245689"),
    st.integers(10, 99),
    st.sampled_from("01"),
    st.integers(10, 99),
    st.integers(0, 9999),
    st.sampled_from([" ", "-", "."]),
    st.sampled_from(["{} transactions processed", "processed {} rows", "{} records, 2019"]),
)
def test_north_american_shapes_with_an_exchange_no_number_has_stay(
    a: str, rest: int, b: str, c: int, line: int, sep: str, context: str
) -> None:
    # No US or Canadian exchange starts with 0 or 1; grouped 3-3-4 no other region reads it.
    number = f"{a}{rest}{sep}{b}{c}{sep}{line:04d}"
    assume(not written_as_by_a_region(number))  # an Italian number may be grouped 3-3-4
    text = context.format(number)
    assert redact(text) == text


@st.composite
def national_numbers_without_their_prefix(draw: st.DrawFn) -> str:
    """A number of a region that writes a trunk prefix, written without it: not that
    region's number (and grouped the way only that region groups it)."""
    number = draw(numbers(["GB", "DE", "FR", "AU", "NL"]))
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    assume(national.startswith("0") or national.startswith("(0"))
    return re.sub(r"^\(?0", "", national).replace(")", "")


@PROPERTY
@given(national_numbers_without_their_prefix())
def test_a_national_number_without_the_prefix_its_region_writes_stays(text: str) -> None:
    # Another configured region may read the same digits as its own, written its own way.
    assume(not written_as_by_a_region(text))
    assert redact(f"processed {text} rows") == f"processed {text} rows"


YEAR = st.integers(min_value=1990, max_value=2030)
RESUME_NUMBERS = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", YEAR, YEAR),
    st.builds(lambda a, b: f"{a} – {b}", YEAR, YEAR),
    st.builds(lambda a, b: f"{a}\u2013{b}", YEAR, YEAR),
    st.builds(lambda a, b, c: f"{a}-{b}, {c}-Present", YEAR, YEAR, YEAR),
    st.builds(lambda y, m, d: f"{d:02d}.{m:02d}.{y}", YEAR, st.integers(1, 12), st.integers(1, 28)),
    st.builds(lambda y, m, d: f"{m:02d}/{d:02d}/{y}", YEAR, st.integers(1, 12), st.integers(1, 28)),
    st.builds(lambda a: f"${a:,}", st.integers(1_000_000, 9_999_999_999)),
    st.builds(lambda a: f"{a:,} EUR", st.integers(1_000_000, 9_999_999_999)),
    st.builds(lambda a, b: f"{a}.{b}%", st.integers(1, 400), st.integers(0, 99)),
    st.builds(lambda a: f"{a:,}+ users", st.integers(1000, 99_000_000)),
    st.builds(lambda a: f"{a:,} transactions", st.integers(1_000_000, 9_999_999_999)),
    st.builds(lambda a, b, c: f"v{a}.{b}.{c}", st.integers(0, 30), st.integers(0, 99), YEAR),
    st.builds(lambda q, y: f"Q{q} {y}", st.integers(1, 4), YEAR),
    st.builds(
        lambda cue, n: f"{cue}{n}",
        st.sampled_from(["ID ", "ID: ", "#", "No. ", "Order ", "Order #", "Invoice ", "Ticket "]),
        st.integers(10**6, 10**12),
    ),
    st.builds(
        lambda a, b, c: f"ISBN 978-{a}-{b:05d}-{c}",
        st.integers(0, 9),
        st.integers(0, 99999),
        st.integers(10, 99),
    ),
    st.builds(
        lambda a, b, c, d: f"{a}.{b}.{c}.{d}",
        st.integers(1, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
)


@PROPERTY
@given(
    RESUME_NUMBERS,
    st.sampled_from(["", "grew revenue ", "in ", "• ", "| "]),
    st.sampled_from(["", ".", " | Remote", "\n"]),
)
def test_what_resumes_are_full_of_stays(number: str, before: str, after: str) -> None:
    text = f"{before}{number}{after}"
    assert redact(text) == text


def test_a_run_after_a_cue_is_a_phone_whatever_its_region() -> None:
    assert redact("Phone: 555-0100-99") == "Phone: [PHONE]"
    assert redact("M: 780 166 1994") == "M: [PHONE]"
