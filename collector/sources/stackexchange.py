"""Stack Exchange (API 2.3): questions with their answers, per site and tag.

For each configured tag (one stream each, `{site}:{tag}`) a pass asks

    /questions?tagged={tag}&site={site}&sort=activity&order=desc&min={since}&max={until}
              &filter=withbody&pagesize=100&page=N

until `has_more` is false, and after each page fetches the answers of its questions through
`/questions/{id;id;...}/answers` (up to 100 ids a call, paged the same way). One page of
questions is one batch of records: a question and its answers.

Incremental: `min`/`max` bound the *activity* date (the sort field, both inclusive). A pass
pins `until` (now) when it starts; when it completes, the next pass starts at
`since = until - CLOCK_OVERLAP`. Within a pass it pages by key, not by page number: the next
page asks `max` = the activity date of the last question read, leaving out the questions read
already at that very second (`seen`). A page number would skip a question whenever one read
before it has new activity mid-pass (it leaves the window and everything after it moves up a
place); by key nothing moves. Only when more than a page of questions share one second does the
page number step past them. The cursor (`{"since", "until", "upper", "seen", "page"}`) is saved
after every page, so a restarted service resumes where it stopped.

Throttles: every response's `backoff` holds that method back for that many seconds (the
limiter refuses to send before it passes); `quota_remaining` at 0 ends the pass until the
quota's reset (midnight UTC); error bodies (`throttle_violation`: "more requests available in
N seconds") are retried after N seconds, unless N is beyond the client's cap (an hour: an IP
ban says 67194 seconds), when no request goes to the API for all of N and the pass ends, logged
once (`stackexchange_quota_exhausted`); other errors (`bad_parameter`, `key_required`...) are
counted and the next tag proceeds.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from collector.http import HttpError, HttpResponse, MalformedResponse, Refusal
from collector.licences import spdx
from collector.ratelimit import QuotaExhausted
from collector.reporting import Report
from collector.sources.archive import ArchivedResponse, ArchiveEntry, RawArchive, archived
from collector.sources.base import JsonCursor, SourceBatch, SourceContext
from collector.sources.config import StackExchangeSourceConfig
from processors.records import Drop, RawRecord

# Seconds of overlap between passes: clocks differ, and `min` is inclusive anyway.
CLOCK_OVERLAP = 60
IDS_PER_CALL = 100
QUESTIONS = "questions"
ANSWERS = "questions/answers"
_AVAILABLE_IN = re.compile(r"available in (\d+) seconds?")


class Cursor(JsonCursor, frozen=True):
    """Where a tag's stream stands: the pass window and the next page."""

    since: int = 0  # activity date the pass starts from (0: everything)
    until: int = 0  # activity date the pass is pinned to (0: no pass in progress)
    upper: int = 0  # the next page's `max` (0: `until`): moves down as the pass pages
    seen: tuple[int, ...] = ()  # questions at `upper` already read
    page: int = 1  # past 1 only inside a second shared by more than a page of questions


class StackExchangeSource:
    def __init__(self, config: StackExchangeSourceConfig, context: SourceContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self.log = context.log
        self.dataset = f"stackexchange/{config.site}"
        self.key = os.environ.get(config.key_env, "") if config.key_env else ""
        if config.key_env and not self.key:
            self.log.warning("stackexchange_key_missing", env=config.key_env)
        self.client = context.http_client(config, hints=self)
        self._paused_until = 0.0  # the end of the last quota or ban logged
        self.archive = RawArchive(context.raw_dir, config.name, config.archive, context)
        self.quota_remaining: int | None = None
        self.quota_max: int | None = None

    # --- the pass ------------------------------------------------------------------------

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        for tag in self.config.tags:
            if self.context.stop.is_set():
                return
            stream = f"{self.config.site}:{tag}"
            try:
                async for batch in self._fetch_tag(
                    tag, stream, Cursor.decode(cursors.get(stream, ""))
                ):
                    yield batch
            except QuotaExhausted as error:
                if error.retry_at != self._paused_until:  # once per pause, not once per pass
                    self._paused_until = error.retry_at
                    until = dt.datetime.fromtimestamp(error.retry_at, dt.UTC).isoformat()
                    self.log.warning(
                        "stackexchange_quota_exhausted", reason=str(error), until=until
                    )
                return

    async def _fetch_tag(self, tag: str, stream: str, cursor: Cursor) -> AsyncIterator[SourceBatch]:
        if cursor.until == 0:  # a new pass: pin its window
            cursor = Cursor(since=cursor.since, until=int(time.time()), page=1)
        pages = 0
        while not self.context.stop.is_set():
            if self.config.max_pages and pages >= self.config.max_pages:
                return  # the cursor keeps the page: the next pass goes on from it
            pages += 1
            upper = cursor.upper or cursor.until
            params = self._params(
                tagged=tag,
                sort="activity",
                order="desc",
                max=upper,
                page=cursor.page,
                pagesize=self.config.pagesize,
            )
            if cursor.since:
                params["min"] = cursor.since
            url = f"{self.config.base_url}/questions"
            try:
                response, data = await self.client.get_json(url, params=params, limit_key=QUESTIONS)
                items, has_more = self._wrapper(data, QUESTIONS)
            except MalformedResponse as error:
                # Counted and skipped: the next page is still worth reading.
                self.log.warning("stackexchange_page_malformed", stream=stream, page=cursor.page)
                drop = Drop(
                    self.name,
                    self.dataset,
                    f"{stream}#page{cursor.page}",
                    "malformed_response",
                    error.message[:200],
                )
                cursor = msgspec.structs.replace(cursor, page=cursor.page + 1)
                yield SourceBatch([], [drop], {stream: cursor.encode()})
                continue
            except HttpError as error:
                self.log.error("stackexchange_request_failed", stream=stream, error=str(error))
                drop = Drop(self.name, self.dataset, stream, "request_failed", str(error)[:300])
                yield SourceBatch([], [drop], {})
                return
            fresh = [q for q in items if not _read_before(q, upper, cursor.seen)]
            answers, answer_responses, drops = await self._answers(fresh)
            pages_seen = [archived(response, params), *answer_responses]
            records, more_drops = self._records(fresh, answers, skip=_ids_of(drops))
            if records:
                note = {"site": self.config.site, "tag": tag, "upper": upper}
                if cursor.seen:  # which of the page's questions were read before
                    note["seen"] = list(cursor.seen)
                await self.archive.save(QUESTIONS, pages_seen, note)
            if has_more:
                cursor = _next_page(cursor, upper, items)
            else:  # the pass is complete: the next one starts where this window ended
                cursor = Cursor(since=max(cursor.since, cursor.until - CLOCK_OVERLAP))
            self.log.info(
                "stackexchange_page",
                stream=stream,
                page=pages,
                questions=len(items),
                records=len(records),
                has_more=has_more,
                quota_remaining=self.quota_remaining,
            )
            yield SourceBatch(records, drops + more_drops, {stream: cursor.encode()})
            if not has_more:
                return

    async def _answers(
        self, questions: list[Any]
    ) -> tuple[dict[int, list[Any]], list[ArchivedResponse], list[Drop]]:
        """The answers of these questions, by question id; the responses; drops."""
        wanted = [
            q["question_id"]
            for q in questions
            if isinstance(q, dict)
            and isinstance(q.get("question_id"), int)
            and q.get("answer_count", 1) != 0
        ]
        found: dict[int, list[Any]] = {}
        responses: list[ArchivedResponse] = []
        drops: list[Drop] = []
        for start in range(0, len(wanted), IDS_PER_CALL):
            ids = wanted[start : start + IDS_PER_CALL]
            url = f"{self.config.base_url}/questions/{';'.join(map(str, ids))}/answers"
            page = 1
            while True:
                params = self._params(sort="votes", order="desc", page=page, pagesize=IDS_PER_CALL)
                try:
                    response, data = await self.client.get_json(
                        url, params=params, limit_key=ANSWERS
                    )
                    items, has_more = self._wrapper(data, ANSWERS)
                except HttpError as error:  # MalformedResponse too: these questions wait
                    reason = (
                        "malformed_response"
                        if isinstance(error, MalformedResponse)
                        else "answers_unavailable"
                    )
                    self.log.warning("stackexchange_answers_failed", ids=len(ids), error=str(error))
                    drops += [
                        Drop(
                            self.name, self.dataset, self._record_id(i), reason, error.message[:200]
                        )
                        for i in ids
                    ]
                    break
                responses.append(archived(response, params))
                for answer in items:
                    if isinstance(answer, dict) and isinstance(answer.get("question_id"), int):
                        found.setdefault(answer["question_id"], []).append(answer)
                if not has_more:
                    break
                page += 1
        return found, responses, drops

    def _params(self, **values: str | int) -> dict[str, str | int]:
        params: dict[str, str | int] = {"site": self.config.site, "filter": self.config.filter}
        params.update(values)
        if self.key:
            params["key"] = self.key
        return params

    # --- what every response says --------------------------------------------------------

    def _wrapper(self, data: Any, method: str) -> tuple[list[Any], bool]:
        """The items and `has_more` of a wrapper; obeys `backoff`, tracks the quota."""
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise MalformedResponse(200, method, "not a Stack Exchange wrapper object")
        backoff = data.get("backoff")
        if isinstance(backoff, (int, float)) and backoff > 0:
            self.client.limiter.pause(float(backoff), method)
            self.log.info("stackexchange_backoff", method=method, seconds=backoff)
        remaining = data.get("quota_remaining")
        if isinstance(remaining, int):
            self.quota_remaining = remaining
            self.quota_max = (
                data.get("quota_max") if isinstance(data.get("quota_max"), int) else None
            )
            self.client.limiter.server_quota(remaining, _next_utc_midnight())
        return data["items"], bool(data.get("has_more"))

    # --- the API's dialect (`ServerHints`) -------------------------------------------------

    def observe(self, headers: Mapping[str, str]) -> None:
        """The quota comes in the body, not in headers (`_page`)."""

    def refusal(self, response: HttpResponse) -> Refusal | None:
        """`throttle_violation` error bodies: retried after the wait the message names."""
        try:
            error = msgspec.json.decode(response.body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        if not isinstance(error, dict) or error.get("error_name") != "throttle_violation":
            return None
        match = _AVAILABLE_IN.search(str(error.get("error_message", "")))
        wait = float(match.group(1)) if match else self.config.retry.secondary_wait
        return Refusal(retry=True, reason="throttled", wait=wait)

    # --- records, from a live page or from the archive ------------------------------------

    def _record_id(self, question_id: int) -> str:
        return f"{self.config.site}/{question_id}"

    def _records(
        self, questions: list[Any], answers: Mapping[int, list[Any]], skip: set[str] | None = None
    ) -> tuple[list[RawRecord], list[Drop]]:
        records: list[RawRecord] = []
        drops: list[Drop] = []
        now = time.time()
        for question in questions:
            if not isinstance(question, dict) or not isinstance(question.get("question_id"), int):
                drops.append(Drop(self.name, self.dataset, "?", "malformed_item"))
                continue
            record_id = self._record_id(question["question_id"])
            if skip and record_id in skip:
                continue
            its_answers = answers.get(question["question_id"], [])
            names = [_owner_name(question), *(_owner_name(a) for a in its_answers)]
            records.append(
                RawRecord(
                    source=self.name,
                    dataset=self.dataset,
                    id=record_id,
                    payload={
                        "site": self.config.site,
                        "question": question,
                        "answers": its_answers,
                    },
                    cursor=str(question.get("last_activity_date", "")),
                    fetched_at=now,
                    meta={
                        "person_names": sorted({n for n in names if n}),
                        "link": str(question.get("link", "")),
                        **self._origin(question),
                        "answer_origins": {
                            str(a["answer_id"]): self._origin(a, question)
                            for a in its_answers
                            if isinstance(a, dict) and "answer_id" in a
                        },
                    },
                )
            )
        return records, drops

    def _origin(self, post: dict[str, Any], question: Any = None) -> dict[str, Any]:
        """Provenance of a question or an answer: its link, its author, and the licence it was
        posted under (`content_license`, else the configured one)."""
        link = post.get("link")
        if not isinstance(link, str) or not link:
            # An answer's short link, as the site's "Share" gives it: {site}/a/{answer_id}.
            base = question.get("link", "") if isinstance(question, dict) else ""
            site = re.match(r"^https?://[^/]+", base) if isinstance(base, str) else None
            link = f"{site[0]}/a/{post.get('answer_id')}" if site else ""
        stated = spdx(post.get("content_license")) or spdx(self.config.license)
        return {"url": link, "license": stated, "authors": _author(post)}

    def records_from_archive(self, entry: ArchiveEntry) -> tuple[list[RawRecord], list[Drop]]:
        """The records a live fetch made from these responses (reprocessing)."""
        if not entry.responses:
            return [], []
        questions, _ = self._wrapper_items(entry.responses[0])
        seen = entry.note.get("seen")
        if isinstance(seen, list) and isinstance(entry.note.get("upper"), int):
            upper, read = entry.note["upper"], tuple(seen)
            questions = [q for q in questions if not _read_before(q, upper, read)]
        answers: dict[int, list[Any]] = {}
        for response in entry.responses[1:]:
            items, _ = self._wrapper_items(response)
            for answer in items:
                if isinstance(answer, dict) and isinstance(answer.get("question_id"), int):
                    answers.setdefault(answer["question_id"], []).append(answer)
        return self._records(questions, answers)

    @staticmethod
    def _wrapper_items(response: ArchivedResponse) -> tuple[list[Any], bool]:
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise msgspec.DecodeError("not a Stack Exchange wrapper object")
        return data["items"], bool(data.get("has_more"))

    def report(self) -> Report:
        """The client's figures; the quota left is the one the API reports in its bodies."""
        http = self.client.report().http
        if http is not None and http.rate_remaining is None and self.quota_remaining is not None:
            http = msgspec.structs.replace(http, rate_remaining=float(self.quota_remaining))
        return Report(http=http)

    async def close(self) -> None:
        await self.client.close()


def _author(item: Any) -> list[dict[str, str]]:
    """The post's author as Stack Exchange asks to credit them: the display name, linked to the
    user's profile (https://stackoverflow.com/legal/terms-of-service/public, attribution)."""
    owner = item.get("owner") if isinstance(item, dict) else None
    name = owner.get("display_name") if isinstance(owner, dict) else None
    if not isinstance(name, str) or not name:
        return []
    link = owner.get("link") if isinstance(owner, dict) else None
    return [{"name": name, "url": link if isinstance(link, str) else ""}]


def _owner_name(item: Any) -> str:
    owner = item.get("owner") if isinstance(item, dict) else None
    name = owner.get("display_name") if isinstance(owner, dict) else None
    return str(name) if isinstance(name, str) else ""


def _ids_of(drops: list[Drop]) -> set[str]:
    return {drop.record_id for drop in drops}


def _next_utc_midnight() -> float:
    today = dt.datetime.now(dt.UTC).date()
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)
    return midnight.timestamp()


def _activity(question: Any) -> int | None:
    value = question.get("last_activity_date") if isinstance(question, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_before(question: Any, upper: int, seen: tuple[int, ...]) -> bool:
    return (
        bool(seen)
        and _activity(question) == upper
        and isinstance(question, dict)
        and question.get("question_id") in seen
    )


def _next_page(cursor: Cursor, upper: int, items: list[Any]) -> Cursor:
    """Keyset paging: the next page starts at the activity date of the last question read."""
    dates = [_activity(q) for q in items]
    lowest = dates[-1] if dates else None
    if lowest is None or lowest >= upper or any(d is None for d in dates):
        # A page wholly inside the second at `upper` (or one that cannot be read by key):
        # step past it by page number, remembering what it held.
        held = tuple(q.get("question_id") for q in items if isinstance(q, dict))
        seen = cursor.seen + tuple(i for i in held if isinstance(i, int))
        return msgspec.structs.replace(cursor, upper=upper, seen=seen, page=cursor.page + 1)
    at_lowest = tuple(
        q["question_id"]
        for q, date in zip(items, dates, strict=True)
        if date == lowest and isinstance(q.get("question_id"), int)
    )
    return msgspec.structs.replace(cursor, upper=lowest, seen=at_lowest, page=1)
