"""`qa`: a Stack Exchange question and its answers become one conversation.

The user turn is the question's title and body, the assistant turn the accepted answer, or the
best-scored one, if its score reaches `recipe.min_answer_score`; otherwise the record is dropped
with the reason (`no_answers`, `answer_score_too_low`, `question_empty`...).

Bodies are HTML (rendered Markdown): they become clean text with paragraphs and list items on
their own lines, code blocks kept verbatim in fences, inline code in backticks, entities
unescaped, and never two words glued together across a tag.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from processors.config import RecipeConfig
from processors.formatters.base import Formatted, drop
from processors.formatters.fields import get_field
from processors.formatters.prompts import system_prompt, templates_of, user_prompt
from processors.records import Example, Message, RawRecord
from processors.templates import field_of_tags

_BLOCKS = frozenset(
    {"p", "div", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table"}
    | {"tr", "hr", "dl", "dt", "dd", "section", "article"}
)
_SKIP = frozenset({"script", "style", "head", "template"})
# Inline tags that may split a word (`<b>S</b>ales`); any other tag boundary separates words.
_WORD_INTERNAL = frozenset(
    {"b", "i", "u", "em", "strong", "sup", "sub", "small", "s", "strike", "mark"}
)
_FENCE = "```"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pre = 0
        self.skip = 0
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.quote = 0
        self.boundary = False

    def _newline(self, blank: bool = False) -> None:
        text = "".join(self.out)
        stripped = text.rstrip(" ")
        if not stripped:
            return
        need = "\n\n" if blank else "\n"
        if not stripped.endswith(need):
            self.out = [stripped.rstrip("\n") + need]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "pre":
            self._newline(blank=True)
            self.out.append(f"{_FENCE}\n")
            self.pre += 1
        elif tag == "code" and not self.pre:
            self._space()
            self.out.append("`")
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("ul", "ol"):
            self._newline()
            self.lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._newline()
            if self.lists and self.lists[-1]:
                self.out.append(f"{self.lists[-1][0]}. ")
                self.lists[-1][0] += 1
            else:
                self.out.append("- ")
        elif tag == "blockquote":
            self._newline(blank=True)
            self.out.append("> ")
        elif tag in _BLOCKS:
            self._newline(blank=not self.lists)
        elif tag not in _WORD_INTERNAL:
            self.boundary = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self._newline(blank=True)
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._space()
                self.out.append(f"[image: {alt}]")
        else:
            self.boundary = True

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            text = "".join(self.out).rstrip("\n")
            self.out = [f"{text}\n{_FENCE}\n\n"]
        elif tag == "code" and not self.pre:
            self.out.append("`")
            self.boundary = True
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline(blank=not self.lists)
        elif tag in _BLOCKS:
            self._newline(blank=tag != "li")
        elif tag not in _WORD_INTERNAL:
            self.boundary = True

    def _space(self) -> None:
        if self.out and self.out[-1] and not self.out[-1][-1].isspace() and self.boundary:
            self.out.append(" ")
        self.boundary = False

    def handle_data(self, data: str) -> None:
        if self.skip or not data:
            return
        if self.pre:
            self.out.append(data)
            return
        data = re.sub(r"\s+", " ", data)
        if self.out and self.out[-1].endswith("\n"):
            data = data.lstrip()
            if not data:
                return
        # A tag between two words separates them; before punctuation it adds nothing.
        if self.boundary and self.out and not self.out[-1][-1:].isspace() and data[0].isalnum():
            self.out.append(" ")
        self.boundary = False
        self.out.append(data)


def html_to_text(fragment: str) -> str:
    """Clean text of a Stack Exchange HTML body (see the module docstring)."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    text = "".join(parser.out)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean_title(title: str) -> str:
    return " ".join(html.unescape(title).split())


def _credit(meta: dict[str, Any], answer_id: object) -> dict[str, Any]:
    """Provenance of a question with the answer chosen: the answer's link, both authors, and
    both licences when they differ (the source's `answer_origins`, collector/licences.py)."""
    origins = meta.get("answer_origins")
    answer = origins.get(str(answer_id)) if isinstance(origins, dict) else None
    if not isinstance(answer, dict):
        return {}
    licences = dict.fromkeys(str(x) for x in (meta.get("license"), answer.get("license")) if x)
    return {
        "url": answer.get("url") or meta.get("url", ""),
        "license": " AND ".join(licences),
        "authors": [*meta.get("authors", []), *answer.get("authors", [])],
    }


class QaFormatter:
    def __init__(self, recipe: RecipeConfig) -> None:
        self.recipe = recipe
        self.question_field = recipe.fields.get("question", "question")
        self.answers_field = recipe.fields.get("answers", "answers")

    def format(self, record: RawRecord) -> Formatted:
        question = get_field(record.payload, self.question_field)
        if not isinstance(question, dict):
            return drop(record, "missing_question")
        title = clean_title(str(question.get("title") or ""))
        body = html_to_text(str(question.get("body") or ""))
        if not title and not body:
            return drop(record, "question_empty")
        answers = get_field(record.payload, self.answers_field)
        answers = [a for a in answers if isinstance(a, dict)] if isinstance(answers, list) else []
        if not answers:
            return drop(record, "no_answers")
        chosen = self._choose(question, answers)
        if chosen is None:
            best = max(_score(a) for a in answers)
            return drop(
                record,
                "answer_score_too_low",
                f"best score {best} < {self.recipe.min_answer_score}",
            )
        answer = html_to_text(str(chosen.get("body") or ""))
        if not answer:
            return drop(record, "answer_empty")
        # The context is the field the tags name (`resume` -> resume writing), never the tags.
        tags = question.get("tags")
        tags = [str(t) for t in tags] if isinstance(tags, list) else []
        context = field_of_tags(tags, templates_of(self.recipe).fields)
        text = f"{title}\n\n{body}" if title and body else title or body
        system = system_prompt(self.recipe, "answer_question", context, text)
        user = user_prompt(self.recipe, "answer_question", {"question": text}, text)
        example = Example(
            messages=[
                Message("system", system),
                Message("user", user),
                Message("assistant", answer),
            ],
            source=record.source,
            dataset=record.dataset,
            record_id=record.id,
            group_key=f"{record.dataset}/{record.id}",
            meta={
                **record.meta,
                "answer_id": chosen.get("answer_id"),
                "answer_score": _score(chosen),
                "accepted": bool(chosen.get("is_accepted")),
                **_credit(record.meta, chosen.get("answer_id")),
            },
            task="answer_question",
        )
        return [example], []

    def _choose(
        self, question: dict[str, Any], answers: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The accepted answer if it scores enough, else the best-scored one that does."""
        accepted_id = question.get("accepted_answer_id")
        floor = self.recipe.min_answer_score
        for answer in answers:
            accepted = answer.get("is_accepted") or (
                accepted_id is not None and answer.get("answer_id") == accepted_id
            )
            if accepted and _score(answer) >= floor:
                return answer
        good = [a for a in answers if _score(a) >= floor]
        return max(good, key=_score) if good else None


def _score(answer: dict[str, Any]) -> int:
    score = answer.get("score")
    return score if isinstance(score, int) and not isinstance(score, bool) else 0
