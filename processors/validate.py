"""Validation: schema, encoding and length checks. Every failure is a drop with a reason."""

from __future__ import annotations

import re

from processors.config import ValidateConfig
from processors.records import Example

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Validator:
    def __init__(self, config: ValidateConfig) -> None:
        self.config = config

    def check(self, example: Example) -> str | None:
        """The drop reason, or None when the example is fit to write."""
        messages = example.messages
        if not messages:
            return "missing_messages"
        roles = [m.role for m in messages]
        if roles[0] == "system":
            roles = roles[1:]
        expected_last = "user" if example.kind == "pairs" else "assistant"
        if not roles or roles[-1] != expected_last:
            return "no_assistant_message" if expected_last == "assistant" else "bad_role_order"
        for index, role in enumerate(roles):
            if role != ("user" if index % 2 == 0 else "assistant"):
                return "bad_role_order"
        total = 0
        for message in messages:
            content = message.content
            if not content.strip():
                return f"{message.role}_empty"
            if "\ufffd" in content or _CONTROL.search(content):
                return "encoding_error"
            if len(content) < self.config.min_chars.get(message.role, 0):
                return f"{message.role}_too_short"
            if len(content) > self.config.max_chars.get(message.role, 1 << 62):
                return f"{message.role}_too_long"
            total += len(content)
        if total // 4 > self.config.max_total_tokens:
            return "too_many_tokens"
        return None
