"""Addresses: street addresses (US/UK style, German `...straße 5`, French `12 rue ...`, Spanish
and Italian `Calle`/`Via`), UK postcodes and PO boxes.
"""

from __future__ import annotations

import re

from processors.anonymize.spans import ADDRESS, Context, Span

_split = str.split
_DIGIT = re.compile(r"\d")
_ASCII_DIGIT = re.compile(r"[0-9]")  # scanned for much faster than `\d`, the same on ASCII text
# addresses
_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Grove|"
    r"Gardens|Mews|Row|Plaza"
)
_CAP = r"[A-Z][\w'’.-]*"
# Every form starts at a word's start with a digit or a capital: the pattern takes that character
# first and looks behind it after it (so the regex engine skips from one such character to the
# next instead of trying every form at every position), then each form checks which it was.
_ADDRESS = re.compile(
    r"[\dA-ZÄÖÜ](?<!\w.)(?:"
    # 221B Baker Street, Apt 4, Springfield, IL 62704
    rf"(?<=\d)\d{{0,5}}[A-Za-z]?(?:-\d{{1,4}})?\s+(?:[NSEW]\.?\s+)?(?:{_CAP}\s+){{1,3}}"
    rf"(?:{_STREET_TYPES})\b\.?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s*[\w-]+)?"
    r"(?:,\s*[A-Z][A-Za-z .'-]{1,30},\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
    # Hauptstraße 12a, 10115 Berlin
    r"|(?<=[A-ZÄÖÜ])[\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|ring)\s+"
    r"\d{1,4}[a-z]?\b(?:,\s*\d{5}\s+[A-ZÄÖÜ][\wäöüß-]+)?"
    # 12 rue de la Paix, 75002 Paris
    r"|(?<=\d)\d{0,3}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|allée|place|chemin|"
    r"impasse|quai|route)\s+(?:(?:de|du|des|la|le|l’|l'|d’|d')\s*)*[A-ZÉÈ][\w'’-]*"
    r"(?:\s+[A-ZÉÈ][\w'’-]*){0,3}(?:,\s*\d{5}\s+[A-ZÉÈ][\w'’-]+)?"
    # Calle Mayor 5 / Via Roma, 10 / Rua Augusta 123
    r"|(?:(?<=C)alle|(?<=A)venida|(?<=C)arrer|(?<=P)aseo|(?<=P)laza|(?<=V)ia|(?<=V)iale|"
    r"(?<=P)iazza|(?<=C)orso|(?<=R)ua|(?<=T)ravessa|(?<=L)argo)\s+"
    r"(?:(?:de|del|la|los|las|da|do|dos|das|di|della)\s+)*[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2}"
    r",?\s+(?:n[º°o]\.?\s*)?\d{1,4}\b"
    # UK postcode, PO box
    r"|(?:(?<=G)IR\s?0AA|(?<=[A-PR-UWYZ])[A-HK-Y]?\d[A-Z\d]?\s\d[ABD-HJLNP-UW-Z]{2})\b"
    r"|(?<=P)\.?\s?O\.?\s+Box\s+\d+\b"
    r")"
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


# What the forms of `_ADDRESS` need, looked for much faster than that regex (which tries every
# digit and every capital) fails: `find` runs it only where one shows. They follow `_ADDRESS`
# form by form (a test reads every street word of it through them): change both together.
# Every form but the German one writes a capital after the text's first character. Then:
# - a street type after a space (221B Baker Street, P.O. Box 12), or a Spanish or Italian
#   street word (Calle Mayor 5): one alternative per first letter, each a literal first, so
#   the regex engine skips from one of those letters to the next;
_SPANISH_STREET_WORDS = tuple(
    _split("Calle Avenida Carrer Paseo Plaza Via Viale Piazza Corso Rua Travessa Largo")
)


def _by_first_letter(words: tuple[str, ...], before: str, after: str) -> str:
    tails: dict[str, list[str]] = {}
    for word in words:
        tails.setdefault(word[0], []).append(word[1:])
    return "|".join(f"{c}{before}(?:{'|'.join(t)}){after}" for c, t in tails.items())


_STREET_WORD = re.compile(
    _by_first_letter((*_STREET_TYPES.split("|"), "Box"), r"(?<=\s.)", r"\b")
    + "|"
    + _by_first_letter(_SPANISH_STREET_WORDS, "", r"\s")
)
# - the inward code of a UK postcode: a space, a digit, two letters (SW1A 1AA), or GIR 0AA;
_INWARD_CODE = re.compile(r"[ABD-HJLNP-UW-Z](?<=\s\d.)[ABD-HJLNP-UW-Z]")
# - a French street word after a number (12 rue de la Paix), looked for as substrings first
#   (`av` stands for `avenue` and `av.`);
_FRENCH_WORDS = tuple(_split("rue av boulevard bd allée place chemin impasse quai route"))
_FRENCH = re.compile(
    r"\d(?:\s?(?:bis|ter))?,?\s+"
    r"(?:rue|avenue|av\.|boulevard|bd|allée|place|chemin|impasse|quai|route)\s"
)
# - the German form: a capitalised word that ends in a street word, then a number
#   (Hauptstraße 12a, Lindenallee 5). Its street words are looked for first, as substrings,
#   then each with a number after it (a literal first: a fast search), then the whole form.
_GERMAN_WORDS = tuple(
    (word, re.compile(pattern + r"\s+\d"))
    for word, pattern in (
        ("str", r"str(?:aße|asse|\.)"),
        ("weg", "weg"),
        ("gasse", "gasse"),
        ("platz", "platz"),
        ("allee", "allee"),
        ("damm", "damm"),
        ("ring", "ring"),
    )
)
_GERMAN = re.compile(
    r"[A-ZÄÖÜ](?<!\w.)[\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|ring)\s+\d"
)


def _may_hold_address(text: str) -> bool:
    """False only where `_ADDRESS` matches nowhere in `text`, nor in any line of it."""
    rest = text[1:]
    if rest == rest.lower():  # no capital but the first character's: a German form there
        return _GERMAN.match(text) is not None
    if (
        _STREET_WORD.search(text) is not None
        or _INWARD_CODE.search(text) is not None
        or "0AA" in text
    ):
        return True
    for word in _FRENCH_WORDS:
        if word in text:
            if _FRENCH.search(text) is not None:
                return True
            break
    for word, number_after in _GERMAN_WORDS:
        if word in text and number_after.search(text) is not None:
            return _GERMAN.search(text) is not None
    return False


# The German forms' street words end a longer word (Königsweg, Lindenallee): looked for inside.
_GLUED_STREET_WORDS = ("str", "weg", "gasse", "platz", "allee", "damm", "ring")
# Punctuation a street word may touch (`(12 Main St)`, `Rd.;`), as spaces for the word test.
_PUNCTUATION = str.maketrans({c: " " for c in "()[]{}<>,.;:!?\"'/|"})
# The same test on ASCII text, as bytes: translating bytes is much faster. `str.split` also
# splits at \x1c-\x1f, `bytes.split` does not: they become spaces too.
_ASCII_SPACES = "()[]{}<>,.;:!?\"'/|\x1c\x1d\x1e\x1f"
_ASCII_PUNCTUATION = bytes.maketrans(_ASCII_SPACES.encode(), b" " * len(_ASCII_SPACES))
_ASCII_STREET_WORDS = frozenset(word.encode() for word in _STREET_WORDS if word.isascii())


def _has_street_word(low: str) -> bool:
    """A street word of `_STREET_WORDS` in lowercased text, alone between spaces and
    punctuation."""
    if low.isascii():
        words = low.encode().translate(_ASCII_PUNCTUATION).split()
        return not _ASCII_STREET_WORDS.isdisjoint(words)
    return not _STREET_WORDS.isdisjoint(low.translate(_PUNCTUATION).split())


class AddressDetector:
    kind = ADDRESS

    def find(self, text: str, context: Context) -> list[Span]:
        if not _may_hold_address(text) or not _has_digit(text):
            return []
        return self._find(text)

    def _find(self, text: str) -> list[Span]:
        """`find` without the address hints (the slow path, which tests compare it with)."""
        if not _has_digit(text):
            return []
        low = text.lower()
        if not (
            any(word in low for word in _GLUED_STREET_WORDS)
            or _has_street_word(low)
            or _POSTCODE.search(text)
        ):
            return []
        if "\n" not in text:  # one line, with a digit
            return [Span(m.start(), m.end(), ADDRESS) for m in _ADDRESS.finditer(text)]
        # An address never spans lines: each line with a digit is read on its own.
        spans: list[Span] = []
        offset = 0
        for line in text.split("\n"):
            if _has_digit(line):
                spans += [
                    Span(offset + m.start(), offset + m.end(), ADDRESS)
                    for m in _ADDRESS.finditer(line)
                ]
            offset += len(line) + 1
        return spans


def _has_digit(text: str) -> bool:
    return (_ASCII_DIGIT if text.isascii() else _DIGIT).search(text) is not None
