"""Sources: one class per remote API (or folder), built from its config by `type`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from collector.sources.base import Source, SourceBatch, SourceContext
from collector.sources.config import AnySourceConfig

Factory = Callable[[Any, SourceContext], Source]


def _imported(module: str, name: str) -> Factory:
    """The class `name` of `module`, imported when the first source of its type is built:
    every config load imports this package (for collector/sources/config.py), and the HTTP
    sources bring aiohttp, which an inbox-only service, the commands and the workers'
    forkserver would import for nothing."""

    def build(config: Any, context: SourceContext) -> Source:
        source: Source = getattr(importlib.import_module(module), name)(config, context)
        return source

    return build


# config type -> a factory taking (config, context); `reprocess` wraps them.
SOURCES: dict[str, Factory] = {
    "inbox": _imported("collector.sources.inbox", "InboxSource"),
    "kaggle": _imported("collector.sources.kaggle", "KaggleSource"),
    "huggingface": _imported("collector.sources.huggingface", "HuggingFaceSource"),
    "stackexchange": _imported("collector.sources.stackexchange", "StackExchangeSource"),
    "github": _imported("collector.sources.github", "GitHubSource"),
}


def build_source(config: AnySourceConfig, context: SourceContext) -> Source:
    kind = type(config).__struct_config__.tag
    try:
        factory = SOURCES[str(kind)]
    except KeyError:
        raise ValueError(f"source type {kind!r} is not available yet") from None
    return factory(config, context)


__all__ = ["SOURCES", "Source", "SourceBatch", "SourceContext", "build_source"]
