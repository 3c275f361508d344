"""The Hub's repos in memory: git objects, commits, LFS storage, seeded from a folder.

What the Hub holds, without HTTP: repos of three kinds, each a chain of commits whose trees map
paths to git blob ids (real ids: sha1 of blobs, trees and commits, as the client computes
them), and per repo the LFS storage that holds the content of files committed as pointers.
Tests and the sandbox seed and read it directly (`create_repo`, `commit_files`, `files`,
`writes`); the routes (`routes.py`) serve it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

RepoKind = Literal["dataset", "model", "space"]
GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
)

# The client's own word (`_commit_api.py`, `CommitOperationAdd._local_oid`): a regular file "is
# guaranteed to be <=5MB"; above it the Hub answers `lfs`. The exact byte count is not published.
LFS_THRESHOLD = 5_000_000
LFS_SPEC = "https://git-lfs.github.com/spec/v1"


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git keeps for an LFS object (134 bytes for a 9-digit size)."""
    return f"version {LFS_SPEC}\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class LfsObject:
    """A file stored in LFS: the tree holds its pointer, the content sits in LFS storage."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: float
    tree: dict[str, str]  # path -> blob oid: the whole snapshot at this commit
    author: str


@dataclass
class Repo:
    repo_id: str
    kind: RepoKind
    private: bool
    created: float
    commits: dict[str, Commit] = field(default_factory=dict)
    head: str = ""
    # other refs (`refs/convert/parquet`, `refs/pr/3`) -> commit oid; in a URL a ref is one
    # quoted segment (`refs%2Fpr%2F3`), as the client sends it: unquoted, no route matches
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        if revision in ("main", "refs/heads/main"):
            return self.commits[self.head]
        if revision in self.refs:
            return self.commits[self.refs[revision]]
        if len(revision) >= 7:
            found = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(found) == 1:
                return found[0]
        return None

    def history(self, start: str | None = None) -> Iterator[Commit]:
        oid: str | None = start or self.head
        while oid is not None:
            commit = self.commits[oid]
            yield commit
            oid = commit.parent


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubRepos:
    """Every repo of the Hub, their git objects and their LFS storage."""

    def __init__(
        self,
        *,
        user: str = "emulator",
        lfs_threshold: int = LFS_THRESHOLD,
        seed: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.user = user  # the author of every commit
        self.clock = clock
        self.repos: dict[tuple[RepoKind, str], Repo] = {}
        self.lfs_threshold = lfs_threshold
        self.blobs: dict[str, bytes] = {}  # git blob id -> bytes (an LFS file's: its pointer)
        self.pointers: dict[str, LfsObject] = {}  # git blob id of a pointer -> its object
        # Each repo's LFS storage: sha256 -> content (an upload PUT lands here).
        self.lfs: dict[tuple[RepoKind, str], dict[str, bytes]] = {}
        if seed is not None:
            self.seed_folder(seed)

    def create_repo(
        self, repo_id: str, kind: RepoKind = "dataset", *, private: bool = False
    ) -> Repo:
        key = (kind, repo_id)
        if key in self.repos:
            return self.repos[key]
        repo = Repo(repo_id=repo_id, kind=kind, private=private, created=self.clock())
        self.repos[key] = repo
        self.apply(repo, {".gitattributes": GITATTRIBUTES}, [], "initial commit", "")
        return repo

    def commit_files(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        kind: RepoKind = "dataset",
        title: str = "Upload files",
        deleted: Iterable[str] = (),
    ) -> str:
        """Commit straight to `main`, as another writer would (large files through LFS)."""
        repo = self.create_repo(repo_id, kind)
        return self.apply(repo, self._as_uploaded(repo, files), list(deleted), title, "").oid

    def seed_folder(self, root: Path) -> None:
        """Every `{root}/{owner}/{name}/` folder becomes the dataset repo `owner/name`."""
        if not root.is_dir():
            return
        for owner in sorted(p for p in root.iterdir() if p.is_dir()):
            for dataset in sorted(p for p in owner.iterdir() if p.is_dir()):
                files = {
                    path.relative_to(dataset).as_posix(): path.read_bytes()
                    for path in sorted(dataset.rglob("*"))
                    if path.is_file()
                }
                repo = self.create_repo(f"{owner.name}/{dataset.name}", "dataset")
                self.apply(repo, self._as_uploaded(repo, files), [], "Seed files", "")

    def name_ref(self, repo_id: str, ref: str, oid: str, kind: RepoKind = "dataset") -> None:
        """Point `ref` (`refs/convert/parquet`, `refs/pr/3`) at the commit `oid`."""
        repo = self.repo(repo_id, kind)
        if oid not in repo.commits:
            raise KeyError(f"{repo_id} has no commit {oid}")
        repo.refs[ref] = oid

    def repo(self, repo_id: str, kind: RepoKind = "dataset") -> Repo:
        return self.repos[(kind, repo_id)]

    def files(self, repo_id: str, kind: RepoKind = "dataset") -> dict[str, bytes]:
        """The files at the head of `main`."""
        repo = self.repo(repo_id, kind)
        return {path: self.content(repo, oid) for path, oid in repo.commits[repo.head].tree.items()}

    def content(self, repo: Repo, oid: str) -> bytes:
        """The bytes of the blob `oid`: an LFS pointer's object, read from LFS storage."""
        stored = self.pointers.get(oid)
        if stored is None:
            return self.blobs[oid]
        return self.lfs[(repo.kind, repo.repo_id)][stored.sha256]

    def upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        """What preupload answers for a file: "lfs" or "regular"."""
        if size > self.lfs_threshold or b"\0" in sample[:512]:
            return "lfs"
        attributes = commit.tree.get(".gitattributes")
        if attributes is not None:
            text = self.blobs.get(attributes, b"").decode("utf-8", "replace")
            if any(_lfs_pattern_matches(line, path) for line in text.splitlines()):
                return "lfs"
        return "regular"

    def _as_uploaded(self, repo: Repo, files: dict[str, bytes]) -> dict[str, bytes | LfsObject]:
        """Files as the client would send them: the ones preupload calls `lfs` through LFS."""
        head = repo.commits[repo.head]
        out: dict[str, bytes | LfsObject] = {}
        for path, data in files.items():
            if data and self.upload_mode(head, path, len(data), data[:512]) == "lfs":
                sha = hashlib.sha256(data).hexdigest()
                self.lfs.setdefault((repo.kind, repo.repo_id), {})[sha] = data
                out[path] = LfsObject(sha, len(data))
            else:
                out[path] = data
        return out

    def commits(self, repo_id: str, kind: RepoKind = "dataset") -> list[Commit]:
        """The commits of `main`, newest first."""
        return list(self.repo(repo_id, kind).history())

    def writes(self, repo_id: str, path: str, kind: RepoKind = "dataset") -> list[str]:
        """The commits (oldest first) that added or changed `path`."""
        repo = self.repo(repo_id, kind)
        out = []
        for commit in repo.history():
            parent = repo.commits[commit.parent].tree if commit.parent else {}
            if path in commit.tree and commit.tree[path] != parent.get(path):
                out.append(commit.oid)
        return out[::-1]

    # --- git objects ------------------------------------------------------------------------

    def apply(
        self,
        repo: Repo,
        added: dict[str, bytes] | dict[str, bytes | LfsObject],
        deleted: list[str],
        title: str,
        message: str,
    ) -> Commit:
        parent = repo.commits[repo.head] if repo.head else None
        tree = dict(parent.tree) if parent else {}
        for path in deleted:
            if path.endswith("/"):
                tree = {p: o for p, o in tree.items() if not p.startswith(path)}
            else:
                tree.pop(path, None)
        for path, data in added.items():
            if isinstance(data, LfsObject):
                pointer = lfs_pointer(data.sha256, data.size)
                oid = git_blob_oid(pointer)
                self.blobs[oid] = pointer
                self.pointers[oid] = data
            else:
                oid = git_blob_oid(data)
                self.blobs[oid] = data
            tree[path] = oid
        now = self.clock()
        root = tree_oid(tree)
        stamp = f"{self.user} <{self.user}@users.noreply.huggingface.co> {int(now)} +0000"
        body = f"tree {root}\n"
        if parent:
            body += f"parent {parent.oid}\n"
        body += f"author {stamp}\ncommitter {stamp}\n\n{title}\n"
        if message:
            body += f"\n{message}\n"
        raw = body.encode()
        oid = hashlib.sha1(b"commit %d\0" % len(raw) + raw).hexdigest()
        commit = Commit(oid, parent.oid if parent else None, title, message, now, tree, self.user)
        repo.commits[oid] = commit
        repo.head = oid
        return commit

    def last_commit(self, repo: Repo, commit: Commit, path: str) -> Commit:
        """The newest commit, from `commit` back, that changed `path` (a file or a folder)."""

        def view(c: Commit) -> dict[str, str]:
            return {p: o for p, o in c.tree.items() if p == path or p.startswith(path + "/")}

        current = commit
        for older in repo.history(commit.parent) if commit.parent else iter(()):
            if view(older) != view(current):
                return current
            current = older
        return current


def _lfs_pattern_matches(line: str, path: str) -> bool:
    """Whether a `.gitattributes` line sends `path` to LFS (`*.parquet filter=lfs ...`)."""
    words = line.split()
    if len(words) < 2 or words[0].startswith("#") or "filter=lfs" not in words[1:]:
        return False
    pattern = words[0]
    if "/" in pattern.strip("/"):
        return fnmatch.fnmatchcase(path, pattern.strip("/"))
    return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def tree_oid(tree: dict[str, str]) -> str:
    """The git tree id of a snapshot (path -> blob oid), built folder by folder like git."""
    files: dict[str, str] = {}
    folders: dict[str, dict[str, str]] = {}
    for path, oid in tree.items():
        head, _, rest = path.partition("/")
        if rest:
            folders.setdefault(head, {})[rest] = oid
        else:
            files[head] = oid
    entries = [(name, b"100644", oid) for name, oid in files.items()]
    entries += [(name, b"40000", tree_oid(sub)) for name, sub in folders.items()]
    # Git sorts folder names as if they ended with "/".
    entries.sort(key=lambda e: e[0] + "/" if e[1] == b"40000" else e[0])
    raw = b"".join(
        mode + b" " + name.encode() + b"\0" + bytes.fromhex(oid) for name, mode, oid in entries
    )
    return hashlib.sha1(b"tree %d\0" % len(raw) + raw).hexdigest()
