"""The anonymizer: what it must replace, what it must keep, and its switches."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from processors.anonymize import addresses as addresses_module
from processors.anonymize import anonymizer as anonymizer_module
from processors.anonymize import emails as emails_module
from processors.anonymize import links as links_module
from processors.anonymize import names as names_module
from processors.anonymize import phones as phones_module
from processors.anonymize.addresses import _ADDRESS, _STREET_TYPES, AddressDetector
from processors.anonymize.anonymizer import Anonymizer
from processors.anonymize.spans import Context, RecordNames, Span
from processors.config import AnonymizeConfig
from processors.records import Example, Message

CONFIG = AnonymizeConfig()
ANON = Anonymizer(CONFIG)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- generators
LOCAL = st.from_regex(r"[a-z][a-z0-9]{1,10}(?:[._][a-z][a-z0-9]{1,8})?", fullmatch=True)
DOMAIN = st.from_regex(r"[a-z][a-z0-9]{2,12}", fullmatch=True)
TLD = st.sampled_from(["com", "org", "net", "io", "co.uk", "de", "edu", "dev"])
CONTEXT = st.sampled_from(
    ["", "Email: ", "reach me at ", "Contact - ", "(", "send CV to ", "• ", "mail: "]
)
AFTER = st.sampled_from(["", ".", ",", ")", " for details", " | Remote", "\nSkills: Python"])


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    """(the email as written, its local part)."""
    local, domain, tld = draw(LOCAL), draw(DOMAIN), draw(TLD)
    form = draw(st.sampled_from(["plain", "words", "brackets", "parens", "mixed", "braces"]))
    if form == "plain":
        written = f"{local}@{domain}.{tld}"
    elif form == "words":
        written = f"{local.replace('.', ' dot ')} at {domain} dot {tld.replace('.', ' dot ')}"
    elif form == "brackets":
        written = f"{local}[at]{domain}.{tld}"
    elif form == "parens":
        written = f"{local} (at) {domain} (dot) {tld.replace('.', ' (dot) ')}"
    elif form == "braces":
        written = f"{local}{{at}}{domain}{{dot}}{tld.replace('.', '{dot}')}"
    else:
        written = f"{local} [at] {domain} [dot] {tld.replace('.', ' [dot] ')}"
    return written, local


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """(a valid number of a configured region as written, its national digits)."""
    region = draw(st.sampled_from(CONFIG.phone_regions))
    kind = draw(st.sampled_from([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    assume(example is not None)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.integers(min_value=2, max_value=min(5, len(national) - 3)))
    digits = draw(st.text(alphabet="0123456789", min_size=tail, max_size=tail))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-tail]}{digits}")
    assume(phonenumbers.is_valid_number(number))
    style = draw(st.sampled_from(["e164", "international", "national", "dots", "bare", "dashes"]))
    if style == "e164":
        written = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    elif style == "international":
        written = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    elif style == "national":
        written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    else:
        national_text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        groups = re.findall(r"\d+", national_text)
        joiner = {"dots": ".", "bare": "", "dashes": "-"}[style]
        written = joiner.join(groups)
    return written, str(number.national_number)


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


# ----------------------------------------------------------------------------- properties
@PROPERTY
@given(emails(), CONTEXT, AFTER)
def test_no_email_of_any_generated_form_survives(
    email: tuple[str, str], before: str, after: str
) -> None:
    written, _local = email
    out = ANON.anonymize(f"{before}{written}{after}")
    assert "[EMAIL]" in out
    assert written not in out
    assert "@" not in out and "[at]" not in out.lower()


@PROPERTY
@given(phones(), st.sampled_from(["", "Phone: ", "call ", "Mobile ", "Tel. ", "(", "or "]), AFTER)
def test_no_phone_of_any_generated_form_survives(
    phone: tuple[str, str], before: str, after: str
) -> None:
    written, national = phone
    # Eight digits that read as two years are a year range for any reader: not a phone.
    assume(not re.fullmatch(r"(?:19|20)\d\d\D*(?:19|20)\d\d", written) or before.strip())
    out = ANON.anonymize(f"{before}{written}{after}")
    assert "[PHONE]" in out, (written, out)
    assert national not in digits_of(out)


YEAR = st.integers(min_value=1990, max_value=2030)
RESUME_NUMBERS = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", YEAR, YEAR),
    st.builds(lambda a, b: f"{a} – {b}", YEAR, YEAR),
    st.builds(lambda a: f"{a} - Present", YEAR),
    st.builds(lambda a, b: f"${a}.{b}M", st.integers(1, 999), st.integers(0, 9)),
    st.builds(lambda a: f"${a}K", st.integers(1, 999)),
    st.builds(lambda a: f"€{a:,}", st.integers(1000, 9_999_999)),
    st.builds(lambda a: f"{a}%", st.integers(1, 400)),
    st.builds(lambda a: f"{a:,}+ users", st.integers(1000, 99_000_000)),
    st.builds(
        lambda a, b, c: f"v{a}.{b}.{c}", st.integers(0, 30), st.integers(0, 99), st.integers(0, 999)
    ),
    st.builds(lambda q, y: f"Q{q} {y}", st.integers(1, 4), YEAR),
    st.builds(lambda n: f"Credential ID {n}", st.integers(10**6, 10**12)),
    st.builds(lambda n: f"Certificate No. {n}", st.integers(10**6, 10**12)),
    st.builds(
        lambda p, n: f"{p}-{n}",
        st.sampled_from(["AWS", "CKA", "PMP", "SAA-C03"]),
        st.integers(10**6, 10**10),
    ),
    st.builds(lambda y, m, d: f"{y}-{m:02d}-{d:02d}", YEAR, st.integers(1, 12), st.integers(1, 28)),
    st.builds(lambda y, m, d: f"{m:02d}/{d:02d}/{y}", YEAR, st.integers(1, 12), st.integers(1, 28)),
    st.builds(lambda a, b: f"{a}.{b}x faster", st.integers(1, 99), st.integers(0, 9)),
    st.builds(lambda a: f"{a} ms p99 latency", st.integers(1, 99999)),
)


@PROPERTY
@given(RESUME_NUMBERS, st.sampled_from(["", "grew revenue ", "from ", "released ", "in "]), AFTER)
def test_resume_numbers_survive(number: str, before: str, after: str) -> None:
    text = f"{before}{number}{after}"
    assert ANON.anonymize(text) == text


# ----------------------------------------------------------------------------- examples
@pytest.mark.parametrize(
    "text",
    [
        "Led Full Stack team at Google Cloud in New York from 2019-2023.",
        "Migrated 40 services to Amazon Web Services and Microsoft Azure.",
        "Senior Software Engineer, San Francisco Bay Area",
        "Built Ruby on Rails and Apache Kafka pipelines; Jenkins CI.",
        "Will deliver Grant Writing workshops in Austin, Texas.",
        "Worked with Morgan Stanley and Goldman Sachs on Power BI dashboards.",
        "Machine Learning, Data Science, Product Manager, Scrum Master",
        "See https://docs.python.org/3/library/re.html and https://www.google.com",
        "Grew ARR $1.2M (25%) to 10,000+ users; shipped v2.3.1 in Q3 2021.",
    ],
)
def test_capitalised_non_names_and_numbers_stay(text: str) -> None:
    assert ANON.anonymize(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Worked with Maria García on it.", "Worked with [NAME] on it."),
        ("Reviewed by Chidi Okonkwo.", "Reviewed by [NAME]."),
        ("Mentored Łukasz Wójcik and Zoë Müller.", "Mentored [NAME] and [NAME]."),
        ("Supervisor: Xochitl Quispe", "Supervisor: [NAME]"),
        ("Name: Ngozi Adeyemi\nRole: Analyst", "Name: [NAME]\nRole: Analyst"),
        ("Contact Priya Raman for references.", "Contact [NAME] for references."),
        ("Best regards,\nSiobhán O'Connor", "Best regards,\n[NAME]"),
        ("Jane Doe\nData Engineer\nBuilt things.", "[NAME]\nData Engineer\nBuilt things."),
        ("Mark Johnson approved; Johnson signed.", "[NAME] approved; [NAME] signed."),
    ],
)
def test_names_are_replaced(text: str, expected: str) -> None:
    assert ANON.anonymize(text) == expected


def test_names_known_from_the_source_are_replaced_with_their_parts() -> None:
    out = ANON.anonymize(
        "Great answer, jdoe42! As Zyxwv said, quantify.", known_names=["jdoe42", "Zyxwv Qrst"]
    )
    assert out == "Great answer, [NAME]! As [NAME] said, quantify."


def test_consistent_names_number_each_person_within_a_record() -> None:
    anonymizer = Anonymizer(AnonymizeConfig(consistent_names=True))
    example = Example(
        messages=[
            Message("user", "Jane Doe and Bob Smith wrote this."),
            Message("assistant", "Thanks to Bob Smith, then Jane."),
        ],
        source="s",
        dataset="d",
        record_id="1",
    )
    anonymizer.run(example)
    assert example.messages[0].content == "[NAME_1] and [NAME_2] wrote this."
    assert example.messages[1].content == "Thanks to [NAME_2], then [NAME_1]."


def test_example_uses_person_names_from_meta_and_anonymizes_a_pending_bullet() -> None:
    example = Example(
        messages=[Message("user", "Improve: qwxz built the API (qwxz@corp.com)")],
        source="s",
        dataset="d",
        record_id="1",
        kind="pairs",
        meta={"person_names": ["qwxz"], "bullet": "qwxz built the API"},
    )
    ANON.run(example)
    assert example.messages[0].content == "Improve: [NAME] built the API ([EMAIL])"
    assert example.meta["bullet"] == "[NAME] built the API"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linkedin.com/in/jane-doe-123", "[URL]"),
        ("https://github.com/janedoe", "[URL]"),
        ("see https://janedoe.dev/blog.", "see [URL]."),
        ("https://www.janesmith.com/about", "[URL]"),
        ("Portfolio: https://example-studio.com", "Portfolio: [URL]"),
        ("https://docs.python.org/3/", "https://docs.python.org/3/"),
    ],
)
def test_profile_and_personal_links_become_url(text: str, expected: str) -> None:
    assert ANON.anonymize(text) == expected


@pytest.mark.parametrize(
    "address",
    [
        "221B Baker Street",
        "1600 Amphitheatre Parkway, Mountain View, CA 94043",
        "42 Wallaby Way, Apt 3",
        "Hauptstraße 12, 10115 Berlin",
        "12 rue de la Paix, 75002 Paris",
        "Calle Mayor 5",
        "SW1A 1AA",
        "P.O. Box 123",
    ],
)
def test_street_addresses_become_address(address: str) -> None:
    out = ANON.anonymize(f"Lives at {address}.", known_names=())
    assert "[ADDRESS]" in out and not re.search(r"\d", out.replace("[ADDRESS]", "")), out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The street word touches a bracket.
        ("Office (12 Main St) since 2019", "Office ([ADDRESS]) since 2019"),
        # A German street word ends a longer word.
        ("Königsweg 5, 10115 Berlin", "[ADDRESS]"),
        ("Lindenallee 7; Hamburg", "[ADDRESS]; Hamburg"),
    ],
)
def test_an_address_is_found_whatever_its_street_word_touches(text: str, expected: str) -> None:
    assert ANON.anonymize(text, known_names=()) == expected


def test_each_kind_can_be_switched_off() -> None:
    text = "Jane Doe, jane@x.com, +44 20 7946 0958, github.com/jd, 221 Baker Street"
    off = Anonymizer(
        AnonymizeConfig(emails=False, phones=False, names=False, urls=False, addresses=False)
    )
    assert off.anonymize(text) == text
    assert Anonymizer(AnonymizeConfig(enabled=False)).anonymize(text) == text
    only_phones = Anonymizer(
        AnonymizeConfig(emails=False, names=False, urls=False, addresses=False)
    )
    assert only_phones.anonymize(text) == text.replace("+44 20 7946 0958", "[PHONE]")


def test_uk_is_refused_as_a_phone_region_with_a_hint() -> None:
    with pytest.raises(ValueError, match="GB"):
        Anonymizer(AnonymizeConfig(phone_regions=["UK"]))


def test_phone_after_a_cue_is_replaced_even_when_no_region_validates_it() -> None:
    assert ANON.anonymize("Phone: 555-0100-99") == "Phone: [PHONE]"


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(CONFIG.phone_regions),
    st.text(alphabet="0123456789", min_size=6, max_size=13),
)
@example(region="DE", digits="4902010000000")
def test_fast_phone_validity_agrees_with_phonenumbers(region: str, digits: str) -> None:
    from processors.anonymize.phones import _COUNTRY_CODES, _valid_national

    def valid(text: str) -> phonenumbers.PhoneNumber | None:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            return None
        return number if phonenumbers.is_valid_number_for_region(number, region) else None

    ours = _valid_national(digits, region)
    national, international = valid(digits), valid("+" + digits)
    # Ours reads the digits as phonenumbers does, or as a country code written without its "+"
    # ("49 0201 1000000" is how Germans write +49 (0)201 1000000; phonenumbers reads that as a
    # national number when the whole also fits the region's pattern).
    assert ours == bool(national or international) or (
        # Where phonenumbers takes off a country code and then two national prefixes
        # ("33 00 804843053"), ours does not: nobody writes a phone so.
        not ours
        and national is not None
        and digits.startswith(code := _COUNTRY_CODES[region])
        and len(phonenumbers.national_significant_number(national)) < len(digits) - len(code) - 1
    )


@PROPERTY
@given(phones())
def test_fast_validity_accepts_every_generated_valid_number(phone: tuple[str, str]) -> None:
    from processors.anonymize.phones import _valid_international, _valid_national

    written, _national = phone
    digits = re.sub(r"\D", "", written)
    if written.startswith("+"):
        assert _valid_international(digits)
    else:
        assert any(_valid_national(digits, region) for region in CONFIG.phone_regions)


def test_a_record_is_anonymized_as_a_whole_message_by_message() -> None:
    example = Example(
        messages=[
            Message("system", "You are a resume writer. Context: data"),
            Message("user", "Ngozi Adeyemi\nData Engineer\nImprove: built pipelines with Ngozi"),
            Message("assistant", "Built pipelines -- thanks, Ngozi.\n— Kwabena Owusu"),
        ],
        source="s",
        dataset="d",
        record_id="1",
    )
    ANON.run(example)
    assert [m.content for m in example.messages] == [
        "You are a resume writer. Context: data",
        "[NAME]\nData Engineer\nImprove: built pipelines with [NAME]",
        "Built pipelines -- thanks, [NAME].\n— [NAME]",
    ]


# ----------------------------------------------------------------- a person is gone everywhere
# Names in no list of the lexicon: made up, so only structure and evidence can find them.
UNLISTED_FIRST = st.sampled_from(["Zorvani", "Kethmira", "Abhivar", "Oluwadunni", "Tsegaye"])
UNLISTED_LAST = st.sampled_from(["Quillvard", "Jhavree", "Okonkwadi", "Brennevik", "Xandoval"])


def surviving_parts(out: str, *parts: str) -> list[str]:
    """Each name part still readable in `out`, whatever its case and however joined."""
    low = out.lower()
    return [part for part in parts if len(part) >= 3 and part.lower() in low]


@given(
    first=UNLISTED_FIRST, last=UNLISTED_LAST, lead=st.sampled_from(["", "Improve this resume:\n\n"])
)
@PROPERTY
def test_a_name_line_then_contacts_removes_the_name_from_every_link_and_handle(
    first: str, last: str, lead: str
) -> None:
    resume = (
        f"{lead}{first} {last}\n"
        "Data Engineer\n"
        f"{first.lower()}.{last.lower()}@gmail.com | "
        f"linkedin.com/in/{first.lower()}-{last.lower()}-61024944\n"
        f"github.com/{first.lower()}{last.lower()} · @{first[0].lower()}{last.lower()} on X\n"
        f"Attached: {first}_{last}_Resume.pdf. {last.upper()}, {first} led the migration.\n"
    )
    out = ANON.anonymize(resume)
    assert surviving_parts(out, first, last) == [], out
    assert "Data Engineer" in out and "led the migration" in out


@given(first=UNLISTED_FIRST, last=UNLISTED_LAST)
@PROPERTY
def test_a_profile_link_names_its_user_even_when_the_header_was_missed(
    first: str, last: str
) -> None:
    text = (
        f"Summary\nContact me on Indeed: indeed.com/r/{first}-{last}/10e7a8cb732bc43a\n"
        f"Skills: Python. References available. — {first} {last}"
    )
    out = ANON.anonymize(text)
    assert surviving_parts(out, first, last) == [], out
    assert "Skills: Python." in out


def test_a_person_found_in_one_message_is_removed_from_the_others() -> None:
    example = Example(
        messages=[
            Message("system", "You rewrite resumes."),
            Message("user", "Rewrite the summary of zorvani quillvard (zquillvard on GitHub)."),
            Message("assistant", "Zorvani Quillvard\nData Engineer\nzorvani@mail.com"),
        ],
        source="s",
        dataset="d",
        record_id="1",
    )
    ANON.run(example)
    text = "\n".join(m.content for m in example.messages)
    assert surviving_parts(text, "Zorvani", "Quillvard") == [], text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://github.com/pytorch/pytorch", "https://github.com/pytorch/pytorch"),
        ("linkedin.com/company/acme-corp", "linkedin.com/company/acme-corp"),
        (
            "https://stackoverflow.com/questions/231767",
            "https://stackoverflow.com/questions/231767",
        ),
        ("https://stackoverflow.com/users/12345/jane-doe", "[URL]"),
        ("indeed.com/r/Priya-Raman/3f5a9c", "[URL]"),
        ("https://x.com/janedoe", "[URL]"),
        ("https://medium.com/@jdoe/scaling-kafka", "[URL]"),
    ],
)
def test_links_of_people_go_and_links_of_projects_and_organisations_stay(
    text: str, expected: str
) -> None:
    assert ANON.anonymize(text) == expected


def test_a_project_link_that_spells_a_person_found_is_personal() -> None:
    out = ANON.anonymize(
        "Zorvani Quillvard\nData Engineer\nCode: https://github.com/zquillvard/etl\n"
    )
    assert out.endswith("Code: [URL]\n"), out


@pytest.mark.parametrize(
    "header",
    [
        "Karthik GV",
        "Govardhana K",
        "NGOZI OKONKWO-ADEBAYO",
        "Jane Doe | Data Engineer",
        "Tsegaye Xandoval, MBA",
    ],
)
def test_the_name_line_of_a_resume_is_a_name_without_any_list(header: str) -> None:
    out = ANON.anonymize(f"Please improve:\n{header}\nSoftware Engineer\nBengaluru, Karnataka\n")
    name = re.split(r"[|,]", header)[0].strip()
    assert surviving_parts(out, *name.split()) == [] and name not in out, out
    assert "Software Engineer" in out and "Bengaluru, Karnataka" in out


@pytest.mark.parametrize(
    "text",
    [
        "Senior Software Engineer\nBengaluru, Karnataka\n",
        "Work Experience\nData Engineer at Goldman Sachs\n",
        "Cloud Lending Solutions\nSalesforce Developer\n",
        "Technical Skills\nPython, Jenkins, Kubernetes\n",
    ],
)
def test_headings_titles_and_organisations_on_a_first_line_stay(text: str) -> None:
    assert ANON.anonymize(text) == text


class _GluedCode:
    """A detector of codes glued to a word (`X` of `XQuillvard`): once its token is rendered,
    the word it touched stands alone."""

    kind = "ADDRESS"

    def find(self, text: str, context: Context) -> list[Span]:
        at = text.find("XQ")
        return [Span(at, at + 1, "ADDRESS")] if at >= 0 else []


def test_the_last_check_replaces_and_counts_a_name_the_rendering_laid_bare() -> None:
    anonymizer = Anonymizer(CONFIG)
    anonymizer.contacts.append(_GluedCode())  # type: ignore[arg-type]
    example = Example(
        messages=[Message("user", "Zorvani Quillvard\nData Engineer\nRef: XQuillvard")],
        source="s",
        dataset="d",
        record_id="1",
    )
    anonymizer.run(example)
    assert example.messages[0].content == "[NAME]\nData Engineer\nRef: [ADDRESS][NAME]"
    assert example.residual == {"name": 1}
    clean = Example(
        messages=[Message("user", "Zorvani Quillvard\nData Engineer\n")],
        source="s",
        dataset="d",
        record_id="2",
    )
    ANON.run(clean)
    assert clean.residual == {}


def test_every_reference_is_a_name_whatever_its_shape() -> None:
    text = (
        "Summary\nData engineer.\n\nREFERENCES\n"
        "Zorvani Quillvard, Customer Success Manager at Safaricom\n"
        "Dr. Kethmira Jhavree, Professor, METU\n"
        "Okonkwadi, Abhivar Tsegaye, DevOps Engineer\n"
        "• Oluwadunni Peace - Team Lead, Access Bank\n"
        "Available on request.\n\nSkills\nPython\n"
    )
    out = ANON.anonymize(text)
    for part in ("Zorvani", "Quillvard", "Kethmira", "Jhavree", "Okonkwadi", "Abhivar"):
        assert part not in out, out
    assert "Oluwadunni" not in out and "Tsegaye" not in out, out
    for kept in ("Customer Success Manager at Safaricom", "Dr. ", "Professor, METU", "Team Lead"):
        assert kept in out, out


@pytest.mark.parametrize(
    "organisation",
    ["Ford Motor Company", "Banco Santander", "Goldman Sachs", "Johnson & Johnson", "Jenkins"],
)
def test_organisations_and_tools_named_after_people_stay(organisation: str) -> None:
    text = f"Experience\nBuilt the {organisation} pipelines in 2021."
    assert ANON.anonymize(text) == text


def test_common_names_of_every_country_are_names_in_running_text() -> None:
    """The compiled world list (names-dataset) reaches names no cue or header points at."""
    import random

    from processors.anonymize.world_names import read_names

    first, last = read_names()
    lexicon = ANON.lexicon
    assert lexicon is not None and len(first) > 50_000 and len(last) > 50_000
    pick = random.Random(5)
    latin = re.compile(r"[A-Za-zÀ-ÖØ-öø-ž]+")  # resumes in English spell names in Latin letters
    usable = sorted(n for n in first if latin.fullmatch(n) and n not in lexicon.vocabulary)
    surnames = sorted(n for n in last if latin.fullmatch(n) and n not in lexicon.vocabulary)
    missed = []
    for _ in range(200):
        name = f"{pick.choice(usable)} {pick.choice(surnames)}"
        out = ANON.anonymize(f"Worked with {name} on the billing migration.")
        if any(part in out for part in name.split()):
            missed.append(out)
    assert len(missed) <= 4, missed


# ----------------------------------------------------------------------------- fast paths
_split = str.split
# Each shortcut of the anonymizer (a cache, a cheap test that skips a rule or a detector) must
# change no output: each is held equal here to the full path it stands for, on tricky inputs.
TRICKY_RECORDS: list[tuple[list[str], dict[str, object]]] = [
    # a text clean on its own, then beside a message that names the person it mentions
    (["Great work on the launch, priya."], {}),
    (["Supervisor: Priya Raman", "Great work on the launch, priya."], {}),
    # clean without the source's names, not with them (lower case, accents)
    (["the review by zoë kierkegaard went well"], {}),
    (["the review by zoë kierkegaard went well"], {"person_names": ["Zoë Kierkegaard"]}),
    (["Thanks,\njane doe"], {}),
    (["Thanks,\njane doe"], {"person_names": "Jane Doe"}),
    (["Write a summary for jdoe42."], {"person_names": ["jdoe42"]}),
    # upper case, a name line, and a pending bullet that names the person
    (["LEAD ENGINEER AT ACME, 2019-2023"], {}),
    (["ŁUKASZ WÓJCIK\nDATA ENGINEER\nlukasz.wojcik@example.com", "LEAD ENGINEER AT ACME"], {}),
    (["Polish this: led the team", "Led the team of 12"], {"bullet": "led the team with łukasz"}),
    (
        ["Polish this: led the team", "Led the team of 12"],
        {"bullet": "led the team with łukasz", "person_names": ["Łukasz Wójcik"]},
    ),
    # the same prompt in every record, contacts and addresses beside it
    (["You are a resume writer.", "Reach Siobhán O'Connor at +44 20 7946 0958."], {}),
    (["You are a resume writer.", "Office: 221B Baker Street, London NW1 6XE"], {}),
    (["You are a resume writer.", "linkedin.com/in/chidi-okonkwo-12 and chidi okonkwo"], {}),
]


def _run_records(anonymizer: Anonymizer, order: list[int]) -> dict[int, tuple[object, ...]]:
    out: dict[int, tuple[object, ...]] = {}
    for index in order:
        texts, meta = TRICKY_RECORDS[index]
        example = Example(
            messages=[Message("user", text) for text in texts],
            source="s",
            dataset="d",
            record_id=str(index),
            meta=dict(meta),
        )
        anonymizer.run(example)
        out[index] = (tuple(m.content for m in example.messages), example.meta, example.residual)
    return out


@pytest.mark.parametrize("numbered", [False, True])
def test_the_cache_of_clean_texts_changes_no_output(
    monkeypatch: pytest.MonkeyPatch, numbered: bool
) -> None:
    config = AnonymizeConfig(consistent_names=numbered)
    cached = Anonymizer(config)
    order = list(range(len(TRICKY_RECORDS)))
    # Twice in each order: the second pass reads the texts the first found clean.
    runs = [_run_records(cached, o) for o in (order, order, order[::-1], order[::-1])]
    assert cached._clean  # the cache was used
    monkeypatch.setattr(anonymizer_module, "_CLEAN_LENGTH", -1)  # no text is cached
    full = _run_records(Anonymizer(config), order)
    for run in runs:
        assert run == full
    # A text clean on its own still loses the names that the rest of its record holds.
    assert "priya" not in str(full[1]) and "kierkegaard" not in str(full[3])
    assert "jane doe" not in str(full[5]) and "łukasz" not in str(full[10])


def test_a_clean_text_still_loses_a_person_carried_from_an_earlier_call() -> None:
    anonymizer = Anonymizer(CONFIG)
    assert anonymizer.anonymize("Great work on the launch, priya.") == (
        "Great work on the launch, priya."
    )
    record = RecordNames()
    assert anonymizer.anonymize("Supervisor: Priya Raman", record=record) == "Supervisor: [NAME]"
    assert anonymizer.anonymize("Great work on the launch, priya.", record=record) == (
        "Great work on the launch, [NAME]."
    )


ADDRESS_PIECES = {
    "us": st.builds(
        lambda n, suffix, gap, direction, names, kind, tail: (
            f"{n}{suffix}{gap}{direction}{gap.join(names)}{gap}{kind}{tail}"
        ),
        st.integers(0, 99999),
        st.sampled_from(["", "B", "a", "-14"]),
        st.sampled_from([" ", "  ", "\t", "\u00a0", "\n", "\u2009"]),
        st.sampled_from(["", "N ", "E. "]),
        st.lists(st.sampled_from(["Baker", "Main", "Élysée", "O'Neil", "St.", "X"]), max_size=3),
        st.sampled_from([*_STREET_TYPES.split("|"), "Box", "Stack", "st"]),
        st.sampled_from(["", ".", "-X", "s", ", Apt 4", ", Springfield, IL 62704"]),
    ),
    "german": st.builds(
        lambda head, word, gap, n: f"{head}{word}{gap}{n}",
        st.sampled_from(["Haupt", "Königs", "Ö", "", "X-", "during "]),
        st.sampled_from(["straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "damm"])
        | st.sampled_from(["ring", "Ring", "Str."]),
        st.sampled_from([" ", "\t", "\u00a0", "\n"]),
        st.integers(0, 9999),
    ),
    "french": st.builds(
        lambda n, bis, word, particle, name: f"{n}{bis} {word} {particle}{name}, 75002 Paris",
        st.integers(0, 999),
        st.sampled_from(["", " bis", "ter", ","]),
        st.sampled_from(["rue", "avenue", "av.", "boulevard", "bd", "allée", "place", "route"])
        | st.sampled_from(["chemin", "impasse", "quai", "Rue"]),
        st.sampled_from(["", "de la ", "d'", "l’", "du", "des "]),
        st.sampled_from(["Paix", "Élysée", "Alésia", "paix", "Èze"]),
    ),
    "spanish": st.builds(
        lambda word, particle, name, comma, number: f"{word} {particle}{name}{comma} {number}",
        st.sampled_from(["Calle", "Avenida", "Carrer", "Paseo", "Plaza", "Via", "Viale"])
        | st.sampled_from(["Piazza", "Corso", "Rua", "Travessa", "Largo", "calle"]),
        st.sampled_from(["", "de ", "della "]),
        st.sampled_from(["Mayor", "Roma", "Augusta", "x"]),
        st.sampled_from(["", ","]),
        st.sampled_from(["5", "nº 12", "no. 7", "1234"]),
    ),
    "uk": st.sampled_from(
        ["SW1A 1AA", "M1 1AA", "GIR 0AA", "GIR0AA", "B33 8TH", "DN55 1PT", "Q1 1AA", "sw1a 1aa"]
    ),
    "box": st.builds(
        "{}{}".format,
        st.sampled_from(["P.O. Box ", "PO Box ", "P. O. Box ", "Box "]),
        st.integers(),
    ),
}
ADDRESS_NOISE = st.lists(
    st.sampled_from([*"abcXYZ019 ,.;:()-'’\"\n\té", "Ä", "İ", "\u212a", "2019 ", "Jane "]),
    max_size=6,
).map("".join)


@st.composite
def address_texts(draw: st.DrawFn) -> str:
    pieces = [draw(ADDRESS_NOISE)]
    for _ in range(draw(st.integers(0, 2))):
        pieces += [draw(st.one_of(*ADDRESS_PIECES.values())), draw(ADDRESS_NOISE)]
    text = "".join(pieces)
    return draw(st.sampled_from([text, text, text.upper(), text.lower()]))


@settings(max_examples=600, deadline=None)
@given(address_texts())
def test_the_address_hints_hold_wherever_the_address_regex_matches(text: str) -> None:
    detector = AddressDetector()
    if _ADDRESS.search(text) or any(_ADDRESS.search(line) for line in text.split("\n")):
        assert addresses_module._may_hold_address(text), text
    assert detector.find(text, Context(RecordNames())) == detector._find(text)


@pytest.mark.parametrize(
    "text",
    [
        *(f"221B Baker {kind}, Springfield" for kind in _STREET_TYPES.split("|")),
        *(f"Office: Haupt{word} 12a, 10115 Berlin" for word in ("straße", "strasse", "str.")),
        *(f"Königs{word} 5" for word in ("weg", "gasse", "platz", "allee", "damm", "ring")),
        *(f"Office: Königs{word} 5" for word in ("weg", "gasse", "platz", "allee", "damm", "ring")),
        *(
            f"12 {word} de la Paix, 75002 Paris"
            for word in _split("rue avenue av. boulevard bd allée place chemin impasse quai route")
        ),
        *(
            f"{word} Mayor, nº 5"
            for word in _split("Calle Avenida Carrer Paseo Plaza Via Viale Piazza Corso Rua")
        ),
        *(f"{word} della Roma 12" for word in ("Travessa", "Largo")),
        *("London SW1A 1AA", "GIR 0AA", "M1 1AA", "P.O. Box 12", "PO Box 7"),
    ],
)
def test_every_address_form_and_street_word_passes_the_address_hints(text: str) -> None:
    detector = AddressDetector()
    assert _ADDRESS.search(text), text  # each is an address the regex reads
    assert addresses_module._may_hold_address(text)
    assert detector.find(text, Context(RecordNames())) == detector._find(text) != []


TWO_WORDS = names_module._two_words  # the gate of the name rules that cannot match
NAME_TEXTS = [
    "Jane Doe\nData Engineer\njane@example.com",
    "JANE DOE\n",
    "Contact: jane doe\nRole: analyst",
    "improve this:\nŁukasz Wójcik | Data Engineer\n",
    "notes\n\u00a0Zoë\u00a0Müller\n",
    "a line\n— Siobhán O'Connor\n",
    "Best regards,\nsiobhán o'connor",
    "Best regards,\nSiobhán O'Connor",
    "\nJane Doe",
    "led the team with Jane Doe",
    "led the team with Jane\nDoe did the rest",
    "x 'Jean -Luc Picard'\nsecond line",
    "References\nZorvani Quillvard, Manager\n",
    "A\nB C\n",
]


@PROPERTY
@given(
    st.one_of(
        st.sampled_from(NAME_TEXTS),
        st.lists(
            st.sampled_from(
                [
                    *" \u00a0\n\t,:'-—x",
                    *("Jane", "doe", "DOE", "Ørsted", "Müller", "Name", "Thanks", "Dr.", "J."),
                    *("Raman", "Zoë", "priya", "References", "Best regards,"),
                ]
            ),
            max_size=12,
        ).map("".join),
    ),
    st.sampled_from([(), ("Jane Doe",), ("Priya Raman", "jdoe42")]),
)
def test_the_name_rules_skipped_as_unable_to_match_find_nothing(
    text: str, known: tuple[str, ...]
) -> None:
    sequences, name_lines = names_module._two_words(text)
    if not sequences:
        assert names_module._SEQUENCE.search(text) is None
    if not name_lines:
        assert all(names_module._FIRST_LINE.match(text, at) is None for at in range(len(text)))
    detector = ANON.names
    assert detector is not None
    fast_record, full_record = RecordNames(), RecordNames()
    fast = detector.find(text, Context(fast_record, known))
    try:  # the full path: no rule skipped (hypothesis does not take pytest's monkeypatch)
        names_module._two_words = lambda text: (True, True)  # type: ignore[assignment]
        full = detector.find(text, Context(full_record, known))
    finally:
        names_module._two_words = TWO_WORDS  # type: ignore[assignment]
    assert fast == full and fast_record == full_record


@PROPERTY
@given(
    st.lists(
        st.sampled_from([*"0 \t().-/+x,a:#\n\u00a0\u2009_", "555", "12", "1234", "٣٤٥"]),
        max_size=12,
    ).map("".join)
)
def test_the_seven_digit_test_is_the_regex_it_replaces(text: str) -> None:
    assert phones_module._has_seven_digits(text) == bool(phones_module._SEVEN_DIGITS.search(text))


@pytest.mark.parametrize("between", [*" \t().-/+_,:#x\n\u00a0\u2009\u2013", "- ", "()"])
def test_the_seven_digit_test_reads_every_separator_as_the_regex_does(between: str) -> None:
    for text in (f"555{between}1234", f"+1{between}555{between}0134", f"12{between}34"):
        assert phones_module._has_seven_digits(text) == bool(
            phones_module._SEVEN_DIGITS.search(text)
        )


@PROPERTY
@given(
    st.lists(
        st.sampled_from(
            [
                *sorted(addresses_module._STREET_WORDS),
                *("st-x", "é", "\u2003"),
                *"()[]{}<>,.;:!?\"'/| \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f-x",
            ]
        ),
        max_size=8,
    ).map("".join)
)
def test_the_street_word_test_on_bytes_is_the_one_on_text(low: str) -> None:
    words = low.translate(addresses_module._PUNCTUATION).split()
    assert addresses_module._has_street_word(low) == (
        not addresses_module._STREET_WORDS.isdisjoint(words)
    )


HOST_HINT = re.compile(  # what `links._host_hint` tests, as one regex (the slow way)
    r"(?:linkedin|github|gitlab|bitbucket|twitter|x\.com|facebook|instagram|medium|behance|"
    r"dribbble|kaggle|stackoverflow|indeed|about\.me|angel\.co|wellfound|leetcode|hackerrank|"
    r"codepen|dev\.to|substack|netlify|vercel|pages\.dev|herokuapp|wordpress|blogspot|wixsite|"
    r"carrd)|[a-z0-9]\.(?:me|dev|name|page|site|website|portfolio|blog)\b"
)


@PROPERTY
@given(
    st.lists(
        st.sampled_from(
            [
                *_split("linkedin github gitlab bitbucket twitter x.com facebook instagram"),
                *_split("medium behance dribbble kaggle stackoverflow indeed about.me angel.co"),
                *_split("wellfound leetcode hackerrank codepen dev.to substack netlify vercel"),
                *_split("pages.dev herokuapp wordpress blogspot wixsite carrd carr x.co angel."),
                *_split(".me .dev .name .page .site .website .portfolio .blog me"),
                *"abcmx0.-/ é",
            ]
        ),
        max_size=6,
    ).map("".join)
)
def test_the_host_hint_is_the_regex_it_replaces(low: str) -> None:
    assert links_module._host_hint(low) == bool(HOST_HINT.search(low))


@PROPERTY
@given(
    st.lists(
        st.sampled_from([*"ab.+-_@ x1-Zé\n", "@x.io", "jane.doe", ".com", "ł", "\u0660", "@@"]),
        max_size=12,
    ).map("".join)
)
def test_emails_are_searched_from_their_user_part_as_from_the_line_start(line: str) -> None:
    fast = [m.span() for m in emails_module._plain_emails(line)]
    assert fast == [m.span() for m in emails_module._EMAIL.finditer(line)]


# Inputs that made the name patterns backtrack exponentially: a word's optional capital after a
# hyphen overlapped the letters that follow it, so each `-Ab` could be read two ways.
_BACKTRACKING = [
    head + unit * 400 + tail
    for head in ("Ab Cd", "Name: Ab Cd", "Regards,\nAb Cd", "-- Ab Cd", "Ab, Cd", "Émile Ñúñez")
    for unit in ("-Ab", "-AB", "'Ab", "’Éa", "-A")
    for tail in (" x\n", "@", "1", " |", "")
]


def test_no_name_pattern_backtracks_on_long_hyphenated_words() -> None:
    # In a subprocess with a deadline: a pattern that backtracks would hang the test, not fail it.
    # The patterns are tried where the detector tries them, at the start of a line.
    script = (
        "import re, sys\n"
        "from processors.anonymize import names\n"
        "from processors.anonymize.anonymizer import Anonymizer\n"
        "from processors.config import AnonymizeConfig\n"
        "from tests.test_anonymize import _BACKTRACKING\n"
        "patterns = [p for p in vars(names).values() if isinstance(p, re.Pattern)]\n"
        "anonymizer = Anonymizer(AnonymizeConfig())\n"
        "for text in _BACKTRACKING:\n"
        "    for pattern in patterns:\n"
        "        pattern.match(text)\n"
        "    anonymizer.anonymize(text + '\\nJane Doe\\n')\n"
        "    anonymizer.anonymize('References\\n' + text + '\\n')\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
