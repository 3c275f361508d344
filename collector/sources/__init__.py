"""Sources: one class per remote API (or folder), built from its config by `type`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.sources.base import Source, SourceBatch, SourceContext
from collector.sources.config import AnySourceConfig
from collector.sources.github import GitHubSource
from collector.sources.huggingface import HuggingFaceSource
from collector.sources.inbox import InboxSource
from collector.sources.kaggle import KaggleSource
from collector.sources.stackexchange import StackExchangeSource

# config type -> class; each class takes (config, context).
SOURCES: dict[str, Callable[[Any, SourceContext], Source]] = {
    "inbox": InboxSource,
    "kaggle": KaggleSource,
    "huggingface": HuggingFaceSource,
    "stackexchange": StackExchangeSource,
    "github": GitHubSource,
}


def build_source(config: AnySourceConfig, context: SourceContext) -> Source:
    kind = type(config).__struct_config__.tag
    try:
        factory = SOURCES[str(kind)]
    except KeyError:
        raise ValueError(f"source type {kind!r} is not available yet") from None
    return factory(config, context)


__all__ = ["SOURCES", "Source", "SourceBatch", "SourceContext", "build_source"]
