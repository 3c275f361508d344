"""The chunk roller: training lines rolled into immutable, numbered files ready to publish.

A sink beside the formatted one: it receives the same ordered batches (with `split` set) and
takes part in the same checkpoint, so an open chunk always matches the sources' cursors, kill -9
included. Per (split, output name) one chunk is open at a time under
`chunks/open/{split}/{stem}-{seq:05d}.jsonl`; it closes when it reaches `max_records` or
`max_bytes`, or when it is older than `max_age`, and becomes
`chunks/data/{split}/{stem}-{seq:05d}.jsonl`, its path in the published repo. Only training
lines (`{"messages": [...]}`) go in; `pairs` examples never do.

Beside each data chunk a provenance chunk (`provenance/{split}/{stem}-{seq:05d}.jsonl`, one
line per training line, in the same order: `sinks/lines.py` `PublishedProvenance`) is
filled in step and closes with it; it is an entry of the ledger like any chunk, so it is
published exactly once too. A data chunk opened before provenance chunks existed has none.

Closing is crash-safe in three steps:
1. the checkpoint that holds the chunk's last line also records it as `closing` in the ledger
   and moves its output name to the next sequence number (one transaction);
2. after that commit, the file is renamed from `open/` to `data/` (and the rename fsynced);
3. the ledger entry becomes `pending`, with the file's git blob id.
A restart finishes every `closing` entry before anything else, so no step is lost or done twice.

With a state store shared by several instances, `instance` keeps this instance's open chunks
apart and goes into the chunk names (`{stem}__{instance}-{seq}`), so two instances never write
the same path even when a source moves from one to the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import accumulate
from operator import attrgetter
from pathlib import Path

import msgspec

from collector.layout import chunks_dir
from collector.logging import Logger
from collector.sinks.files import NAMESPACE as FILES_NAMESPACE
from collector.sinks.files import DurableFiles, apply_replacements
from collector.sinks.files import _fsync_dir as fsync_dir
from collector.sinks.formatted import file_stem
from collector.sinks.lines import OutputLine, grouped
from collector.sinks.naming import safe_part
from collector.state import StateStore
from collector.upload.config import UploadConfig
from collector.upload.ledger import NAMESPACE as LEDGER_NAMESPACE
from collector.upload.ledger import ChunkEntry, Ledger, Origin
from collector.upload.ledger import encode as encode_entry

OPEN_NAMESPACE = "chunks"
DATA = "data"
PROVENANCE = "provenance"


def companion_path(repo_path: str) -> str:
    """The provenance chunk's path beside a data chunk's (`data/...` -> `provenance/...`)."""
    return PROVENANCE + repo_path.removeprefix(DATA)


def open_file(split: str, stem: str, seq: int, folder: str = DATA) -> str:
    """Where a chunk fills, relative to the chunks folder (`open/...`, `open/provenance/...`)."""
    base = "open" if folder == DATA else f"open/{folder}"
    return f"{base}/{split}/{stem}-{seq:05d}.jsonl"


_NAME = re.compile(r"^(?P<stem>.+)-(?P<seq>\d{5,})\.jsonl$")
# What places a line in its chunk: the split, its output name and whether it is a rewrite.
_CHUNK = attrgetter("split", "source", "dataset", "rewritten")


class OpenChunk(msgspec.Struct):
    """The chunk being filled for one (split, output name); `records == 0`: not started yet."""

    split: str
    stem: str
    seq: int
    records: int = 0
    bytes: int = 0
    opened_at: float = 0.0
    origins: dict[str, int] = {}  # "source\x1fdataset" -> records
    folder: str = "data"  # "data", or "provenance" for the companion of a data chunk

    @property
    def key(self) -> str:
        base = f"{self.split}/{self.stem}"
        return base if self.folder == DATA else f"{self.folder}/{base}"

    @property
    def name(self) -> str:
        return f"{self.stem}-{self.seq:05d}.jsonl"

    @property
    def repo_path(self) -> str:
        return f"{self.folder}/{self.split}/{self.name}"

    @property
    def open_file(self) -> str:
        return open_file(self.split, self.stem, self.seq, self.folder)

    @property
    def companion_key(self) -> str:
        """The key of the provenance chunk filled in step with this data chunk."""
        return f"{PROVENANCE}/{self.key}"


def git_blob_oid(path: Path) -> str:
    """The git blob id of a file (what the Hub reports as a regular file's oid)."""
    return file_digests(path)[0]


def file_digests(path: Path) -> tuple[str, str]:
    """The git blob id and the sha256 of a file, in one read.

    The Hub names a regular file by its git blob id and a file in LFS by its sha256 (the tree
    entry's `lfs.oid`; its `oid` is then the git blob id of the pointer, not of the content).
    """
    git = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    sha256 = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            git.update(block)
            sha256.update(block)
    return git.hexdigest(), sha256.hexdigest()


class ChunkRoller:
    name = "chunks"

    def __init__(
        self,
        data_dir: Path,
        state: StateStore,
        config: UploadConfig,
        log: Logger,
        *,
        instance: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = chunks_dir(data_dir)
        self.instance = instance
        self._suffix = f"__{safe_part(instance)}" if instance else ""
        self._prefix = f"{instance}\x1f" if instance else ""  # of this instance's state keys
        self.open_dir = self.root / "open"
        self.state = state
        self.config = config
        self.log = log
        self.clock = clock
        self.files = DurableFiles(data_dir, state, log)
        self.ledger = Ledger(state)
        self._open: dict[str, OpenChunk] = {}
        self._floor: dict[str, int] = {}  # highest sequence number ever used per key
        self._dirty: set[str] = set()
        self._closing: list[ChunkEntry] = []  # closed since the last flush
        self._committing: list[ChunkEntry] = []  # in the checkpoint being committed
        self._due: set[str] = set()
        self._keys: dict[str, tuple[int, str]] = {}  # chunk key -> (seq, file key): a hot path
        self._stems: dict[tuple[str, str, bool], str] = {}  # (source, dataset, rewritten) -> stem
        self._encode_open = msgspec.json.Encoder().encode
        self._decode_open = msgspec.json.Decoder(OpenChunk).decode

    # --- paths ------------------------------------------------------------------------------

    def open_path(self, split: str, stem: str, seq: int, folder: str = DATA) -> Path:
        return self.root / open_file(split, stem, seq, folder)

    def closed_path(self, repo_path: str) -> Path:
        return self.root / repo_path

    def _file_key(self, chunk: OpenChunk) -> str:
        key = self._keys.get(chunk.key)
        if key is None or key[0] != chunk.seq:
            path = self.root / chunk.open_file
            key = self._keys[chunk.key] = (chunk.seq, self.files.key(path))
        return key[1]

    # --- the Sink protocol ------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        self.open_dir.mkdir(parents=True, exist_ok=True)
        (self.root / DATA).mkdir(parents=True, exist_ok=True)
        for key, value in self.state.scan(OPEN_NAMESPACE, self._prefix):
            self._open[key.removeprefix(self._prefix)] = self._decode_open(value.encode())
        entries = self.ledger.entries(folder=None)
        closing = [e for e in entries if e.status == "closing" and e.instance == self.instance]
        if closing:
            self._finish(closing)
            self.log.info("chunks_close_finished", chunks=len(closing))
        self.finish_revisions(entries)
        self.files.recover(self.open_dir)
        for entry in entries:
            if entry.folder == DATA:
                self._raise_floor(f"{entry.split}/{entry.stem}", entry.seq)
        for chunk in self._open.values():
            self._raise_floor(chunk.key, chunk.seq - (0 if chunk.records else 1))
        self._check_open_files()

    def _raise_floor(self, key: str, seq: int) -> None:
        self._floor[key] = max(self._floor.get(key, 0), seq)

    def _check_open_files(self) -> None:
        """Numbers already on disk are never reused; an open chunk must match its file."""
        known = {self.root / c.open_file for c in self._open.values() if c.records}
        for folder in (self.open_dir, self.root / DATA):
            for path in folder.glob("*/*.jsonl"):
                match = _NAME.match(path.name)
                if match is None:
                    continue
                self._raise_floor(f"{path.parent.name}/{match['stem']}", int(match["seq"]))
                if folder == self.open_dir and path not in known:
                    self._stray(path)
        for path in (self.open_dir / PROVENANCE).glob("*/*.jsonl"):
            if path not in known:
                self._stray(path)
        for chunk in self._open.values():
            if not chunk.records:
                continue
            path = self.root / chunk.open_file
            size = path.stat().st_size if path.exists() else -1
            if size != chunk.bytes:
                # Removed or changed by hand: the state cannot vouch for its count any more.
                self.log.error(
                    "chunk_file_mismatch", file=str(path), size=size, expected=chunk.bytes
                )

    def _stray(self, path: Path) -> None:
        """An open file no open chunk vouches for. Empty, it is what the cut-back at a restart
        leaves of a chunk whose lines were never committed (after exit 75): removed, with its
        entry in the file ledger. With lines in it, it stays and is warned about."""
        if path.stat().st_size == 0:
            self.files.forget(path)
            path.unlink()
            self.log.info("chunk_stray_removed", file=str(path))
            return
        self.log.warning("chunk_stray_file", file=str(path))

    @property
    def pending_bytes(self) -> int:
        # A chunk due to close by age needs a checkpoint even when no line arrives.
        return self.files.pending_bytes + (1 if self._due else 0)

    def write(self, lines: list[OutputLine]) -> None:
        # A batch's lines grouped by their chunk key first, in order within each: the lookups
        # of a line's chunk, file and companion are then made once per group (a batch is mostly
        # of one dataset and split), not once per line. Each group goes to files of its own,
        # so every file still gets its lines in the batch's order.
        chunked = [line for line in lines if line.kind != "pairs"]
        now = self.clock()
        # Lines per file for the whole batch, handed to the files once per file.
        batch: dict[str, list[bytes]] = {}
        for group in grouped(chunked, _CHUNK):
            self._write_group(group, now, batch)
        for file, data in batch.items():
            self.files.extend(file, data)

    def _write_group(
        self, lines: list[OutputLine], now: float, batch: dict[str, list[bytes]]
    ) -> None:
        """Lines of one (split, output name, origin) into their chunk and its companion.

        A run of lines at a time, not a line at a time: the lines a chunk takes are those that
        keep it under `max_bytes` (bisected in their running sizes), at most its room under
        `max_records`, and one only when it is older than `max_age`; the chunk closes where a
        line by line loop would close it (this is a part of what the service's one process
        spends per line)."""
        first = lines[0]
        origin = f"{first.source}\x1f{first.dataset}"
        limit_records, limit_bytes = self.config.max_records, self.config.max_bytes
        max_age = self.config.max_age
        chunk = self._chunk(first.split, self._stem(first))
        out: list[bytes] | None = None
        about_out: list[bytes] | None = None
        companion: OpenChunk | None = None
        data = [rendered.line for rendered in lines]
        ends = list(accumulate(map(len, data), initial=0))  # ends[i]: bytes of data[:i]
        count, at = len(data), 0
        while at < count:
            if chunk.records and chunk.bytes + ends[at + 1] - ends[at] > limit_bytes:
                chunk, out = self._close(chunk), None
            if not chunk.records:
                chunk.opened_at = now
                chunk.origins = {}
                self._open[chunk.companion_key] = OpenChunk(
                    chunk.split, chunk.stem, chunk.seq, opened_at=now, folder=PROVENANCE
                )
                out = None
            if out is None:  # a chunk met for the first time, or the one after a close
                out = batch.setdefault(self._file_key(chunk), [])
                companion = self._companion(chunk)
                about_out = (
                    None if companion is None else batch.setdefault(self._file_key(companion), [])
                )
                self._dirty.add(chunk.key)
                if companion is not None:
                    self._dirty.add(companion.key)
            old = now - chunk.opened_at >= max_age
            if old:  # it takes this line and closes
                taken = 1
            else:  # the lines that fit (the first always does: the chunk is empty, or it fits)
                fits = bisect_right(ends, ends[at] + limit_bytes - chunk.bytes, at + 1) - 1 - at
                taken = max(1, min(fits, limit_records - chunk.records))
            stop = at + taken
            out.extend(data[at:stop])
            if companion is not None and about_out is not None:
                about = [rendered.published for rendered in lines[at:stop]]
                about_out.extend(about)
                companion.records += taken
                companion.bytes += sum(map(len, about))
            chunk.records += taken
            chunk.bytes += ends[stop] - ends[at]
            chunk.origins[origin] = chunk.origins.get(origin, 0) + taken
            at = stop
            if chunk.records >= limit_records or chunk.bytes >= limit_bytes or old:
                chunk, out = self._close(chunk), None

    def _stem(self, line: OutputLine) -> str:
        """The chunk stem of a line's output (this instance's suffix included), cached."""
        ident = (line.source, line.dataset, line.rewritten)
        stem = self._stems.get(ident)
        if stem is None:
            stem = self._stems[ident] = file_stem(*ident) + self._suffix
        return stem

    async def flush(self) -> dict[str, dict[str, str]]:
        for key in sorted(self._due):
            chunk = self._open.get(key)
            if chunk is not None and chunk.records:
                self._close(chunk)
        self._due.clear()
        lengths = await asyncio.to_thread(self.files.flush)
        closing, self._closing = self._closing, []
        self._committing.extend(closing)
        puts: dict[str, dict[str, str]] = {
            FILES_NAMESPACE: lengths,
            OPEN_NAMESPACE: {
                self._prefix + k: self._encode_open(self._open[k]).decode() for k in self._dirty
            },
        }
        if closing:
            puts[LEDGER_NAMESPACE] = {entry.path: encode_entry(entry) for entry in closing}
        self._dirty.clear()
        return puts

    async def committed(self) -> None:
        if self._committing:
            closing, self._committing = self._committing, []
            try:
                await asyncio.to_thread(self._finish, closing)
            except Exception:
                # A full disk, say: the writer retries the checkpoint, and `_finish` is safe
                # to repeat, so the closing is finished then rather than at the next start.
                self._committing = closing + self._committing
                raise

    async def close(self) -> None:
        self.files.close()

    # --- closing ----------------------------------------------------------------------------

    def _companion(self, chunk: OpenChunk) -> OpenChunk | None:
        """The provenance chunk in step with a data chunk (same number, a line for each of its
        lines so far), or None: a chunk opened before there were any goes without."""
        companion = self._open.get(chunk.companion_key)
        if companion is None or companion.seq != chunk.seq or companion.records != chunk.records:
            return None
        return companion

    def _chunk(self, split: str, stem: str) -> OpenChunk:
        key = f"{split}/{stem}"
        chunk = self._open.get(key)
        floor = self._floor.get(key, 0)
        if chunk is None:
            chunk = self._open[key] = OpenChunk(split, stem, floor + 1)
            self._dirty.add(key)
        elif not chunk.records and chunk.seq <= floor:
            chunk.seq = floor + 1  # a number found on disk or in the ledger is never reused
            self._dirty.add(key)
        return chunk

    def _close(self, chunk: OpenChunk) -> OpenChunk:
        """Close `chunk` (durable with the next checkpoint); the chunk that follows it."""
        companion = self._companion(chunk)
        if companion is not None:
            self._closing.append(self._entry(companion))
            self._open[companion.key] = OpenChunk(
                chunk.split, chunk.stem, chunk.seq + 1, folder=PROVENANCE
            )
            self._dirty.add(companion.key)
        self._closing.append(self._entry(chunk))
        self._raise_floor(chunk.key, chunk.seq)
        following = self._open[chunk.key] = OpenChunk(chunk.split, chunk.stem, chunk.seq + 1)
        self._dirty.add(chunk.key)
        self._due.discard(chunk.key)
        self.log.info(
            "chunk_closed", file=chunk.repo_path, records=chunk.records, bytes=chunk.bytes
        )
        return following

    def _entry(self, chunk: OpenChunk) -> ChunkEntry:
        origins = []
        for origin, records in sorted(chunk.origins.items()):
            source, _, dataset = origin.partition("\x1f")
            origins.append(Origin(source, dataset, records))
        return ChunkEntry(
            path=chunk.repo_path,
            split=chunk.split,
            stem=chunk.stem,
            seq=chunk.seq,
            records=chunk.records,
            bytes=chunk.bytes,
            origins=origins,
            status="closing",
            closed_at=self.clock(),
            instance=self.instance,
        )

    def _finish(self, entries: Iterable[ChunkEntry]) -> None:
        """Steps 2 and 3 of closing (sync: run in a thread); safe to repeat after a crash."""
        done = []
        for entry in entries:
            source = self.open_path(entry.split, entry.stem, entry.seq, entry.folder)
            target = self.closed_path(entry.path)
            # Stop tracking first: a crash before the rename leaves a complete file that the
            # next start renames (a closed chunk never received a line after its checkpoint).
            self.files.forget(source)
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                fsync_dir(target.parent)
                fsync_dir(source.parent)
            elif not target.exists():
                self.log.error("chunk_lost", file=entry.path, records=entry.records)
                self.state.delete(LEDGER_NAMESPACE, [entry.path])
                continue
            entry.status = "pending"
            entry.bytes = target.stat().st_size
            entry.oid, entry.sha256 = file_digests(target)
            done.append(entry)
        if done:
            self.ledger.put(done)

    def finish_revisions(self, entries: Iterable[ChunkEntry]) -> None:
        """New versions of closed chunks made by `forget` (sync): moved into place if a crash
        stopped it before, then pending, so the next round commits them."""
        revising = [e for e in entries if e.status == "revising" and e.instance == self.instance]
        if not revising:
            return
        for folder in (DATA, PROVENANCE):
            key = self.files.key(self.root / folder)
            apply_replacements(self.files.root, self.state, f"{key}/", self.log)
        done = []
        for entry in revising:
            path = self.closed_path(entry.path)
            if path.is_file() and file_digests(path) == (entry.oid, entry.sha256):
                entry.status = "pending"
                done.append(entry)
            else:
                self.log.error("chunk_revision_missing", file=entry.path)
        if done:
            self.ledger.put(done)
            self.log.info("chunk_revisions_finished", chunks=len(done))

    def mark_due(self, *, everything: bool = False) -> int:
        """Chunks older than `max_age` (or every open chunk) close at the next checkpoint."""
        now = self.clock()
        for key, chunk in self._open.items():
            if chunk.folder != DATA:
                continue  # a provenance chunk closes with its data chunk
            if chunk.records and (everything or now - chunk.opened_at >= self.config.max_age):
                self._due.add(key)
        return len(self._due)

    async def close_now(self, *, everything: bool = False) -> int:
        """Close what is due right away; only when no pipeline writes (shutdown, a command)."""
        if not self.mark_due(everything=everything) and not self._closing:
            return 0
        puts = await self.flush()
        closed = sum(1 for entry in self._committing if entry.folder == DATA)
        await asyncio.to_thread(self.state.commit, puts)
        await self.committed()
        return closed

    def open_chunks(self) -> list[OpenChunk]:
        return [c for c in self._open.values() if c.records and c.folder == DATA]
