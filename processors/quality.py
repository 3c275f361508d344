"""Answers that would teach a model nothing are dropped, each with a counted reason.

A task that rewrites the user's text (improve a bullet, rewrite, rephrase, fix, strengthen: a
user message that opens with such a request) is worth training on only when the answer does
something the input did not:

- `trivial_rewrite`: the answer adds fewer than `min_new_words` meaningful words of its own: not
  the input's words, not stop words, not a stock opener or filler (`Successfully`,
  `Effectively`, `improving results by [X]%`), not placeholders or anonymizer tokens. An LLM that
  prefixes "Successfully" to every bullet produces exactly these;
- `near_copy`: the answer's words are the input's, nearly in the same order (difflib's ratio of
  the two word sequences at least `near_copy_ratio`).

Question answering, summaries and tailoring (whose answers rightly reuse the input's words) are
not rewrites and are not checked here.
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

from processors.config import QualityConfig
from processors.records import Example

# A request to rewrite the user's own text, at the start of the user message.
_REWRITE = re.compile(
    r"^\s*(?:please[,\s]+)?(?:(?:can|could|would|will) you\s+(?:please\s+)?|help me\s+)?"
    r"(?:improve|rewrite|re-write|rephrase|reword|fix|polish|strengthen|enhance|tighten|revise|"
    r"edit|punch\s+up|make\s+(?:this|these|it|my)\s+(?:bullet|line|sentence)s?\s+(?:stronger|better))\b",
    re.IGNORECASE,
)
_split = str.split
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_TOKEN = re.compile(r"\[[A-Z#.]{1,8}(?:_\d+)?\][%+]?")
# The text a transformation works on: quoted in the user message, else what follows the
# instruction's colon or first line.
_QUOTED = re.compile(r'"""(.+?)"""|"(.+?)"|“(.+?)”', re.DOTALL)
# Words that add nothing a reader could learn from: openers, fillers and the words of stock
# endings ("improving results by [X]%"). Lower case.
STOCK_WORDS = frozenset(
    _split(
        """
    successfully effectively efficiently proactively consistently actively diligently
    skillfully expertly strategically significantly substantially greatly highly very really
    successful effective efficient proven demonstrated excellent strong great good key
    improving improved improve results result resulting overall various several multiple
    responsible helped assisted worked
    """
    )
)
STOP_WORDS = frozenset(
    _split(
        """
    a an the and or but nor for so yet of to in on at by with from into onto over under about
    as than then that this these those it its is are was were be been being has have had do
    does did will would can could should may might must i me my we our you your he she they
    them their his her who whom which what when where why how all any each both either neither
    more most other some such no not only own same too also just while during before after
    up down out off again further once here there per via across within without between
    """
    )
)


def words(text: str) -> list[str]:
    """The lower-case words of `text`, without the anonymizer's tokens and placeholders."""
    return [w.lower() for w in _WORD.findall(_TOKEN.sub(" ", text))]


def input_text(user: str) -> str:
    """What a transformation works on: the quoted text of the user message, else the part after
    its instruction (the first line, or up to the first colon)."""
    quoted = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(user)]
    if quoted:
        return "\n".join(quoted)
    _, newline, rest = user.partition("\n")
    if newline and rest.strip():
        return rest
    _, colon, after = user.partition(":")
    return after if colon and after.strip() else user


def new_words(original: str, answer: str) -> list[str]:
    """The answer's meaningful words that its input does not have."""
    have = set(words(original))
    return [
        w
        for w in words(answer)
        if w not in have and w not in STOCK_WORDS and w not in STOP_WORDS and len(w) > 1
    ]


def near_copy(original: str, answer: str, ratio: float) -> bool:
    a, b = words(original), words(answer)
    if not a or not b:
        return False
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= ratio


class QualityCheck:
    """Drops transformation answers that teach nothing; counts what it checked and dropped."""

    name = "quality"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.outcomes: Counter[str] = Counter()

    def run(self, example: Example) -> str | None:
        """The drop reason of the example, or None to keep it."""
        config = self.config
        if not config.enabled or example.kind != "train":
            return None
        user = next((m.content for m in example.messages if m.role == "user"), "")
        answer = next((m.content for m in reversed(example.messages) if m.role == "assistant"), "")
        if not user or not answer or not _REWRITE.match(user):
            return None
        original = input_text(user)
        self.outcomes["checked"] += 1
        reason: str | None = None
        if len(new_words(original, answer)) < config.min_new_words:
            reason = "trivial_rewrite"
        elif near_copy(original, answer, config.near_copy_ratio):
            reason = "near_copy"
        if reason is not None:
            self.outcomes[reason] += 1
        return reason
