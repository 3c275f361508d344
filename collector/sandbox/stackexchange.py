"""A local Stack Exchange API 2.3: `/2.3/questions` and `/2.3/questions/{ids}/answers`.

It speaks the contract the source relies on (see shared/API-CONTRACTS.md):

- every response is the wrapper `{"items", "has_more", "quota_max", "quota_remaining",
  "backoff"?, "page", "page_size"}`, always gzip-compressed, as the real API's are;
- `site` is required (`bad_parameter` otherwise), `filter=withbody` adds `body`, `default`
  leaves it out, anything else is `bad_parameter`; `pagesize` above 100 is `bad_parameter`;
- `sort` (`activity`, `creation`, `votes`), `order`, `min`/`max` on the sort field,
  `fromdate`/`todate` on the creation date, `tagged` (`;` means all of them);
- a daily quota (300 requests without a `key`, 10,000 with one): past it, `throttle_violation`;
- `backoff`: every `backoff_every`-th response of a method carries `backoff: backoff_seconds`,
  and calling that method again before it passes is a `throttle_violation` (HTTP 400, error_id
  502, "... more requests available in N seconds"), counted in `store.violations`;
- error bodies `{"error_id", "error_name", "error_message"}`.

Sample data: `data/stackexchange/{site}.json` (questions and answers about resumes, written
for the sandbox). Tests add or touch questions through `app[STORE]`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web import ContentCoding

from collector.sandbox import aim_sources
from collector.sandbox.faults import RATE_LIMIT_RESPONSE, FaultConfig, install

if TYPE_CHECKING:
    from collector.config import Config

DATA_DIR = Path(__file__).parent / "data" / "stackexchange"
SORT_FIELDS = {"activity": "last_activity_date", "creation": "creation_date", "votes": "score"}


class StackExchangeStore:
    """The sites' questions and answers, and what the emulator has counted."""

    def __init__(
        self,
        data_dir: Path = DATA_DIR,
        *,
        backoff_every: int = 0,
        backoff_seconds: float = 1.0,
        quota_without_key: int = 300,
        quota_with_key: int = 10_000,
    ) -> None:
        self.questions: dict[str, dict[int, dict[str, Any]]] = {}
        self.answers: dict[str, dict[int, dict[str, Any]]] = {}
        for path in sorted(data_dir.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            site = data["site"]
            self.questions[site] = {q["question_id"]: q for q in data["questions"]}
            self.answers[site] = {a["answer_id"]: a for a in data["answers"]}
        self.backoff_every = backoff_every
        self.backoff_seconds = backoff_seconds
        self.quota_without_key = quota_without_key
        self.quota_with_key = quota_with_key
        self.calls: Counter[str] = Counter()  # method -> responses served
        self.blocked_until: dict[str, float] = {}  # method -> monotonic time
        self.violations = 0  # requests that ignored a backoff
        self.quota_used: Counter[str] = Counter()  # "key" or "ip" -> requests today
        self.keys_seen: list[str] = []

    def add_question(
        self, site: str, question: dict[str, Any], answers: list[dict[str, Any]] | None = None
    ) -> None:
        self.questions.setdefault(site, {})[question["question_id"]] = question
        for answer in answers or []:
            self.answers.setdefault(site, {})[answer["answer_id"]] = answer

    def touch(self, site: str, question_id: int, when: int | None = None) -> None:
        """New activity on a question (an edit, a new answer...)."""
        self.questions[site][question_id]["last_activity_date"] = when or int(time.time())


STORE = web.AppKey("stackexchange_store", StackExchangeStore)


def _error(status: int, error_id: int, name: str, message: str) -> web.Response:
    response = web.json_response(
        {"error_id": error_id, "error_message": message, "error_name": name}, status=status
    )
    response.enable_compression(ContentCoding.gzip)
    return response


def _throttle(seconds: float) -> web.Response:
    wait = max(1, math.ceil(seconds))
    return _error(
        400,
        502,
        "throttle_violation",
        f"too many requests from this IP, more requests available in {wait} seconds",
    )


class _BadParameter(Exception):
    pass


def _int(query: Any, name: str, default: int | None = None) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadParameter(name) from None


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    store = options.pop("store", None) or StackExchangeStore(**options)
    app = web.Application()
    install(app, faults)
    app[STORE] = store
    app[RATE_LIMIT_RESPONSE] = lambda request, retry_after: _throttle(retry_after or 1.0)

    def begin(request: web.Request, method: str) -> tuple[str, web.Response | None]:
        """Checks every method shares: site, quota, backoff. The site, or an error response."""
        now = time.monotonic()
        blocked = store.blocked_until.get(method, 0.0)
        if now < blocked:
            store.violations += 1
            return "", _throttle(blocked - now)
        key = request.query.get("key", "")
        if key:
            store.keys_seen.append(key)
        who = "key" if key else "ip"
        store.quota_used[who] += 1
        quota = store.quota_with_key if key else store.quota_without_key
        if store.quota_used[who] > quota:
            return "", _throttle(3600)
        site = request.query.get("site", "")
        if not site:
            return "", _error(400, 400, "bad_parameter", "site is required")
        if site not in store.questions:
            return "", _error(400, 400, "bad_parameter", f"No site found for name `{site}`")
        filter_ = request.query.get("filter", "default")
        if filter_ not in ("default", "withbody", "none", "total"):
            return "", _error(400, 400, "bad_parameter", "filter is invalid")
        return site, None

    def wrapper(request: web.Request, method: str, items: list[dict[str, Any]]) -> web.Response:
        query = request.query
        try:
            page = _int(query, "page", 1) or 1
            pagesize = _int(query, "pagesize", 30) or 30
        except _BadParameter as error:
            return _error(400, 400, "bad_parameter", f"{error} is invalid")
        if pagesize > 100 or pagesize < 0 or page < 1:
            return _error(400, 400, "bad_parameter", "pagesize is out of range")
        with_body = query.get("filter") == "withbody"
        chunk = items[(page - 1) * pagesize : page * pagesize]
        if not with_body:
            chunk = [{k: v for k, v in item.items() if k != "body"} for item in chunk]
        who = "key" if query.get("key") else "ip"
        quota = store.quota_with_key if who == "key" else store.quota_without_key
        body: dict[str, Any] = {
            "items": chunk,
            "has_more": page * pagesize < len(items),
            "quota_max": quota,
            "quota_remaining": max(0, quota - store.quota_used[who]),
        }
        store.calls[method] += 1
        if store.backoff_every and store.calls[method] % store.backoff_every == 0:
            body["backoff"] = store.backoff_seconds
            store.blocked_until[method] = time.monotonic() + store.backoff_seconds
        if query.get("filter") == "total":
            body["total"] = len(items)
        response = web.json_response(body)
        response.enable_compression(ContentCoding.gzip)
        return response

    def ordered(request: web.Request, items: list[dict[str, Any]], default: str) -> list[Any]:
        query = request.query
        sort = query.get("sort", default)
        if sort not in SORT_FIELDS:
            raise _BadParameter("sort")
        field = SORT_FIELDS[sort]
        low, high = _int(query, "min"), _int(query, "max")
        start, end = _int(query, "fromdate"), _int(query, "todate")
        chosen = [
            item
            for item in items
            if (low is None or item[field] >= low)
            and (high is None or item[field] <= high)
            and (start is None or item["creation_date"] >= start)
            and (end is None or item["creation_date"] <= end)
        ]
        descending = query.get("order", "desc") != "asc"
        id_field = "answer_id" if "answer_id" in (chosen[0] if chosen else {}) else "question_id"
        chosen.sort(key=lambda i: (i[field], i[id_field]), reverse=descending)
        return [copy.deepcopy(item) for item in chosen]

    async def questions(request: web.Request) -> web.Response:
        site, refused = begin(request, "questions")
        if refused is not None:
            return refused
        tagged = [t for t in request.query.get("tagged", "").split(";") if t]
        items = [
            q
            for q in store.questions[site].values()
            if all(tag in q.get("tags", []) for tag in tagged)
        ]
        try:
            return wrapper(request, "questions", ordered(request, items, "activity"))
        except _BadParameter as error:
            return _error(400, 400, "bad_parameter", f"{error} is invalid")

    async def answers(request: web.Request) -> web.Response:
        site, refused = begin(request, "questions/answers")
        if refused is not None:
            return refused
        try:
            ids = {int(i) for i in request.match_info["ids"].split(";") if i}
        except ValueError:
            return _error(400, 400, "bad_parameter", "ids is invalid")
        if not ids or len(ids) > 100:
            return _error(400, 400, "bad_parameter", "ids must hold 1 to 100 ids")
        items = [a for a in store.answers[site].values() if a["question_id"] in ids]
        try:
            return wrapper(request, "questions/answers", ordered(request, items, "activity"))
        except _BadParameter as error:
            return _error(400, 400, "bad_parameter", f"{error} is invalid")

    async def no_method(request: web.Request) -> web.Response:
        return _error(404, 404, "no_method", "no method found with this name")

    app.router.add_get("/2.3/questions", questions)
    app.router.add_get("/2.3/questions/{ids}/answers", answers)
    app.router.add_get("/2.3/{tail:.*}", no_method)
    return app


def point(config: Config, url: str) -> Config:
    """Every Stack Exchange source aimed at this emulator."""
    from collector.sources.config import StackExchangeSourceConfig

    return aim_sources(config, StackExchangeSourceConfig, base_url=f"{url}/2.3")
