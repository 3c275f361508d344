"""Names in running text: look-ups in the name lexicon (`lexicon.py`), context cues (`Name:`,
`Contact`, `Supervisor:`, a signature, the name line at the top of a resume), and names known
from the source's metadata. Each name found is recorded as a person of the record, whose parts
`persons.py` then removes everywhere else.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from processors.anonymize.lexicon import NameLexicon
from processors.anonymize.spans import NAME, Context, Span

_DATA = Path(__file__).parent.parent / "data"
_split = str.split

_UPPER = "".join(
    chr(c)
    for c in (*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x370, 0x530))
    if chr(c).isupper()
)
_U = f"[{re.escape(_UPPER)}]"
_L = r"[^\W\d_]"
# Possessive (`*+`, `++`): what follows a word in every pattern here is never a letter, so a
# word that fails there would fail with fewer letters too; the engine is told not to retry.
_WORD = rf"{_U}{_L}*+(?:['’\-]{_L}++)*"
_INITIAL = rf"{_U}\."
_GAP = "[ \u00a0]"  # one space between the parts of a name: more is a column gap
# Two to four capitalised words in a row, with an optional middle initial.
# Both start with the capital letter itself and look behind it after it, so the regex engine
# can skip from capital to capital (a leading lookbehind makes it try every position).
_SEQUENCE = re.compile(
    rf"{_U}(?<![\w@/#.\[].){_L}*+(?:['’\-]{_L}++)*"
    rf"(?:{_GAP}(?:{_INITIAL}{_GAP})?{_WORD}){{1,3}}(?![\w@\]])"
)
_TOKEN = re.compile(rf"{_INITIAL}|{_WORD}")
_LONE_WORD = re.compile(rf"{_U}(?<![\w@/.\[].){_L}*(?:['’\-]{_L}+)*(?![\w@\]])")
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
# The name line at the top of a resume: two to four capitalised words (or initials: `Karthik
# GV`), alone on their line or before a separator and a title (`Jane Doe | Data Engineer`,
# `JANE DOE, MBA`).
_FIRST_LINE = re.compile(
    rf"[ \t]*((?:{_INITIAL}{_GAP})?(?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)"
    rf"(?:{_GAP}(?:{_INITIAL}{_GAP})?(?:{_WORD}|[{re.escape(_UPPER)}'’\-]+)){{1,3}})[ \t]*"
    r"(?:(?:[|•,;–—]|[ \t]-[ \t])[^\n]*)?\r?\n"
)
# What `_FIRST_LINE` and `_SEQUENCE` need: two words of a name, the second after a `_GAP` and
# starting with a capital (or `'’-`); for `_FIRST_LINE`, on a line that a line break ends. Most
# texts of an instruction or a bullet have none: they skip the name-line and sequence rules.
_GAP_CAPITAL = re.compile(rf"[{re.escape(_UPPER)}'’\-](?<={_GAP}.)")
# What a line `_FIRST_LINE` matches may start with.
_NAME_LINE_LEADS = frozenset(_UPPER + "'’- \t")
# Words that make the capitalised words beside them an organisation named after people.
_ORG_AFTER = frozenset(
    _split(
        "Company Co Corp Corporation Inc Incorporated Ltd Limited Llc Llp Plc Gmbh Ag Sa Bank "
        "Group Holdings Partners Associates Motor Motors Foundation University College Institute "
        "Hospital Labs Laboratories Technologies Systems Solutions Consulting Capital Ventures "
        "Industries International Airlines Insurance Pharmaceuticals School Academy Brothers "
        "Sons Stores Studios Media Press Publishing Foods Energy Financial Securities Trust"
    )
)
_ORG_BEFORE = frozenset(
    _split(
        "Banco Banca Banque Bank Grupo Groupe Gruppo Universidad Université Universidade "
        "Università Universität University Hospital Instituto Institut Istituto Fundación "
        "Fondazione Fondation Colegio Collège Casa Caixa Caja Société Compagnie Companhia"
    )
)
# A references section, and the name that opens each of its lines: `Dr. Jane Doe, Manager at
# Acme`, `Doe, Jane Ann - Acme`, `• Ravi Kumar (Team Lead)`.
_REFERENCES = re.compile(
    r"^[ \t]*(?:professional[ \t]+)?(?:references?|referees?)[ \t]*:?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_REFERENCE_LEAD = (
    r"[ \t]*(?:[•\-*–·][ \t]*)?(?:\d+[.)][ \t]*)?(?:(?:Dr|Mr|Mrs|Ms|Miss|Prof|Eng|Engr)\.?[ \t]+)?"
)
_REFERENCE_END = r"[ \t]*(?=[,(|]|[-–—][ \t]|\r?$)"
# `Doe, Jane Ann, Manager`: a surname, a comma, one or two more names, a separator.
_REFERENCE_LAST_FIRST = re.compile(
    _REFERENCE_LEAD + rf"({_WORD},[ \t]+{_WORD}(?:[ \t]+{_WORD})?)" + _REFERENCE_END,
    re.MULTILINE,
)
# `Jane Doe, Manager at Acme`: the fewest words that a separator ends.
_REFERENCE_NAME = re.compile(
    _REFERENCE_LEAD
    + rf"((?:{_INITIAL}[ \t]+)?{_WORD}(?:[ \t]+(?:{_INITIAL}[ \t]+)?{_WORD}){{1,3}}?)"
    + _REFERENCE_END,
    re.MULTILINE,
)
# A line that holds contact details: the name line of a resume sits just above one.
_CONTACT_LINE = re.compile(
    r"@|(?:\d[ ().-]{0,2}){9,}\d|linkedin|github|indeed\.com|https?://"
    r"|\b(?:phone|mobile|email|e-mail)\b",
    re.IGNORECASE,
)


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


@dataclass(frozen=True)
class _KnownNames:
    pattern: re.Pattern[str] | None
    key_of: dict[str, str]  # casefolded matched text -> the person it belongs to


def _spelled_again(words: list[str], text: str) -> bool:
    """The words, joined, are written elsewhere in `text` (an e-mail, a handle, a link)."""
    joined = "".join(words).lower()
    if len(joined) < 5:
        return False
    low = text.lower()
    return (
        low.count(joined)
        + low.count("-".join(words).lower())
        + low.count(".".join(words).lower())
        + low.count("_".join(words).lower())
        > 0
    )


def _header_starts(text: str, contacts: tuple[int, ...] | None) -> list[tuple[int, bool]]:
    """Where a resume's name line may start: the text's first line, the first line after an
    instruction that ends in a colon (`Improve this resume:`), and a line within two lines
    above a line of contact details (a resume quoted inside a longer text): `contacts`, the
    offsets of what the contact detectors found, or the `_CONTACT_LINE` pattern without them."""
    lines = text.split("\n")
    starts: dict[int, bool] = {}  # offset -> at the top
    offsets: list[int] = []
    at = 0
    for line in lines:
        offsets.append(at)
        at += len(line) + 1
    content = [i for i, line in enumerate(lines) if line.strip()]
    if not content:
        return []
    starts[offsets[content[0]]] = True
    for before, after in itertools.pairwise(content):
        if lines[before].rstrip().endswith(":") and len(lines[before]) < 120:
            starts[offsets[after]] = True
    # The lines holding contact details.
    if contacts is None:
        contacts = tuple(m.start() for m in _CONTACT_LINE.finditer(text))
    if contacts:
        contact_lines = {bisect_right(offsets, at) - 1 for at in contacts}
        rank_of = {index: rank for rank, index in enumerate(content)}
        for index in sorted(contact_lines):
            rank = rank_of.get(index, 0)
            for above in content[max(0, rank - 2) : rank]:
                if len(lines[above]) <= 60:
                    starts.setdefault(offsets[above], False)
    return sorted(starts.items())


def _two_words(text: str) -> tuple[bool, bool]:
    """Whether `_SEQUENCE`, then `_FIRST_LINE`, may match in `text`: both need a
    `_GAP_CAPITAL`, `_FIRST_LINE` one on a line that a line break ends."""
    second = _GAP_CAPITAL.search(text)
    if second is None:
        return False, False
    return True, second.start() < text.rfind("\n")


class NameDetector:
    kind = NAME

    def __init__(self, lexicon: NameLexicon) -> None:
        self.lexicon = lexicon
        self._phrases = _load_phrases()
        self._known = lru_cache(maxsize=4096)(self._compile_known)

    def find(self, text: str, context: Context) -> list[Span]:
        """Names of `text`. Every rule that finds a name on its own needs a capital letter after
        the text's first character (two capitalised words, a cue and a name, a signature on a
        line of its own); names from the metadata are matched whatever the case."""
        rest = text[1:]
        if not context.known and rest == rest.lower():
            return []
        lexicon = self.lexicon
        spans: list[tuple[int, int, str]] = []  # (start, end, person key)
        if context.known:
            compiled = self._known(context.known)
            if compiled.pattern is not None:
                for m in compiled.pattern.finditer(text):
                    key = compiled.key_of.get(" ".join(m.group(0).split()).casefold(), "")
                    spans.append((m.start(), m.end(), key or m.group(0).casefold()))
        sequences, name_lines = _two_words(text)
        self._cued_names(text, spans, context, name_lines=name_lines)
        if sequences:
            name_words = lexicon.name_words
            for m in _SEQUENCE.finditer(text):
                # Most capitalised runs (Machine Learning, Product Manager) hold no name at all.
                if any(w.capitalize() in name_words for w in m.group(0).split()):
                    self._sequence_names(m, spans)
        parts = context.record.parts
        for start, end, key in spans:
            for token in _TOKEN.findall(text[start:end]):
                titled = _title(token)
                if (
                    len(token) >= 3
                    and not token.endswith(".")
                    and titled not in lexicon.not_names
                    and titled not in lexicon.vocabulary
                ):
                    parts.setdefault(token, key)
        return [Span(start, end, NAME, key) for start, end, key in spans]

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

    def _cued_names(
        self,
        text: str,
        spans: list[tuple[int, int, str]],
        context: Context,
        *,
        name_lines: bool = True,
    ) -> None:
        """`name_lines`: False where `_FIRST_LINE` cannot match (no `_GAP_CAPITAL` before the
        last line break)."""
        lexicon = self.lexicon
        assert lexicon is not None
        if _CUE_HINT.search(text):
            for m in _CUE.finditer(text):
                with_colon = m.group(1).strip() != ""
                self._cued(m, 2, spans, require_first=not with_colon)
        if "\n" in text and (
            "eferee" in text or "EFEREE" in text or "eference" in text or "EFERENCE" in text
        ):
            self._references(text, spans)
        if "\n" in text:
            for start, top in _header_starts(text, context.contacts) if name_lines else ():
                # Most lines cannot start a name line (`"`, a lowercase word): skip the regex.
                if text[start] not in _NAME_LINE_LEADS:
                    continue
                first = _FIRST_LINE.match(text, start)
                if first is not None:
                    self._first_line(first, spans, text, top=top)
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

    def _first_line(
        self, match: re.Match[str], spans: list[tuple[int, int, str]], text: str, *, top: bool
    ) -> None:
        """A name line: at the `top` (the text's first line, or the first after an
        instruction), two or three words that are no known word are a name the lists do not
        know (Siobhán Ní Bhriain), not a title (Senior Engineer, Résumé). Lower down (a line
        above contact details, `Red Hat | jane@...`), the lexicon must know a word of it or the
        text must spell it again, joined (`karthikgv@...` after `Karthik GV`)."""
        lexicon = self.lexicon
        line = match.group(1)
        words = [w for w in re.split(r"[ \t]+", line) if not w.endswith(".")]
        titled = [_title(w) for w in words]
        if any(t in lexicon.not_names for t in titled):
            return
        vocabulary = [t for t in titled if t in lexicon.vocabulary and t not in lexicon.last]
        if len(vocabulary) == len(titled) or self._phrase_inside(line):
            return
        known = any(t in lexicon.name_words for t in titled)
        if not top and match.group(0).strip() != line.strip():
            return  # `Red Hat | jane@...`: a line of contacts, not a name line
        if not known:
            if vocabulary or len(words) > 3:
                return
            if not top and not _spelled_again(words, text):
                return
        spans.append((match.start(1), match.end(1), " ".join(words).casefold()))

    def _references(self, text: str, spans: list[tuple[int, int, str]]) -> None:
        """The name opening each line of a references section (up to its first blank line
        after an entry, or twelve lines)."""
        lexicon = self.lexicon
        for heading in _REFERENCES.finditer(text):
            at = heading.end() + 1
            lines = 0
            while at < len(text) and lines < 12:
                end = text.find("\n", at)
                end = len(text) if end == -1 else end
                line = text[at:end]
                lines += 1
                if not line.strip() and lines > 1 and text[end + 1 : end + 2] not in " \t•-":
                    break  # a blank line, then something that is no entry
                match = _REFERENCE_LAST_FIRST.match(text, at, end) or _REFERENCE_NAME.match(
                    text, at, end
                )
                if match is not None:
                    self._reference(match, spans, lexicon)
                at = end + 1

    def _reference(
        self, match: re.Match[str], spans: list[tuple[int, int, str]], lexicon: NameLexicon
    ) -> None:
        tokens = list(_TOKEN.finditer(match.group(1)))
        words = [t for t in tokens if not t.group(0).endswith(".")]
        if len(words) < 2 or any(_title(w.group(0)) in lexicon.not_names for w in words):
            return
        if all(_title(w.group(0)) in lexicon.vocabulary for w in words):
            return
        if self._phrase_inside(match.group(1)):
            return
        base = match.start(1)
        start = base + min(t.start() for t in tokens)
        end = base + words[-1].end()
        spans.append((start, end, " ".join(w.group(0) for w in words).casefold()))

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
            if not _ORG_AFTER.isdisjoint(titled[i + 1 : j + 2]) or (
                not _ORG_BEFORE.isdisjoint(titled[max(0, i - 1) : i + 1])
            ):
                i = j + 1  # Ford Motor Company, Banco Santander: named after people, not people
                continue
            start, end = base + words[i][0], base + words[j][1]
            spans.append((start, end, " ".join(w[2] for w in words[i : j + 1]).casefold()))
            i = j + 1
