"""Validation: encoding repair, then schema, encoding and length checks.

Every failure is a drop with a reason. The schema checks follow OpenAI's chat fine-tuning data
preparation (its format-error names, in snake case): a `messages` list, every message an object
with `role` and `content` and no other key, known roles, non-empty string contents, an assistant
message, and no more tokens than a training example may hold. On top of those, the roles must
follow `system? user assistant (user assistant)*`, and each role's content has a configurable
minimum and maximum length.

`EncodingRepair` fixes mojibake with ftfy before the checks run (`donâ€™t` -> `don’t`,
`Â` removed), with settings suited to LLM data: curly quotes, full-width characters, ligatures
and line breaks are kept as they are, HTML entities are left alone. What ftfy cannot repair
(U+FFFD, control characters) is dropped by the validator.
"""

from __future__ import annotations

import re
from typing import Any

import ftfy

from processors.config import ValidateConfig
from processors.records import Example, Message

ROLES = ("system", "user", "assistant")
# Keys OpenAI accepts in a chat message; anything else is `message_unrecognized_key`.
MESSAGE_KEYS = frozenset({"role", "content", "name", "function_call", "weight", "tool_calls"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INVISIBLE = re.compile(r"[\u200b\ufeff]")

FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # `&amp;` in a code answer is content, not an accident
    uncurl_quotes=False,  # keep “curly quotes” and apostrophes as written
    fix_character_width=False,  # keep full-width characters (CJK text uses them)
    fix_latin_ligatures=False,
    fix_line_breaks=False,  # keep \r\n and friends as they are
    normalization="NFC",  # composes accents, never rewrites compatibility characters
    explain=False,  # faster
)


class EncodingRepair:
    """Repairs mojibake in an example's text in place; counts what it changed."""

    name = "repair"

    def __init__(self, config: ValidateConfig) -> None:
        self.enabled = config.fix_encoding
        self.repaired = 0

    def fix_text(self, text: str) -> str:
        if not self.enabled or text.isascii():
            return text
        fixed = ftfy.fix_text(text, FTFY_CONFIG)
        if fixed != text:
            # ftfy turns the `Â` of a broken no-break space into U+00A0 and `â€‹` into U+200B:
            # neither belongs in training text.
            fixed = _INVISIBLE.sub("", fixed.replace("\xa0", " "))
        return fixed

    def run(self, example: Example) -> None:
        """Repairs the example in place; never drops it."""
        if not self.enabled:
            return
        changed = False
        messages = example.messages
        for index, message in enumerate(messages):
            if message.content.isascii():  # nearly always: nothing to repair, nothing to copy
                continue
            fixed = self.fix_text(message.content)
            if fixed != message.content:
                if not changed:
                    messages = list(messages)
                    changed = True
                messages[index] = Message(message.role, fixed)
        bullet = example.meta.get("bullet") if example.meta else None
        if isinstance(bullet, str):
            fixed_bullet = self.fix_text(bullet)
            if fixed_bullet != bullet:
                example.meta = {**example.meta, "bullet": fixed_bullet}
                changed = True
        if changed:
            example.messages = messages
            self.repaired += 1


class Validator:
    """Drops an example that breaks the chat schema or the configured lengths."""

    name = "validate"

    def __init__(self, config: ValidateConfig) -> None:
        self.config = config
        # Few role sequences ever occur: each one's verdict is worked out once.
        self._orders: dict[tuple[tuple[str, ...], str], str | None] = {}
        self._limits = {
            role: (config.min_chars.get(role, 0), config.max_chars.get(role, 1 << 62))
            for role in ROLES
        }

    def run(self, example: Example) -> str | None:
        """The drop reason, or None when the example is fit to write."""
        messages = example.messages
        roles = tuple([m.role for m in messages])  # a list first: faster than from a generator
        order = (roles, example.kind)
        if order in self._orders:
            reason = self._orders[order]
        else:
            if len(self._orders) >= 1024:  # conversations of ever new lengths: stay bounded
                self._orders.clear()
            reason = self._orders[order] = _role_order(roles, example.kind)
        if reason is not None:
            return reason
        total = 0
        limits = self._limits
        for message in messages:
            content = message.content
            if not isinstance(content, str):
                return "missing_content"
            if not content or content.isspace():
                return f"{message.role}_empty"
            if "\ufffd" in content:
                return "encoding_error"
            # A printable text holds no control character: the regex only runs on the others
            # (those with line breaks, mostly).
            if not content.isprintable() and _CONTROL.search(content):
                return "control_characters"
            low, high = limits[message.role]
            size = len(content)
            if size < low:
                return f"{message.role}_too_short"
            if size > high:
                return f"{message.role}_too_long"
            total += size
        config = self.config
        if total / config.chars_per_token > config.max_total_tokens:
            return "too_many_tokens"
        return None

    def check_line(self, line: Any, kind: str = "train") -> tuple[Example | None, str | None]:
        """A decoded JSONL line: the example it holds, or the schema error that stops it."""
        if not isinstance(line, dict):
            return None, "data_type"
        raw = line.get("messages")
        if raw is None:
            return None, "missing_messages"
        if not isinstance(raw, list) or not raw:
            return None, "missing_messages"
        messages: list[Message] = []
        for item in raw:
            if not isinstance(item, dict):
                return None, "message_not_an_object"
            if "role" not in item or "content" not in item:
                return None, "message_missing_key"
            if any(key not in MESSAGE_KEYS for key in item):
                return None, "message_unrecognized_key"
            role, content = item["role"], item["content"]
            if role not in ROLES:
                return None, "unrecognized_role"
            if not isinstance(content, str):
                return None, "missing_content"
            messages.append(Message(role, content))
        example = Example(
            messages=messages,
            source="file",
            dataset="",
            record_id="",
            kind="pairs" if kind == "pairs" else "train",
        )
        return example, None


def _role_order(roles: tuple[str, ...], kind: str) -> str | None:
    """Why this sequence of roles cannot be a training line, or None when it can."""
    if not roles:
        return "missing_messages"
    if any(role not in ROLES for role in roles):
        return "unrecognized_role"
    if roles[0] == "system":
        roles = roles[1:]
    if "system" in roles:
        return "bad_role_order"
    expected_last = "user" if kind == "pairs" else "assistant"
    if expected_last == "assistant" and "assistant" not in roles:
        return "no_assistant_message"
    if not roles or roles[-1] != expected_last:
        return "bad_role_order"
    for index, role in enumerate(roles):
        if role != ("user" if index % 2 == 0 else "assistant"):
            return "bad_role_order"
    return None
