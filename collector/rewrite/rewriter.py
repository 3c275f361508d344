"""One bullet in, the model's answer out: prompt, cache, budget and client, in that order.

`Rewriter.rewrite_many` answers a chunk of bullets: cached answers first (one state read),
the rest concurrently through the client (its semaphore caps the requests in flight). Every
paid answer is committed to the cache together with the day's budget usage the moment it
arrives. The outcome of each bullet is an answer, a failure to drop (the server refused this
one request), or a reason to stop here (budget spent, endpoint down or refusing every request,
the service stopping); the source writes the bullets before the first stop and resumes from
there later.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from collector.logging import Logger
from collector.rewrite import cache
from collector.rewrite.budget import DailyBudget
from collector.rewrite.cache import CachedAnswer
from collector.rewrite.client import (
    ChatClient,
    ChatRejected,
    ChatUnavailable,
    Message,
    estimate_tokens,
)
from collector.rewrite.config import RewriteConfig
from collector.state import StateStore
from collector.state.base import Counts
from processors.rewrite import BasicPiiScanner

# Refusals that say the endpoint or the account is wrong, not this one bullet.
HALTING_STATUSES = frozenset({401, 402, 403, 404})
# Seconds that requests already in flight may finish in once the service is stopping.
STOP_GRACE = 5.0

_FIELD = re.compile(r"\{(bullet|context|number_rule)\}")

StopReason = Literal["budget", "unavailable", "refused", "stopped"]


class Pair(msgspec.Struct, frozen=True):
    """A bullet waiting for its rewrite, as read from a `__pairs.jsonl` line (redacted)."""

    bullet: str
    context: str
    source: str
    dataset: str
    record_id: str
    recipe: str = "pairs"  # the recipe whose prompt asks for the rewrite
    group: str = ""  # the pair's dedupe group, so its rewrite lands in the same split
    # The bullet's origin (its provenance), which the rewritten line keeps.
    license: str = ""
    url: str = ""
    authors: list[dict[str, str]] = []


class Outcome(msgspec.Struct, frozen=True):
    answer: CachedAnswer | None = None
    cached: bool = False
    failed: str = ""  # a drop reason: this bullet is given up
    stop: StopReason | None = None
    detail: str = ""


def render_prompt(config: RewriteConfig, pair: Pair) -> list[Message]:
    """The messages that ask for one rewrite: the recipe's prompt, filled in one pass (a
    bullet that contains "{context}" is not filled in again)."""
    prompt = config.prompt_for(pair.recipe)
    values = {
        "bullet": pair.bullet,
        "context": pair.context or "general",
        "number_rule": config.number_rule,
    }

    def render(template: str) -> str:
        return _FIELD.sub(lambda m: values[m.group(1)], template).strip()

    messages = [Message("user", render(prompt.user))]
    if prompt.system.strip():
        messages.insert(0, Message("system", render(prompt.system)))
    return messages


class Rewriter:
    def __init__(
        self,
        config: RewriteConfig,
        client: ChatClient,
        state: StateStore,
        budget: DailyBudget,
        log: Logger,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.state = state
        self.budget = budget
        self.log = log
        # What no bullet may carry to the model: the anonymizer's redaction, or the basic one.
        self.redact: Callable[[str], str] = redact or BasicPiiScanner().redact
        self.stats: Counter[str] = Counter()

    def messages(self, pair: Pair) -> list[Message]:
        return render_prompt(self.config, pair)

    async def rewrite_many(self, pairs: Sequence[Pair], stop: asyncio.Event) -> list[Outcome]:
        """One outcome per pair, in order."""
        asks = [self.messages(pair) for pair in pairs]
        keys = [cache.cache_key(self.config.model, messages) for messages in asks]
        known = await asyncio.to_thread(cache.lookup, self.state, keys)
        if self.budget.limited:
            await asyncio.to_thread(self.budget.refresh)
        hits: Counter[tuple[str, str, str]] = Counter()
        tasks: dict[str, asyncio.Task[Outcome]] = {}  # one request per distinct question
        # Set by the first bullet that finds the endpoint down or refusing: the others of the
        # chunk stop asking (instead of each retrying against a dead endpoint).
        halt = asyncio.Event()
        for pair, messages, key in zip(pairs, asks, keys, strict=True):
            if key in known:
                hits[(pair.source, pair.dataset, "rewrite_cache_hits")] += 1
            elif key not in tasks:
                tasks[key] = asyncio.create_task(self._ask(pair, messages, key, stop, halt))
        self.stats["cache_hits"] += sum(hits.values())
        if hits:
            await asyncio.to_thread(self.state.commit, {}, hits)
        await _finish(list(tasks.values()), stop, halt)
        outcomes: list[Outcome] = []
        first: set[str] = set()
        for key in keys:
            if key in known:
                outcomes.append(Outcome(answer=known[key], cached=True))
                continue
            task = tasks[key]
            outcome = Outcome(stop="stopped") if task.cancelled() else task.result()
            if key in first and outcome.answer is not None:  # asked once, used twice
                outcome = Outcome(answer=outcome.answer, cached=True)
            first.add(key)
            outcomes.append(outcome)
        return outcomes

    async def _ask(
        self,
        pair: Pair,
        messages: list[Message],
        key: str,
        stop: asyncio.Event,
        halt: asyncio.Event,
    ) -> Outcome:
        if stop.is_set() or halt.is_set():
            return Outcome(stop="stopped")
        estimate = estimate_tokens(messages, 0)
        if not self.budget.reserve(estimate):
            return Outcome(stop="budget")
        try:
            answer = await self.client.complete(messages)
        except ChatRejected as error:
            self.budget.release(estimate)
            if error.status in HALTING_STATUSES or error.status == 429:
                if not halt.is_set():
                    self.log.error(
                        "rewrite_endpoint_refused", status=error.status, error=str(error)
                    )
                halt.set()
                return Outcome(stop="refused", detail=str(error))
            self.stats[f"rejected_{error.status}"] += 1
            return Outcome(failed=f"rewrite_api_{error.status}", detail=str(error)[:200])
        except ChatUnavailable as error:
            self.budget.release(estimate)
            if not halt.is_set():
                self.log.warning("rewrite_unavailable", error=str(error))
            halt.set()
            return Outcome(stop="unavailable", detail=str(error))
        except BaseException:
            self.budget.release(estimate)
            raise
        usage = answer.usage
        prompt_tokens = usage.prompt_tokens or estimate
        completion_tokens = usage.completion_tokens or len(answer.content) // 4 + 1
        cached = CachedAnswer.of(answer, time.time())
        puts = self.budget.record(estimate, prompt_tokens, completion_tokens)
        puts[cache.NAMESPACE] = {key: cache.encode(cached)}
        counts: Counts = {
            (pair.source, pair.dataset, "rewrite_requests"): 1,
            (pair.source, pair.dataset, "rewrite_tokens"): prompt_tokens + completion_tokens,
        }
        # Shielded: once paid for, the answer is saved even if the pass is being cancelled.
        await asyncio.shield(asyncio.to_thread(self.state.commit, puts, counts))
        self.stats["requests"] += 1
        self.stats["tokens"] += prompt_tokens + completion_tokens
        return Outcome(answer=cached)


async def _finish(
    tasks: list[asyncio.Task[Outcome]], stop: asyncio.Event, halt: asyncio.Event
) -> None:
    """Wait for every task. Once `stop` is set, requests in flight get `STOP_GRACE` seconds
    (an answer paid for is worth keeping); once `halt` is set (the endpoint is down or refusing)
    the others are cancelled at once: they would only retry against it."""
    if not tasks:
        return
    stopping = asyncio.ensure_future(stop.wait())
    halting = asyncio.ensure_future(halt.wait())
    try:
        pending = set(tasks)
        while pending and not stop.is_set() and not halt.is_set():
            await asyncio.wait([*pending, stopping, halting], return_when=asyncio.FIRST_COMPLETED)
            pending = {task for task in tasks if not task.done()}
        rest = [task for task in tasks if not task.done()]
        if rest and not halt.is_set():
            await asyncio.wait(rest, timeout=STOP_GRACE)
    finally:
        stopping.cancel()
        halting.cancel()
        for task in tasks:
            task.cancel()  # no-op for the finished ones
        await asyncio.gather(*tasks, return_exceptions=True)
