"""Hugging Face datasets: the CSV, JSON and JSONL files of a dataset repo, or its rows through
the dataset viewer.

Files (the default), one stream per repo named `owner/dataset`:

    GET {base}/api/datasets/{repo}[/revision/{rev}]              -> sha (the version)
        ({rev} quoted whole, as the client does: `refs%2Fconvert%2Fparquet`, `refs%2Fpr%2F3`)
    GET {base}/api/datasets/{repo}/tree/{sha}?recursive=true     -> files (paginated: Link)
    GET {base}/datasets/{repo}/resolve/{sha}/{path}              -> the file (may redirect)

Files are read at the commit the version names (`sha`), so a push in the middle of a pass
cannot mix two versions. Each downloads to `{data_dir}/raw/{source}/huggingface/{repo}/{sha}/`
(checked against the size the tree gives), then is read as a stream like a Kaggle member. A
file stored as a Git LFS pointer (`version https://git-lfs.github.com/spec/v1`) is reported
with the reason `lfs_pointer`, never parsed as data.

Rows (`use_rows_api = true`):

    GET {rows_url}/rows?dataset={repo}&config={config}&split={split}&offset=N&length=100

until `num_rows_total`; a row whose cells the viewer truncated (`truncated_cells`) is dropped
(`truncated_cell`): half a resume is not a record. A page marked `partial: true` comes from a
partial conversion of a large dataset (the viewer converts only its first part), so
`num_rows_total` is not the whole dataset: such pages are counted (`telemetry()`:
`rows_partial_pages`) and logged once per pass (`hf_rows_partial`); their rows are kept. Each
page is archived under `raw/` as it came (kind `viewer_rows`), so `reprocess` rebuilds its
records without asking again.

Incremental: the sha is the cursor. An unchanged sha read to the end costs one request; a new
one is read from the start (record ids, `{file}#{row}` or `rows:{config}/{split}#{row}`, stay
the same, so dedupe drops what was written before). A restart mid-file resumes at the next row.

Auth: `Authorization: Bearer ${token_env}` when that variable is set (gated and private
datasets answer 401/403 without it; public ones need none).
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from collector.datafiles.formats import member_kind
from collector.datafiles.rows import is_lfs_pointer
from collector.http import HttpError, next_link, origin_of
from collector.licences import spdx
from collector.reporting import Report
from collector.sinks.naming import safe_part
from collector.sources.archive import ArchiveEntry, RawArchive, archived
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import HuggingFaceSourceConfig
from collector.sources.datasets import (
    ARCHIVE_KIND,
    DatasetCursor,
    failure_batch,
    file_entry,
    read_member,
    records_from_file_entry,
)
from processors.records import Drop, RawRecord

ROWS_PAGE = 100  # the dataset viewer's maximum `length`
ROWS_KIND = "viewer_rows"  # an archived page of the dataset viewer's rows
DOWNLOAD_ATTEMPTS = 3
STATUS_REASONS = {401: "unauthorized", 403: "forbidden", 404: "dataset_not_found"}


class DownloadIncomplete(HttpError):
    """A file that kept arriving with another size than the tree gives."""


class _PassStopped(Exception):
    """A request failed for good: the pass ends here, with the failure's batch (if counted)."""

    def __init__(self, batch: SourceBatch | None) -> None:
        super().__init__("pass stopped")
        self.batch = batch


class HuggingFaceSource:
    def __init__(self, config: HuggingFaceSourceConfig, context: SourceContext) -> None:
        owner, _, name = config.repo_id.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"huggingface repo_id {config.repo_id!r} is not 'owner/dataset'")
        self.name = config.name
        self.config = config
        self.context = context
        self.log = context.log
        self.repo = config.repo_id
        self.base = config.base_url.rstrip("/")
        headers: dict[str, str] = {}
        token = os.environ.get(config.token_env, "") if config.token_env else ""
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = context.http_client(config, headers=headers)
        self.archive = RawArchive(context.raw_dir, config.name, config.archive, context)
        self.rows_partial_pages = 0  # pages of viewer rows marked `partial`, since the start
        self.card_license = ""  # what the dataset card's `license` says, read with the sha

    def telemetry(self) -> dict[str, float]:
        return {"rows_partial_pages": float(self.rows_partial_pages)}

    def report(self) -> Report:
        return Report(figures=self.telemetry(), http=self.client.report().http)

    async def close(self) -> None:
        await self.client.close()

    # --- a pass ------------------------------------------------------------------------------

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        repo = self.repo
        cursor = DatasetCursor.decode(cursors.get(repo, ""))
        try:
            sha = await self._sha()
        except HttpError as error:
            batch = self._failure(cursor, error, "info")
            if batch is not None:
                yield batch
            return
        start = cursor.at_version(sha, self.log, repo)
        if start is None:
            return
        cursor = start
        stream = self._rows(cursor) if self.config.use_rows_api else self._files(cursor, sha)
        try:
            async for batch, progress in stream:
                cursor = progress
                yield batch
                if self.context.stop.is_set():
                    return
        except _PassStopped as stopped:  # the next pass resumes from the last cursor
            if stopped.batch is not None:
                yield stopped.batch
            return
        cursor = cursor.completed()
        self.log.info("hf_dataset_read", dataset=repo, sha=sha)
        if not self.config.use_rows_api:
            await asyncio.to_thread(self._forget_old_revisions, sha)
        yield SourceBatch([], [], {repo: cursor.encode()})

    # --- the Hub -----------------------------------------------------------------------------

    def _api(self, *parts: str) -> str:
        return "/".join(
            [self.base, "api/datasets", self.repo, *(quote(p, safe="/") for p in parts)]
        )

    async def _sha(self) -> str:
        revision = self.config.revision
        url = self._api()
        if revision != "main":
            # One path segment, slashes too (`refs/convert/parquet` -> `refs%2Fconvert%2Fparquet`),
            # as huggingface_hub quotes it (`quote(revision, safe="")` in `hf_api.py`).
            url = f"{url}/revision/{quote(revision, safe='')}"
        _, data = await self.client.get_json(url)
        sha = data.get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str) or not sha:
            raise HttpError(200, url, "the dataset info has no sha")
        card = data.get("cardData")
        stated = card.get("license") if isinstance(card, dict) else None
        if isinstance(stated, list):  # the card may name several: all of them apply
            stated = " AND ".join(spdx(s) for s in stated if spdx(s))
        self.card_license = spdx(stated)
        return sha

    def _origin(self) -> dict[str, Any]:
        """Provenance for every record (collector/licences.py): the dataset's page, its owner,
        and the licence its card states (else the configured one)."""
        owner = self.repo.partition("/")[0]
        hub = self.config.base_url.rstrip("/")
        return {
            "license": self.card_license or spdx(self.config.license),
            "url": f"{hub}/datasets/{self.repo}",
            "authors": [{"name": owner, "url": f"{hub}/{owner}"}],
        }

    async def _tree(self, sha: str) -> dict[str, int | None]:
        """Every file of the repo at `sha` with its size, following the `Link` pages."""
        url: str | None = self._api("tree", sha)
        params: dict[str, str | int] | None = {"recursive": "true"}
        files: dict[str, int | None] = {}
        while url:
            response, data = await self.client.get_json(url, params=params)
            if not isinstance(data, list):
                raise HttpError(response.status, url, "the tree is not a list")
            for entry in data:
                if not isinstance(entry, dict) or entry.get("type") != "file":
                    continue
                path = entry.get("path")
                lfs = entry.get("lfs")
                size = lfs.get("size") if isinstance(lfs, dict) else entry.get("size")
                if isinstance(path, str):
                    files[path] = size if isinstance(size, int) else None
            url, params = next_link(response.headers.get("link", ""), origin_of(self.base)), None
        return files

    def _select(self, files: dict[str, int | None]) -> list[str]:
        if self.config.files:
            chosen = [
                path
                for path in files
                if any(fnmatch.fnmatchcase(path, pattern) for pattern in self.config.files)
            ]
            if not chosen:
                self.log.warning("hf_files_not_found", dataset=self.repo, files=self.config.files)
            return sorted(chosen)
        return sorted(path for path in files if member_kind(path) is not None)

    def _folder(self, sha: str) -> Path:
        owner, _, name = self.repo.partition("/")
        return (
            self.context.raw_dir
            / safe_part(self.name)
            / "huggingface"
            / safe_part(owner)
            / safe_part(name)
            / safe_part(sha)
        )

    async def _files(
        self, cursor: DatasetCursor, sha: str
    ) -> AsyncIterator[tuple[SourceBatch, DatasetCursor]]:
        repo = self.repo
        try:
            tree = await self._tree(sha)
        except HttpError as error:
            raise _PassStopped(self._failure(cursor, error, "tree")) from error
        chosen = self._select(tree)
        self.log.info("hf_dataset_files", dataset=repo, sha=sha, files=len(chosen))
        for path in chosen:
            if path in cursor.done:
                continue
            if member_kind(path) is None:  # named in `files` but not a format we read
                drop = Drop(self.name, repo, path, "unsupported_format", "not csv, json or jsonl")
                cursor = cursor.finish_member(path)
                yield SourceBatch([], [drop], {repo: cursor.encode()}), cursor
                continue
            try:
                local = await self._download(sha, path, tree.get(path))
            except HttpError as error:
                if error.status == 404:
                    drop = Drop(self.name, repo, path, "file_not_found", error.message[:300])
                    cursor = cursor.finish_member(path)
                    yield SourceBatch([], [drop], {repo: cursor.encode()}), cursor
                    continue
                raise _PassStopped(self._failure(cursor, error, "download")) from error
            meta: dict[str, Any] = {**self._origin(), "hf_sha": sha, "member": path}
            reader = read_member(
                source=self.name,
                dataset=repo,
                member=path,
                path=local,
                cursor=cursor,
                batch_size=self.config.batch_size,
                meta=meta,
                stopped=self.context.stop.is_set,
                log=self.log,
                max_record_bytes=self.config.max_record_bytes,
                batch_bytes=self.config.batch_bytes,
            )
            async for batch, progress in reader:
                cursor = progress
                yield batch, cursor
            if path in cursor.done:  # read to the end: the raw archive notes the file
                url = "/".join([self.base, "datasets", repo, "resolve", sha, path])
                responses, note = file_entry(url, repo, sha, path, local)
                await self.archive.save(ARCHIVE_KIND, responses, note)
            if self.context.stop.is_set():
                return

    async def _download(self, sha: str, path: str, size: int | None) -> Path:
        target = self._folder(sha) / "files" / Path(*[safe_part(p) for p in path.split("/")])
        if target.is_file():
            return target  # downloaded (and checked) on an earlier pass
        url = "/".join([self.base, "datasets", self.repo, "resolve", sha, quote(path, safe="/")])
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            started = time.monotonic()
            await self.client.download(url, target, max_bytes=self.config.max_response_bytes)
            got = target.stat().st_size
            if size is None or got == size or is_lfs_pointer(target):
                self.log.info(
                    "hf_downloaded",
                    dataset=self.repo,
                    file=path,
                    bytes=got,
                    seconds=round(time.monotonic() - started, 3),
                )
                return target
            target.unlink(missing_ok=True)
            message = f"got {got} of the {size} bytes the tree gives"
            if attempt == DOWNLOAD_ATTEMPTS:
                raise DownloadIncomplete(200, url, message)
            self.log.warning("hf_download_incomplete", dataset=self.repo, file=path, error=message)
        raise AssertionError("unreachable")

    def _forget_old_revisions(self, sha: str) -> None:
        keep = self._folder(sha)
        if keep.parent.is_dir():
            for old in keep.parent.iterdir():
                if old != keep and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)

    # --- the dataset viewer --------------------------------------------------------------------

    async def _rows(
        self, cursor: DatasetCursor
    ) -> AsyncIterator[tuple[SourceBatch, DatasetCursor]]:
        repo, config, split = self.repo, self.config.config, self.config.split
        member = f"rows:{config}/{split}"
        offset = cursor.offset if cursor.member == member else 0
        url = f"{self.config.rows_url.rstrip('/')}/rows"
        meta: dict[str, Any] = {**self._origin(), "hf_sha": cursor.version}
        partial = False
        while not self.context.stop.is_set():
            params: dict[str, str | int] = {
                "dataset": repo,
                "config": config,
                "split": split,
                "offset": offset,
                "length": ROWS_PAGE,
            }
            try:
                response, data = await self.client.get_json(url, params=params)
            except HttpError as error:
                raise _PassStopped(self._failure(cursor, error, "rows")) from error
            rows = data.get("rows") if isinstance(data, dict) else None
            total = data.get("num_rows_total") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                rows = []
            if isinstance(data, dict) and data.get("partial") is True:
                self.rows_partial_pages += 1
                if not partial:  # once per pass
                    self.log.warning(
                        "hf_rows_partial",
                        dataset=repo,
                        config=config,
                        split=split,
                        num_rows_total=total,
                        hint="the viewer converted only the first part of this dataset; read"
                        " its files (use_rows_api = false) for all of it",
                    )
                partial = True
            records, drops, offset = self._row_records(rows, member, offset, meta)
            if rows:
                note = {"member": member, "version": cursor.version, "offset": params["offset"]}
                await self.archive.save(ROWS_KIND, [archived(response, params)], note)
            finished = not rows or (isinstance(total, int) and offset >= total)
            cursor = cursor.finish_member(member) if finished else cursor.at(member, offset, offset)
            yield SourceBatch(records, drops, {repo: cursor.encode()}), cursor
            if finished:
                self.log.info(
                    "hf_rows_read",
                    dataset=repo,
                    config=config,
                    split=split,
                    rows=offset,
                    partial=partial,
                )
                return

    def _row_records(
        self, rows: list[Any], member: str, offset: int, meta: dict[str, Any]
    ) -> tuple[list[RawRecord], list[Drop], int]:
        """The records and drops of one page of viewer rows, and the offset after it."""
        repo = self.repo
        records: list[RawRecord] = []
        drops: list[Drop] = []
        now = time.time()
        for item in rows:
            index = item.get("row_idx", offset) if isinstance(item, dict) else offset
            record_id = f"{member}#{int(index) + 1}"
            offset = max(offset, int(index) + 1)
            row = item.get("row") if isinstance(item, dict) else None
            cut = item.get("truncated_cells") if isinstance(item, dict) else None
            if not isinstance(row, dict):
                drops.append(Drop(self.name, repo, record_id, "not_an_object"))
            elif cut:
                detail = f"the viewer truncated {', '.join(map(str, cut))}"
                drops.append(Drop(self.name, repo, record_id, "truncated_cell", detail))
            else:
                records.append(
                    RawRecord(self.name, repo, record_id, row, str(offset), now, dict(meta))
                )
        return records, drops, offset

    def records_from_archive(self, entry: ArchiveEntry) -> tuple[list[RawRecord], list[Drop]]:
        """The records of an archived dataset file or page of viewer rows, read again from
        disk (`reprocess`)."""
        if entry.kind == ROWS_KIND:
            page = entry.responses[0].json() if entry.responses else None
            rows = page.get("rows") if isinstance(page, dict) else None
            meta = {**self._origin(), "hf_sha": str(entry.note.get("version", ""))}
            records, drops, _ = self._row_records(
                rows if isinstance(rows, list) else [],
                str(entry.note.get("member", "")),
                int(entry.note.get("offset", 0)),
                meta,
            )
            return records, drops
        if entry.kind != ARCHIVE_KIND:
            return [], []
        note = entry.note
        meta = {
            **self._origin(),
            "hf_sha": str(note["version"]),
            "member": str(note["member"]),
        }
        return records_from_file_entry(
            self.name, entry, meta, self.log, self.config.max_record_bytes
        )

    # --- failures --------------------------------------------------------------------------

    def _failure(self, cursor: DatasetCursor, error: HttpError, step: str) -> SourceBatch | None:
        reason = STATUS_REASONS.get(error.status, "http_error" if error.status else "unreachable")
        if isinstance(error, DownloadIncomplete):
            reason = "download_incomplete"
        token = f"${self.config.token_env}"
        hint = {
            "unauthorized": f"a gated or private dataset: set {token}",
            "forbidden": f"accept the dataset's conditions on the Hub, or check {token}",
        }.get(reason, "")
        self.log.error(
            "hf_request_failed",
            dataset=self.repo,
            step=step,
            status=error.status,
            reason=reason,
            error=error.message,
            hint=hint,
        )
        detail = f"HTTP {error.status}: {error.message}"
        return failure_batch(self.name, self.repo, cursor, reason, detail, step)
