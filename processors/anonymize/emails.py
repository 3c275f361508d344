"""Emails: the usual form, and obfuscated ones (`jane dot doe at gmail dot com`,
`jane[at]mail.com`), the second regex run only where a cheap test finds a hint of obfuscation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from processors.anonymize.spans import EMAIL, Context, Span, lines_of

_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]*\w@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
_TLDS = (
    "com|org|net|edu|gov|mil|int|io|co|us|uk|de|fr|in|ca|au|es|it|nl|br|me|dev|info|biz|ai|"
    "app|ch|se|no|dk|fi|pl|ru|jp|cn|mx|ie|nz|za|be|pt|ar|cl|tech|xyz|email|name|online"
)
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+|\s*_at_\s*|\s+@\s+|\s*\(@\)\s*)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\s*_dot_\s*|\.)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w+-]+(?:{_DOT}[\w+-]+)*{_AT}"
    rf"[A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*{_DOT}(?:{_TLDS})(?![\w-])",
    re.IGNORECASE,
)
_MAIL_PROVIDERS = frozenset(
    [
        "gmail",
        "googlemail",
        "yahoo",
        "hotmail",
        "outlook",
        "protonmail",
        "proton",
        "icloud",
        "me",
        "aol",
        "live",
        "msn",
        "gmx",
        "yandex",
        "zoho",
        "mail",
        "web",
    ]
)
# Written in every obfuscated email (a bracket, " at ", " dot "...): plain substring tests.
# Run the obfuscated-email regex only where one of these shows (on lowercased text).
_OBFUSCATION_HINT = re.compile(
    r"\[at\]|\(at\)|\{at\}|<at>| dot |_at_|_dot_|\(@\)| @ |\[dot\]|\(dot\)|\{dot\}"
    r"| at (?:gmail|googlemail|yahoo|hotmail|outlook|proton|icloud|aol|gmx|yandex|zoho|msn|live|"
    r"mail|web)\b"
)
_MARKED = re.compile(r"[\[({<]\s*(?:at|dot)\s*[\])}>]|\sdot\s|_at_|_dot_|@", re.IGNORECASE)
_AT_WORD = re.compile(r"\s+at\s+", re.IGNORECASE)


def _is_obfuscated_email(match: re.Match[str]) -> bool:
    text = match.group(0)
    if _MARKED.search(text):
        return True
    # "jane at gmail.com" only with a mail provider: "worked at Amazon.com" is resume text.
    domain = _AT_WORD.split(text, maxsplit=1)[-1]
    first_label = re.split(r"\W", domain, maxsplit=1)[0].lower()
    return first_label in _MAIL_PROVIDERS


# A run of the characters an address's user part is made of, read backwards from its `@`.
_USER_RUN = re.compile(r"[\w.+-]*")


def _plain_emails(line: str) -> Iterator[re.Match[str]]:
    """What `_EMAIL.finditer(line)` finds, sooner: that regex tries every character of the
    line, but a match holds exactly one `@` and starts where the run of user-part characters
    before it starts (its lookbehind says so), so each search starts there."""
    backwards = line[::-1]
    pos = 0
    while (at := line.find("@", pos)) != -1:
        user = _USER_RUN.match(backwards, len(line) - at)  # always matches, maybe empty
        user_start = at - len(user.group()) if user is not None else at
        match = _EMAIL.search(line, max(pos, user_start))
        if match is None:
            return
        yield match
        pos = match.end()


class EmailDetector:
    kind = EMAIL

    def find(self, text: str, context: Context) -> list[Span]:
        spans: list[Span] = []
        if "@" in text:
            for at, line in lines_of(text):
                if "@" in line:
                    spans += [
                        Span(at + m.start(), at + m.end(), EMAIL) for m in _plain_emails(line)
                    ]
        low = text.lower()
        if (
            "@" in text
            or " at " in low
            or "dot" in low
            or "_at_" in low
            or "[" in text
            or "(" in text
            or "{" in text
            or "<" in text
        ) and _OBFUSCATION_HINT.search(low):
            spans += [
                Span(m.start(), m.end(), EMAIL)
                for m in _OBFUSCATED_EMAIL.finditer(text)
                if _is_obfuscated_email(m)
            ]
        return spans
