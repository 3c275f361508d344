"""The bracketed words the steps themselves write into a text.

The anonymizer's tokens (`[NAME]`, `[EMAIL_2]`, processors/anonymize/spans.py) and grounding's
placeholders for a figure (`[X]`, `[N]`, `[#]`, `[...]`, processors/grounding.py), with the unit a
placeholder may carry (`[X]%`, `[N]+`). None of them is a word of the text: the quality and
language checks read past them.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"\[[A-Z#.]{1,8}(?:_\d+)?\][%+]?")
