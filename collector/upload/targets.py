"""Where chunks are published: a Hugging Face dataset repo, or the same layout in a folder.

Both are blocking (the uploader runs them in a thread) and answer the same three questions:
which of these chunks are already there (and in which commit), commit these chunks with this
card, and is this error worth a retry. A commit first reads the head and the chunks already
present at it: chunks an earlier attempt committed (its answer lost to a timeout or a crash)
are reported as found, never sent again, and the commit is made on that head with
`parent_commit`, so a commit that lands in between is a 412 and a retry, not a silent merge.

A chunk is "there" when the target holds the same bytes under its path: the same git blob id
for a regular file, the same sha256 for a file in LFS (the Hub keeps any chunk above a few MB
in LFS, and such an entry's `oid` is the git blob id of the pointer file, not of the content;
`huggingface_hub`'s `verify_maps` compares `lfs.sha256` the same way).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from collector.layout import published_folder
from collector.logging import Logger
from collector.ratelimit import server_wait
from collector.sinks.files import _fsync_dir as fsync_dir
from collector.upload.chunks import file_digests, git_blob_oid
from collector.upload.config import UploadConfig
from collector.upload.ledger import ChunkEntry

CARD_PATH = "README.md"
# What the Hub allows in one paths-info request.
_PATHS_PER_REQUEST = 500
_RETRY_STATUS = {408, 409, 412, 429, 500, 502, 503, 504}


# Given the chunks the repo will hold after this commit (beside those committed before), the card.
CardMaker = Callable[[list[ChunkEntry]], bytes]


class Remote(msgspec.Struct, frozen=True):
    oid: str  # git blob id of the file in the target (of its pointer when it is in LFS)
    commit: str  # the commit that last changed it ("" when the target does not say)
    sha256: str = ""  # of the content, when the file is in LFS (the entry's `lfs.oid`)

    def holds(self, entry: ChunkEntry, local: Path) -> bool:
        """Whether this is the chunk's content: by sha256 in LFS, else by git blob id."""
        if not self.sha256:
            return self.oid == entry.oid
        if not entry.sha256 and local.is_file():  # a ledger written before sha256 was kept
            entry.sha256 = file_digests(local)[1]
        return self.sha256 == entry.sha256

    def replaced(self, entry: ChunkEntry) -> bool:
        """Whether this is the content a revised chunk replaces (it may be overwritten)."""
        if not entry.revision:
            return False
        if self.sha256:
            return self.sha256 == entry.replaces_sha256
        return self.oid == entry.replaces_oid


class CommitResult(msgspec.Struct):
    commit: str  # the commit holding the chunks: new, or the head when nothing was new
    created: bool  # False when everything was there already and the card unchanged
    found: dict[str, str]  # chunk path -> commit: there already (an earlier attempt landed)
    conflicts: list[str]  # chunk paths that hold different content in the target


class Target(Protocol):
    description: str
    budgeted: bool  # commits count against `max_commits_per_hour`

    def lookup(self, paths: Sequence[str]) -> dict[str, Remote]: ...

    def commit(
        self, chunks: Sequence[tuple[ChunkEntry, Path]], card: CardMaker, message: str
    ) -> CommitResult: ...

    def retryable(self, error: BaseException) -> bool: ...

    def retry_after(self, error: BaseException) -> float | None: ...

    def read(self, path: str, revision: str) -> bytes | None:
        """The content of a published file (at `revision` when the target knows commits)."""
        ...


def _sort_found(
    chunks: Sequence[tuple[ChunkEntry, Path]], remote: dict[str, Remote]
) -> tuple[list[tuple[ChunkEntry, Path]], dict[str, str], list[str]]:
    todo, found, conflicts = [], {}, []
    for entry, path in chunks:
        there = remote.get(entry.path)
        if there is None:
            todo.append((entry, path))
        elif there.holds(entry, path):
            found[entry.path] = there.commit
        elif there.replaced(entry):  # a revision: its new version goes over the old one
            todo.append((entry, path))
        else:
            conflicts.append(entry.path)
    return todo, found, conflicts


def _kept(chunks: Sequence[tuple[ChunkEntry, Path]], conflicts: list[str]) -> list[ChunkEntry]:
    return [entry for entry, _ in chunks if entry.path not in conflicts]


class FolderTarget:
    """The repo layout on local disk: `data/{split}/*.jsonl` and `README.md`."""

    budgeted = False

    def __init__(self, root: Path, log: Logger) -> None:
        self.root = root
        self.log = log
        self.description = f"folder:{root}"

    def lookup(self, paths: Sequence[str]) -> dict[str, Remote]:
        found = {}
        for path in paths:
            file = self.root / path
            if file.is_file():
                found[path] = Remote(oid=git_blob_oid(file), commit="")
        return found

    def commit(
        self, chunks: Sequence[tuple[ChunkEntry, Path]], card: CardMaker, message: str
    ) -> CommitResult:
        self.root.mkdir(parents=True, exist_ok=True)
        todo, found, conflicts = _sort_found(chunks, self.lookup([e.path for e, _ in chunks]))
        content = card(_kept(chunks, conflicts))
        for entry, source in todo:
            _copy_durably(source, self.root / entry.path)
        card_file = self.root / CARD_PATH
        changed = not card_file.is_file() or card_file.read_bytes() != content
        if changed:
            _write_durably(card_file, content)
        digest = hashlib.sha1(message.encode())
        for entry, _ in sorted(chunks, key=lambda c: c[0].path):
            digest.update(f"\n{entry.path} {entry.oid}".encode())
        digest.update(b"\n" + content)
        commit = digest.hexdigest()
        return CommitResult(
            commit=commit,
            created=bool(todo) or changed,
            found={path: found_commit or commit for path, found_commit in found.items()},
            conflicts=conflicts,
        )

    def read(self, path: str, revision: str) -> bytes | None:
        file = self.root / path
        return file.read_bytes() if file.is_file() else None

    def retryable(self, error: BaseException) -> bool:
        return False  # a full or read-only disk does not heal by waiting a few seconds

    def retry_after(self, error: BaseException) -> float | None:
        return None


def _copy_durably(source: Path, target: Path) -> None:
    """A closed chunk at `target`, durably: a hard link where both are on one file system (a
    closed chunk is never written again, and its bytes were synced when its checkpoint
    committed), else a copy. Copying, and syncing the copy, cost the service a microsecond a
    record, in its one process; a link costs nothing per byte."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crash: a link is not made over a file
    try:
        os.link(source, temporary)
    except OSError:  # another file system (EXDEV), or one without hard links
        with source.open("rb") as reader, temporary.open("wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
    os.replace(temporary, target)
    fsync_dir(target.parent)


def _write_durably(target: Path, data: bytes) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    with temporary.open("wb") as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, target)
    fsync_dir(target.parent)


class HubTarget:
    """A dataset repo on the Hub (or the emulator), through the real `huggingface_hub`."""

    budgeted = True

    def __init__(self, config: UploadConfig, log: Logger) -> None:
        from huggingface_hub import HfApi

        use_request_timeout(config.timeout)
        use_lfs_transfer()
        self.repo_id = config.repo_id
        self.private = config.private
        self.log = log
        token = os.environ.get(config.token_env) or None
        if token is None:
            log.warning("hub_token_missing", env=config.token_env)
        self.api = HfApi(endpoint=config.endpoint or None, token=token)
        self.description = f"hub:{self.api.endpoint}/datasets/{self.repo_id}"
        self._created = False

    def _ensure_repo(self) -> None:
        if not self._created:
            self.api.create_repo(
                self.repo_id, repo_type="dataset", private=self.private, exist_ok=True
            )
            self._created = True

    def _lookup_at(self, paths: Sequence[str], revision: str | None) -> dict[str, Remote]:
        from huggingface_hub.hf_api import RepoFile

        found = {}
        for start in range(0, len(paths), _PATHS_PER_REQUEST):
            infos = self.api.get_paths_info(
                self.repo_id,
                list(paths[start : start + _PATHS_PER_REQUEST]),
                expand=True,
                revision=revision,
                repo_type="dataset",
            )
            for info in infos:
                if isinstance(info, RepoFile):
                    commit = info.last_commit.oid if info.last_commit is not None else ""
                    sha256 = info.lfs.sha256 if info.lfs is not None else ""
                    found[info.path] = Remote(oid=info.blob_id, commit=str(commit), sha256=sha256)
        return found

    def lookup(self, paths: Sequence[str]) -> dict[str, Remote]:
        self._ensure_repo()
        return self._lookup_at(paths, None)

    def commit(
        self, chunks: Sequence[tuple[ChunkEntry, Path]], card: CardMaker, message: str
    ) -> CommitResult:
        from huggingface_hub import CommitOperationAdd

        self._ensure_repo()
        head = self.api.repo_info(self.repo_id, repo_type="dataset").sha
        assert head is not None
        remote = self._lookup_at([e.path for e, _ in chunks], head)
        todo, found, conflicts = _sort_found(chunks, remote)
        operations = [
            CommitOperationAdd(path_in_repo=entry.path, path_or_fileobj=str(path))
            for entry, path in todo
        ]
        # Unchanged, the card is dropped by the client: no empty commit is made.
        content = card(_kept(chunks, conflicts))
        operations.append(CommitOperationAdd(path_in_repo=CARD_PATH, path_or_fileobj=content))
        # One file at a time, in this thread: given several LFS files at once, the client
        # uploads them from a thread pool of its own, whose threads the interpreter joins at
        # exit, so an upload that hangs would hold a shutdown past its deadline (the uploader
        # leaves this thread behind, `_abandonable`; it cannot leave the pool's). The commit
        # below then sends only what is not uploaded yet.
        for operation in operations:
            self.api.preupload_lfs_files(
                self.repo_id, [operation], repo_type="dataset", num_threads=1
            )
        info = self.api.create_commit(
            self.repo_id,
            operations,
            commit_message=message,
            repo_type="dataset",
            parent_commit=head,
        )
        return CommitResult(
            commit=info.oid, created=info.oid != head, found=found, conflicts=conflicts
        )

    def read(self, path: str, revision: str) -> bytes | None:
        """Downloaded into a private temporary folder (never the shared Hub cache: the chunk
        may hold what is being erased) and removed with it."""
        import tempfile

        from huggingface_hub.errors import EntryNotFoundError

        self._ensure_repo()
        with tempfile.TemporaryDirectory(prefix="rc-read-") as folder:
            try:
                local = self.api.hf_hub_download(
                    self.repo_id,
                    path,
                    repo_type="dataset",
                    revision=revision or None,
                    local_dir=folder,
                )
            except EntryNotFoundError:
                return None
            return Path(local).read_bytes()

    def retryable(self, error: BaseException) -> bool:
        from huggingface_hub.errors import HfHubHTTPError

        if isinstance(error, HfHubHTTPError):
            response = getattr(error, "response", None)
            return response is not None and response.status_code in _RETRY_STATUS
        return _is_transport_error(error)

    def retry_after(self, error: BaseException) -> float | None:
        """The wait a 429 asks for: `Retry-After`, else the Hub's `RateLimit: "api";r=0;t=55`."""
        response: Any = getattr(error, "response", None)
        if response is None or response.status_code != 429:
            return None
        return server_wait(response.headers)


def _is_transport_error(error: BaseException) -> bool:
    """Timeouts and broken connections of the client's HTTP library (or of the OS)."""
    if isinstance(error, TimeoutError | ConnectionError):
        return True
    try:
        import httpx2
    except ImportError:
        return False
    return isinstance(error, httpx2.TimeoutException | httpx2.TransportError)


def use_request_timeout(seconds: float) -> None:
    """Bound every request of the shared Hub client (it waits forever by default).

    Without it, a commit whose answer never comes would hold the uploader for good. The client
    is shared by the whole process: the last call wins.
    """
    try:
        import httpx2
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook
    except ImportError:
        return

    def factory() -> httpx2.Client:
        return httpx2.Client(
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=httpx2.Timeout(seconds, connect=min(seconds, 30.0)),
        )

    set_client_factory(factory)


def use_lfs_transfer() -> None:
    """Send large files through the Git LFS protocol, not Xet.

    With `hf_xet` installed the client uploads what preupload calls `lfs` through Xet storage, a
    protocol only the Hub speaks (no emulator, no test on loopback); the LFS batch API is the
    one the emulator serves and the Hub still accepts. A chunk is one JSONL file that no other
    chunk shares, so Xet's deduplication would save nothing. Process-wide, like the timeout.
    """
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_XET = True


def build_target(config: UploadConfig, data_dir: Path, log: Logger) -> Target:
    if config.resolved_target == "hub":
        return HubTarget(config, log)
    return FolderTarget(published_folder(config.folder, data_dir), log)
