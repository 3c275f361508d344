"""Dataset recipes: how each kind of record becomes training lines. Chosen in config by name."""

from __future__ import annotations

from collections.abc import Callable

from processors.config import RecipeConfig
from processors.formatters.base import Formatter
from processors.formatters.chat import ChatFormatter, PairsFormatter
from processors.formatters.document import WithResumeDocuments
from processors.formatters.job_posting import JobPostingFormatter
from processors.formatters.qa import QaFormatter
from processors.formatters.resume import ResumeJsonFormatter, ResumeTextFormatter

FORMATTERS: dict[str, Callable[[RecipeConfig], Formatter]] = {
    "chat": ChatFormatter,
    "pairs": PairsFormatter,
    "resume_json": ResumeJsonFormatter,
    "resume_text": ResumeTextFormatter,
    "job_posting": JobPostingFormatter,
    "qa": QaFormatter,
}


def build_formatter(recipe: RecipeConfig) -> Formatter:
    """The recipe's formatter; resume documents of the inbox (PDF, DOCX...) are formatted as
    documents whatever the recipe (`processors/formatters/document.py`)."""
    try:
        factory = FORMATTERS[recipe.name]
    except KeyError:
        raise ValueError(f"recipe {recipe.name!r} has no formatter yet") from None
    return WithResumeDocuments(factory(recipe))
