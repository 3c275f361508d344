"""GitHub: JSON Resume files found by repository and code searches.

Each configured search is a stream (`repositories:{q}`, `code:{q}`). A pass:

1. plans the search: a probe reads `total_count`; above `search_cap` (GitHub's 1000) and with
   `split_queries`, the query is split into `created:` ranges (repositories) or `size:` ranges
   (code) by halving until each part fits; without it, only the first 1000 are read (logged);
2. reads each part's pages by following the `Link` header's `rel="next"` (never building page
   URLs), and for each hit reads the file through `/repos/{owner}/{repo}/contents/{path}`
   (base64 inline; through `download_url` when the file is too large to inline);
3. yields one batch per search page: one record per JSON Resume file (payload: the parsed
   `resume.json`), with `meta["person_names"]` from the owner's login, profile name and
   `basics.name`.

Incremental: repository searches add `pushed:>{start of the last complete pass}`; every file's
ETag is saved with the batch (a cursor stream `etag:{repo}/{path}`), so an unchanged file is a
`304` that costs no quota. The cursor of a search (`since`, the parts still `pending`, the `next`
page URL) is saved after every page: a restart resumes on the page it stopped at.

The token (`Authorization: Bearer`, from `token_env`) is sent only to `base_url`'s origin; rate
limits are handled by the shared client per resource (`core`, `search`, `code_search`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec

from collector.http import (
    HttpError,
    HttpResponse,
    MalformedResponse,
    next_link,
    origin_of,
)
from collector.licences import spdx
from collector.ratelimit import QuotaExhausted
from collector.reporting import Report
from collector.sources.archive import ArchivedResponse, ArchiveEntry, RawArchive, archived
from collector.sources.base import JsonCursor, SourceBatch, SourceContext
from collector.sources.config import GitHubSourceConfig
from processors.records import Drop, RawRecord

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
DATASET = "github/json-resume"
FIRST_DAY = dt.date(2008, 1, 1)  # nothing on GitHub was created before it
MAX_CODE_SIZE = 384_000  # bytes: GitHub's code search indexes smaller files only
ETAG_PREFIX = "etag:"


class SearchCursor(JsonCursor, frozen=True):
    since: str = ""  # ISO time the last complete pass started (repositories: pushed:>since)
    started: str = ""  # when the pass in progress started
    # the query parts this pass has still to read, current first
    pending: list[str] = msgspec.field(default_factory=list)
    next: str = ""  # the next page of pending[0], from its Link header


class _File(msgspec.Struct):
    repo: str
    path: str
    url: str
    login: str
    license: str
    html_url: str = ""


class GitHubSource:
    def __init__(self, config: GitHubSourceConfig, context: SourceContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self.log = context.log
        self.base = config.base_url.rstrip("/")
        self.origin = origin_of(self.base)
        self.token = os.environ.get(config.token_env, "") if config.token_env else ""
        if not self.token:
            self.log.info("github_no_token", env=config.token_env, note="code search needs one")
        self.client = context.http_client(config, headers=API_HEADERS)
        self.archive = RawArchive(context.raw_dir, config.name, config.archive, context)
        self.etags: dict[str, str] = {}
        self.new_etags: dict[str, str] = {}
        self.profiles: dict[str, str] = {}
        self.seen: set[str] = set()  # files read in this pass (searches overlap)

    # --- the pass ------------------------------------------------------------------------

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        self.etags = {
            k.removeprefix(ETAG_PREFIX): v for k, v in cursors.items() if k.startswith(ETAG_PREFIX)
        }
        self.seen = set()
        searches = [("repositories", q) for q in self.config.queries]
        searches += [("code", q) for q in self.config.code_queries]
        for kind, query in searches:
            stream = f"{kind}:{query}"
            try:
                async for batch in self._search(kind, query, stream, cursors.get(stream, "")):
                    yield batch
                    if self.context.stop.is_set():
                        return
            except QuotaExhausted as error:
                self.log.warning("github_quota_exhausted", reason=str(error))
                return

    async def _search(
        self, kind: str, query: str, stream: str, saved: str
    ) -> AsyncIterator[SourceBatch]:
        cursor = SearchCursor.decode(saved)
        if not cursor.pending:  # a new pass: plan it
            started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            q = query
            if kind == "repositories" and cursor.since:
                q = f"{q} pushed:>{cursor.since}"
            try:
                parts = await self._plan(kind, q)
            except HttpError as error:
                yield self._failed(stream, error)
                return
            cursor = SearchCursor(since=cursor.since, started=started, pending=parts)
        while cursor.pending and not self.context.stop.is_set():
            part = cursor.pending[0]
            url = cursor.next or self._search_url(kind, part, self.config.per_page)
            records: list[RawRecord] = []
            drops: list[Drop] = []
            try:
                response, data = await self.client.get_json(
                    url, headers=self._auth(url), limit_key=_resource(kind)
                )
                items = data.get("items") if isinstance(data, dict) else None
                if not isinstance(items, list):
                    raise MalformedResponse(response.status, url, "no items in a search result")
            except MalformedResponse as error:
                # Counted; without the page its Link is lost too, so this part ends here.
                drops.append(Drop(self.name, DATASET, url, "malformed_response", error.message))
                cursor = msgspec.structs.replace(cursor, pending=cursor.pending[1:], next="")
            except HttpError as error:
                yield self._failed(stream, error)
                return
            else:
                for item in items:
                    found, lost = await self._hit(kind, item)
                    records += found
                    drops += lost
                link = response.headers.get("link", "")
                following = next_link(link, self.origin)
                if not following and 'rel="next"' in link:
                    self.log.warning("github_link_elsewhere", link=link)
                if following:
                    cursor = msgspec.structs.replace(cursor, next=following)
                else:
                    cursor = msgspec.structs.replace(cursor, pending=cursor.pending[1:], next="")
            if not cursor.pending:  # the pass is complete
                cursor = SearchCursor(since=cursor.started)
            cursors = {stream: cursor.encode()}
            cursors.update({f"{ETAG_PREFIX}{k}": v for k, v in self.new_etags.items()})
            self.new_etags = {}
            self.log.info(
                "github_page",
                stream=stream,
                records=len(records),
                drops=len(drops),
                parts_left=len(cursor.pending),
            )
            yield SourceBatch(records, drops, cursors)

    def _failed(self, stream: str, error: HttpError) -> SourceBatch:
        self.log.error("github_search_failed", stream=stream, error=str(error))
        return SourceBatch(
            [], [Drop(self.name, DATASET, stream, "request_failed", str(error)[:300])]
        )

    def _search_url(self, kind: str, q: str, per_page: int) -> str:
        return f"{self.base}/search/{kind}?{urlencode({'q': q, 'per_page': per_page})}"

    async def _total(self, kind: str, q: str) -> int:
        url = self._search_url(kind, q, 1)
        _, data = await self.client.get_json(
            url, headers=self._auth(url), limit_key=_resource(kind)
        )
        total = data.get("total_count") if isinstance(data, dict) else None
        return total if isinstance(total, int) else 0

    async def _plan(self, kind: str, q: str) -> list[str]:
        """The query, or its parts when it has more results than a search can reach."""
        cap = self.config.search_cap
        total = await self._total(kind, q)
        if total <= cap:
            return [q]
        if not self.config.split_queries:
            self.log.warning("github_search_capped", query=q, total=total, reachable=cap)
            return [q]
        if kind == "repositories":
            low, high = FIRST_DAY.toordinal(), dt.datetime.now(dt.UTC).date().toordinal()
        else:
            low, high = 0, MAX_CODE_SIZE
        parts = await self._split(kind, q, low, high)
        self.log.info("github_search_split", query=q, total=total, parts=len(parts))
        return parts

    async def _split(self, kind: str, q: str, low: int, high: int) -> list[str]:
        part = f"{q} {_range(kind, low, high)}"
        total = await self._total(kind, part)
        if total == 0:
            return []
        if total <= self.config.search_cap or low >= high:
            if total > self.config.search_cap:
                self.log.warning("github_search_capped", query=part, total=total)
            return [part]
        middle = (low + high) // 2
        return await self._split(kind, q, low, middle) + await self._split(
            kind, q, middle + 1, high
        )

    # --- files ---------------------------------------------------------------------------

    async def _hit(self, kind: str, item: Any) -> tuple[list[RawRecord], list[Drop]]:
        if not isinstance(item, dict):
            return [], [Drop(self.name, DATASET, "?", "malformed_item")]
        if kind == "code":
            repository = item.get("repository") or {}
            repo, path = str(repository.get("full_name", "")), str(item.get("path", ""))
            url = str(item.get("url") or "")
            if not url or origin_of(url) != self.origin:
                url = self._contents_url(repo, path)
            files = [_File(repo, path, url, _login(repository), _license(repository, self.config))]
        else:
            repository = item
            repo = str(item.get("full_name", ""))
            files = [
                _File(
                    repo,
                    path,
                    self._contents_url(repo, path),
                    _login(item),
                    _license(item, self.config),
                )
                for path in self.config.resume_paths
            ]
        if not repo:
            return [], [Drop(self.name, DATASET, "?", "malformed_item")]
        records: list[RawRecord] = []
        drops: list[Drop] = []
        for file in files:
            record, drop = await self._file(file, optional=kind == "repositories")
            if record is not None:
                records.append(record)
            if drop is not None:
                drops.append(drop)
        return records, drops

    def _contents_url(self, repo: str, path: str) -> str:
        return f"{self.base}/repos/{repo}/contents/{path.lstrip('/')}"

    async def _file(self, file: _File, optional: bool) -> tuple[RawRecord | None, Drop | None]:
        key = f"{file.repo}/{file.path}"
        if key in self.seen:
            return None, None  # another search of this pass found it first
        self.seen.add(key)
        headers = self._auth(file.url)
        if key in self.etags:
            headers["If-None-Match"] = self.etags[key]
        try:
            response, data = await self.client.get_json(file.url, headers=headers, limit_key="core")
        except HttpError as error:
            if error.status == 404 and optional:
                return None, None  # this repository has no such file
            reason = (
                "malformed_response" if isinstance(error, MalformedResponse) else "file_unavailable"
            )
            return None, Drop(self.name, DATASET, key, reason, str(error)[:300])
        if response.not_modified:
            return None, None  # unchanged since it was written: nothing to do, no quota spent
        if not isinstance(data, dict) or data.get("type", "file") != "file":
            return None, Drop(self.name, DATASET, key, "not_a_file")
        responses = [archived(response, None, headers)]
        content = _decode_content(data)
        download = str(data.get("download_url") or "")
        if content is None and download:
            try:
                raw = await self.client.get(
                    download, headers=self._auth(download), limit_key="core"
                )
            except HttpError as error:
                return None, Drop(self.name, DATASET, key, "file_unavailable", str(error)[:300])
            responses.append(archived(raw, None, self._auth(download)))
            content = raw.body
        if content is None:
            return None, Drop(self.name, DATASET, key, "file_unavailable", "no content")
        profile = await self._profile(file.login)
        record, drop = self._record(file, content, profile)
        if record is not None:
            note = msgspec.to_builtins(file) | {"profile_name": profile}
            await self.archive.save("resume_file", responses, note)
        etag = response.headers.get("etag")
        if etag:
            self.new_etags[key] = etag
        return record, drop

    async def _profile(self, login: str) -> str:
        if not login or not self.config.fetch_profiles:
            return ""
        if login not in self.profiles:
            url = f"{self.base}/users/{login}"
            try:
                _, data = await self.client.get_json(url, headers=self._auth(url), limit_key="core")
                name = data.get("name") if isinstance(data, dict) else None
                self.profiles[login] = name if isinstance(name, str) else ""
            except HttpError as error:
                self.log.info("github_profile_unavailable", login=login, error=str(error))
                self.profiles[login] = ""
        return self.profiles[login]

    def _record(
        self, file: _File, content: bytes, profile: str
    ) -> tuple[RawRecord | None, Drop | None]:
        key = f"{file.repo}/{file.path}"
        try:
            resume = msgspec.json.decode(content)
        except (msgspec.DecodeError, UnicodeDecodeError) as error:
            return None, Drop(self.name, DATASET, key, "malformed_json", str(error)[:200])
        if not isinstance(resume, dict) or not ({"basics", "work"} & set(resume)):
            return None, Drop(self.name, DATASET, key, "not_json_resume")
        basics = resume.get("basics")
        name = basics.get("name") if isinstance(basics, dict) else None
        names = [file.login, profile, name if isinstance(name, str) else ""]
        return (
            RawRecord(
                source=self.name,
                dataset=DATASET,
                id=key,
                payload=resume,
                meta={
                    # A resume in its owner's repository is about its author: a licence that
                    # asks for credit cannot be honoured without naming them (processors/credit.py).
                    "about_author": True,
                    "person_names": list(dict.fromkeys(n for n in names if n)),
                    "repo": file.repo,
                    "path": file.path,
                    "link": file.html_url or f"https://github.com/{file.repo}",
                    "url": file.html_url or f"https://github.com/{file.repo}",
                    "license": spdx(file.license) or file.license,
                    "authors": [{"name": file.login, "url": f"https://github.com/{file.login}"}]
                    if file.login
                    else [],
                },
            ),
            None,
        )

    def records_from_archive(self, entry: ArchiveEntry) -> tuple[list[RawRecord], list[Drop]]:
        note = dict(entry.note)
        profile = str(note.pop("profile_name", ""))
        file = msgspec.convert(note, _File)
        content = _archived_content(entry.responses)
        if content is None:
            key = f"{file.repo}/{file.path}"
            return [], [Drop(self.name, DATASET, key, "archive_corrupt", "no file content")]
        record, drop = self._record(file, content, profile)
        return ([record] if record else []), ([drop] if drop else [])

    def _auth(self, url: str) -> dict[str, str]:
        """The token, for our API's origin only (never to a host a response pointed at)."""
        if self.token and origin_of(url) == self.origin:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def report(self) -> Report:
        return self.client.report()

    async def close(self) -> None:
        await self.client.close()


def _resource(kind: str) -> str:
    return "code_search" if kind == "code" else "search"


def _range(kind: str, low: int, high: int) -> str:
    if kind == "repositories":
        a, b = dt.date.fromordinal(low), dt.date.fromordinal(high)
        return f"created:{a.isoformat()}..{b.isoformat()}"
    return f"size:{low}..{high}"


def _login(repository: Any) -> str:
    owner = repository.get("owner") if isinstance(repository, dict) else None
    login = owner.get("login") if isinstance(owner, dict) else None
    return login if isinstance(login, str) else ""


def _license(repository: Any, config: GitHubSourceConfig) -> str:
    found = repository.get("license") if isinstance(repository, dict) else None
    spdx = found.get("spdx_id") if isinstance(found, dict) else None
    return spdx if isinstance(spdx, str) and spdx != "NOASSERTION" else config.license


def _decode_content(data: dict[str, Any]) -> bytes | None:
    content = data.get("content")
    if data.get("encoding") == "base64" and isinstance(content, str) and content:
        try:
            return base64.b64decode(content)
        except (binascii.Error, ValueError):
            return None
    return None


def _archived_content(responses: list[ArchivedResponse]) -> bytes | None:
    if len(responses) > 1:
        return responses[1].body.encode("utf-8")
    if not responses:
        return None
    data = responses[0].json()
    return _decode_content(data) if isinstance(data, dict) else None


__all__ = ["GitHubSource", "HttpResponse", "SearchCursor"]
