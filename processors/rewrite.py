"""Checks on an LLM's rewrite of a bullet, and the formatter of rewritten training lines.

Pure: no network, no files. The rewrite stage (`collector/rewrite/`) asks the model and hands
the answer over in a `RawRecord` payload `{original, improved, context, finish_reason}`; the
`RewrittenFormatter` checks it and makes the training line (`rewritten=True`, so the sink writes
it to `{name}__rewritten.jsonl`), or a `Drop` whose reason says what was wrong:

    rewrite_empty               nothing left once preamble, quotes and list markers are removed
    rewrite_truncated           the model stopped at max_tokens (finish_reason "length")
    rewrite_refusal             "I'm sorry, I can't ..."
    rewrite_multiple_bullets    more than one line: one improved bullet was asked for
    rewrite_unchanged           the same text as the original once normalised
    rewrite_too_short / rewrite_too_long
    rewrite_pii_introduced      an email or phone number the original did not have
    rewrite_placeholder_not_allowed  a placeholder while `allow_placeholders` is false
    trivial_rewrite / near_copy      an answer that teaches nothing, by the quality step's own
                                test (`processors/quality.py`, `rewrite_reason`): an LLM that
                                only prefixes "Successfully" is never published

Figures and names the original does not give are not checked here: the rewritten line goes
through the same grounding check as every other answer that transforms a text
(`processors/grounding.py`, run by the chain after anonymization), which masks, drops
(`invented_fact`) or keeps it as the source's `recipe.grounding` says.

PII is checked with the project's anonymizer (`processors/anonymize.py`, through
`AnonymizerScanner`) when `processing.anonymize.enabled`; otherwise with `BasicPiiScanner`
(emails and phone numbers only).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from processors.anonymize.anonymizer import Anonymizer
from processors.anonymize.spans import TOKEN_PATTERN
from processors.config import AnonymizeConfig, QualityConfig, RecipeConfig, RewriteCheckConfig
from processors.dedupe import normalise
from processors.formatters.base import Formatted, bullet_example, drop
from processors.formatters.fields import get_text
from processors.grounding import PLACEHOLDER
from processors.quality import rewrite_reason
from processors.records import RawRecord

# --- PII -------------------------------------------------------------------------------------


class PiiScanner(Protocol):
    def find(self, text: str) -> list[str]:
        """The PII found in `text`, one string per finding (e.g. "email:a@b.c", "[NAME]")."""
        ...

    def redact(self, text: str) -> str:
        """`text` with its PII replaced by tokens."""
        ...


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven or more digits in a phone-like run, e.g. +1 (555) 010-1234 or 020 7946 0958.
# Year ranges (2019-2023) and plain counts are not phones: they need a separator pattern
# with at least seven digits and no run of exactly two four-digit years.
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d[\d\s.-]{5,}\d(?![\w])"
)
_YEAR_RANGE = re.compile(r"^(?:19|20)\d\d\s*[-–]\s*(?:19|20)\d\d$")


class BasicPiiScanner:
    """Emails and phone numbers: the checks used when no anonymizer is configured."""

    def find(self, text: str) -> list[str]:
        found = [f"email:{m.group(0).lower()}" for m in _EMAIL.finditer(text)]
        for match in _PHONE.finditer(text):
            candidate = match.group(0).strip()
            digits = re.sub(r"\D", "", candidate)
            if len(digits) < 7 or _YEAR_RANGE.match(candidate):
                continue
            found.append(f"phone:{digits}")
        return found

    def redact(self, text: str) -> str:
        """`text` with emails and phone numbers replaced by [EMAIL] and [PHONE]."""
        text = _EMAIL.sub("[EMAIL]", text)

        def phone(match: re.Match[str]) -> str:
            candidate = match.group(0)
            digits = re.sub(r"\D", "", candidate)
            if len(digits) < 7 or _YEAR_RANGE.match(candidate.strip()):
                return candidate
            return "[PHONE]"

        return _PHONE.sub(phone, text)


class AnonymizerScanner:
    """The project's anonymizer as a PII scanner: the tokens it would put into the text.

    Names, profile URLs and addresses are found as well as emails and phones, with the
    anonymizer's care for what resumes are full of (year ranges, versions, `New York`).
    """

    def __init__(self, anonymizer: Anonymizer) -> None:
        self.anonymizer = anonymizer

    def find(self, text: str) -> list[str]:
        redacted = self.anonymizer.anonymize(text)
        if redacted == text:
            return []
        added = Counter(TOKEN_PATTERN.findall(redacted)) - Counter(TOKEN_PATTERN.findall(text))
        return [re.sub(r"_\d+", "", token) for token in added.elements()]

    def redact(self, text: str) -> str:
        return self.anonymizer.anonymize(text)


def pii_scanner(config: AnonymizeConfig) -> PiiScanner:
    """The anonymizer when anonymization is enabled, else the basic email and phone checks."""
    if config.enabled:
        return AnonymizerScanner(Anonymizer(config))
    return BasicPiiScanner()


# --- cleaning and checks ---------------------------------------------------------------------

_LABEL = re.compile(
    r"^(?:here(?: is|'s)[^:\n]*|improved(?: resume)? bullet|rewritten(?: bullet)?|"
    r"revised(?: bullet)?|bullet|answer)\s*:\s*",
    re.IGNORECASE,
)
_MARKER = re.compile(r"^(?:[-*•·‣▪–—]|\d{1,2}[.)])\s+")
_QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`")]
_REFUSAL = re.compile(
    r"^(?:i'?m sorry|i am sorry|sorry,|i cannot|i can't|i can not|as an ai|i'm unable|"
    r"i am unable)",
    re.IGNORECASE,
)


def clean_answer(text: str) -> str:
    """The bullet inside a model's answer: no preamble, label, list marker or wrapping quotes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # "Here is the improved bullet:" on a line of its own, then the bullet.
    if len(lines) == 2 and lines[0].endswith(":"):
        lines = lines[1:]
    text = "\n".join(lines)
    for _ in range(3):  # labels, markers and quotes nest in any order
        before = text
        text = _LABEL.sub("", text).strip()
        text = _MARKER.sub("", text).strip()
        for left, right in _QUOTES:
            if len(text) >= 2 and text.startswith(left) and text.endswith(right):
                text = text[len(left) : len(text) - len(right)].strip()
        if text == before:
            break
    return text


class RewriteChecker:
    """Cleans a rewrite and says why it cannot be used (None when it can); counts reasons."""

    def __init__(
        self,
        config: RewriteCheckConfig,
        pii: PiiScanner | None = None,
        quality: QualityConfig | None = None,
    ) -> None:
        """`quality`: the quality step's settings, to drop trivial rewrites and near copies
        (None: not checked here)."""
        self.config = config
        self.pii: PiiScanner = pii or BasicPiiScanner()
        self.quality = quality
        self.rejected: Counter[str] = Counter()

    def check(
        self, original: str, answer: str, finish_reason: str = "stop"
    ) -> tuple[str, str | None]:
        """(cleaned answer, drop reason or None)."""
        cleaned = clean_answer(answer)
        reason = self._reason(original, cleaned, finish_reason)
        if reason is not None:
            self.rejected[reason] += 1
        return cleaned, reason

    def _reason(self, original: str, text: str, finish_reason: str) -> str | None:
        config = self.config
        if not text:
            return "rewrite_empty"
        if finish_reason == "length":
            return "rewrite_truncated"
        if _REFUSAL.match(text):
            return "rewrite_refusal"
        if "\n" in text:
            return "rewrite_multiple_bullets"
        if normalise(text) == normalise(original):
            return "rewrite_unchanged"
        if len(text) < config.min_chars:
            return "rewrite_too_short"
        limit = min(config.max_chars, config.max_growth * max(len(original), config.growth_floor))
        if len(text) > limit:
            return "rewrite_too_long"
        if Counter(self.pii.find(text)) - Counter(self.pii.find(original)):
            return "rewrite_pii_introduced"
        if not config.allow_placeholders and PLACEHOLDER.search(text):
            return "rewrite_placeholder_not_allowed"
        if self.quality is not None:
            return rewrite_reason(original, text, self.quality)
        return None


# --- the formatter ---------------------------------------------------------------------------

REWRITE_RECIPE = RecipeConfig(name="pairs")


class RewrittenFormatter:
    """Payload `{original, improved, context, finish_reason}` -> a `rewritten` training line.

    The training line is written with the prompts of the recipe that produced the pair (looked
    up by the record's source name in `recipes`), so it reads like the source's other lines.
    """

    def __init__(
        self, checker: RewriteChecker, recipes: Mapping[str, RecipeConfig] | None = None
    ) -> None:
        self.recipe = REWRITE_RECIPE
        self.checker = checker
        self.recipes = dict(recipes or {})

    def format(self, record: RawRecord) -> Formatted:
        payload: dict[str, Any] = record.payload
        original = get_text(payload, "original")
        if not original:
            return drop(record, "missing_original")
        answer = payload.get("improved")
        if not isinstance(answer, str):
            return drop(record, "rewrite_empty")
        finish = str(payload.get("finish_reason") or "stop")
        cleaned, reason = self.checker.check(original, answer, finish)
        if reason is not None:
            return drop(record, reason, answer[:200])
        recipe = self.recipes.get(record.source, self.recipe)
        example = bullet_example(recipe, record, original, cleaned, get_text(payload, "context"))
        example.rewritten = True
        example.group_key = str(record.meta.get("group") or "")
        return [example], []
