"""Builds the rewrite stage from the config: its source, its processor chain, its lock.

Used by the daemon's `RewriteComponent` and by `resume-collector rewrite FILE`, so both rewrite
the same way, with the same cache, budget, checks and cursors.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.config import Config
from collector.datalock import FolderLock
from collector.rewrite.budget import DailyBudget
from collector.rewrite.client import ChatClient
from collector.rewrite.rewriter import Rewriter
from collector.rewrite.source import RUNNER_NAME, Progress, RewriteSource
from collector.sources.base import SourceContext
from collector.sources.config import InboxSourceConfig
from collector.state import StateStore
from collector.state.open import instance_name
from processors.chain import ProcessorChain
from processors.config import GroundingAction, RecipeConfig
from processors.grounding import GroundingCheck, recipe_grounding
from processors.rewrite import (
    REWRITE_RECIPE,
    PiiScanner,
    RewriteChecker,
    RewrittenFormatter,
    pii_scanner,
)

LOCK_FILE = ".rewrite.lock"


def shared_instance(config: Config) -> str:
    """This instance's name when the state store is shared by several (Redis), else ""."""
    return instance_name(config) if config.state.backend == "redis" else ""


def recipes_of(config: Config) -> dict[str, RecipeConfig]:
    """Source name -> recipe: the prompts a rewritten line of that source is written with."""
    return {source.name: source.recipe for source in config.sources}


def rewrite_chain(config: Config, pii: PiiScanner | None = None) -> ProcessorChain:
    """The service's chain (format -> validate ...) with the rewritten-line formatter.

    A rewrite is grounded like any answer that transforms a text, with its source's
    `recipe.grounding` (mask by default): an invented figure becomes a placeholder. A rewrite
    that teaches nothing (`trivial_rewrite`, `near_copy`) is dropped by the checker, with the
    quality step's own test, before it becomes a line.
    """
    actions: dict[str, GroundingAction] = {
        s.name: recipe_grounding(s.recipe) or "mask" for s in config.sources
    }
    chain = ProcessorChain(
        REWRITE_RECIPE, config.processing, GroundingCheck("mask", per_source=actions)
    )
    pii = pii or pii_scanner(config.processing.anonymize)
    checker = RewriteChecker(config.rewrite.checks, pii, config.processing.quality)
    chain.formatter = RewrittenFormatter(checker, recipes_of(config))
    return chain


def runner_config(config: Config, data_dir: Path) -> InboxSourceConfig:
    """What `Service.add_runner` needs of a source config: its name and its interval.

    The stage is no inbox; the type only satisfies the runner's signature. `RUNNER_NAME` is not
    a valid source name, so it can never clash with a configured source.
    """
    rewrite = config.rewrite
    return InboxSourceConfig(
        name=RUNNER_NAME,
        interval=rewrite.interval,
        batch_size=rewrite.batch_size,
        path=str(config.layout().formatted),
        license="inherited",
    )


def build_source(
    config: Config,
    state: StateStore,
    data_dir: Path,
    context: SourceContext,
    *,
    files: Sequence[Path] | None = None,
    pause_on_budget: bool = True,
    wait_for: Sequence[asyncio.Future[Any]] = (),
    on_progress: Progress | None = None,
    pii: PiiScanner | None = None,
    instance: str = "",
) -> RewriteSource:
    """The stage's source. `instance` names this instance when the state store is shared."""
    rewrite = config.rewrite
    api_key = os.environ.get(rewrite.api_key_env, "") if rewrite.api_key_env else ""
    if not api_key:
        context.log.info("rewrite_no_api_key", env=rewrite.api_key_env)
    client = ChatClient(rewrite, context.log, api_key=api_key)
    budget = DailyBudget(rewrite, state, instance=instance)
    redact = (pii or pii_scanner(config.processing.anonymize)).redact
    rewriter = Rewriter(rewrite, client, state, budget, context.log, redact)
    return RewriteSource(
        rewrite,
        rewriter,
        state,
        data_dir,
        context,
        recipes=recipes_of(config),
        files=files,
        pause_on_budget=pause_on_budget,
        wait_for=wait_for,
        on_progress=on_progress,
        instance=instance,
    )


class StageLock(FolderLock):
    """One rewrite stage per data folder: the daemon's, or a `rewrite` command's, not both.

    Both append to the same `__rewritten` files through their own committed lengths; two at once
    would corrupt them. `acquire` raises `FolderBusy` naming the holder's pid.
    """

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, LOCK_FILE)
