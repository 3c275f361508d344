"""The rewrite stage inside the daemon (`[rewrite] enabled = true`).

Once the sources run, it adds the `RewriteSource` as an internal source with
`Host.add_runner`: it polls the committed `__pairs` files every `rewrite.interval` seconds in
`run`; in `once` it waits until the other sources have finished (so it sees the pairs of this
run) and makes one pass. Its batches go through the same pipeline, so its cursors are saved
only once the rewritten lines are durable.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from collector.components import Component, Host, Mode
from collector.datalock import FolderBusy
from collector.sources.base import SourceContext

if TYPE_CHECKING:
    from collector.config import Config
    from collector.rewrite.stage import StageLock


class RewriteComponent(Component):
    name = "rewrite"

    def __init__(self, config: Config, mode: Mode) -> None:
        self.config = config
        self.mode = mode
        self.lock: StageLock | None = None

    @classmethod
    def from_config(cls, config: Config, mode: Mode) -> RewriteComponent | None:
        return cls(config, mode) if config.rewrite.enabled else None

    async def start(self, host: Host) -> None:
        # The stage (its LLM client, the rewriter, a chain of its own) is imported when it
        # starts: every service builds its components, and most run no rewrite stage.
        from collector.rewrite.source import RUNNER_NAME
        from collector.rewrite.stage import (
            StageLock,
            build_source,
            rewrite_chain,
            runner_config,
            shared_instance,
        )
        from processors.rewrite import pii_scanner

        data_dir = host.layout.data_dir
        log = host.log.bind(source=RUNNER_NAME)
        lock = StageLock(data_dir)
        try:
            lock.acquire()
        except FolderBusy as busy:
            hint = "a rewrite command is running"
            log.error("rewrite_locked", lock=str(lock.path), pid=busy.owner, hint=hint)
            return
        self.lock = lock
        # `once`: one pass over the pairs the other sources committed in this run.
        wait_for: list[asyncio.Future[Any]] = []
        if self.mode == "once":
            wait_for = [host.sources_finished()]
        context = SourceContext(data_dir=data_dir, log=log)
        pii = await asyncio.to_thread(pii_scanner, self.config.processing.anonymize)
        source = build_source(
            self.config,
            host.state,
            data_dir,
            context,
            pause_on_budget=self.mode == "run",
            wait_for=wait_for,
            pii=pii,
            instance=shared_instance(self.config),
        )
        rewrite = self.config.rewrite
        log.info(
            "rewrite_started",
            endpoint=rewrite.endpoint,
            model=rewrite.model,
            requests_per_minute=rewrite.requests_per_minute,
            tokens_per_minute=rewrite.tokens_per_minute,
            concurrency=rewrite.concurrency,
            daily_token_budget=rewrite.daily_token_budget,
            daily_spend_budget=rewrite.daily_spend_budget,
        )
        host.add_runner(
            runner_config(self.config, data_dir),
            source,
            context,
            rewrite_chain(self.config, pii),
            fetched_as="rewrite_read",
            follows_erasure=True,
        )

    async def stop(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
