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
from processors.language import LanguageCheck, unmarked
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
# Capitals lowered, small letters kept, any other byte a space: in ASCII text without an
# apostrophe, _ASCII_WORD's words are then what str.split() finds, at a third of findall's cost.
_ASCII_LETTERS = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 32 for c in range(256))
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
# Neither kind is a word of the answer's own: one set, one look-up per word.
_IGNORED = STOCK_WORDS | STOP_WORDS

# A bullet task: the user asks about a bullet (its first line, the instruction).
_BULLET_TASK = re.compile(r"\bbullet", re.IGNORECASE)
# The same in lower-case ASCII text (where \w is [a-z0-9_]), the boundary checked behind the word:
# a pattern that opens with a literal is searched for in C, not tried at every position.
_BULLET_TASK_LOWER = re.compile(r"bullet(?<![a-z0-9_]bullet)")
# Tags as Stack Exchange and social posts write them: `<resume><cv>`, `#python #aws`.
_MARKED_TAGS = re.compile(r"^(?:<[\w.+#-]+>\s*){2,}$|^(?:#[\w.+-]+[\s,;]*){2,}$")
_TAG_SEPARATORS = re.compile(r"\s*[,;|•·/]\s*|\s*\n\s*")
_SEPARATOR_CHARS = ",;|•·/\n"
_ASCII_SEPARATORS = _SEPARATOR_CHARS.encode("ascii", "ignore")  # those ASCII text can hold
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
# What either pattern's match can open with: the initials of their alternatives (y w t, r i t d)
# in both cases, and the two letters IGNORECASE also takes for `i` (İ, ı). Any other first
# character rules both out without running them.
_VOICE_OR_JOB_INITIALS = frozenset("ywtridYWTRID\u0130\u0131")
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
_OUTCOME_WORDS = (
    r"(?:result\w*|cut\w*|reduc\w*|increas\w*|rais\w*|lift\w*|sav\w*|"
    r"grow\w*|grew|boost\w*|shorten\w*|eliminat\w*|enabl\w*|achiev\w*|generat\w*|doubl\w*|"
    r"halv\w*|lower\w*|decreas\w*|accelerat\w*|prevent\w*|improv\w*|replac\w*|freeing)\b"
)
_OUTCOME = re.compile(r"\d|\[(?:X|N)\]|\b" + _OUTCOME_WORDS, re.IGNORECASE)
# The same in lower-case ASCII text with a space in front, as prompts.py's _RESULT_LOWER: no
# IGNORECASE, and a match opens with no letter, which re skips to in C. Several times faster.
_OUTCOME_LOWER = re.compile(r"[^a-z_](?:(?<=[0-9])|(?<=\[)[xn]\]|(?<![0-9])" + _OUTCOME_WORDS + ")")


def words(text: str) -> list[str]:
    """The lower-case words of `text`, without the anonymizer's tokens and placeholders."""
    text = unmarked(text)
    if text.isascii():  # then a word is [a-z]+ once lowered: one lower(), a pattern twice faster
        if "'" not in text:
            return text.encode().translate(_ASCII_LETTERS).decode().split()
        return _ASCII_WORD.findall(text.lower())
    return [w.lower() for w in _WORD.findall(text)]


def input_text(user: str) -> str:
    """What a transformation works on: the quoted text of the user message, else the part after
    its instruction (the first line, or up to the first colon)."""
    if '"' in user or "“" in user:  # no quote mark, no quoted text: skip the pattern
        # One group of three matched, and it is never empty: the others are "".
        quoted = [a or b or c for a, b, c in _QUOTED.findall(user)]
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


def _count_new_words(have: set[str], answer: list[str], enough: int) -> int:
    """The number of `_new_words` of an input with the words `have`, counted up to `enough`
    (the caller only compares it with that: the rest of a long answer need not be read)."""
    if enough <= 0:
        return 0
    count = 0
    for w in answer:
        if w not in have and w not in _IGNORED and len(w) > 1:
            count += 1
            if count >= enough:
                break
    return count


def _near_copy(a: list[str], b: list[str], ratio: float, have: set[str] | None = None) -> bool:
    """`have`: set(a), when the caller has it already."""
    if not a or not b:
        return False
    total = len(a) + len(b)
    # The words the two share as bags (below) are at most the shorter one's: texts of lengths
    # this far apart are ruled out by that check without a word looked up.
    if 2 * min(len(a), len(b)) < ratio * total:
        return False
    # The number of the answer's words found in the input bounds the words the two share as bags
    # from above: a set look-up per word rules out most answers before the Counters are built.
    if have is None:
        have = set(a)
    bound = sum(map(have.__contains__, b))  # counted in C: no Python loop
    if 2 * bound < ratio * total:
        return False
    # difflib's matches are common words, so the words the two share as bags bound its ratio
    # from above: most answers are far under it, and difflib costs ten times this.
    shared = (Counter(a) & Counter(b)).total()
    if 2 * shared < ratio * total:
        return False
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= ratio


def is_bullet_task(example: Example, user: str) -> bool:
    """Whether the answer is to be one resume bullet: a line made from a bullet, or a user
    message whose instruction (its first line) asks about a bullet."""
    if "bullet" in example.meta:
        return True
    first = user.partition("\n")[0]
    if first.isascii():  # IGNORECASE on ASCII text is a match of it lowered
        lowered = first.lower()
        return _BULLET_TASK_LOWER.search(lowered) is not None
    return _BULLET_TASK.search(first) is not None


def tag_list(text: str) -> bool:
    """Tags rather than a sentence: `<a><b>`, `#a #b`, or three or more short items between
    separators (`Python, Django, AWS`) with no stop word and no verb (`Built APIs, dashboards,
    tests` is a bullet)."""
    text = text.strip().rstrip(".")
    if text[:1] in "<#" and _MARKED_TAGS.match(text):  # it opens with either
        return True
    # Three items need two separators: most answers have fewer, and the split costs 20 times this.
    if text.isascii():  # counted by deleting them all at once (in C): a third of seven counts
        separators = len(text) - len(text.encode().translate(None, _ASCII_SEPARATORS))
    else:
        separators = sum(map(text.count, _SEPARATOR_CHARS))
    if separators < 2:
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
    # n words take 2n - 1 characters at least: a shorter text need not be split to count them.
    if (len(text) + 1) // 2 > max_words and len(text.split()) > max_words:
        return True
    if text.rstrip("\"'”’)").endswith("?"):
        return True
    return tag_list(text)


def states_outcome(text: str) -> bool:
    """Whether `text` says what came of the work (_OUTCOME finds something in it)."""
    if text.isascii():  # IGNORECASE on ASCII text is a match of it lowered
        return _OUTCOME_LOWER.search(" " + text.lower()) is not None
    return _OUTCOME.search(text) is not None


def duty_line(answer: str) -> bool:
    """A job posting's duty rather than an accomplishment (see processors/formatters/job_posting.py,
    which turns a posting's duty lines into bullets for the rewrite stage)."""
    text = answer.strip().lstrip("-*•·– ").strip()
    if text[:1] in _VOICE_OR_JOB_INITIALS:
        if _POSTING_VOICE.match(text):
            return True
        if _JOB_WAS.match(text):
            return not states_outcome(text)
    first, _, rest = text.partition(" ")
    first = first.casefold().strip(",.:;()")
    base = first
    if first not in DUTY_VERBS:  # the third person of a job description: "Maintains ..."
        base = first[:-2] if first.endswith("es") and first[:-2] in DUTY_VERBS else first[:-1]
    if base not in DUTY_VERBS and first not in REQUIREMENT_OPENERS:
        return False
    return not states_outcome(rest)


def rewrite_reason(original: str, answer: str, config: QualityConfig) -> str | None:
    """`trivial_rewrite` or `near_copy` for a rewrite of `original` that teaches nothing, else
    None. Also run by the rewrite stage on the LLM's answers (processors/rewrite.py)."""
    if not config.enabled:
        return None
    before, after = words(original), words(answer)
    have = set(before)  # both checks look words up in it
    enough = config.min_new_words
    if _count_new_words(have, after, enough) < enough:
        return "trivial_rewrite"
    if _near_copy(before, after, config.near_copy_ratio, have):
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
        # The first user message and the last answer (loops: cheaper than next() of generators).
        messages = example.messages
        user = answer = ""
        for message in messages:
            if message.role == "user":
                user = message.content
                break
        for message in reversed(messages):
            if message.role == "assistant":
                answer = message.content
                break
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
        if isinstance(bullet, str) and bullet:
            original = bullet
        elif _REWRITE.match(user):
            original = input_text(user)
        else:
            return None
        self.outcomes["checked"] += 1
        reason = rewrite_reason(original, answer, config)
        if reason is None and is_bullet_task(example, user):
            if not_a_bullet(answer, config.max_bullet_words):
                reason = "not_a_bullet"
            elif duty_line(answer):
                reason = "duty_line"
        return reason
