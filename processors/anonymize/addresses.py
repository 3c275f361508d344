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


# The German forms' street words end a longer word (Königsweg, Lindenallee): looked for inside.
_GLUED_STREET_WORDS = ("str", "weg", "gasse", "platz", "allee", "damm", "ring")
# Punctuation a street word may touch (`(12 Main St)`, `Rd.;`), as spaces for the word test.
_PUNCTUATION = str.maketrans({c: " " for c in "()[]{}<>,.;:!?\"'/|"})


class AddressDetector:
    kind = ADDRESS

    def find(self, text: str, context: Context) -> list[Span]:
        if not _has_digit(text):
            return []
        low = text.lower()
        if not (
            any(word in low for word in _GLUED_STREET_WORDS)
            or not _STREET_WORDS.isdisjoint(low.translate(_PUNCTUATION).split())
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
