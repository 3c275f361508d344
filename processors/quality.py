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

A rewrite of a resume bullet (a line made from a bullet, `meta["bullet"]`, or a user message that
asks to improve a bullet) must also read as one:

- `not_a_bullet`: the answer is longer than `max_bullet_words` words, a question, or a list of
  tags (`Python, Django, AWS`, `<resume><cv>`, `#python #aws`);
- `duty_line`: the answer is a job posting's duty, not an accomplishment: in a posting's voice
  (`You will...`, `Responsible for...`), or opening with a requirement (`Experience with...`) or
  a verb in its base form (`Build and maintain ETL pipelines`) without stating what came of it.

Question answering, summaries and tailoring (whose answers rightly reuse the input's words) are
not rewrites and are not checked by these. Every training line, of any task, is in one of the
configured languages:

- `language`: its user message or its answer is surely in another (processors/language.py).
"""

from __future__ import annotations

import re
from collections import Counter
from difflib import SequenceMatcher

from processors.config import QualityConfig
from processors.formatters.job_posting import REQUIREMENT_OPENERS
from processors.language import LanguageCheck
from processors.markers import MARKER
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
_ASCII_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")  # _WORD in lower-case ASCII text
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

# A bullet task: the user asks about a bullet (its first line, the instruction).
_BULLET_TASK = re.compile(r"\bbullet", re.IGNORECASE)
# Tags as Stack Exchange and social posts write them: `<resume><cv>`, `#python #aws`.
_MARKED_TAGS = re.compile(r"^(?:<[\w.+#-]+>\s*){2,}$|^(?:#[\w.+-]+[\s,;]*){2,}$")
_TAG_SEPARATORS = re.compile(r"\s*[,;|•·/]\s*|\s*\n\s*")
_SEPARATOR_CHARS = ",;|•·/\n"
# A posting speaking to its candidate: a duty whatever follows.
_POSTING_VOICE = re.compile(
    r"^(?:you\s+will|you['’]ll|will|to|the\s+(?:successful\s+)?(?:candidate|role|position|hire)"
    r"\s+will|we\s+(?:need|are|want))\b",
    re.IGNORECASE,
)
# A resume line saying what the job was: a duty unless it says what came of it.
_JOB_WAS = re.compile(
    r"^(?:responsible\s+for|in\s+charge\s+of|tasked\s+with|"
    r"(?:duties|responsibilities)\s+(?:include|included))\b",
    re.IGNORECASE,
)
# Verbs a posting's duty lines open with in their base form ("Build and maintain ..."); an
# accomplishment opens with the past tense ("Built") and says what came of it.
DUTY_VERBS = frozenset(
    _split(
        """
    analyze analyse assist automate build collaborate communicate conduct contribute coordinate
    create define deliver deploy design develop document drive ensure establish evaluate execute
    facilitate handle help identify implement integrate investigate lead liaise maintain manage
    mentor monitor optimize optimise organize organise oversee own participate partner perform
    plan prepare provide research resolve review schedule serve support test track train
    troubleshoot update work write
    """
    )
)
# Past tenses that do not end in -ed, which a bullet opens with and a tag list never does.
IRREGULAR_PAST = frozenset(
    _split(
        """
    built rebuilt led ran wrote rewrote drove made grew set cut won taught brought sold bought
    began took gave kept held found oversaw spent sent shipped met chose fought
    """
    )
)
# What came of the work: a figure, a placeholder for one, or a word that says what changed.
_OUTCOME = re.compile(
    r"\d|\[(?:X|N)\]|\b(?:result\w*|cut\w*|reduc\w*|increas\w*|rais\w*|lift\w*|sav\w*|"
    r"grow\w*|grew|boost\w*|shorten\w*|eliminat\w*|enabl\w*|achiev\w*|generat\w*|doubl\w*|"
    r"halv\w*|lower\w*|decreas\w*|accelerat\w*|prevent\w*|improv\w*|replac\w*|freeing)\b",
    re.IGNORECASE,
)


def words(text: str) -> list[str]:
    """The lower-case words of `text`, without the anonymizer's tokens and placeholders."""
    if "[" in text:  # no marker without one: skip the substitution
        text = MARKER.sub(" ", text)
    if text.isascii():  # then a word is [a-z]+ once lowered: one lower(), a pattern twice faster
        return _ASCII_WORD.findall(text.lower())
    return [w.lower() for w in _WORD.findall(text)]


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
    return _new_words(words(original), words(answer))


def _new_words(original: list[str], answer: list[str]) -> list[str]:
    have = set(original)
    return [
        w
        for w in answer
        if w not in have and w not in STOCK_WORDS and w not in STOP_WORDS and len(w) > 1
    ]


def near_copy(original: str, answer: str, ratio: float) -> bool:
    """Whether the answer's words are the input's, nearly in the same order."""
    return _near_copy(words(original), words(answer), ratio)


def _near_copy(a: list[str], b: list[str], ratio: float) -> bool:
    if not a or not b:
        return False
    # The number of the answer's words found in the input bounds the words the two share as bags
    # from above: a set look-up per word rules out most answers before the Counters are built.
    have = set(a)
    bound = 0
    for w in b:
        if w in have:
            bound += 1
    if 2 * bound < ratio * (len(a) + len(b)):
        return False
    # difflib's matches are common words, so the words the two share as bags bound its ratio
    # from above: most answers are far under it, and difflib costs ten times this.
    shared = (Counter(a) & Counter(b)).total()
    if 2 * shared < ratio * (len(a) + len(b)):
        return False
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= ratio


def is_bullet_task(example: Example, user: str) -> bool:
    """Whether the answer is to be one resume bullet: a line made from a bullet, or a user
    message whose instruction (its first line) asks about a bullet."""
    return "bullet" in example.meta or bool(_BULLET_TASK.search(user.partition("\n")[0]))


def tag_list(text: str) -> bool:
    """Tags rather than a sentence: `<a><b>`, `#a #b`, or three or more short items between
    separators (`Python, Django, AWS`) with no stop word and no verb (`Built APIs, dashboards,
    tests` is a bullet)."""
    text = text.strip().rstrip(".")
    if _MARKED_TAGS.match(text):
        return True
    # Three items need two separators: most answers have fewer, and the split costs 20 times this.
    if sum(map(text.count, _SEPARATOR_CHARS)) < 2:
        return False
    items = [item for item in _TAG_SEPARATORS.split(text) if item]
    if len(items) < 3 or any(len(item.split()) > 3 for item in items):
        return False
    split = [item.lower().split() for item in items]
    if any(w in STOP_WORDS for item in split for w in item):
        return False
    # A verb opening an item of several words (`Deployed services, ...`), or the list.
    if split[0][0] in IRREGULAR_PAST or split[0][0] in DUTY_VERBS:
        return False
    openers = [item[0] for item in split if len(item) > 1]
    return not any(w in IRREGULAR_PAST or w in DUTY_VERBS or w.endswith("ed") for w in openers)


def not_a_bullet(answer: str, max_words: int) -> bool:
    """Too long for one bullet, a question, or a list of tags."""
    text = answer.strip()
    if len(text.split()) > max_words:
        return True
    if text.rstrip("\"'”’)").endswith("?"):
        return True
    return tag_list(text)


def duty_line(answer: str) -> bool:
    """A job posting's duty rather than an accomplishment (see processors/formatters/job_posting.py,
    which turns a posting's duty lines into bullets for the rewrite stage)."""
    text = answer.strip().lstrip("-*•·– ").strip()
    if _POSTING_VOICE.match(text):
        return True
    if _JOB_WAS.match(text):
        return _OUTCOME.search(text) is None
    first, _, rest = text.partition(" ")
    first = first.casefold().strip(",.:;()")
    base = first
    if first not in DUTY_VERBS:  # the third person of a job description: "Maintains ..."
        base = first[:-2] if first.endswith("es") and first[:-2] in DUTY_VERBS else first[:-1]
    if base not in DUTY_VERBS and first not in REQUIREMENT_OPENERS:
        return False
    return _OUTCOME.search(rest) is None


def rewrite_reason(original: str, answer: str, config: QualityConfig) -> str | None:
    """`trivial_rewrite` or `near_copy` for a rewrite of `original` that teaches nothing, else
    None. Also run by the rewrite stage on the LLM's answers (processors/rewrite.py)."""
    if not config.enabled:
        return None
    before, after = words(original), words(answer)
    if len(_new_words(before, after)) < config.min_new_words:
        return "trivial_rewrite"
    if _near_copy(before, after, config.near_copy_ratio):
        return "near_copy"
    return None


class QualityCheck:
    """Drops transformation answers that teach nothing; counts what it checked and dropped."""

    name = "quality"

    def __init__(self, config: QualityConfig) -> None:
        self.config = config
        self.language = LanguageCheck(
            config.languages, config.min_language_chars, config.language_confidence
        )
        self.outcomes: Counter[str] = Counter()

    def run(self, example: Example) -> str | None:
        """The drop reason of the example, or None to keep it."""
        config = self.config
        if not config.enabled or example.kind != "train":
            return None
        user = next((m.content for m in example.messages if m.role == "user"), "")
        answer = next((m.content for m in reversed(example.messages) if m.role == "assistant"), "")
        if not user or not answer:
            return None
        reason = self.rewrite(example, user, answer)
        if reason is None and (self.language.foreign(answer) or self.language.foreign(user)):
            reason = "language"
        if reason is not None:
            self.outcomes[reason] += 1
        return reason

    def rewrite(self, example: Example, user: str, answer: str) -> str | None:
        """The checks of an answer that rewrites the user's text (None: kept, or no rewrite)."""
        config = self.config
        bullet = example.meta.get("bullet")
        if not (isinstance(bullet, str) and bullet) and not _REWRITE.match(user):
            return None
        self.outcomes["checked"] += 1
        original = bullet if isinstance(bullet, str) and bullet else input_text(user)
        reason = rewrite_reason(original, answer, config)
        if reason is None and is_bullet_task(example, user):
            if not_a_bullet(answer, config.max_bullet_words):
                reason = "not_a_bullet"
            elif duty_line(answer):
                reason = "duty_line"
        return reason
