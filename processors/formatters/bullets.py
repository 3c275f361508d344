"""Turning free resume text (plain or HTML) into clean bullet candidates.

Real resume dumps are messy: the Kaggle sets join items with runs of spaces instead of line
breaks, carry bullet glyphs that went through a wrong codec (`â€¢`, `â¢`, `ï‚§`), placeholders
(`Company Name`, `City , State`) and skill tables. `split_bullets` cuts a resume into pieces at
line breaks, bullet glyphs and wide gaps, skips sections that hold no achievements (skills,
education...), and keeps the pieces that read like a bullet: enough words, mostly letters, not a
heading, a date range or a `label - value` line.

Splitting never glues words: every cut point becomes a piece boundary and the pieces are only
ever stripped, never joined to one another.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

from processors.formatters.fields import get_field

# Bullet glyphs as they appear once decoded correctly (private-use ones come from Symbol and
# Wingdings fonts in Word exports).
BULLET_GLYPHS = "•●▪■□◦○◆◇►▸‣⁃➢➤➔✓✔✗❖∙⦁\uf0b7\uf0a7\uf0d8\uf076\uf0fc\uf0a8"
# The same glyphs after a UTF-8 -> cp1252 round trip. They are replaced before any other fixing:
# `â¢` (the `•` with its middle byte lost) is misread by a generic fixer as a Braille letter.
MOJIBAKE_BULLETS = (
    "â€¢",
    "â¢",
    "ï‚§",
    "ï‚·",
    "ï‚Ø",
    "ïƒ˜",
    "ïƒ¼",
    "â–ª",
    "â–º",
    "â—",
    "âž¢",
    "âœ“",
    "âœ”",
)
# Left-overs that survive a generic fixer because a byte of the sequence was dropped.
MOJIBAKE_REST = {
    "ï¼": " - ",  # fullwidth hyphen (U+FF0D) with its last byte lost
    "Â ": " ",
    "Â·": " • ",
}
# Characters that mojibake is made of (Latin-1 and cp1252 letters and punctuation): text
# without any of them has no codec damage to repair.
_MOJIBAKE_PRONE = re.compile(
    "[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    "\u02c6\u02dc\u2013-\u203a\u20ac\u2122\ufffd]"
)
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# Exotic spaces become plain ones one for one: runs of spaces are item separators (see below).
_ODD_SPACE = re.compile(r"[\t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_GLYPH_CLASS = re.escape(BULLET_GLYPHS)
_GLYPH = re.compile(f"[{_GLYPH_CLASS}]")
# A star or dash used as a bullet: at a line start, or between spaces inside a line.
_INLINE_STAR = re.compile(r"(?:(?<=\s)|^)\*(?=\s)")
_LEADING_MARK = re.compile(
    rf"^(?:[{_GLYPH_CLASS}*>·\-–—o]\s+|[{_GLYPH_CLASS}]|\(?\d{{1,2}}[.)]\s+|[a-z][.)]\s+)"
)
# How the scraped sets separate items: three or more spaces, or two before a capital, a digit
# or a bullet (two spaces also follow a full stop inside an item).
_WIDE_GAP = re.compile(rf"\s{{3,}}|\s{{2}}(?=[A-Z0-9{_GLYPH_CLASS}(])")
_SENTENCE = re.compile(r"(?<=[a-z0-9)%][.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[^\W\d_][\w'’&+#./-]*", re.UNICODE)

MIN_WORDS = 4
MAX_WORDS = 60
MAX_CHARS = 500

# Headings of sections that list skills or facts rather than achievements, matched on the
# whole piece (case-insensitive, trailing colon ignored).
SKIP_SECTIONS = frozenset(
    {
        "skills",
        "skill details",
        "skill set",
        "skillset",
        "key skills",
        "technical skills",
        "technical skill",
        "core competencies",
        "competencies",
        "highlights",
        "education",
        "education details",
        "educational details",
        "educational qualification",
        "academic details",
        "academic qualification",
        "qualifications",
        "certifications",
        "certification",
        "languages",
        "language",
        "interests",
        "hobbies",
        "personal details",
        "personal information",
        "personal profile",
        "contact",
        "contact information",
        "references",
        "declaration",
        "software",
        "tools",
        # a summary or objective is prose about the person, not an achievement bullet
        "summary",
        "professional summary",
        "executive summary",
        "career objective",
        "objective",
        "profile",
        "professional profile",
        "about me",
    }
)
KEEP_SECTIONS = frozenset(
    {
        "experience",
        "work experience",
        "professional experience",
        "work history",
        "employment history",
        "company details",
        "projects",
        "project details",
        "accomplishments",
        "achievements",
        "achievements/tasks",
        "responsibilities",
        "roles and responsibilities",
        "roles & responsibilities",
        "additional information",
        "volunteer experience",
    }
)
_NOT_DATES = frozenset(
    [
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "to",
        "till",
        "present",
        "current",
        "now",
        "date",
        "year",
        "years",
        "month",
        "months",
    ]
)
# `label - value` lines of the Kaggle sets (`company - Matelabs`, `Python- Exprience - 6 months`).
_LABEL_LINE = re.compile(
    r"^(?:company|description|project|project name|duration|location|team size|environment|"
    r"client|role|designation|tools?|technolog(?:y|ies)|platform|date|period|position|title|"
    r"organization|organisation|employer|address|email|phone|mobile|dob|date of birth|"
    r"nationality|gender|marital status)\s*[-:–]",
    re.IGNORECASE,
)
_SKILL_DETAIL = re.compile(r"\bExp(?:e|)rience\s*-\s*(?:Less than|\d)", re.IGNORECASE)
# `description - Managed a team...`: a label in front of an achievement (a past-tense verb).
_LABELLED_ACHIEVEMENT = re.compile(r"^description\s*[-:–]\s*(?=[A-Z][a-z]+ed\b)", re.IGNORECASE)
# Section headings of the Kaggle sets that the scrape glued to the text before them
# (`24 monthsCompany Details`).
_GLUED_HEADING = re.compile(r"(?<=\S)(?=(?:Education Details|Skill Details|Company Details)\b)")
# Title-case lines (`Hilton Worldwide General Manager Training Program`) are titles, not bullets.
_SMALL_WORDS = frozenset(
    ["a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with", "&", "-"]
)
PLACEHOLDERS = ("Company Name", "City , State", "City, State", "Job Title")


def _load_fixer() -> Callable[[str], str]:
    """The processors stage's ftfy repair (`processors.validate.EncodingRepair`), so a bullet is
    repaired the same way as the lines the validator checks; plain ftfy if it is missing."""
    try:
        from processors.config import ValidateConfig
        from processors.validate import EncodingRepair

        return EncodingRepair(ValidateConfig(fix_encoding=True)).fix_text
    except ImportError:  # pragma: no cover - the validator always ships with the formatters
        import ftfy

        def fix(text: str) -> str:
            return str(ftfy.fix_text(text, normalization="NFC"))

        return fix


_fix_text = _load_fixer()


def first_field(payload: Any, spec: str) -> Any:
    """The first present value of `a|b|c` alternatives (each a case-insensitive dotted path)."""
    for path in spec.split("|"):
        path = path.strip()
        if not path:
            continue
        value = get_field(payload, path)
        if value is not None and value != "" and value != []:
            return value
    return None


def first_text(payload: Any, spec: str) -> str:
    value = first_field(payload, spec)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def normalize_text(text: str) -> str:
    """Repair codec damage and unify line breaks and spaces; bullets become line starts."""
    for sequence in MOJIBAKE_BULLETS:
        if sequence in text:
            text = text.replace(sequence, "\n• ")
    if _MOJIBAKE_PRONE.search(text):  # ftfy is the slow part: only where it can help
        text = _fix_text(text)
    for sequence, replacement in MOJIBAKE_REST.items():
        if sequence in text:
            text = text.replace(sequence, replacement)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = _ZERO_WIDTH.sub("", text)
    return _ODD_SPACE.sub(" ", text)


def clean_bullet(text: str) -> str:
    """One bullet without its leading mark, with single spaces and no stray edges."""
    text = _ZERO_WIDTH.sub("", text)
    text = " ".join(text.split())
    previous = None
    while previous != text:
        previous = text
        text = _LEADING_MARK.sub("", text).strip()
    # A trailing comma stays: it marks a fragment (an address line), which is not a bullet.
    return text.strip(" \t-–—|;")


def is_bullet_like(text: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> bool:
    """Enough real words, mostly letters, and not a heading, a date line or a label line."""
    if not text or len(text) > MAX_CHARS or text.endswith((":", ",")):
        return False
    stripped = text
    for placeholder in PLACEHOLDERS:
        stripped = stripped.replace(placeholder, " ")
    words = [w for w in stripped.split() if any(ch.isalnum() for ch in w)]
    if not min_words <= len(words) <= max_words:
        return False
    if stripped.count(":") >= 2:  # `Languages: Java, SQL Frameworks: Spring`: a skills table
        return False
    letters = sum(ch.isalpha() for ch in stripped)
    visible = sum(not ch.isspace() for ch in stripped)
    if visible == 0 or letters / visible < 0.6:
        return False
    real = [w for w in _WORD.findall(stripped) if len(w) > 1 and w.casefold() not in _NOT_DATES]
    if len(real) < min(3, min_words):
        return False
    upper = sum(ch.isupper() for ch in stripped)
    if len(words) <= 8 and upper / letters > 0.8:  # an all-caps heading
        return False
    alpha = [w for w in words if w[:1].isalpha()]
    titled = all(w[:1].isupper() or w.casefold() in _SMALL_WORDS for w in alpha)
    if len(words) <= 8 and titled and not stripped.endswith((".", "!")):
        return False
    return not (_LABEL_LINE.match(stripped) or _SKILL_DETAIL.search(stripped))


def _pieces(text: str) -> Iterable[str]:
    """Raw pieces of normalised text: lines, bullets, wide gaps; long pieces by sentence."""
    text = _GLYPH.sub(lambda m: "\n• ", text)
    text = _INLINE_STAR.sub("\n*", text)
    text = _GLUED_HEADING.sub("\n", text)
    for line in text.split("\n"):
        for part in _WIDE_GAP.split(line):
            part = clean_bullet(_LABELLED_ACHIEVEMENT.sub("", part.strip()))
            if not part:
                continue
            if len(part.split()) > MAX_WORDS:
                yield from (clean_bullet(s) for s in _SENTENCE.split(part))
            else:
                yield part


_SKIP_HEADING = re.compile(
    r"^(?:(?:technical|key|core|professional|computer|it|soft|personal|additional)\s+)?"
    r"(?:skills?|education|certifications?|languages?|interests?|hobbies|qualifications?)"
    r"(?:\s+(?:and|&)\s+\w+)?(?:\s+(?:details|summary|set))?$"
)
_KEEP_WORDS = ("experience", "project", "responsibilit", "achievement", "accomplishment")


def _section(piece: str) -> bool | None:
    """True for a heading of a section to read, False for one to skip, None for no heading."""
    heading = " ".join(piece.rstrip(":").split()).casefold()
    if heading in SKIP_SECTIONS or _SKIP_HEADING.match(heading):
        return False
    if heading in KEEP_SECTIONS:
        return True
    short = len(heading.split()) <= 4 and not heading.endswith((".", "!", "?"))
    if short and any(word in heading for word in _KEEP_WORDS):
        return True
    return None


def split_bullets(text: str, *, min_words: int = MIN_WORDS) -> list[str]:
    """The bullet-like pieces of a whole resume, in order, without repeats."""
    keep = True
    seen: set[str] = set()
    bullets: list[str] = []
    for piece in _pieces(normalize_text(text)):
        section = _section(piece)
        if section is not None:
            keep = section
            continue
        if not keep or not is_bullet_like(piece, min_words=min_words):
            continue
        key = " ".join(piece.casefold().split())
        if key in seen:
            continue
        seen.add(key)
        bullets.append(piece)
    return bullets


# --- HTML -----------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})


# Inline tags that may sit inside a word (`<b>S</b>ales`); any other tag boundary separates words.
_WORD_INTERNAL_TAGS = frozenset(
    ["b", "i", "u", "em", "strong", "sup", "sub", "small", "big", "font", "mark", "s", "strike"]
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._boundary = False  # a tag between the last text and the next one separates words

    def _tag(self, tag: str, opening: bool) -> None:
        if tag in _SKIP_TAGS:
            self._skip = self._skip + 1 if opening else max(0, self._skip - 1)
        elif tag == "li" and opening:
            self.parts.append("\n• ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag not in _WORD_INTERNAL_TAGS:
            self._boundary = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, True)
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)

    def handle_endtag(self, tag: str) -> None:
        self._tag(tag, False)

    def handle_data(self, data: str) -> None:
        if self._skip or not data:
            return
        if self._boundary and self.parts:
            last = self.parts[-1]
            if last and not last[-1].isspace() and not data[0].isspace():
                self.parts.append(" ")
        self._boundary = False
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment: block elements become line breaks, `<li>` a bullet.

    Inline elements add nothing, so `<b>Led</b> a team` stays `Led a team` and
    `<li>Built</li><li>Ran</li>` becomes two lines, never `BuiltRan`.
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def humanize_label(label: str) -> str:
    """`INFORMATION-TECHNOLOGY` -> `Information Technology`; other labels are left alone."""
    label = " ".join(label.split())
    letters = [ch for ch in label if ch.isalpha()]
    if letters and all(ch.isupper() for ch in letters) and len(letters) > 3:
        return " ".join(part.capitalize() for part in re.split(r"[-_\s]+", label) if part)
    return label


_LIST_MARK = re.compile(rf"^\s*(?:[{_GLYPH_CLASS}]|[*\-–—]\s|\(?\d{{1,2}}[.)]\s)")


def list_items(text: str, *, min_words: int = MIN_WORDS) -> list[str]:
    """Only the lines written as list items (a bullet, dash, star or number in front)."""
    text = _GLYPH.sub(lambda m: "\n• ", normalize_text(text))
    seen: set[str] = set()
    items: list[str] = []
    for line in text.split("\n"):
        if not _LIST_MARK.match(line):
            continue
        item = clean_bullet(line)
        key = " ".join(item.casefold().split())
        if key in seen or not is_bullet_like(item, min_words=min_words):
            continue
        seen.add(key)
        items.append(item)
    return items


def looks_like_html(text: str) -> bool:
    return bool(re.search(r"</?(?:p|div|li|ul|ol|br|span|b|strong)\b[^>]*>", text, re.IGNORECASE))
