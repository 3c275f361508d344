"""The raw archive: every response that produced records, kept as gzip JSON.

    training-data/raw/{source}/{YYYY}/{MM}/{DD}/{HHMMSS}-{ns}-{kind}.json.gz

One file holds one archive entry: the responses that together made a batch of records (a Stack
Exchange page of questions and the answers fetched for it, a GitHub file and its search hit),
each with its request URL, params and headers and the response status, headers and body.
Secrets never reach the disk: query parameters and headers that carry keys or tokens are
replaced by `[REDACTED]`, in the URL too.

With `raw.retention` set, the daemon removes the files written longer ago than that (the
entries, and the dataset files Kaggle and Hugging Face sources keep beside them) and notes it
in `raw/{source}/expired.json`, so `reprocess` can say what it can no longer rebuild.

`resume-collector reprocess` reads the entries back and hands them to the source's
`records_from_archive(entry)`, the same parsing code the live fetch uses, so changed processors
can be re-run over everything fetched so far without a single request.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import gzip
import os
import re
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from collector.diskfull import DiskFull, DiskWait, replacing
from collector.sinks.naming import safe_part
from collector.stopping import SourceStopping
from processors.records import Drop, RawRecord

if TYPE_CHECKING:
    from collector.http import HttpResponse
    from collector.sources.base import SourceContext

REDACTED = "[REDACTED]"
# Query parameters and headers whose values are secrets (matched case-insensitively).
_SECRET_NAME = re.compile(
    r"^(key|api[_-]?key|access[_-]?token|token|client[_-]?secret|secret|password|sig|signature"
    r"|authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token)$",
    re.IGNORECASE,
)


class ArchivedResponse(msgspec.Struct, frozen=True):
    url: str
    params: dict[str, str]
    request_headers: dict[str, str]
    status: int
    headers: dict[str, str]
    body: str  # the body as text (UTF-8, undecodable bytes replaced)

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class ArchiveEntry(msgspec.Struct, frozen=True):
    source: str
    kind: str  # what the responses are, in the source's words ("questions", "resume_file")
    saved_at: float
    responses: list[ArchivedResponse]
    note: dict[str, Any] = {}  # whatever else the source needs to rebuild its records


class Expired(msgspec.Struct, frozen=True):
    """What retention removed from one source's folder: every file written before `before`."""

    before: float
    files: int


EXPIRED_NOTE = "expired.json"


class ArchiveCorrupt(Exception):
    """An archive file that cannot be read back: not gzip, cut short, or not an entry."""


@runtime_checkable
class ArchivingSource(Protocol):
    """A source whose records can be rebuilt from its archive (`reprocess` and `forget` ask
    `isinstance(source, ArchivingSource)`; an inbox source has no archive)."""

    name: str

    def records_from_archive(self, entry: ArchiveEntry) -> tuple[list[RawRecord], list[Drop]]: ...


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, REDACTED if _SECRET_NAME.match(k) else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[];:,/")))


def redact(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {k: REDACTED if _SECRET_NAME.match(k) else str(v) for k, v in (values or {}).items()}


def archived(
    response: HttpResponse,
    params: Mapping[str, Any] | None = None,
    request_headers: Mapping[str, str] | None = None,
) -> ArchivedResponse:
    """A response as the archive keeps it, with every secret redacted."""
    return ArchivedResponse(
        url=redact_url(response.url),
        params=redact(params),
        request_headers=redact(request_headers),
        status=response.status,
        headers=redact(response.headers),
        body=response.body.decode("utf-8", "replace"),
    )


class RawArchive:
    """Writes and reads one source's archive folder."""

    def __init__(
        self,
        raw_dir: Path,
        source: str,
        enabled: bool = True,
        context: SourceContext | None = None,
    ) -> None:
        self.root = raw_dir / safe_part(source)
        self.source = source
        self.enabled = enabled
        # A live source's archive (with its context) waits for space on a full disk; the
        # commands (reprocess, forget) have nobody to wait for and get the error.
        self.context = context
        self.disk = DiskWait(context.log) if context is not None else None
        self._sequence = 0

    @classmethod
    def at(cls, root: Path) -> RawArchive:
        """The archive in an existing folder, named as it is on disk."""
        archive = cls(root.parent, root.name)
        archive.root = root
        return archive

    async def save(
        self, kind: str, responses: list[ArchivedResponse], note: Mapping[str, Any] | None = None
    ) -> Path | None:
        """Write one entry (in a thread); its path, or None when archiving is off."""
        if not self.enabled or not responses:
            return None
        entry = ArchiveEntry(self.source, kind, time.time(), responses, dict(note or {}))
        while True:
            try:
                path = await asyncio.to_thread(self._write, entry)
            except DiskFull as full:
                if self.disk is None or self.context is None:
                    raise
                await self._wait_for_space(full, self.disk, self.context)
                continue
            if self.disk is not None:
                self.disk.succeeded()
            return path

    async def _wait_for_space(self, full: DiskFull, disk: DiskWait, context: SourceContext) -> None:
        """Hold the source (its batch is not yielded, so its cursor stays) until the next try;
        a stop ends the pass instead: the next start fetches the batch again."""
        wait = disk.failed(full)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.stop.wait(), wait)
        if context.stop.is_set():
            raise SourceStopping(f"stopping: the raw archive waits for space at {full.filename}")

    def _write(self, entry: ArchiveEntry) -> Path:
        self._sequence += 1
        stamp = time.gmtime(entry.saved_at)
        folder = self.root / time.strftime("%Y/%m/%d", stamp)
        name = f"{time.strftime('%H%M%S', stamp)}-{time.time_ns()}-{self._sequence:06d}"
        path = folder / f"{name}-{safe_part(entry.kind)}.json.gz"
        part = path.with_name(path.name + ".part")
        with replacing(part, part):
            folder.mkdir(parents=True, exist_ok=True)
            with gzip.open(part, "wb", compresslevel=6) as out:
                out.write(msgspec.json.encode(entry))
            os.replace(part, path)
        return path

    def files(self) -> list[Path]:
        """Every entry file, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.rglob("*.json.gz"), key=lambda p: p.relative_to(self.root).parts)

    @staticmethod
    def read(path: Path) -> ArchiveEntry:
        try:
            data = gzip.decompress(path.read_bytes())
            return msgspec.json.decode(data, type=ArchiveEntry)
        except (OSError, EOFError, zlib.error, msgspec.DecodeError, UnicodeDecodeError) as error:
            raise ArchiveCorrupt(f"{path}: {type(error).__name__}: {error}") from error

    def expire(self, cutoff: float) -> int:
        """Remove every file of this source written before `cutoff` (epoch seconds), and the
        day folders of entries left empty; note it in `expired.json`. The count removed."""
        if not self.root.is_dir():
            return 0
        note = self.root / EXPIRED_NOTE
        removed = 0
        for folder, _, names in os.walk(self.root):  # links are not followed
            for name in names:
                path = Path(folder, name)
                if path == note:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        self._remove_empty_days(cutoff)
        if removed:
            before = self.expired()
            total = Expired(cutoff, removed + (before.files if before else 0))
            part = note.with_name(note.name + ".part")
            part.write_bytes(msgspec.json.encode(total))
            os.replace(part, note)
        return removed

    def _remove_empty_days(self, cutoff: float) -> None:
        """Day folders (YYYY/MM/DD) that ended before `cutoff` and hold nothing: no entry can be
        written there any more (entries go to the folder of the day they are saved)."""
        for day in sorted(self.root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
            try:
                start = calendar.timegm(time.strptime("/".join(day.parts[-3:]), "%Y/%m/%d"))
            except ValueError:
                continue
            if start + 86400 > cutoff:
                continue
            for folder in (day, day.parent, day.parent.parent):
                with contextlib.suppress(OSError):  # not empty: kept
                    folder.rmdir()

    def expired(self) -> Expired | None:
        """What retention has removed from this source so far, if anything."""
        try:
            return msgspec.json.decode((self.root / EXPIRED_NOTE).read_bytes(), type=Expired)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def entries(self) -> Iterator[tuple[Path, ArchiveEntry | ArchiveCorrupt]]:
        for path in self.files():
            try:
                yield path, self.read(path)
            except ArchiveCorrupt as error:
                yield path, error


def expire_raw(raw_dir: Path, cutoff: float) -> dict[str, int]:
    """Apply retention to every source folder under `raw_dir` (configured now or not): the
    number of files removed per folder."""
    if not raw_dir.is_dir():
        return {}
    folders = sorted(p for p in raw_dir.iterdir() if p.is_dir() and not p.is_symlink())
    return {folder.name: RawArchive.at(folder).expire(cutoff) for folder in folders}
