"""The Hub's HTTP routes: the endpoints the `huggingface_hub` client calls, over `HubRepos`.

Each handler records its request (`HubEmulator.requests`), meets the fault scripted for its
endpoint (`faults.py`), then reads or changes the repos (`repos.py`) and answers as the Hub
does; a refusal is a `HubError`, turned into its answer by one middleware.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from collector.sandbox.hub.errors import HubError
from collector.sandbox.hub.faults import Endpoint, FaultScript, HubFault
from collector.sandbox.hub.repos import (
    LFS_THRESHOLD,
    Commit,
    HubRepos,
    LfsObject,
    Repo,
    RepoKind,
    git_blob_oid,
    tree_oid,
)

_URL_KINDS: dict[str, RepoKind] = {"datasets": "dataset", "models": "model", "spaces": "space"}
_RESOLVE_PREFIX: dict[RepoKind, str] = {"dataset": "datasets/", "model": "", "space": "spaces/"}
LFS_JSON = "application/vnd.git-lfs+json"


class HubEmulator(HubRepos):
    """The Hub's repos served over HTTP, and the faults scripted for the next requests."""

    def __init__(
        self,
        *,
        user: str = "emulator",
        token: str | None = None,
        tree_page_size: int = 1000,
        max_commits_per_hour: int | None = None,
        lfs_threshold: int = LFS_THRESHOLD,
        seed: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(user=user, lfs_threshold=lfs_threshold, seed=seed, clock=clock)
        self.token = token  # when set, the only accepted token; otherwise any bearer token
        self.tree_page_size = tree_page_size
        self.max_commits_per_hour = max_commits_per_hour
        self.script = FaultScript()
        self.requests: list[tuple[str, str]] = []  # (endpoint, path) of every request served
        self.commit_times: dict[tuple[RepoKind, str], list[float]] = {}
        self._concurrent = 0

    @property
    def faults(self) -> list[HubFault]:
        """The scripted faults not used up yet."""
        return self.script.pending

    def inject(self, *faults: HubFault) -> None:
        self.script.inject(*faults)

    def release(self) -> None:
        """Let every held request go (called when the server shuts down)."""
        self.script.release()

    # --- the app ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new app serving this Hub (`install` a fault middleware in front if needed)."""
        app = web.Application(middlewares=[self._errors], client_max_size=2**31)
        app[HUB] = self
        kinds = "{kind:datasets|models|spaces}"
        repo = "{owner}/{name}"
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_get(f"/api/{kinds}/{repo}", self._info)
        app.router.add_get(f"/api/{kinds}/{repo}/revision/{{rev}}", self._info)
        app.router.add_get(f"/api/{kinds}/{repo}/tree/{{rev}}", self._tree)
        app.router.add_get(f"/api/{kinds}/{repo}/tree/{{rev}}/{{path:.+}}", self._tree)
        app.router.add_post(f"/api/{kinds}/{repo}/paths-info/{{rev}}", self._paths_info)
        app.router.add_post(f"/api/{kinds}/{repo}/preupload/{{rev}}", self._preupload)
        app.router.add_post(f"/api/{kinds}/{repo}/commit/{{rev}}", self._commit)
        app.router.add_get(f"/api/{kinds}/{repo}/commits/{{rev}}", self._commits)
        for prefix in ("/datasets", "/spaces", ""):
            route = f"{prefix}/{repo}/resolve/{{rev}}/{{path:.+}}"
            app.router.add_route("GET", route, self._resolve)
            app.router.add_route("HEAD", route, self._resolve)
            lfs = f"{prefix}/{{owner}}/{{name}}.git/info/lfs/objects"
            app.router.add_post(f"{lfs}/batch", self._lfs_batch)
            app.router.add_post(f"{lfs}/verify", self._lfs_verify)
        app.router.add_put(f"/lfs-storage/{kinds}/{repo}/{{oid}}", self._lfs_upload)

        async def on_shutdown(_: web.Application) -> None:
            self.release()

        app.on_shutdown.append(on_shutdown)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except HubError as error:
            return error.response()

    # --- helpers ----------------------------------------------------------------------------

    async def _enter(self, request: web.Request, endpoint: Endpoint) -> HubFault | None:
        """Record the request; meet its scripted fault (`FaultScript.meet`)."""
        self.requests.append((endpoint, request.path))
        return await self.script.meet(endpoint)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return False
        return self.token is None or header[7:].strip() == self.token

    def _require_write(self, request: web.Request) -> None:
        if not self._authorized(request):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, request: web.Request) -> Repo:
        kind = _URL_KINDS[request.match_info.get("kind", "datasets")]
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get((kind, repo_id))
        if repo is None or (repo.private and not self._authorized(request)):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _revision(self, repo: Repo, request: web.Request) -> Commit:
        revision = request.match_info.get("rev", "main")
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _sizes(self, oid: str, sha_key: str) -> dict[str, Any]:
        """`size` of a file and, when it is in LFS, `lfs` (its sha256 under `sha_key`: the tree
        says `oid`, an info sibling `sha256`)."""
        stored = self.pointers.get(oid)
        if stored is None:
            return {"size": len(self.blobs[oid])}
        pointer = len(self.blobs[oid])
        lfs = {sha_key: stored.sha256, "size": stored.size, "pointerSize": pointer}
        return {"size": stored.size, "lfs": lfs}

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        if path in commit.tree:
            oid = commit.tree[path]
            entry: dict[str, Any] = {"type": "file", "oid": oid, **self._sizes(oid, "oid")}
            entry["path"] = path
        else:
            inside = {
                p[len(path) + 1 :]: o for p, o in commit.tree.items() if p.startswith(path + "/")
            }
            entry = {"type": "directory", "oid": tree_oid(inside), "size": 0, "path": path}
        if expand:
            last = self.last_commit(repo, commit, path)
            entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.date)}
        return entry

    def _listing(self, commit: Commit, base: str, recursive: bool) -> list[str]:
        """Paths (files and folders) under `base`, sorted; folders end with no slash."""
        prefix = f"{base}/" if base else ""
        out: set[str] = set()
        for path in commit.tree:
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            if recursive:
                out.update(prefix + "/".join(rest[: i + 1]) for i in range(len(rest)))
            else:
                out.add(prefix + rest[0])
        return sorted(out)

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        oid = commit.tree.get("README.md")
        if oid is None:
            return None
        meta, _ = _front_matter(self.blobs[oid].decode("utf-8", "replace"))
        return meta

    # --- handlers ---------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        await self._enter(request, "create")
        self._require_write(request)
        body = await request.json()
        name = str(body.get("name") or "")
        owner = body.get("organization") or self.user
        kind: RepoKind = body.get("type") or "model"
        if not name or kind not in ("dataset", "model", "space"):
            raise HubError(400, "Invalid repo name or type")
        repo_id = f"{owner}/{name}"
        url = f"{_base(request)}/{_RESOLVE_PREFIX[kind]}{repo_id}"
        if (kind, repo_id) in self.repos:
            return web.json_response(
                {"error": f"You already created this {kind} repo", "url": url}, status=409
            )
        private = body.get("visibility") == "private" or bool(body.get("private"))
        self.create_repo(repo_id, kind, private=private)
        return web.json_response({"url": url, "name": repo_id, "id": repo_id})

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        await self._enter(request, "validate_yaml")
        body = await request.json()
        try:
            _front_matter(str(body.get("content", "")))
        except ValueError as error:
            return web.json_response(
                {"errors": [{"message": str(error)}], "warnings": []}, status=400
            )
        return web.json_response({"errors": [], "warnings": []})

    async def _info(self, request: web.Request) -> web.Response:
        await self._enter(request, "info")
        repo = self._repo(request)
        commit = self._revision(repo, request)
        blobs = request.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, oid in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(blobId=oid, **self._sizes(oid, "sha256"))
            siblings.append(sibling)
        return web.json_response(
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": _iso(commit.date),
                "createdAt": _iso(repo.created),
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "cardData": self._card_data(commit),
                "siblings": siblings,
                "usedStorage": sum(len(self.content(repo, o)) for o in set(commit.tree.values())),
            }
        )

    async def _tree(self, request: web.Request) -> web.Response:
        await self._enter(request, "tree")
        repo = self._repo(request)
        commit = self._revision(repo, request)
        base = request.match_info.get("path", "").strip("/")
        if (
            base
            and base not in commit.tree
            and not any(p.startswith(base + "/") for p in commit.tree)
        ):
            raise HubError(404, f"{base} does not exist on main", "EntryNotFound")
        if base in commit.tree:
            raise HubError(400, f"{base} is a file, not a folder")
        recursive = _truthy(request.query.get("recursive"))
        expand = _truthy(request.query.get("expand"))
        paths = self._listing(commit, base, recursive)
        size = min(self.tree_page_size, 50) if expand else self.tree_page_size
        start = _decode_cursor(request.query.get("cursor"))
        page = paths[start : start + size]
        headers = {}
        if start + size < len(paths):
            query = dict(request.query)
            query["cursor"] = _encode_cursor(start + size)
            url = request.url.with_query(query)
            next_url = f"{_base(request)}{url.raw_path_qs}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        entries = [self._entry(repo, commit, path, expand) for path in page]
        return web.json_response(entries, headers=headers)

    async def _paths_info(self, request: web.Request) -> web.Response:
        await self._enter(request, "paths_info")
        repo = self._repo(request)
        commit = self._revision(repo, request)
        form = await request.post()
        expand = _truthy(str(form.get("expand", "")))
        wanted = [str(p).strip("/") for p in form.getall("paths", [])]
        folders = {
            "/".join(p.split("/")[: i + 1]) for p in commit.tree for i in range(p.count("/"))
        }
        entries = [
            self._entry(repo, commit, path, expand)
            for path in wanted
            if path in commit.tree or path in folders
        ]
        return web.json_response(entries)

    async def _preupload(self, request: web.Request) -> web.Response:
        await self._enter(request, "preupload")
        self._require_write(request)
        repo = self._repo(request)
        commit = self._revision(repo, request)
        body = await request.json()
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "files must be a list")
        out = []
        for item in files:
            path = str(item.get("path", ""))
            try:
                sample = base64.b64decode(str(item.get("sample", "")), validate=True)
                size = int(item.get("size", 0))
            except (ValueError, TypeError) as error:
                raise HubError(400, f"{path}: sample must be base64 and size a number") from error
            mode = self.upload_mode(commit, path, size, sample)
            oid = None
            if path in commit.tree:
                there = self.content(repo, commit.tree[path])
                oid = hashlib.sha256(there).hexdigest() if mode == "lfs" else git_blob_oid(there)
            out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return web.json_response({"files": out, "commitOid": commit.oid})

    def _prefixed_repo(self, request: web.Request) -> Repo:
        """The repo of a git-side URL: `/datasets/{repo}`, `/spaces/{repo}` or `/{repo}`."""
        prefix = request.path.split("/")[1]
        kind: RepoKind = (
            "dataset" if prefix == "datasets" else "space" if prefix == "spaces" else "model"
        )
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get((kind, repo_id))
        if repo is None or (repo.private and not self._authorized(request)):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    async def _lfs_batch(self, request: web.Request) -> web.Response:
        """The Git LFS batch API (docs/api/batch.md of git-lfs), `basic` transfer."""
        await self._enter(request, "lfs_batch")
        repo = self._prefixed_repo(request)
        body = await request.json()
        if body.get("operation") != "upload":
            raise HubError(400, "the emulator only serves the upload operation")
        self._require_write(request)
        stored = self.lfs.setdefault((repo.kind, repo.repo_id), {})
        base = _base(request)
        url_kind = {"dataset": "datasets", "model": "models", "space": "spaces"}[repo.kind]
        objects = []
        for item in body.get("objects") or []:
            oid, size = item.get("oid"), item.get("size")
            answer: dict[str, Any] = {"oid": oid, "size": size}
            if not isinstance(oid, str) or not _is_sha256(oid) or not isinstance(size, int):
                answer["error"] = {"code": 422, "message": "oid must be a sha256, size a number"}
            elif oid not in stored:
                answer["authenticated"] = True
                answer["actions"] = {
                    "upload": {
                        "href": f"{base}/lfs-storage/{url_kind}/{repo.repo_id}/{oid}?size={size}",
                        "expires_in": 86400,
                    },
                    "verify": {
                        "href": f"{base}/{_RESOLVE_PREFIX[repo.kind]}{repo.repo_id}"
                        ".git/info/lfs/objects/verify",
                        "expires_in": 86400,
                    },
                }
            objects.append(answer)
        return web.json_response({"transfer": "basic", "objects": objects}, content_type=LFS_JSON)

    async def _lfs_upload(self, request: web.Request) -> web.Response:
        """The upload href: like a signed storage URL, it needs no Authorization."""
        await self._enter(request, "lfs_upload")
        kind = _URL_KINDS[request.match_info["kind"]]
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get((kind, repo_id))
        if repo is None:  # the href is the credential, even for a private repo
            raise HubError(404, "Repository not found", "RepoNotFound")
        oid = request.match_info["oid"]
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != oid or str(len(data)) != request.query.get("size"):
            raise HubError(400, "the uploaded bytes do not match the object's sha256 and size")
        self.lfs.setdefault((repo.kind, repo.repo_id), {})[oid] = data
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    async def _lfs_verify(self, request: web.Request) -> web.Response:
        await self._enter(request, "lfs_verify")
        repo = self._prefixed_repo(request)
        self._require_write(request)
        body = await request.json()
        stored = self.lfs.get((repo.kind, repo.repo_id), {}).get(str(body.get("oid")))
        if stored is None or len(stored) != body.get("size"):
            raise HubError(404, f"LFS object {body.get('oid')} not found or of another size")
        return web.json_response({"success": True}, content_type=LFS_JSON)

    async def _commit(self, request: web.Request) -> web.Response:
        fault = await self._enter(request, "commit")
        self._require_write(request)
        repo = self._repo(request)
        revision = request.match_info["rev"]
        if revision not in ("main", "refs/heads/main"):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if _truthy(request.query.get("create_pr")):
            raise HubError(400, "the emulator does not open pull requests")
        header, added, deleted = _parse_commit(await request.read())
        self._check_uploads(repo, added)
        if fault is not None and fault.kind == "concurrent_commit":
            self._concurrent += 1
            note = f"notes/concurrent-{self._concurrent}.md"
            self.apply(repo, {note: note.encode()}, [], "Another writer's commit", "")
        self._check_quota(repo)
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = self.apply(
            repo,
            added,
            deleted,
            str(header.get("summary") or "Upload"),
            str(header.get("description") or ""),
        )
        self.commit_times.setdefault((repo.kind, repo.repo_id), []).append(self.clock())
        if fault is not None and fault.kind == "hang_after":
            await self.script.hold(fault.hang)
            raise HubError(504, "injected fault: the commit was applied, the answer held")
        url = f"{_base(request)}/{_RESOLVE_PREFIX[repo.kind]}{repo.repo_id}/commit/{commit.oid}"
        return web.json_response(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": url,
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _check_uploads(self, repo: Repo, added: dict[str, bytes | LfsObject]) -> None:
        """An `lfsFile` names an uploaded object; a `file` line is small enough to go inline."""
        stored = self.lfs.get((repo.kind, repo.repo_id), {})
        for path, data in added.items():
            if isinstance(data, LfsObject):
                there = stored.get(data.sha256)
                if there is None or len(there) != data.size:
                    raise HubError(
                        400, f"{path}: LFS object {data.sha256} was not uploaded (or not that size)"
                    )
            elif len(data) > self.lfs_threshold:
                raise HubError(400, f"{path}: {len(data)} bytes inline; upload it through LFS")

    def _check_quota(self, repo: Repo) -> None:
        if self.max_commits_per_hour is None:
            return
        now = self.clock()
        recent = [t for t in self.commit_times.get((repo.kind, repo.repo_id), []) if t > now - 3600]
        if len(recent) >= self.max_commits_per_hour:
            wait = int(min(recent) + 3600 - now) + 1
            raise HubError(
                429,
                "You have exceeded our hourly quotas for action: commit. We invite you to retry "
                f"later. ({self.max_commits_per_hour} commits per hour)",
                **{"Retry-After": str(wait)},
            )

    async def _commits(self, request: web.Request) -> web.Response:
        await self._enter(request, "commits")
        repo = self._repo(request)
        commit = self._revision(repo, request)
        items = [
            {
                "id": c.oid,
                "title": c.title,
                "message": c.message,
                "date": _iso(c.date),
                "authors": [{"user": c.author}],
            }
            for c in repo.history(commit.oid)
        ]
        size = 50
        start = _decode_cursor(request.query.get("cursor"))
        headers = {}
        if start + size < len(items):
            query = dict(request.query)
            query["cursor"] = _encode_cursor(start + size)
            next_url = f"{_base(request)}{request.url.with_query(query).raw_path_qs}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response(items[start : start + size], headers=headers)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        await self._enter(request, "resolve")
        repo = self._prefixed_repo(request)
        commit = self._revision(repo, request)
        path = request.match_info["path"]
        oid = commit.tree.get(path)
        if oid is None:
            raise HubError(404, "Entry not found", "EntryNotFound", **{"X-Repo-Commit": commit.oid})
        data = self.content(repo, oid)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        stored = self.pointers.get(oid)
        if stored is not None:  # the Hub names an LFS file by its sha256
            headers["ETag"] = headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(stored.size)
        status = 200
        ranged = _byte_range(request.headers.get("Range"), len(data))
        if ranged is not None:
            start, end = ranged
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            data = data[start:end]
            status = 206
        # aiohttp leaves the body out of a HEAD answer and keeps its Content-Length.
        return web.Response(status=status, body=data, headers=headers)


HUB = web.AppKey("hub", HubEmulator)


# --- small pure helpers -----------------------------------------------------------------------


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except (ValueError, KeyError, TypeError) as error:
        raise HubError(400, "invalid cursor") from error


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` as a [start, end) slice; None for no range."""
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[6:].split(",")[0].strip().partition("-")
    try:
        if not first:
            start, end = max(0, size - int(last)), size
        else:
            start = int(first)
            end = min(size, int(last) + 1) if last else size
    except ValueError:
        return None
    if start >= size and size > 0:
        raise HubError(416, "Range not satisfiable", **{"Content-Range": f"bytes */{size}"})
    return start, end


def _parse_commit(
    body: bytes,
) -> tuple[dict[str, Any], dict[str, bytes | LfsObject], list[str]]:
    header: dict[str, Any] | None = None
    added: dict[str, bytes | LfsObject] = {}
    deleted: list[str] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError) as error:
            raise HubError(400, f"line {number} of the commit is not a valid operation") from error
        if key == "header":
            header = value
        elif key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"line {number}: only base64 content is supported")
            try:
                added[value["path"]] = base64.b64decode(value["content"], validate=True)
            except (ValueError, KeyError) as error:
                raise HubError(400, f"line {number}: bad base64 content") from error
        elif key == "deletedFile":
            deleted.append(value["path"])
        elif key == "deletedFolder":
            deleted.append(value["path"].rstrip("/") + "/")
        elif key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if value.get("algo") != "sha256" or not isinstance(oid, str) or not _is_sha256(oid):
                raise HubError(400, f"line {number}: an lfsFile needs algo sha256 and its oid")
            if not isinstance(size, int):
                raise HubError(400, f"line {number}: the emulator needs the lfsFile's size")
            added[value["path"]] = LfsObject(oid, size)
        else:
            raise HubError(400, f"line {number}: unknown operation {key!r}")
    if header is None:
        raise HubError(400, "the commit has no header line")
    return header, added, deleted


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _front_matter(text: str) -> tuple[dict[str, Any] | None, str]:
    """The YAML metadata block of a card, and the body after it; ValueError when invalid."""
    if not text.startswith("---"):
        return None, text
    end = text.find("\n---", 3)
    if end < 0:
        raise ValueError("the metadata block is not closed with ---")
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError as error:
        raise ValueError(f"invalid YAML: {error}") from error
    if meta is not None and not isinstance(meta, dict):
        raise ValueError("the metadata block must be a mapping")
    return meta, text[end + 4 :].lstrip("\n")
