"""The structure of a whole resume's text: its sections and the bullets of each.

A resume read from a document (PDF, DOCX, text) is lines in reading order. A line is a section
heading when, once its case, punctuation, a trailing colon and letter spacing (`E X P E R I E N
C E`) are set aside, it is one of the headings resumes use (`Work Experience`, `EDUCATION &
TRAINING`, `Core Competencies:`), or ends with one in a short line (`Relevant Experience`).
What comes before the first heading is the header: the name line, a headline, contacts.

Inside a section, a line that starts with a bullet mark starts a bullet; the lines after it that
continue its sentence (a PDF wraps long bullets) are joined to it: a line that starts in lower
case, or follows a line ending in a comma, a hyphen or a small word. A section of achievements
that marks none of its lines yields the sentences `split_bullets` finds in it.
"""

from __future__ import annotations

import re

import msgspec

from processors.formatters.bullets import BULLET_GLYPHS, clean_bullet, split_bullets

# Normalised heading -> section kind.
HEADINGS: dict[str, str] = {}
_KIND_HEADINGS = {
    "summary": [
        "summary",
        "professional summary",
        "executive summary",
        "career summary",
        "summary of qualifications",
        "profile",
        "professional profile",
        "personal profile",
        "career profile",
        "about me",
        "about",
        "objective",
        "career objective",
        "professional objective",
        "overview",
    ],
    "experience": [
        "experience",
        "work experience",
        "professional experience",
        "employment",
        "employment history",
        "work history",
        "career history",
        "professional background",
        "relevant experience",
        "experience highlights",
    ],
    "education": [
        "education",
        "education and training",
        "academic background",
        "academic qualifications",
        "educational background",
        "education details",
        "qualifications",
    ],
    "skills": [
        "skills",
        "technical skills",
        "key skills",
        "core competencies",
        "competencies",
        "skills and abilities",
        "skill set",
        "areas of expertise",
        "expertise",
        "technologies",
        "tools and technologies",
    ],
    "projects": ["projects", "personal projects", "selected projects", "key projects"],
    "achievements": ["achievements", "accomplishments", "key achievements", "awards", "honors"],
    "certifications": ["certifications", "certificates", "licenses and certifications"],
    "languages": ["languages"],
    "publications": ["publications"],
    "volunteer": ["volunteer experience", "volunteering", "volunteer work"],
    "interests": ["interests", "hobbies", "hobbies and interests"],
    "references": ["references"],
    "contact": ["contact", "contact information", "contact details", "personal details"],
}
for _kind, _headings in _KIND_HEADINGS.items():
    for _heading in _headings:
        HEADINGS[_heading] = _kind
# The last word of a short heading that names its kind (`Relevant Experience`, `Selected
# Projects`): more specific headings than the list above still find their section.
_HEADING_ENDS = {
    "experience": "experience",
    "summary": "summary",
    "education": "education",
    "skills": "skills",
    "projects": "projects",
    "certifications": "certifications",
    "achievements": "achievements",
}
# Sections whose items are achievements: their bullets become pairs for the rewrite stage.
ACHIEVEMENT_KINDS = frozenset({"experience", "projects", "achievements", "volunteer"})

_MARK = re.compile(
    rf"^\s*(?:[{re.escape(BULLET_GLYPHS)}\-*–—·o](?=\s)|[{re.escape(BULLET_GLYPHS)}])"
)
_NOT_LETTER = re.compile(r"[^a-z ]+")
_SPACED = re.compile(r"^(?:[A-Za-z] ){3,}[A-Za-z]$")
# A wrapped line continues the one before it when that one ends like this.
_OPEN_END = re.compile(r"(?:[,;/&(\-–]|\b(?:and|or|of|to|the|a|an|for|with|in|on|by|at|from))$")
_FIGURE_START = re.compile(r"^(?!(?:19|20)\d\d\b)\d[\d.,]*(?:%|\s+[a-z%]|$)")
_NAME_WORD = re.compile(r"^(?:[A-Z][a-zà-ÿ'’\-]+|[A-Z]\.|[A-Z][A-Z'’\-]+)$")
_ROLE_WORDS = re.compile(
    r"\b(?:engineer|developer|manager|analyst|designer|scientist|consultant|specialist|director"
    r"|lead|architect|administrator|nurse|teacher|accountant|coordinator|assistant|officer"
    r"|intern|representative|technician|writer|editor|recruiter|marketer|programmer|owner"
    r"|executive|associate|advisor|strategist|researcher)s?\b",
    re.IGNORECASE,
)


class Section(msgspec.Struct, frozen=True):
    """One section of a resume: its kind (`experience`, `header`, ...), heading as written,
    its text (lines kept) and the bullets found in it."""

    kind: str
    heading: str
    text: str
    bullets: list[str]


def heading_kind(line: str) -> str | None:
    """The kind of section a line heads, or None when it is no heading."""
    line = line.strip()
    if not line or len(line) > 48:
        return None
    if _SPACED.match(line):  # `E X P E R I E N C E`
        line = line.replace(" ", "")
    key = " ".join(_NOT_LETTER.sub(" ", line.lower().replace("&", " and ")).split())
    if not key:
        return None
    if key in HEADINGS:
        return HEADINGS[key]
    words = key.split()
    titled = line.rstrip(":").istitle() or line.isupper() or line.endswith(":")
    if len(words) <= 3 and titled and words[-1] in _HEADING_ENDS:
        return _HEADING_ENDS[words[-1]]
    return None


def resume_sections(text: str) -> list[Section]:
    """The sections of a resume in order; the lines before the first heading are `header`."""
    parts: list[tuple[str, str, list[str]]] = [("header", "", [])]
    for raw in text.split("\n"):
        line = raw.strip()
        kind = heading_kind(line)
        if kind is not None:
            parts.append((kind, line.rstrip(":").strip(), []))
        elif line:
            parts[-1][2].append(line)
    sections: list[Section] = []
    for kind, heading, lines in parts:
        if not lines and kind == "header":
            continue
        bullets = _bullets(lines)
        if not bullets and kind in ACHIEVEMENT_KINDS:
            bullets = split_bullets("\n".join(lines))
        sections.append(Section(kind, heading, "\n".join(lines), bullets))
    return sections


def _bullets(lines: list[str]) -> list[str]:
    """The marked items of a section, each with the wrapped lines that continue it."""
    items: list[str] = []
    current: str | None = None
    for line in lines:
        if _MARK.match(line):
            if current is not None:
                items.append(current)
            current = clean_bullet(line)
        elif current is not None and _continues(current, line):
            current = f"{current} {line}"
        else:
            if current is not None:
                items.append(current)
            current = None
    if current is not None:
        items.append(current)
    return [item for item in items if item]


def _continues(bullet: str, line: str) -> bool:
    """Whether a line is the wrapped end of the bullet before it rather than a line of its own:
    it starts in lower case, the bullet ends open (a comma, `and`), or it is a short run
    starting with a figure that is no year (`1% across teams`; `2016 - 2020` is a new line)."""
    if line[:1].islower() or _OPEN_END.search(bullet):
        return True
    return bool(_FIGURE_START.match(line)) and len(line.split()) <= 6


def header_name(sections: list[Section]) -> str:
    """The name line of the header (two to four capitalised words), or "" when there is none."""
    header = next((s for s in sections if s.kind == "header"), None)
    if header is None:
        return ""
    first = header.text.split("\n", 1)[0].split("|")[0].split(",")[0].strip()
    words = first.split()
    if 2 <= len(words) <= 4 and all(_NAME_WORD.match(w) for w in words):
        return first
    return ""


def header_headline(sections: list[Section]) -> str:
    """The job title the header gives under the name (`Senior Data Engineer`), or ""."""
    header = next((s for s in sections if s.kind == "header"), None)
    if header is None:
        return ""
    for line in header.text.split("\n")[:4]:
        for part in line.split("|"):
            part = part.strip()
            if (
                _ROLE_WORDS.search(part)
                and len(part.split()) <= 6
                and not any(ch.isdigit() or ch == "@" for ch in part)
            ):
                return part
    return ""
