"""Sources: one class per remote API (or folder), built from its config by `type`."""

from __future__ import annotations

import importlib

from collector.sources.base import Source, SourceBatch, SourceContext
from collector.sources.config import AnySourceConfig

# config type -> the module and class that implement it; each class takes (config, context).
# Imported when a source of the type is built: every config load imports this package (for
# collector/sources/config.py), and the HTTP sources bring aiohttp, which an inbox-only service,
# the commands and the workers' forkserver would import for nothing.
SOURCES: dict[str, tuple[str, str]] = {
    "inbox": ("collector.sources.inbox", "InboxSource"),
    "kaggle": ("collector.sources.kaggle", "KaggleSource"),
    "huggingface": ("collector.sources.huggingface", "HuggingFaceSource"),
    "stackexchange": ("collector.sources.stackexchange", "StackExchangeSource"),
    "github": ("collector.sources.github", "GitHubSource"),
}


def build_source(config: AnySourceConfig, context: SourceContext) -> Source:
    kind = type(config).__struct_config__.tag
    try:
        module, name = SOURCES[str(kind)]
    except KeyError:
        raise ValueError(f"source type {kind!r} is not available yet") from None
    source: Source = getattr(importlib.import_module(module), name)(config, context)
    return source


__all__ = ["SOURCES", "Source", "SourceBatch", "SourceContext", "build_source"]
