"""Erasure on request (`resume-collector forget`): a person's records out of every output.

A request names literal text (an e-mail, a name, a profile URL: matched as the opt-out list
matches, whole words in any case, on records as fetched, before anonymization) or one record
(`--source NAME --record ID`). What is done, in this order, each step safe to repeat:

1. **Find.** The raw archive is read back with each source's own parsing code
   (`records_from_archive`) and inbox files are read again, so a name the output shows as
   `[NAME]` is still found; every record that matches gives its (source, record id). Raw entries
   whose text matches are found even for sources no longer configured.
2. **Remember** (one commit to namespace `forgotten`): the texts and the record keys. From then
   on the service drops a matching record as `opted_out` as it is fetched (`ForgottenList`),
   and a rerun knows every record to remove even once its raw entry is gone.
3. **Rewrite** the output files without the records' lines: formatted training,
   `__rewritten`, `__pairs` and `__provenance` files (lines found by provenance), open chunks,
   pending chunks, and published chunks (read back from the target). Every new version is
   written and fsynced beside its file; then ONE state transaction saves the new committed
   lengths, the open chunks' counts, the ledger entries of revised chunks (`revising`), the
   rewrite stage's cursors moved back by the bytes removed before them, the counters
   (`written`/`pairs` down, `drop:forgotten` up) and the list of replacements to make
   (`files_replace`). Then each new version is renamed over its file. A crash before the
   transaction leaves everything as it was (the rerun starts over); after it, whoever opens the
   files next (the rerun, the daemon, `upload`) makes the remaining renames before anything
   else (`collector/sinks/files.py` `apply_replacements`).
4. **Clean up**: raw entries that held a match are removed, and rewrite-cache answers that only
   the removed lines used. The dedupe indexes are sets that only ever grow (a run of keys cannot
   be taken out of); the fingerprints stay, which only matters to a record that comes back, and
   step 2 drops it before dedupe is asked.

The revised chunks are committed by the next upload round like any pending chunk, over the
version they replace (`collector/upload/targets.py`), exactly once through the ledger.
"""

from __future__ import annotations

import gzip
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from collector import layout, moments
from collector.config import Config
from collector.logging import Logger
from collector.pipeline import CURSOR_NAMESPACE, cursor_key
from collector.sinks.files import NAMESPACE as FILES_NAMESPACE
from collector.sinks.files import REPLACE_NAMESPACE, _fsync_dir, apply_replacements
from collector.state import StateStore
from processors.optout import REASON as OPTED_OUT
from processors.optout import OptOutList
from processors.records import Drop, RawRecord

if TYPE_CHECKING:
    from collector.upload.chunks import OpenChunk
    from collector.upload.ledger import ChunkEntry

NAMESPACE = "forgotten"
DROP = "forgotten"  # the counter `drop:forgotten`: lines removed on request
TEMP_SUFFIX = ".forget-tmp"
_REWRITE_RUNNER = "rewrite:pairs"
_REWRITE_CACHE = "rewrite:cache"


def record_key(source: str, record_id: str) -> str:
    return f"record:{source}\x1f{record_id}"


def text_key(text: str) -> str:
    return f"text:{text.casefold()}"


class ForgottenList:
    """What `forget` was asked to remove, as the service checks it on every fetched record."""

    def __init__(self, texts: Iterable[str] = (), records: Iterable[tuple[str, str]] = ()):
        self.texts = sorted(set(texts))
        self.records = set(records)
        self.matcher = OptOutList(self.texts)

    @classmethod
    def load(cls, state: StateStore) -> ForgottenList:
        texts, records = [], []
        for key, _ in state.scan(NAMESPACE):
            kind, _, value = key.partition(":")
            if kind == "text" and value:
                texts.append(value)
            elif kind == "record":
                source, _, record_id = value.partition("\x1f")
                records.append((source, record_id))
        return cls(texts, records)

    def extend(self, texts: Iterable[str], records: Iterable[tuple[str, str]]) -> None:
        """Add a request while the service runs: in effect for the next record checked."""
        texts = sorted({*self.texts, *texts})
        matcher = OptOutList(texts)
        self.records = self.records | set(records)
        self.matcher, self.texts = matcher, texts

    def __len__(self) -> int:
        return len(self.texts) + len(self.records)

    def match(self, record: RawRecord) -> str:
        if derived(record.source, record.id, self.records):
            return "forgotten record"
        return "forgotten text" if self.texts and self.matcher.match(record) else ""

    def split(self, records: list[RawRecord]) -> tuple[list[RawRecord], list[Drop]]:
        if not len(self):
            return records, []
        kept, drops = [], []
        for record in records:
            kind = self.match(record)
            if kind:
                drops.append(Drop(record.source, record.dataset, record.id, OPTED_OUT, kind))
            else:
                kept.append(record)
        return kept, drops


# --- 1. find -----------------------------------------------------------------------------------


@dataclass
class Found:
    records: set[tuple[str, str]] = field(default_factory=set)
    datasets: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> dataset
    raw_files: list[Path] = field(default_factory=list)
    raw_others: int = 0  # records of other people in those raw entries (their raw copy goes)
    unreadable: list[str] = field(default_factory=list)


def _text_pattern(texts: list[str]) -> re.Pattern[bytes] | None:
    if not texts:
        return None
    alternatives = "|".join(re.escape(t) for t in sorted(set(texts), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)".encode(), re.IGNORECASE)


async def find(config: Config, data_dir: Path, wanted: ForgottenList, log: Logger) -> Found:
    """Every record (and raw entry) that the request, or an earlier one, matches."""
    from collector.sources import build_source
    from collector.sources.archive import ArchiveCorrupt, ArchiveEntry, ArchivingSource, RawArchive
    from collector.sources.base import SourceContext
    from collector.sources.config import InboxSourceConfig

    found = Found()
    raw_dir = layout.raw_dir(data_dir)
    pattern = _text_pattern(wanted.texts)
    context = SourceContext(data_dir=data_dir, log=log)
    configured = {}
    for source_config in config.sources:
        try:
            configured[source_config.name] = (source_config, build_source(source_config, context))
        except Exception as error:  # a source that cannot be built is searched by text only
            log.warning("forget_source_unavailable", source=source_config.name, error=str(error))
    folders = sorted(p for p in raw_dir.iterdir() if p.is_dir()) if raw_dir.is_dir() else []
    by_folder = {RawArchive(raw_dir, name).root: pair for name, pair in configured.items()}
    for folder in folders:
        archive = RawArchive.at(folder)
        live = by_folder.get(folder, (None, None))[1]
        rebuild = live.records_from_archive if isinstance(live, ArchivingSource) else None
        for path in archive.files():
            try:
                data = gzip.decompress(path.read_bytes())
            except (OSError, EOFError, zlib.error):
                found.unreadable.append(str(path))
                continue
            hit = bool(pattern is not None and pattern.search(data))
            records: list[RawRecord] = []
            if rebuild is not None:
                try:
                    entry = msgspec.json.decode(data, type=ArchiveEntry)
                    records = rebuild(entry)[0]
                except (ArchiveCorrupt, msgspec.DecodeError, ValueError, KeyError, TypeError):
                    records = []
            matched = [r for r in records if wanted.match(r)]
            for record in matched:
                found.records.add((record.source, record.id))
                found.datasets[(record.source, record.id)] = record.dataset
            if hit or matched:
                found.raw_files.append(path)
                found.raw_others += len(records) - len(matched)
    for name, (source_config, live) in configured.items():
        if not isinstance(source_config, InboxSourceConfig):
            continue
        # Not archived: the inbox files are read again, as the source reads them.
        try:
            async for batch in live.fetch({}):
                for record in batch.records:
                    if wanted.match(record):
                        found.records.add((record.source, record.id))
                        found.datasets[(record.source, record.id)] = record.dataset
        except Exception as error:
            log.warning("forget_inbox_unreadable", source=name, error=str(error))
    for _, live in configured.values():
        close = getattr(live, "close", None)
        if close is not None:
            await close()
    return found


# --- 3. rewrite --------------------------------------------------------------------------------


@dataclass
class Change:
    """A file's new version: the lines kept, and what was removed from it."""

    key: str  # relative to data_dir
    content: bytes
    removed: int
    removed_before: list[tuple[int, int]] = field(default_factory=list)  # (offset, length)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    puts: dict[str, dict[str, str]] = field(default_factory=dict)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    lines: dict[str, int] = field(default_factory=dict)  # file key -> lines removed
    chunks: dict[str, int] = field(default_factory=dict)  # chunk repo path -> lines removed
    answers: set[str] = field(default_factory=set)  # rewritten answers removed (cache)
    names: set[str] = field(default_factory=set)  # output names touched (clean reports)

    def put(self, namespace: str, key: str, value: str) -> None:
        self.puts.setdefault(namespace, {})[key] = value

    @property
    def removed(self) -> int:
        return sum(self.lines.values())


def derived(source: str, record_id: str, records: set[tuple[str, str]]) -> bool:
    """Whether a line with this id came from one of `records`: the record's own id, or the id
    a formatter gives each line it makes from it (`{id}/{n}`, `{id}/summary`)."""
    if (source, record_id) in records:
        return True
    parent = record_id.rpartition("/")[0]
    return bool(parent) and (source, parent) in records


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True) if path.is_file() else []


_Provenance = msgspec.json.Decoder(dict[str, Any])


def plan_formatted(data_dir: Path, records: set[tuple[str, str]], plan: Plan) -> dict[bytes, str]:
    """The formatted files' new versions; the removed training lines -> "source\\x1fdataset"."""
    formatted = layout.formatted_dir(data_dir)
    removed_lines: dict[bytes, str] = {}
    if not formatted.is_dir():
        return removed_lines
    for provenance in sorted(formatted.glob("*__provenance.jsonl")):
        training = provenance.with_name(
            provenance.name.removesuffix("__provenance.jsonl") + ".jsonl"
        )
        origins, lines = _lines(provenance), _lines(training)
        if len(origins) != len(lines):
            raise RuntimeError(
                f"{training.name} has {len(lines)} lines and its provenance {len(origins)}:"
                " not removing anything from them by position"
            )
        keep_o, keep_l, gone = [], [], 0
        for origin, line in zip(origins, lines, strict=True):
            info = _Provenance.decode(origin)
            source, dataset = str(info.get("source", "")), str(info.get("dataset", ""))
            if derived(source, str(info.get("record_id", "")), records):
                gone += 1
                removed_lines[line] = f"{source}\x1f{dataset}"
                plan.counts[(source, dataset, "written")] -= 1
                plan.counts[(source, dataset, f"drop:{DROP}")] += 1
                if training.name.endswith("__rewritten.jsonl"):
                    plan.answers.update(_answers(line))
                plan.names.add(training.name.removesuffix(".jsonl").removesuffix("__rewritten"))
            else:
                keep_o.append(origin)
                keep_l.append(line)
        if gone:
            for path, kept in ((training, keep_l), (provenance, keep_o)):
                key = path.relative_to(data_dir).as_posix()
                plan.changes.append(Change(key, b"".join(kept), gone))
                plan.lines[key] = gone
    for pairs in sorted(formatted.glob("*__pairs.jsonl")):
        kept, gone, offset, removed_at = [], 0, 0, []
        for line in _lines(pairs):
            info = _Provenance.decode(line)
            source, dataset = str(info.get("source", "")), str(info.get("dataset", ""))
            if derived(source, str(info.get("record_id", "")), records):
                gone += 1
                removed_at.append((offset, len(line)))
                plan.counts[(source, dataset, "pairs")] -= 1
                plan.counts[(source, dataset, f"drop:{DROP}")] += 1
                plan.names.add(pairs.name.removesuffix("__pairs.jsonl"))
            else:
                kept.append(line)
            offset += len(line)
        if gone:
            key = pairs.relative_to(data_dir).as_posix()
            plan.changes.append(Change(key, b"".join(kept), gone, removed_at))
            plan.lines[key] = gone
    return removed_lines


def _answers(line: bytes) -> list[str]:
    try:
        messages = msgspec.json.decode(line).get("messages", [])
        return [m["content"] for m in messages if m.get("role") == "assistant"]
    except (msgspec.DecodeError, AttributeError, KeyError, TypeError):
        return []


def plan_rewrite_cursors(state: StateStore, plan: Plan, instance: str) -> None:
    """The rewrite stage reads `__pairs` files by byte offset: each cursor moves back by the
    bytes removed before it, so no pair after them is skipped or read twice."""
    for change in plan.changes:
        if not change.removed_before:
            continue
        stream = f"{instance}:{change.key}" if instance else change.key
        key = cursor_key(_REWRITE_RUNNER, stream)
        value = state.get(CURSOR_NAMESPACE, key)
        if value is None or not value.isdigit():
            continue
        cursor = int(value)
        back = sum(length for at, length in change.removed_before if at + length <= cursor)
        if back:
            plan.put(CURSOR_NAMESPACE, key, str(cursor - back))


def _filter_chunk(
    lines: list[bytes], removed: dict[bytes, str]
) -> tuple[list[bytes], Counter[str], set[int]]:
    """The lines kept, the removed ones per origin, and the positions of the removed ones."""
    kept: list[bytes] = []
    gone: Counter[str] = Counter()
    at: set[int] = set()
    for position, line in enumerate(lines):
        origin = removed.get(line)
        if origin is None:
            kept.append(line)
        else:
            gone[origin] += 1
            at.add(position)
    return kept, gone, at


def _without(lines: list[bytes], at: set[int]) -> list[bytes] | None:
    """A provenance chunk's lines without those at the positions removed from its data chunk
    (its lines are not unique: several examples may have the same provenance), or None when
    it is not line for line with its data chunk."""
    if not at or max(at) >= len(lines):
        return None
    return [line for position, line in enumerate(lines) if position not in at]


def plan_chunks(
    config: Config,
    data_dir: Path,
    state: StateStore,
    removed: dict[bytes, str],
    plan: Plan,
    *,
    instance: str,
    target: Any,
) -> None:
    """New versions of open, pending and published chunks without the removed lines, and of
    the provenance chunks beside them without the lines at the same positions."""
    from collector.upload.chunks import DATA, OPEN_NAMESPACE, OpenChunk
    from collector.upload.chunks import companion_path as provenance_of_chunk
    from collector.upload.ledger import Ledger

    if not removed:
        return
    root = layout.chunks_dir(data_dir)
    prefix = f"{instance}\x1f" if instance else ""
    decode_open = msgspec.json.Decoder(OpenChunk).decode
    opened = {key: decode_open(value.encode()) for key, value in state.scan(OPEN_NAMESPACE, prefix)}
    for key, chunk in opened.items():
        if not chunk.records or chunk.folder != DATA:
            continue
        path = root / chunk.open_file
        lines = _lines(path)
        kept, gone, at = _filter_chunk(lines, removed)
        if not gone:
            continue
        companion_key = prefix + chunk.companion_key
        companion = opened.get(companion_key)
        if companion is not None and (companion.seq, companion.records) == (chunk.seq, len(lines)):
            companion_file = root / companion.open_file
            companion_kept = _without(_lines(companion_file), at)
            if companion_kept is not None:
                _revise_open(
                    plan,
                    data_dir,
                    companion_key,
                    companion,
                    companion_file,
                    companion_kept,
                    gone,
                    count=False,
                )
        _revise_open(plan, data_dir, key, chunk, path, kept, gone, count=True)
    entries = {e.path: e for e in Ledger(state).entries(instance=instance, folder=None)}

    def content_of(entry: ChunkEntry) -> bytes:
        local = root / entry.path
        if entry.status == "committed" and not local.is_file():
            data = target.read(entry.path, entry.commit) if target is not None else None
            if data is None:
                raise RuntimeError(f"{entry.path}: published, and not readable from the target")
            return bytes(data)
        return local.read_bytes() if local.is_file() else b""

    for entry in entries.values():
        if entry.folder != DATA or entry.status not in REVISABLE:
            continue
        lines = content_of(entry).splitlines(keepends=True)
        kept, gone, at = _filter_chunk(lines, removed)
        if not gone:
            continue
        companion_entry = entries.get(provenance_of_chunk(entry.path))
        if companion_entry is not None and companion_entry.status in REVISABLE:
            companion_lines = content_of(companion_entry).splitlines(keepends=True)
            companion_kept = _without(companion_lines, at)
            if companion_kept is not None and len(companion_lines) == len(lines):
                _revise_entry(plan, data_dir, companion_entry, companion_kept, gone, count=False)
        _revise_entry(plan, data_dir, entry, kept, gone, count=True)


REVISABLE = ("pending", "committed", "revising")


def _revise_open(
    plan: Plan,
    data_dir: Path,
    key: str,
    chunk: OpenChunk,
    path: Path,
    kept: list[bytes],
    gone: Counter[str],
    *,
    count: bool,
) -> None:
    """An open chunk's new version: its file, its counts. `count`: a data chunk, whose
    removed lines are the request's (a provenance chunk's only follow them)."""
    from collector.upload.chunks import OPEN_NAMESPACE

    content = b"".join(kept)
    file_key = path.relative_to(data_dir).as_posix()
    plan.changes.append(Change(file_key, content, sum(gone.values())))
    if count:
        plan.lines[file_key] = sum(gone.values())
        plan.chunks[chunk.repo_path] = sum(gone.values())
    chunk.records, chunk.bytes = len(kept), len(content)
    for origin, n in gone.items():
        left = chunk.origins.get(origin, 0) - n
        if left > 0:
            chunk.origins[origin] = left
        else:
            chunk.origins.pop(origin, None)
    plan.put(OPEN_NAMESPACE, key, msgspec.json.encode(chunk).decode())
    plan.put(FILES_NAMESPACE, file_key, str(len(content)))


def _revise_entry(
    plan: Plan,
    data_dir: Path,
    entry: ChunkEntry,
    kept: list[bytes],
    gone: Counter[str],
    *,
    count: bool,
) -> None:
    """A closed chunk's new version, `revising` in the ledger until it is in place."""
    from collector.upload.ledger import NAMESPACE as LEDGER
    from collector.upload.ledger import Origin
    from collector.upload.ledger import encode as encode_entry

    content = b"".join(kept)
    file_key = (layout.chunks_dir(data_dir) / entry.path).relative_to(data_dir).as_posix()
    plan.changes.append(Change(file_key, content, sum(gone.values())))
    if count:
        plan.lines[file_key] = sum(gone.values())
        plan.chunks[entry.path] = sum(gone.values())
    if not entry.revision:
        # Pending may mean committed with the answer lost (a crash before the ledger): the
        # target may hold this content, and the new version may go over it.
        entry.replaces_oid, entry.replaces_sha256 = entry.oid, entry.sha256
    elif entry.status == "committed":
        entry.replaces_oid, entry.replaces_sha256 = entry.oid, entry.sha256
    entry.revision += 1
    origins = {f"{o.source}\x1f{o.dataset}": o.records for o in entry.origins}
    for origin, n in gone.items():
        origins[origin] = origins.get(origin, 0) - n
    entry.origins = [Origin(*_pair(origin), n) for origin, n in sorted(origins.items()) if n > 0]
    entry.records, entry.bytes = len(kept), len(content)
    entry.removed += sum(gone.values())
    entry.oid, entry.sha256 = _digests(content)
    entry.status = "revising"
    plan.put(LEDGER, entry.path, encode_entry(entry))


def _pair(origin: str) -> tuple[str, str]:
    source, _, dataset = origin.partition("\x1f")
    return source, dataset


def _digests(content: bytes) -> tuple[str, str]:
    import hashlib

    git = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    return git, hashlib.sha256(content).hexdigest()


def write_new_versions(data_dir: Path, plan: Plan) -> None:
    """Each new version beside its file, fsynced; the replacements and lengths to commit."""
    for change in plan.changes:
        path = data_dir / change.key
        temporary = path.with_name(f".{path.name}{TEMP_SUFFIX}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as handle:
            handle.write(change.content)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(path.parent)
        plan.put(REPLACE_NAMESPACE, change.key, temporary.relative_to(data_dir).as_posix())
        if change.key.startswith("formatted/"):
            plan.put(FILES_NAMESPACE, change.key, str(len(change.content)))


def remove_stale_temporaries(data_dir: Path, state: StateStore) -> None:
    """New versions a crash left before their transaction: nothing refers to them."""
    wanted = {value for _, value in state.scan(REPLACE_NAMESPACE)}
    for folder in (layout.formatted_dir(data_dir), layout.chunks_dir(data_dir)):
        if folder.is_dir():
            for path in folder.rglob(f"*{TEMP_SUFFIX}"):
                if path.relative_to(data_dir).as_posix() not in wanted:
                    path.unlink(missing_ok=True)


def apply_all(data_dir: Path, state: StateStore, log: Logger) -> int:
    return apply_replacements(data_dir, state, "", log)


def remember(state: StateStore, texts: list[str], records: Iterable[tuple[str, str]]) -> None:
    now = repr(time.time())
    puts = {NAMESPACE: {text_key(t): now for t in texts}}
    puts[NAMESPACE].update({record_key(s, r): now for s, r in records})
    if puts[NAMESPACE]:
        state.commit(puts)


def clean_cache(state: StateStore, answers: set[str]) -> int:
    """Rewrite-cache answers that were the removed `__rewritten` lines' answers."""
    if not answers:
        return 0
    decoder = msgspec.json.Decoder(dict[str, Any])
    stale = []
    wanted = {a.strip() for a in answers}
    for key, value in state.scan(_REWRITE_CACHE):
        try:
            content = str(decoder.decode(value).get("content", "")).strip()
        except msgspec.DecodeError:
            continue
        if content and (content in wanted or any(content in a for a in wanted)):
            stale.append(key)
    if stale:
        state.delete(_REWRITE_CACHE, stale)
    return len(stale)


# --- the whole routine -------------------------------------------------------------------------


@dataclass
class Erasure:
    """What one run of the routine found and changed."""

    found: Found
    plan: Plan
    cache_entries: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "records": len(self.found.records),
            "lines": self.plan.removed,
            "chunks": len(self.plan.chunks),
            "raw_files": len(self.found.raw_files),
            "cache_entries": self.cache_entries,
        }


async def erase(
    config: Config,
    data_dir: Path,
    state: StateStore,
    texts: list[str],
    records: list[tuple[str, str]],
    log: Logger,
    *,
    instance: str,
    dry_run: bool,
    report: Any = None,
) -> Erasure | None:
    """Steps 1 to 4 over files that no other code writes while it runs: `forget` with the data
    folder to itself, or the service between two checkpoints with its sinks closed. Every
    earlier request is applied again with this one (a crash left it half done, say). None:
    nothing was ever asked to be forgotten. `report(found, plan)` is called before any change."""
    import asyncio

    from collector.sinks.formatted import FormattedSink
    from collector.upload.targets import build_target

    before = await asyncio.to_thread(ForgottenList.load, state)
    wanted = ForgottenList([*before.texts, *texts], before.records | set(records))
    if not len(wanted):
        return None
    found = await find(config, data_dir, wanted, log)
    every = found.records | wanted.records
    plan = Plan()
    removed = await asyncio.to_thread(plan_formatted, data_dir, every, plan)
    await asyncio.to_thread(plan_rewrite_cursors, state, plan, instance)
    target = build_target(config.upload, data_dir, log) if config.upload.enabled else None
    await asyncio.to_thread(
        plan_chunks, config, data_dir, state, removed, plan, instance=instance, target=target
    )
    found.records |= set(records)
    if report is not None:
        report(found, plan)
    result = Erasure(found, plan)
    if dry_run:
        return result
    # 2. Remembered before anything goes: a crash from here on loses no record key.
    await asyncio.to_thread(remember, state, texts, found.records)
    moments.passed("forget_after_remember")
    # 3. New versions beside the files, then one transaction, then the renames.
    await asyncio.to_thread(write_new_versions, data_dir, plan)
    moments.passed("forget_before_commit")
    await asyncio.to_thread(state.commit, plan.puts, dict(plan.counts))
    moments.passed("forget_after_commit")
    await asyncio.to_thread(apply_all, data_dir, state, log)
    # 4. Clean up what nothing else refers to.
    for path in found.raw_files:
        path.unlink(missing_ok=True)
    result.cache_entries = await asyncio.to_thread(clean_cache, state, plan.answers)
    if plan.names:
        reports = FormattedSink(data_dir, state, log)
        await asyncio.to_thread(reports._write_reports, plan.names)
    return result
