"""Resume-shaped documents planted with real names and phones, and the record of what was planted.

Each document reads like a real resume: the person's name alone on the first line, a contact
line, Summary / Experience / Education / Skills sections with bullets, dates, money, percentages,
versions, IDs and companies named after people (`Goldman Sachs`, `Johnson & Johnson`, `Jenkins`).
The person's name is spelled again where real resumes spell it: Indeed, LinkedIn and GitHub
links, e-mail local parts, handles, the resume's file name, a signature; a references section
names other people.

Sources, with their licences:
- names: `names-dataset` 3.3.1 (Apache License 2.0), see `world_names.py`: real first and last
  names of 48 countries on every continent, plus names made by joining two of a country's
  names (`Saikiran`), which are in no list;
- phones: `phonenumbers` (Apache License 2.0): each region's example numbers with other last
  digits, kept only when `phonenumbers` says they are valid, in the region's own formats;
- the rest (titles, companies, universities, bullets) is written here in the words of real
  resumes.

A name is drawn again until none of its parts (3 letters or more, accents folded, any case)
occurs anywhere else in the document, so a case-insensitive substring check of the output
counts exactly the planted occurrences that survived.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from benchmarks.world_names import CountryNames, world_names

# The anonymizer's default national phone regions (AnonymizeConfig.phone_regions): other
# countries' phones are written in international form, as resumes sent abroad write them.
NATIONAL_REGIONS = {"US", "GB", "DE", "FR", "IN", "CA", "AU", "ES", "IT", "NL", "BR"}
PARTICLES = {
    "Latin America": ["de", "del", "de la", "dos", "da"],
    "Europe": ["van", "van der", "de", "von", "di", "del", "Le"],
    "Arabic": ["Al-", "El-", "bin", "Abu", "Abdel"],
    "Persian": ["Al-", "Mir"],
}
JUNK = {"Gh", "Bw", "Sh", "Sk", "Um", "Fiji", "Afghan", "Queen", "Unruly", "Bd", "Mr", "Mrs"}
SCORE_SKIP = {"van", "der", "den", "von", "del", "dos", "bin", "abu", "mir", "abdel"}


def fold(text: str) -> str:
    """Lower-case ASCII as links and e-mail addresses spell a name: `Yılmaz` -> `yilmaz`."""
    text = text.translate(_SPECIAL)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


_SPECIAL = str.maketrans({"ı": "i", "ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d"})


@dataclass
class Person:
    first: list[str]  # given names as written (`Anne-Marie`, `Karthik`)
    last: list[str]  # family names, particles included (`van der`, `Berg`)
    initials: str = ""  # `GV` in `Karthik GV`
    country: str = ""
    region: str = ""
    shape: str = "plain"
    in_faker: bool = False  # every scored part is in Faker's person lists

    def full(self) -> str:
        words = [*self.first, *self.last] + ([self.initials] if self.initials else [])
        return " ".join(words).replace("- ", "-")

    def scored_parts(self) -> list[str]:
        """Folded parts of 3 letters or more: what must not survive anywhere."""
        words = re.split(r"[\s\-']+", " ".join([*self.first, *self.last]))
        parts = {fold(w) for w in words if len(w) >= 3 and fold(w) not in SCORE_SKIP}
        return sorted(p for p in parts if len(p) >= 3)

    def slug_words(self) -> tuple[str, str]:
        first = re.sub(r"[^a-z]", "", fold(self.first[0])) or "x"
        last = re.sub(r"[^a-z]", "", fold(self.last[-1] if self.last else self.initials)) or "x"
        return first, last


@dataclass
class Span:
    kind: str  # name | name_part | email | phone | url | keep | word
    start: int
    end: int
    who: int = -1  # the person (0 = the resume's owner) for name, name_part, email, url
    digits: str = ""  # phone: the digits that must be gone (national number and extension)


@dataclass
class ResumeDoc:
    text: str
    people: list[Person]
    spans: list[Span]
    regions: list[str] = field(default_factory=list)

    @property
    def owner(self) -> Person:
        return self.people[0]

    def spans_of(self, kind: str) -> list[Span]:
        return [s for s in self.spans if s.kind == kind]


class _Builder:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.pos = 0
        self.spans: list[Span] = []

    def add(self, text: str, kind: str = "", who: int = -1, digits: str = "") -> None:
        if kind:
            self.spans.append(Span(kind, self.pos, self.pos + len(text), who, digits))
        elif text:
            for m in re.finditer(r"\w+", text):  # the words of the resume itself
                self.spans.append(Span("word", self.pos + m.start(), self.pos + m.end()))
        self.pieces.append(text)
        self.pos += len(text)

    @contextmanager
    def span(self, kind: str, who: int = -1) -> Iterator[None]:
        start = self.pos
        yield
        self.spans.append(Span(kind, start, self.pos, who))

    def part(self, text: str, who: int) -> None:
        self.add(text, "name_part", who)

    def plain(self, text: str) -> None:
        """Text inside a planted item (a link's host): neither a name nor a resume word."""
        self.pieces.append(text)
        self.pos += len(text)

    def text(self) -> str:
        return "".join(self.pieces)


# ----------------------------------------------------------------------------- people
def _pick(r: random.Random, names: list, rare: float = 0.15) -> str:  # type: ignore[type-arg]
    ok = [n for n in names if n.text not in JUNK and re.search("[aeiouyAEIOUY]", n.text)]
    top = [n for n in ok if n.rank <= 2500] or ok
    pool = ok if r.random() < rare else top[: max(40, len(top) // 2)]
    return str(r.choice(pool).text)


SHAPES = [
    ("plain", 30),
    ("middle", 10),
    ("particle", 10),
    ("initials_after", 8),
    ("initial_before", 5),
    ("hyphen_first", 5),
    ("hyphen_last", 5),
    ("two_surnames", 6),
    ("unlisted", 8),
    ("upper", 8),
]


def make_person(r: random.Random, country: CountryNames, shape: str | None = None) -> Person:
    if shape is None:
        shape = r.choices([s for s, _ in SHAPES], weights=[w for _, w in SHAPES])[0]
        if shape == "particle" and country.region not in PARTICLES:
            shape = "plain"
    first, last = [_pick(r, country.first)], [_pick(r, country.last)]
    initials = ""
    if shape == "middle":
        first.append(_pick(r, country.first))
    elif shape == "particle":
        particle = r.choice(PARTICLES[country.region])
        last = [particle + last[0]] if particle.endswith("-") else [particle, last[0]]
    elif shape == "initials_after":  # `Karthik GV`, `Govardhana K`
        initials = "".join(r.choice("ABCDGKMNPRSTV") for _ in range(r.randint(1, 2)))
        last = []
    elif shape == "initial_before":  # `K. Govardhana Rao`
        first = [r.choice("ABCDGKMNPRSTV") + ".", *first]
    elif shape == "hyphen_first":
        first = [f"{first[0]}-{_pick(r, country.first)}"]
    elif shape == "hyphen_last":
        last = [f"{last[0]}-{_pick(r, country.last)}"]
    elif shape == "two_surnames":
        last.append(_pick(r, country.last))
    elif shape == "unlisted":  # two names of the country made one, as `Saikiran`, `Oluwaseun`
        a, b = _pick(r, country.first), _pick(r, country.first + country.last)
        first = [a + b.lower()]
    person = Person(first, last, initials, country.country, country.region, shape)
    return person


# ----------------------------------------------------------------------------- phones
def make_phone(r: random.Random, region: str) -> tuple[str, str]:
    """A valid phone of the region as a resume writes it, and its digits that must go."""
    for _ in range(50):
        kind = r.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        national = str(example.national_number)
        tail = r.randint(2, min(4, len(national) - 2))
        digits = "".join(str(r.randint(0, 9)) for _ in range(tail))
        number = phonenumbers.parse(f"+{example.country_code}{national[:-tail]}{digits}")
        if not phonenumbers.is_valid_number(number):
            continue
        national_digits = str(number.national_number)
        styles = ["intl", "intl", "e164", "intl_dash"]
        if region in NATIONAL_REGIONS:
            styles += ["national", "national", "dots"]
        if region in ("US", "CA"):
            styles += ["faker_001", "dashes"]
        style = r.choice(styles)
        if style == "intl":
            text = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        elif style == "intl_dash":
            text = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
            text = re.sub(r"(?<=\d) (?=\d)", "-", text)
        elif style == "e164":
            text = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        elif style == "faker_001":  # `001-687-638-2142`
            d = national_digits
            text = f"001-{d[:3]}-{d[3:6]}-{d[6:]}"
        elif style == "dashes":
            d = national_digits
            text = f"{d[:3]}-{d[3:6]}-{d[6:]}"
        else:
            text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            if style == "dots":
                text = ".".join(re.findall(r"\d+", text))
        gone = national_digits
        if r.random() < 0.25:  # an extension
            ext = "".join(str(r.randint(0, 9)) for _ in range(r.choice([2, 3, 4, 5])))
            text += r.choice([f"x{ext}", f" x{ext}", f" ext. {ext}", f" ext {ext}", f" #{ext}"])
            gone += ext
        return text, gone
    raise RuntimeError(f"no valid phone for {region}")


_NOT_PHONES: list[str] = []


def make_not_phone(r: random.Random) -> str:
    """Ten digits grouped like a US phone that no region calls valid (an exchange of 0 or 1)."""
    if not _NOT_PHONES:  # few such numbers exist among the national formats: find 64 once
        seeded = random.Random(1994)
        _NOT_PHONES.extend(_find_not_phone(seeded) for _ in range(64))
    return r.choice(_NOT_PHONES)


def _find_not_phone(r: random.Random) -> str:
    while True:
        text = f"{r.randint(201, 989)} {r.randint(0, 1)}{r.randint(10, 99)} {r.randint(1000, 9999)}"
        valid = False
        for region in NATIONAL_REGIONS:
            with suppress(phonenumbers.NumberParseException):
                valid = valid or phonenumbers.is_valid_number(phonenumbers.parse(text, region))
        if not valid:
            return text


# ----------------------------------------------------------------------------- the resume
TITLES = [
    "Senior Software Engineer",
    "Data Analyst",
    "Full Stack Developer",
    "DevOps Engineer",
    "Project Manager",
    "Business Analyst",
    "Machine Learning Engineer",
    "Quality Assurance Lead",
    "Network Administrator",
    "Accountant",
    "Mechanical Engineer",
    "Customer Success Manager",
    "Site Reliability Engineer",
    "Android Developer",
    "SAP FICO Consultant",
]
COMPANIES = [
    "Goldman Sachs",
    "Johnson & Johnson",
    "Morgan Stanley",
    "Procter & Gamble",
    "Ernst & Young",
    "McKinsey & Company",
    "Wells Fargo",
    "Lockheed Martin",
    "Hewlett Packard Enterprise",
    "Tata Consultancy Services",
    "Infosys",
    "Wipro",
    "Accenture",
    "Deloitte",
    "Siemens",
    "Bosch",
    "Safaricom",
    "MTN Group",
    "Dangote Group",
    "Mercado Libre",
    "Banco Santander",
    "Grupo Bimbo",
    "Yandex",
    "Allegro",
    "Turkcell",
    "Saudi Aramco",
    "Careem",
    "Grab",
    "Tokopedia",
    "Rakuten",
    "Alibaba Group",
    "Samsung Electronics",
    "Dell Technologies",
    "Ford Motor Company",
    "Philips",
    "Jumia",
    "Andela",
    "Flipkart",
]
UNIVERSITIES = [
    "Anna University",
    "University of Lagos",
    "University of Nairobi",
    "Cairo University",
    "Universidade de São Paulo",
    "Universidad Nacional Autónoma de México",
    "Tsinghua University",
    "Seoul National University",
    "University of Tehran",
    "Middle East Technical University",
    "Warsaw University of Technology",
    "Technische Universität München",
    "Politecnico di Milano",
    "University of the Philippines",
    "Universitas Indonesia",
    "University of Cape Town",
    "Moscow State University",
    "Georgia Institute of Technology",
    "University of Toronto",
    "Delft University of Technology",
]
CITIES = [
    "Bengaluru, Karnataka",
    "Hyderabad, Telangana",
    "Lagos",
    "Nairobi",
    "Cairo",
    "São Paulo",
    "Mexico City",
    "Shanghai",
    "Seoul",
    "Istanbul",
    "Warsaw",
    "Berlin",
    "Dubai",
    "Jakarta",
    "Manila",
    "Toronto",
    "Austin, TX",
    "London",
    "Riyadh",
    "Tehran",
]
TOOLS = [
    "Python 3.11",
    "Java 17",
    "Jenkins",
    "Kubernetes v1.27",
    "Docker",
    "Terraform 1.5",
    "AWS",
    "Azure DevOps",
    "SQL Server 2019",
    "PostgreSQL 15",
    "Spark 3.4",
    "Tableau",
    "Power BI",
    "SAP S/4HANA",
    "Django 4.2",
    "React 18",
    "Node.js 20",
    "Ansible",
    "Jira",
    "Selenium",
    "TensorFlow 2.13",
    "Excel",
    "AutoCAD 2022",
    "Salesforce",
]
DEGREES = [
    "B.Tech, Computer Science",
    "B.E., Electronics and Communication",
    "MBA, Finance",
    "M.Sc., Data Science",
    "B.Com",
    "BSc Mechanical Engineering",
    "Master of Computer Applications",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
BULLETS = [
    "Reduced deployment time by {pct} by moving {tool} builds to containers",
    "Processed {not_phone} transactions in {year} with zero data loss",
    "Managed a budget of {money} across {n} vendors",
    "Led a team of {n} engineers delivering releases every {n} weeks",
    "Migrated {n} services from {tool} to {tool2}, saving {money} a year",
    "Improved test coverage from {pct} to {pct2} with {tool}",
    "Built dashboards in {tool} used by {n},000+ users",
    "Cut month-end close from {n} days to {n2} days",
    "Automated reconciliation of {n},{n2}00 invoices per month",
    "Raised NPS by {n} points and retention by {pct}",
    "Handled escalations for clients including {company}",
    "Upgraded the platform to {tool} and {tool2}",
    "Served {not_phone} API calls per day at 99.95% uptime",
]


def _date(r: random.Random, year: int) -> str:
    return f"{r.choice(MONTHS)} {year}"


def _fill(r: random.Random, template: str, keep: _Builder) -> None:
    """Write a bullet; numbers that look like phones but are not are `keep` spans."""
    values = {
        "pct": f"{r.randint(5, 60)}%",
        "pct2": f"{r.randint(61, 98)}%",
        "tool": r.choice(TOOLS),
        "tool2": r.choice(TOOLS),
        "money": r.choice([f"${r.randint(1, 9)}.{r.randint(1, 9)}M", f"₹{r.randint(2, 90)} lakh"])
        if r.random() < 0.5
        else f"USD {r.randint(10, 950)}K",
        "n": str(r.randint(2, 40)),
        "n2": str(r.randint(2, 9)),
        "year": str(r.randint(2012, 2024)),
        "company": r.choice(COMPANIES),
    }
    for chunk in re.split(r"(\{not_phone\})", template):
        if chunk == "{not_phone}":
            keep.add(make_not_phone(r), "keep")
        else:
            keep.add(chunk.format(**values))


def _name_in_text(b: _Builder, p: Person, who: int, form: str = "natural") -> None:
    """A name written in running text: the whole mention is a `name` span, each word a part."""
    with b.span("name", who):
        words: list[str]
        if form == "last_first" and p.last:
            words = [" ".join(p.last) + ",", *p.first]
        else:
            words = [*p.first, *p.last] + ([p.initials] if p.initials else [])
        upper = form == "upper" or (form == "natural" and p.shape == "upper" and who == 0)
        for i, word in enumerate(words):
            if i:
                b.plain(" " if not word.endswith("-") else "")
            text = word.upper() if upper else word
            for j, bit in enumerate(re.split(r"(-)", text)):
                if bit == "-" or not bit or bit.rstrip(",").endswith("."):
                    b.plain(bit)
                else:
                    b.part(bit.rstrip(","), who)
                    b.plain("," if bit.endswith(",") else "")
                del j


def _slug(b: _Builder, p: Person, who: int, shape: str, r: random.Random) -> None:
    """The name as a link slug, handle, e-mail local part or file name spells it."""
    first, last = p.slug_words()
    caps = shape == "Title"
    f = first.capitalize() if caps else first
    la = last.capitalize() if caps else last
    if p.initials and not p.last:
        la = p.initials if caps else p.initials.lower()
    choice = r.choice(["sep", "sep", "joined", "initial", "last_first", "digits"])
    sep = r.choice(["-", ".", "_"]) if shape != "Title" else "-"
    if choice == "sep" or caps:
        b.part(f, who)
        b.plain(sep)
        b.part(la, who)
    elif choice == "joined":
        b.part(f, who)
        b.part(la, who)
    elif choice == "initial":
        b.plain(f[0])
        b.part(la, who)
    elif choice == "last_first":
        b.part(la, who)
        b.plain(sep)
        b.part(f, who)
    else:
        b.part(f, who)
        b.plain(sep)
        b.part(la, who)
        b.plain(str(r.randint(1, 99)))


def _email(b: _Builder, p: Person, who: int, r: random.Random) -> None:
    with b.span("email", who):
        _slug(b, p, who, "lower", r)
        b.plain(
            "@"
            + r.choice(
                ["gmail.com", "yahoo.co.in", "outlook.com", "hotmail.com", "proton.me", "mail.ru"]
            )
        )


def _link(b: _Builder, p: Person, who: int, r: random.Random, site: str) -> None:
    with b.span("url", who):
        if site == "indeed":
            b.plain(r.choice(["", "https://www."]) + "indeed.com/r/")
            _slug(b, p, who, "Title", r)
            b.plain("/" + "".join(r.choice("0123456789abcdef") for _ in range(16)))
        elif site == "linkedin":
            b.plain(r.choice(["", "https://", "https://www.", "www."]) + "linkedin.com/in/")
            first, last = p.slug_words()
            b.part(first, who)
            b.plain("-")
            b.part(last, who)
            if r.random() < 0.6:
                b.plain(f"-{r.randint(10**7, 10**9)}")
        elif site == "github":
            b.plain(r.choice(["", "https://"]) + r.choice(["github.com/", "gitlab.com/"]))
            _slug(b, p, who, "lower", r)
        elif site == "portfolio":
            b.plain("https://")
            _slug(b, p, who, "lower", r)
            b.plain(r.choice([".dev", ".com", ".github.io", ".me"]))
        else:  # medium / kaggle / twitter
            b.plain(r.choice(["medium.com/@", "kaggle.com/", "twitter.com/", "x.com/"]))
            _slug(b, p, who, "lower", r)


def _phone(b: _Builder, r: random.Random, region: str, who: int) -> None:
    text, gone = make_phone(r, region)
    b.add(text, "phone", who, gone)


def _resume(r: random.Random, people: list[Person], region: str) -> _Builder:
    b = _Builder()
    owner = people[0]
    indeed = r.random() < 0.3
    _name_in_text(b, owner, 0)
    b.add("\n")
    title = r.choice(TITLES)
    if indeed:  # the Indeed export: title, then place and the profile link
        b.add(f"{title} - {r.choice(COMPANIES)}\n\n{r.choice(CITIES)} - Email me on Indeed: ")
        _link(b, owner, 0, r, "indeed")
        b.add("\n\n")
    else:
        b.add(f"{title} | {r.choice(CITIES)}\n")
    contact = r.choice(["line", "lines", "labelled"])
    if contact == "line":
        _email(b, owner, 0, r)
        b.add(r.choice([" | ", " • ", " · ", "  "]))
        _phone(b, r, region, 0)
        b.add(" | ")
        _link(b, owner, 0, r, "linkedin")
        b.add("\n")
    elif contact == "lines":  # each alone on its line
        _phone(b, r, region, 0)
        b.add("\n")
        _email(b, owner, 0, r)
        b.add("\n")
        _link(b, owner, 0, r, r.choice(["linkedin", "github"]))
        b.add("\n")
    else:
        b.add(r.choice(["Mobile: ", "Phone: ", "Tel: ", "Cell: "]))
        _phone(b, r, region, 0)
        b.add("\nE-mail: ")
        _email(b, owner, 0, r)
        b.add("\nLinkedIn: ")
        _link(b, owner, 0, r, "linkedin")
        b.add("\n")
    if r.random() < 0.5:
        b.add("GitHub: ")
        _link(b, owner, 0, r, "github")
        b.add(r.choice(["\n", " | Portfolio: "]))
        if b.pieces[-1] != "\n":
            _link(b, owner, 0, r, r.choice(["portfolio", "other"]))
            b.add("\n")
    if r.random() < 0.2:  # a second phone alone on a line
        _phone(b, r, region, 0)
        b.add("\n")
    years = r.randint(3, 15)
    b.add(
        f"\n{r.choice(['SUMMARY', 'Summary', 'Professional Summary', 'PROFILE'])}\n"
        f"{title} with {years}+ years of experience in {r.choice(TOOLS)}, {r.choice(TOOLS)} "
        f"and {r.choice(TOOLS)}. Delivered projects for {r.choice(COMPANIES)} and "
        f"{r.choice(COMPANIES)} with budgets up to ${r.randint(1, 20)}M.\n"
    )
    b.add(f"\n{r.choice(['EXPERIENCE', 'Experience', 'Work Experience', 'WORK HISTORY'])}\n")
    year = 2024
    for job in range(r.randint(2, 3)):
        start = year - r.randint(1, 4)
        end = "Present" if job == 0 else _date(r, year)
        b.add(
            f"{r.choice(TITLES)}, {r.choice(COMPANIES)}, {r.choice(CITIES)}"
            f"{r.choice([' — ', ' | ', ' - '])}{_date(r, start)} – {end}\n"
        )
        for template in r.sample(BULLETS, r.randint(2, 4)):
            b.add(r.choice(["• ", "- ", "* "]))
            _fill(r, template, b)
            b.add("\n")
        year = start
    b.add(f"\n{r.choice(['EDUCATION', 'Education'])}\n")
    grade = r.choice(
        ["", f" — CGPA {r.randint(60, 95) / 10}/10", f" — GPA 3.{r.randint(0, 9)}/4.0"]
    )
    b.add(f"{r.choice(DEGREES)}, {r.choice(UNIVERSITIES)} ({year - 4}–{year}){grade}\n")
    b.add(f"\n{r.choice(['SKILLS', 'Skills', 'Technical Skills'])}\n")
    b.add(", ".join(r.sample(TOOLS, 6)) + "\n")
    if r.random() < 0.5:
        b.add(
            f"\nCERTIFICATIONS\nAWS Certified Solutions Architect – Associate "
            f"(Credential ID {r.randint(10**7, 10**10)}), {r.randint(2016, 2024)}\n"
        )
    if len(people) > 1:
        b.add(f"\n{r.choice(['REFERENCES', 'References'])}\n")
        for who, other in enumerate(people[1:], 1):
            if r.random() < 0.3:
                b.add("Dr. ")
            _name_in_text(b, other, who, r.choice(["natural", "natural", "last_first"]))
            b.add(f", {r.choice(TITLES)} at {r.choice(COMPANIES)}")
            if r.random() < 0.6:
                b.add(" — ")
                _email(b, other, who, r)
            if r.random() < 0.5:
                b.add(" — ")
                _phone(b, r, region, who)
            b.add("\n")
    if r.random() < 0.3:  # the declaration and signature of Indian resumes
        b.add(
            "\nDECLARATION\nI hereby declare that the above information is true to the best of "
            f"my knowledge.\nPlace: {r.choice(CITIES)}    Date: {r.randint(1, 28):02d}/"
            f"{r.randint(1, 12):02d}/{r.randint(2015, 2024)}\n("
        )
        _name_in_text(b, owner, 0, "upper")
        b.add(")\n")
    if r.random() < 0.4:  # the file name the resume came in
        b.add(r.choice(["\nAttachment: ", "\nFile: ", "\nDownload: "]))
        with b.span("url", 0):
            b.plain(r.choice(["Resume_", "CV_", ""]))
            _slug(b, owner, 0, r.choice(["Title", "lower"]), r)
            b.plain(r.choice(["_Resume", "-cv", ""]) + r.choice([".pdf", ".docx"]))
        b.add("\n")
    return b


def _collides(doc: _Builder, people: list[Person]) -> bool:
    """True when a part of someone's name occurs outside that person's planted name parts."""
    text = doc.text()
    for who, person in enumerate(people):
        masked = list(text)
        for span in doc.spans:
            if span.kind == "name_part" and span.who == who:
                masked[span.start : span.end] = "\0" * (span.end - span.start)
        rest = fold("".join(masked))
        if any(part in rest for part in person.scored_parts()):
            return True
    return False


def make_resume(r: random.Random, countries: list[CountryNames]) -> ResumeDoc:
    while True:
        country = r.choice(countries)
        region = country.country if r.random() < 0.8 else r.choice(["US", "GB", "IN", "AE"])
        people = [make_person(r, country)]
        for _ in range(r.choice([0, 1, 2, 2])):
            people.append(
                make_person(r, r.choice(countries), r.choice(["plain", "plain", "middle"]))
            )
        if any(not p.scored_parts() for p in people):
            continue
        state = r.getstate()
        built = _resume(r, people, region)
        if _collides(built, people):
            r.setstate(state)
            r.random()
            continue
        faker = _faker_names()
        for p in people:
            p.in_faker = all(part in faker for part in p.scored_parts())
        return ResumeDoc(built.text(), people, built.spans, [region])


_FAKER: set[str] = set()


def _faker_names() -> set[str]:
    if not _FAKER:
        from benchmarks.world_names import faker_names

        _FAKER.update(fold(n) for n in faker_names())
    return _FAKER


def resume_corpus(n: int, seed: int = 7) -> list[ResumeDoc]:
    r = random.Random(seed)
    countries = world_names()
    return [make_resume(r, countries) for _ in range(n)]


if __name__ == "__main__":
    import sys

    for doc in resume_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 2, seed=3):
        print(doc.text)
        print(
            "owner:", doc.owner.full(), doc.owner.shape, doc.owner.country, doc.owner.scored_parts()
        )
        print("=" * 80)
