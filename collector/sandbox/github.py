"""A local GitHub REST API: search, contents, users, with rate limits per resource.

What it reproduces (shared/API-CONTRACTS.md, checked against GitHub's REST docs):

- `GET /search/repositories` and `GET /search/code` with `q`, `per_page` (max 100), `page`;
  body `{"total_count", "incomplete_results", "items"}`; a `Link` header with `next`, `last`,
  `prev`, `first`; only the first `search_cap` (1000) results are reachable: a page past it is
  a 422. Qualifiers understood: `filename:`, `path:`, `extension:`, `topic:`, `user:`,
  `language:`, `created:`, `pushed:` (dates: `A..B`, `>A`, `>=A`, `<A`, `<=A`) and `size:`
  (numbers, same forms); other words match names, descriptions, paths and contents.
  Code search needs a token (401 without).
- `GET /repos/{owner}/{repo}/contents/{path}`: base64 content up to `inline_limit` bytes,
  above it `content: ""`, `encoding: "none"` and a `download_url` (served at `/raw/...`);
  an `ETag`, and `304 Not Modified` for `If-None-Match` (which costs no quota).
- `GET /users/{login}`: `login`, `name`.
- Every response carries `x-ratelimit-limit/remaining/used/reset/resource` for its resource
  (`core`, `search`, `code_search`); an exhausted resource answers `403` with
  `x-ratelimit-remaining: 0` until its window resets. Window lengths and limits are options
  (tests use short windows). Secondary limits (403/429 with or without `retry-after`) come
  from the fault middleware's rules, and as GitHub words them from `secondary_refusals`: each
  message queued there answers one request with a `403`, that message and no `Retry-After`,
  while `x-ratelimit-remaining` is still above 0 (the abuse-detection answer, as PyGithub's
  `Requester.isSecondaryRateLimitError` and its tests know it).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from collector.sandbox import aim_sources
from collector.sandbox.faults import FaultConfig, install

if TYPE_CHECKING:
    from collector.config import Config

DATA_DIR = Path(__file__).parent / "data" / "github"
# What GitHub says when a secondary limit (once "abuse detection") refuses a request.
ABUSE_DETECTION = (
    "You have triggered an abuse detection mechanism. Please wait a few minutes before you try"
    " again."
)
SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
SECONDARY_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
_RANGE = re.compile(r"^(?P<op>>=|<=|>|<)?(?P<a>[^.]+?)(?:\.\.(?P<b>.+))?$")


class RateWindow:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.used = 0
        self.reset_at = time.time() + seconds

    def headers(self, resource: str) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-reset": str(math.ceil(self.reset_at)),
            "x-ratelimit-resource": resource,
        }

    def take(self) -> bool:
        now = time.time()
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.seconds
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class GitHubStore:
    """Repositories, their files, users, and what the emulator counted."""

    def __init__(
        self,
        data_dir: Path = DATA_DIR,
        *,
        search_cap: int = 1000,
        inline_limit: int = 1024 * 1024,
        core_limit: int = 5000,
        search_limit: int = 30,
        code_search_limit: int = 10,
        window_seconds: float = 60.0,
        core_window_seconds: float = 3600.0,
    ) -> None:
        meta = json.loads((data_dir / "repositories.json").read_text(encoding="utf-8"))
        self.repos: dict[str, dict[str, Any]] = {r["full_name"]: r for r in meta["repositories"]}
        self.files: dict[tuple[str, str], bytes] = {}
        for repo in self.repos:
            folder = data_dir / repo
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    self.files[(repo, path.relative_to(folder).as_posix())] = path.read_bytes()
        self.search_cap = search_cap
        self.inline_limit = inline_limit
        self.windows = {
            "core": RateWindow(core_limit, core_window_seconds),
            "search": RateWindow(search_limit, window_seconds),
            "code_search": RateWindow(code_search_limit, window_seconds),
        }
        self.refused: Counter[str] = Counter()  # resource -> requests refused as exhausted
        # messages of secondary-limit refusals to answer next, one request each
        self.secondary_refusals: list[str] = []
        self.secondary_refused = 0
        self.not_modified = 0
        self.tokens_seen: list[str] = []

    def add_file(self, repo: str, path: str, content: bytes, **repo_fields: Any) -> None:
        owner = repo.split("/")[0]
        now = int(time.time())
        self.repos.setdefault(
            repo,
            {
                "full_name": repo,
                "owner": {"login": owner, "name": None},
                "description": "",
                "topics": [],
                "created": now,
                "pushed": now,
                "size": 1,
                "stars": 0,
                "license": None,
                "language": "JSON",
            },
        ).update(repo_fields)
        self.files[(repo, path)] = content


STORE = web.AppKey("github_store", GitHubStore)


def _matches_range(value: float, spec: str, parse: Any) -> bool:
    match = _RANGE.match(spec)
    if not match:
        return False
    op, a, b = match.group("op"), match.group("a"), match.group("b")
    if b is not None:
        low = -math.inf if a == "*" else parse(a)
        high = math.inf if b == "*" else parse(b, end=True)
        return low <= value <= high
    x = parse(a, end=op in ("<=", ">"))
    checks: dict[str | None, bool] = {
        ">": value > x,
        ">=": value >= x,
        "<": value < x,
        "<=": value <= x,
        None: parse(a) <= value <= parse(a, end=True),
    }
    return checks[op]


def _parse_date(text: str, end: bool = False) -> float:
    if "T" in text:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    day = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    return day + 86399.999 if end else day


def _parse_number(text: str, end: bool = False) -> float:
    return float(text)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() + '"'


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    store = options.pop("store", None) or GitHubStore(**options)
    app = web.Application()
    install(app, faults)
    app[STORE] = store

    def base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def token(request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        for prefix in ("Bearer ", "token "):
            if header.startswith(prefix):
                store.tokens_seen.append(header[len(prefix) :])
                return header[len(prefix) :]
        return ""

    def limited(resource: str) -> tuple[dict[str, str], web.Response | None]:
        window = store.windows[resource]
        if store.secondary_refusals:
            store.secondary_refused += 1
            return window.headers(resource), web.json_response(
                {"message": store.secondary_refusals.pop(0), "documentation_url": SECONDARY_DOCS},
                status=403,
                headers=window.headers(resource),
            )
        allowed = window.take()
        headers = window.headers(resource)
        if allowed:
            return headers, None
        store.refused[resource] += 1
        return headers, web.json_response(
            {
                "message": f"API rate limit exceeded for {resource}.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            status=403,
            headers=headers,
        )

    def repo_item(request: web.Request, repo: dict[str, Any]) -> dict[str, Any]:
        owner = repo["owner"]["login"]
        license_ = repo.get("license")
        return {
            "id": int(hashlib.md5(repo["full_name"].encode()).hexdigest()[:8], 16),
            "name": repo["full_name"].split("/")[1],
            "full_name": repo["full_name"],
            "owner": {"login": owner, "type": "User", "url": f"{base(request)}/users/{owner}"},
            "html_url": f"https://github.com/{repo['full_name']}",
            "description": repo.get("description"),
            "url": f"{base(request)}/repos/{repo['full_name']}",
            "created_at": _iso(repo["created"]),
            "pushed_at": _iso(repo["pushed"]),
            "size": repo["size"],
            "stargazers_count": repo["stars"],
            "language": repo.get("language"),
            "topics": repo.get("topics", []),
            "license": {"spdx_id": license_, "key": license_.lower()} if license_ else None,
            "default_branch": "main",
        }

    def repo_matches(repo: dict[str, Any], terms: list[str]) -> bool:
        for term in terms:
            key, _, value = term.partition(":")
            if value and key == "topic":
                ok = value in repo.get("topics", [])
            elif value and key == "user":
                ok = repo["owner"]["login"] == value
            elif value and key == "language":
                ok = (repo.get("language") or "").lower() == value.lower()
            elif value and key == "created":
                ok = _matches_range(repo["created"], value, _parse_date)
            elif value and key == "pushed":
                ok = _matches_range(repo["pushed"], value, _parse_date)
            elif value and key == "size":
                ok = _matches_range(repo["size"], value, _parse_number)
            elif value and key in ("in", "sort", "is", "fork", "archived"):
                ok = True
            else:
                text = f"{repo['full_name']} {repo.get('description') or ''}".lower()
                ok = term.lower().strip('"') in text
            if not ok:
                return False
        return True

    def file_matches(repo: str, path: str, content: bytes, terms: list[str]) -> bool:
        name = path.rsplit("/", 1)[-1]
        for term in terms:
            key, _, value = term.partition(":")
            if value and key == "filename":
                ok = name == value
            elif value and key == "path":
                ok = path.startswith(value.strip("/")) or value.strip("/") in path
            elif value and key == "extension":
                ok = name.endswith(f".{value}")
            elif value and key in ("user", "org"):
                ok = repo.split("/")[0] == value
            elif value and key == "repo":
                ok = repo == value
            elif value and key == "size":
                ok = _matches_range(len(content), value, _parse_number)
            elif value and key in ("in", "language"):
                ok = True
            else:
                ok = term.lower().strip('"').encode() in content.lower() or term.lower() in path
            if not ok:
                return False
        return True

    def search_page(
        request: web.Request, items: list[dict[str, Any]], headers: dict[str, str]
    ) -> web.Response:
        query = request.query
        try:
            per_page = min(100, max(1, int(query.get("per_page", "30"))))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return web.json_response({"message": "Validation Failed"}, status=422, headers=headers)
        reachable = min(len(items), store.search_cap)
        if (page - 1) * per_page >= store.search_cap and items:
            return web.json_response(
                {"message": "Only the first 1000 search results are available"},
                status=422,
                headers=headers,
            )
        chunk = items[(page - 1) * per_page : min(page * per_page, reachable)]
        last = max(1, math.ceil(reachable / per_page))
        links = []

        def link(n: int, rel: str) -> str:
            params = dict(query)
            params["page"] = str(n)
            return f'<{base(request)}{request.path}?{urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if links:
            headers = {**headers, "Link": ", ".join(links)}
        body = {"total_count": len(items), "incomplete_results": False, "items": chunk}
        return web.json_response(body, headers=headers)

    async def search_repositories(request: web.Request) -> web.Response:
        headers, refused = limited("search")
        if refused is not None:
            return refused
        token(request)
        q = request.query.get("q", "").strip()
        if not q:
            return web.json_response({"message": "Validation Failed"}, status=422, headers=headers)
        terms = q.split()
        found = [r for r in store.repos.values() if repo_matches(r, terms)]
        found.sort(key=lambda r: (-r["stars"], r["full_name"]))
        return search_page(request, [repo_item(request, r) for r in found], headers)

    async def search_code(request: web.Request) -> web.Response:
        if not token(request):
            return web.json_response(
                {"message": "Requires authentication", "documentation_url": "..."}, status=401
            )
        headers, refused = limited("code_search")
        if refused is not None:
            return refused
        q = request.query.get("q", "").strip()
        if not q:
            return web.json_response({"message": "Validation Failed"}, status=422, headers=headers)
        terms = q.split()
        items = []
        for (repo, path), content in sorted(store.files.items()):
            if file_matches(repo, path, content, terms):
                items.append(
                    {
                        "name": path.rsplit("/", 1)[-1],
                        "path": path,
                        "sha": _etag(content).strip('"'),
                        "url": f"{base(request)}/repos/{repo}/contents/{path}?ref=main",
                        "git_url": f"{base(request)}/repos/{repo}/git/blobs/x",
                        "html_url": f"https://github.com/{repo}/blob/main/{path}",
                        "repository": repo_item(request, store.repos[repo]),
                        "score": 1.0,
                    }
                )
        return search_page(request, items, headers)

    async def contents(request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        path = request.match_info["path"].strip("/")
        content = store.files.get((repo, path))
        window = store.windows["core"]
        if content is not None and request.headers.get("If-None-Match") == _etag(content):
            store.not_modified += 1  # conditional hits cost no quota
            return web.Response(
                status=304, headers={"ETag": _etag(content), **window.headers("core")}
            )
        headers, refused = limited("core")
        if refused is not None:
            return refused
        token(request)
        if content is None:
            entries = [
                {"type": "file", "name": p.rsplit("/", 1)[-1], "path": p}
                for (r, p) in store.files
                if r == repo and p.startswith(f"{path}/" if path else "")
            ]
            if repo in store.repos and entries:
                return web.json_response(entries, headers=headers)
            return web.json_response({"message": "Not Found"}, status=404, headers=headers)
        raw = f"{base(request)}/raw/{repo}/main/{path}"
        body: dict[str, Any] = {
            "type": "file",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": _etag(content).strip('"'),
            "size": len(content),
            "url": f"{base(request)}/repos/{repo}/contents/{path}?ref=main",
            "html_url": f"https://github.com/{repo}/blob/main/{path}",
            "download_url": raw,
        }
        if len(content) <= store.inline_limit:
            encoded = base64.encodebytes(content).decode()  # wrapped at 76 columns, as GitHub
            body.update(encoding="base64", content=encoded)
        else:
            body.update(encoding="none", content="")
        return web.json_response(body, headers={**headers, "ETag": _etag(content)})

    async def raw_file(request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        content = store.files.get((repo, request.match_info["path"]))
        if content is None:
            return web.Response(status=404, text="404: Not Found")
        return web.Response(body=content, content_type="text/plain")

    async def user(request: web.Request) -> web.Response:
        headers, refused = limited("core")
        if refused is not None:
            return refused
        login = request.match_info["login"]
        for repo in store.repos.values():
            if repo["owner"]["login"] == login:
                body = {"login": login, "type": "User", "name": repo["owner"].get("name")}
                return web.json_response(body, headers=headers)
        return web.json_response({"message": "Not Found"}, status=404, headers=headers)

    async def rate_limit(request: web.Request) -> web.Response:
        resources = {
            name: {
                "limit": w.limit,
                "remaining": max(0, w.limit - w.used),
                "used": w.used,
                "reset": math.ceil(w.reset_at),
            }
            for name, w in store.windows.items()
        }
        return web.json_response({"resources": resources, "rate": resources["core"]})

    app.router.add_get("/search/repositories", search_repositories)
    app.router.add_get("/search/code", search_code)
    app.router.add_get("/repos/{owner}/{repo}/contents/{path:.*}", contents)
    app.router.add_get("/raw/{owner}/{repo}/{ref}/{path:.*}", raw_file)
    app.router.add_get("/users/{login}", user)
    app.router.add_get("/rate_limit", rate_limit)
    return app


def point(config: Config, url: str) -> Config:
    """Every GitHub source aimed at this emulator."""
    from collector.sources.config import GitHubSourceConfig

    return aim_sources(config, GitHubSourceConfig, base_url=url)
