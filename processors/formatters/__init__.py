"""Dataset recipes: how each kind of record becomes training lines. Chosen in config by name."""

from __future__ import annotations

from collections.abc import Callable

from processors.config import RecipeConfig
from processors.formatters.base import Formatter
from processors.formatters.chat import ChatFormatter, PairsFormatter

FORMATTERS: dict[str, Callable[[RecipeConfig], Formatter]] = {
    "chat": ChatFormatter,
    "pairs": PairsFormatter,
}


def build_formatter(recipe: RecipeConfig) -> Formatter:
    try:
        factory = FORMATTERS[recipe.name]
    except KeyError:
        raise ValueError(f"recipe {recipe.name!r} has no formatter yet") from None
    return factory(recipe)
