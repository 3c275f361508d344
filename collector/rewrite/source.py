"""The rewrite stage as an internal source: committed `__pairs` lines in, rewritten records out.

Each `training-data/formatted/*__pairs.jsonl` file is a stream whose cursor is the byte offset
after the last pair handled (as in `collector/sources/inbox.py`). Only the committed part of a
file is read (its length in the state store's `files` namespace): a line a crash could still
cut back is never rewritten. A file the state does not know (put there by hand, or given to
`resume-collector rewrite`) is read up to its last complete line.

Each chunk of pairs is answered by the `Rewriter` (cache, budget, client) and yielded as
`RawRecord`s `{original, improved, context, finish_reason}` for the `RewrittenFormatter`. The
records keep the pair's source and dataset, so the sink writes them to the
`{owner}__{dataset}__rewritten.jsonl` beside the pairs file and counts them (and the checks'
drops) in the same clean report. Because they go through the normal pipeline, the cursor is
saved only once the rewritten lines are durable: with the cache, every pair is rewritten and
paid for once across kill -9.

When the budget is spent the source yields what it has and, in `run`, waits for the next UTC
day (`rewrite_budget_exhausted`); when the endpoint is down or refuses every request it ends the
pass and the next pass continues from the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from collector.layout import formatted_dir
from collector.reporting import Report
from collector.rewrite.config import RewriteConfig
from collector.rewrite.rewriter import Outcome, Pair, Rewriter
from collector.sinks.files import NAMESPACE as FILES_NAMESPACE
from collector.sources.base import SourceBatch, SourceContext
from collector.state import StateStore
from processors.config import RecipeConfig
from processors.records import Drop, RawRecord

# The runner name of the stage: not a valid source name, so it never clashes with one.
RUNNER_NAME = "rewrite:pairs"
# How often a paused stage looks at the budget again (a new day, or a raised budget).
BUDGET_RECHECK_SECONDS = 60.0
MAX_CHUNK_BYTES = 4 * 1024 * 1024
SETTLE_SECONDS = 1.0

Progress = Callable[[str, int, int], None]  # (stream, offset, end of what can be read)


class _PairLine(msgspec.Struct):
    bullet: str = ""
    original: str = ""  # a pairs file written by hand may name the bullet "original"
    context: str = ""
    source: str = ""
    dataset: str = ""
    record_id: str = ""
    group: str = ""
    license: str = ""
    url: str = ""
    authors: list[dict[str, str]] = []


_decode_pair = msgspec.json.Decoder(_PairLine).decode


class _Chunk(msgspec.Struct):
    pairs: list[tuple[Pair, int]]  # each pair and the offset after its line
    drops: list[tuple[Drop, int]]
    end: int  # the offset after the last line read
    limit: int  # how far the stream can be read now


class RewriteSource:
    def __init__(
        self,
        config: RewriteConfig,
        rewriter: Rewriter,
        state: StateStore,
        data_dir: Path,
        context: SourceContext,
        *,
        recipes: Mapping[str, RecipeConfig] | None = None,
        files: Sequence[Path] | None = None,
        pause_on_budget: bool = True,
        wait_for: Sequence[asyncio.Future[Any]] = (),
        on_progress: Progress | None = None,
        budget_recheck: float = BUDGET_RECHECK_SECONDS,
        instance: str = "",
    ) -> None:
        self.name = RUNNER_NAME
        self.config = config
        self.rewriter = rewriter
        self.state = state
        self.data_dir = data_dir
        self.context = context
        self.log = context.log
        self.recipes = dict(recipes or {})
        self.files = list(files) if files is not None else None
        self.pause_on_budget = pause_on_budget
        self.wait_for = list(wait_for)
        self.on_progress = on_progress
        self.budget_recheck = budget_recheck
        # With a store shared by several instances, the pairs files are each instance's own:
        # so are the cursors over them.
        self.instance = instance
        self.halted: str | None = None  # why the last pass ended early, if it did
        self.paused = False  # waiting for the next day's budget

    # --- streams ---------------------------------------------------------------------------

    def _paths(self) -> list[Path]:
        if self.files is not None:
            return self.files
        root = formatted_dir(self.data_dir)
        found: set[Path] = set()
        for pattern in self.config.files:
            found.update(p for p in root.glob(pattern) if p.is_file())
        return sorted(found)

    def file_key(self, path: Path) -> str:
        """The file's key in the `files` namespace (relative to the data folder), or its path."""
        try:
            return path.resolve().relative_to(self.data_dir.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def stream(self, path: Path) -> str:
        """The cursor's stream: the file's key, prefixed by the instance when there is one."""
        key = self.file_key(path)
        return f"{self.instance}:{key}" if self.instance else key

    # --- the pass --------------------------------------------------------------------------

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        stop = self.context.stop
        self.halted = None
        if self.wait_for:  # `once`: the other sources finish (and commit their pairs) first
            others: asyncio.Future[Any] = asyncio.gather(*self.wait_for, return_exceptions=True)
            stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait([others, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            self.wait_for = []
        paths = await asyncio.to_thread(self._paths)
        for path in paths:
            stream = self.stream(path)
            saved = cursors.get(stream, "")
            offset = int(saved) if saved.isdigit() else 0
            while not stop.is_set():
                chunk = await asyncio.to_thread(self._read, path, offset)
                if chunk.end < offset:  # the file is shorter than the cursor: a new file
                    self.log.warning("rewrite_file_replaced", file=stream, cursor=offset)
                    offset = 0
                    continue
                if not chunk.pairs and not chunk.drops:
                    break
                outcomes = await self.rewriter.rewrite_many([p for p, _ in chunk.pairs], stop)
                batch, end, halt = self._batch(stream, chunk, outcomes, offset)
                if end != offset or batch.records or batch.drops:
                    yield batch
                offset = end
                if self.on_progress is not None:
                    self.on_progress(stream, offset, chunk.limit)
                if halt is None:
                    continue
                if halt == "budget" and self.pause_on_budget and await self._budget_pause():
                    continue
                self.halted = halt
                self.log.info("rewrite_pass_halted", reason=halt, file=stream, cursor=offset)
                break
            if self.halted is not None:
                break
        stats = self.rewriter.stats
        self.log.info(
            "rewrite_pass_summary",
            files=len(paths),
            requests=stats["requests"],
            cache_hits=stats["cache_hits"],
            tokens=stats["tokens"],
            rate_limited=self.rewriter.client.stats["rate_limited"],
            halted=self.halted,
        )

    def telemetry(self) -> dict[str, float]:
        """For `/metrics`: totals since start, today's budget use, whether the stage waits."""
        stats, budget = self.rewriter.stats, self.rewriter.budget
        client = self.rewriter.client.stats
        return {
            "requests": stats["requests"],
            "cache_hits": stats["cache_hits"],
            "tokens": stats["tokens"],
            "retries": client["retries"],
            "budget_tokens_today": budget.used.tokens + budget.others.tokens,
            "budget_spend_today": budget.used.spend + budget.others.spend,
            "budget_paused": 1.0 if self.paused else 0.0,
        }

    def report(self) -> Report:
        return Report(figures=self.telemetry())

    def _batch(
        self, stream: str, chunk: _Chunk, outcomes: list[Outcome], start: int
    ) -> tuple[SourceBatch, int, str | None]:
        """The records and drops before the first stop, the cursor after them, the stop."""
        events: list[tuple[int, RawRecord | Drop | Outcome]] = []
        for (pair, end), outcome in zip(chunk.pairs, outcomes, strict=True):
            events.append(
                (end, self._record(pair, outcome, end) if outcome.stop is None else outcome)
            )
        events += [(end, drop) for drop, end in chunk.drops]
        events.sort(key=lambda event: event[0])
        records: list[RawRecord] = []
        drops: list[Drop] = []
        offset = start
        # Why the chunk stopped: a bullet cancelled because another found the endpoint down
        # says "stopped"; the reason to report is the other's.
        reasons = [o.stop for o in outcomes if o.stop is not None]
        reason = next((r for r in reasons if r != "stopped"), reasons[0] if reasons else None)
        for end, item in events:
            if isinstance(item, Outcome):
                return SourceBatch(records, drops, {stream: str(offset)}), offset, reason
            if isinstance(item, RawRecord):
                records.append(item)
            else:
                drops.append(item)
            offset = end
        return SourceBatch(records, drops, {stream: str(chunk.end)}), chunk.end, None

    def _record(self, pair: Pair, outcome: Outcome, end: int) -> RawRecord | Drop:
        if outcome.answer is None:
            return Drop(pair.source, pair.dataset, pair.record_id, outcome.failed, outcome.detail)
        return RawRecord(
            source=pair.source,
            dataset=pair.dataset,
            id=pair.record_id,
            payload={
                "original": pair.bullet,
                "improved": outcome.answer.content,
                "context": pair.context,
                "finish_reason": outcome.answer.finish_reason,
            },
            cursor=str(end),
            fetched_at=time.time(),
            meta={
                "rewrite_model": outcome.answer.model or self.config.model,
                "group": pair.group,
                # The bullet's licence and credit carry over to the line rewritten from it.
                "license": pair.license,
                "url": pair.url,
                "authors": pair.authors,
            },
        )

    async def _budget_pause(self) -> bool:
        """Wait until the budget allows a request again; False when the service stops first."""
        budget = self.rewriter.budget
        stop = self.context.stop
        self.log.warning(
            "rewrite_budget_exhausted",
            day=budget.day(),
            requests=budget.used.requests,
            tokens=budget.used.tokens,
            spend=round(budget.used.spend, 6),
            token_budget=self.config.daily_token_budget,
            spend_budget=self.config.daily_spend_budget,
            resumes_in=round(budget.seconds_until_reset(), 1),
        )
        day = budget.day()
        self.paused = True
        try:
            while not stop.is_set():
                wait = min(budget.seconds_until_reset(), self.budget_recheck)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(wait, 0.01))
                if budget.day() != day:
                    self.log.info("rewrite_budget_renewed", day=budget.day())
                    return not stop.is_set()
            return False
        finally:
            self.paused = False

    async def close(self) -> None:
        await self.rewriter.client.close()

    # --- reading, in a worker thread -------------------------------------------------------

    def _limit(self, path: Path) -> tuple[int, bool]:
        """(how far the file may be read, whether that is a committed length)."""
        committed = self.state.get(FILES_NAMESPACE, self.file_key(path))
        size = path.stat().st_size
        if committed is not None and committed.isdigit():
            return min(int(committed), size), True
        return size, False

    def _read(self, path: Path, offset: int) -> _Chunk:
        stream = self.file_key(path)
        try:
            limit, committed = self._limit(path)
        except OSError:
            return _Chunk([], [], offset, offset)
        if offset > limit:
            return _Chunk([], [], -1, limit)
        settled = committed or time.time() - path.stat().st_mtime >= SETTLE_SECONDS
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(min(limit - offset, MAX_CHUNK_BYTES))
            if len(data) == MAX_CHUNK_BYTES and b"\n" not in data:
                # One line longer than a whole chunk: no bullet; skip it, counted.
                end = _next_line(handle, limit)
                drop = Drop(RUNNER_NAME, _dataset_of(path), f"{stream}:{offset}", "pair_too_long")
                return _Chunk([], [(drop, end)], end, limit)
        pairs: list[tuple[Pair, int]] = []
        drops: list[tuple[Drop, int]] = []
        position = offset
        dataset = _dataset_of(path)
        for line in _lines(data):
            if not line.endswith(b"\n") and not (settled and position + len(line) == limit):
                break  # not complete yet
            end = position + len(line)
            record_id = f"{stream}:{position}"
            position = end
            if not line.strip():
                continue
            try:
                raw = _decode_pair(line)
            except (msgspec.DecodeError, UnicodeDecodeError):
                drops.append((Drop(RUNNER_NAME, dataset, record_id, "malformed_pair_line"), end))
                continue
            bullet = (raw.bullet or raw.original).strip()
            if not bullet:
                drops.append((Drop(RUNNER_NAME, dataset, record_id, "missing_original"), end))
                continue
            source = raw.source or RUNNER_NAME
            recipe = self.recipes.get(source)
            pair = Pair(
                bullet=self.rewriter.redact(bullet),
                context=raw.context,
                source=source,
                dataset=raw.dataset or dataset,
                record_id=raw.record_id or record_id,
                recipe=recipe.name if recipe is not None else "pairs",
                group=raw.group,
                license=raw.license,
                url=raw.url,
                authors=raw.authors,
            )
            pairs.append((pair, end))
            if len(pairs) >= self.config.batch_size:
                break
        return _Chunk(pairs, drops, position, limit)


def _lines(data: bytes) -> list[bytes]:
    """`data` cut after each newline (only "\n": a stray "\r" is part of its line)."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _next_line(handle: BinaryIO, limit: int) -> int:
    """The offset after the next newline from the handle's position (or `limit`)."""
    while handle.tell() < limit:
        block = handle.read(min(MAX_CHUNK_BYTES, limit - handle.tell()))
        if not block:
            break
        cut = block.find(b"\n")
        if cut >= 0:
            return handle.tell() - len(block) + cut + 1
    return limit


def _dataset_of(path: Path) -> str:
    """`owner__name__pairs.jsonl` -> `owner/name`: maps back to the same output name."""
    name = path.name.removesuffix(".jsonl").removesuffix("__pairs")
    owner, _, rest = name.partition("__")
    return f"{owner}/{rest}" if rest else name
