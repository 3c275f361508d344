"""The upload ledger: what became of every closed chunk, in the state store.

One entry per chunk under namespace `upload`, keyed by its path in the repo
(`data/train/owner__dataset-00001.jsonl`). An entry moves forward only:

    closing    the checkpoint that holds the chunk's last line also recorded that it closes;
               the file still sits under `chunks/open/` until it is renamed
    pending    renamed to `chunks/data/`, immutable, its git blob id known: to be uploaded
    committed  in the target, with the commit that added it
    conflict   the target holds a different file under the same name: never overwritten,
               the local file is kept and the chunk is reported
    lost       pending, but its local file is gone (removed by hand): reported, not retried
    revising   a new version of a chunk without the lines `resume-collector forget` removed is
               being moved into place under `chunks/data/`; pending once it is there

A revised chunk (`revision` > 0) names the content it replaces (`replaces_oid`,
`replaces_sha256`): the target may hold that under its path, and then the new version is
committed over it; any other content there is still a conflict. `removed` counts the lines
taken out of the chunk on request, over all its revisions (the card shows the total).

The times of recent commits (for the commits-per-hour budget) live under `upload_commits`.

With a state store shared by several instances (Redis), the ledger is shared too, so the card
counts every instance's chunks and the budget is the repo's; each entry names the instance whose
disk holds the file, and an instance only closes, uploads or reports its own chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from collector.state import StateStore

NAMESPACE = "upload"
COMMITS_NAMESPACE = "upload_commits"
Status = Literal["closing", "pending", "committed", "conflict", "lost", "revising"]


class Origin(msgspec.Struct, frozen=True):
    """How many of a chunk's records came from one (source, dataset)."""

    source: str
    dataset: str
    records: int


class ChunkEntry(msgspec.Struct):
    path: str  # in the repo: data/{split}/{stem}-{seq:05d}.jsonl (or provenance/...)
    split: str
    stem: str
    seq: int
    records: int
    bytes: int
    origins: list[Origin]
    status: Status
    closed_at: float
    oid: str = ""  # git blob id (sha1) of the file, known once pending
    sha256: str = ""  # of the file, known once pending (how the Hub names a file in LFS)
    commit: str = ""
    committed_at: float = 0.0
    instance: str = ""  # whose disk holds the file ("" with a store of its own: SQLite)
    revision: int = 0  # versions made by `forget` (0: the chunk as it was closed)
    replaces_oid: str = ""  # the content a revision replaces in the target
    replaces_sha256: str = ""
    removed: int = 0  # lines removed on request, over all revisions

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        """`data` for training lines, `provenance` for the lines published beside them."""
        return self.path.split("/", 1)[0]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ChunkEntry)


def encode(entry: ChunkEntry) -> str:
    return _encoder.encode(entry).decode()


def decode(value: str) -> ChunkEntry:
    return _decoder.decode(value)


class Ledger:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def entries(
        self,
        status: Status | None = None,
        *,
        instance: str | None = None,
        folder: str | None = "data",
    ) -> list[ChunkEntry]:
        """Entries with that status (any: None) of that instance (any: None), in that folder:
        `data` (the training chunks, what a reader counts), `provenance` (the files published
        beside them, each in step with its data chunk) or None for both (what is uploaded)."""
        found = [decode(value) for _, value in self.state.scan(NAMESPACE)]
        if folder is not None:
            found = [e for e in found if e.folder == folder]
        if status is not None:
            found = [e for e in found if e.status == status]
        if instance is not None:
            found = [e for e in found if e.instance == instance]
        return found

    def get(self, path: str) -> ChunkEntry | None:
        value = self.state.get(NAMESPACE, path)
        return None if value is None else decode(value)

    def put(
        self, entries: Iterable[ChunkEntry], extra: dict[str, dict[str, str]] | None = None
    ) -> None:
        """Write entries (and any other puts) in one transaction."""
        puts = {NAMESPACE: {e.path: encode(e) for e in entries}}
        for namespace, items in (extra or {}).items():
            puts.setdefault(namespace, {}).update(items)
        self.state.commit(puts)

    def commit_times(self) -> list[float]:
        return sorted(float(v) for _, v in self.state.scan(COMMITS_NAMESPACE))

    def forget_commit_times(self, before: float) -> None:
        old = [k for k, v in self.state.scan(COMMITS_NAMESPACE) if float(v) < before]
        if old:
            self.state.delete(COMMITS_NAMESPACE, old)
