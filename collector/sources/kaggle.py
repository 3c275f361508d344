"""Kaggle datasets (REST API v1): the CSV, JSON and JSONL files of configured `owner/dataset`s.

For each dataset (one stream each, named `owner/dataset`) a pass asks

    GET {base}/datasets/view/{owner}/{dataset}             -> currentVersionNumber
    GET {base}/datasets/list/{owner}/{dataset}?datasetVersionNumber=V[&pageToken=]
                                                           -> datasetFiles[].name, nextPageToken
    GET {base}/datasets/download/{owner}/{dataset}/{file}?datasetVersionNumber=V
        (or the whole dataset as one zip with `download = "archive"`)

A download answers with a redirect to a signed storage URL; the body streams to disk under
`{data_dir}/raw/{source}/kaggle/{owner}/{dataset}/v{V}/` (it doubles as the raw archive). A
file that arrives zipped (large files do, and so does the whole-dataset archive) is extracted
by `collector.datafiles.extract`, which refuses hostile archives; members are read as streams.

Incremental: the dataset version is the cursor. An unchanged version that was read to the end
costs one request (the view) and downloads nothing; a new version is read from the start
(records keep their ids, `member#row`, and dedupe drops lines already written). The cursor also
holds the member being read and the byte offset and row number after the last record handed
out, so a restart mid-file resumes at the next row without downloading again.

Auth, in the order the official clients try them (kagglesdk `kaggle_env.get_access_token_from_env`
and `KaggleHttpClient._try_fill_auth`, kaggle 2.x `KaggleApi.authenticate`):

1. an access token, sent as `Authorization: Bearer`: `$KAGGLE_API_TOKEN` (the env name is
   `token_env`; its value may also be the path of a file holding the token), else
   `~/.kaggle/access_token` (or `access_token.txt`);
2. the legacy API key, sent as HTTP basic: `KAGGLE_USERNAME`/`KAGGLE_KEY` (the env names are
   configurable), else `~/.kaggle/kaggle.json` (or `$KAGGLE_CONFIG_DIR/kaggle.json`,
   `~/.config/kaggle/kaggle.json`).

Without credentials requests go out anonymously, which Kaggle allows for public datasets. Which
one was found is logged (`kaggle_credentials`, never the secret) and said by `check-config`.
Either header stays on the API's origin: a download's redirect to signed storage on another
host goes without it (aiohttp drops `Authorization` across origins).

Checked against the official client (Kaggle/kaggle-api, `kagglesdk/datasets/types/
dataset_api_service.py`): `ApiDataset.currentVersionNumber`, `ApiListDatasetFilesResponse`
`{datasetFiles, errorMessage, nextPageToken}` with `ApiDatasetFile.name/totalBytes`, and the
download request's optional `datasetVersionNumber`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from collector.datafiles.extract import ExtractLimits, UnsafeArchive, extract_zip, is_zip
from collector.datafiles.formats import member_kind
from collector.http import HttpError
from collector.licences import spdx
from collector.reporting import Report
from collector.sinks.naming import safe_part
from collector.sources.archive import ArchiveEntry, RawArchive
from collector.sources.base import SourceBatch, SourceContext
from collector.sources.config import KaggleSourceConfig
from collector.sources.datasets import (
    ARCHIVE_KIND,
    DatasetCursor,
    failure_batch,
    file_entry,
    read_member,
    records_from_file_entry,
)
from processors.records import Drop, RawRecord

# A damaged download (cut short on the way) is fetched this many times in one pass; after that
# the pass ends and the next one tries again (a damaged archive is never marked as read).
DOWNLOAD_ATTEMPTS = 3
KAGGLE_SITE = "https://www.kaggle.com"  # where a dataset's page and its owner's profile are
PAGE_SIZE = 200
STATUS_REASONS = {401: "unauthorized", 403: "forbidden", 404: "dataset_not_found"}


class DownloadIncomplete(HttpError):
    """A download that kept arriving shorter than the listed size."""


# The dataset's cursor (version, files done, file/offset/row being read): see `datafiles`.
KaggleCursor = DatasetCursor


class KaggleCredentials(msgspec.Struct, frozen=True):
    kind: Literal["access_token", "api_key"]
    secret: str  # the token, or the API key
    origin: str  # where they came from (never the secret itself), for the logs
    username: str = ""  # with an API key

    @property
    def authorization(self) -> str:
        """The `Authorization` header: Bearer for a token, HTTP basic for an API key."""
        if self.kind == "access_token":
            return f"Bearer {self.secret}"
        pair = f"{self.username}:{self.secret}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"

    def describe(self) -> str:
        """Which credentials, from where, without the secret."""
        if self.kind == "access_token":
            return f"access token (Bearer) from {self.origin}"
        return f"API key of {self.username} (HTTP basic) from {self.origin}"


def _token_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def find_access_token(token_env: str) -> KaggleCredentials | None:
    """`$token_env` (a token, or the path of a file holding one), else ~/.kaggle/access_token."""
    value = os.environ.get(token_env, "").strip() if token_env else ""
    if value:
        if Path(value).expanduser().is_file():
            token = _token_file(Path(value).expanduser())
            if token:
                return KaggleCredentials("access_token", token, f"${token_env} ({value})")
        else:
            return KaggleCredentials("access_token", value, f"${token_env}")
    for name in ("access_token", "access_token.txt"):
        path = Path("~/.kaggle").expanduser() / name
        token = _token_file(path) if path.is_file() else ""
        if token:
            return KaggleCredentials("access_token", token, str(path))
    return None


def find_credentials(
    username_env: str, key_env: str, token_env: str = "KAGGLE_API_TOKEN"
) -> KaggleCredentials | None:
    """An access token first, then the API key: the env pair, then kaggle.json where the
    official client looks for it."""
    token = find_access_token(token_env)
    if token is not None:
        return token
    username, key = os.environ.get(username_env, ""), os.environ.get(key_env, "")
    if username and key:
        return KaggleCredentials("api_key", key, f"${username_env}/${key_env}", username)
    folders = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        folders.append(Path(os.environ["KAGGLE_CONFIG_DIR"]))
    folders += [Path("~/.kaggle").expanduser(), Path("~/.config/kaggle").expanduser()]
    for folder in folders:
        path = folder / "kaggle.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("username") and data.get("key"):
            username = str(data["username"])
            return KaggleCredentials("api_key", str(data["key"]), str(path), username)
    return None


def credentials_summary(config: KaggleSourceConfig) -> str:
    """What `check-config` says about a Kaggle source's credentials (never the secret)."""
    found = find_credentials(config.username_env, config.key_env, config.token_env)
    if found is not None:
        return found.describe()
    token = f"${config.token_env}, ~/.kaggle/access_token" if config.token_env else ""
    pair = f"${config.username_env}/${config.key_env}, ~/.kaggle/kaggle.json"
    return f"none found ({', '.join(p for p in (token, pair) if p)}): public datasets only"


def split_ref(ref: str) -> tuple[str, str]:
    owner, _, slug = ref.strip().partition("/")
    if not owner or not slug or "/" in slug or owner in (".", "..") or slug in (".", ".."):
        raise ValueError(f"kaggle dataset {ref!r} is not of the form 'owner/dataset'")
    return owner, slug


class KaggleSource:
    def __init__(self, config: KaggleSourceConfig, context: SourceContext) -> None:
        self.name = config.name
        self.config = config
        self.context = context
        self.log = context.log
        self.refs = [split_ref(ref) for ref in config.datasets]  # a bad ref fails at build time
        self.licenses: dict[str, str] = {}  # ref -> what its metadata's `licenseName` says
        self.base = config.base_url.rstrip("/")
        credentials = find_credentials(config.username_env, config.key_env, config.token_env)
        headers: dict[str, str] = {}
        if credentials is None:
            self.log.warning(
                "kaggle_no_credentials",
                hint=f"set ${config.token_env} (an access token), or ${config.username_env} and"
                f" ${config.key_env}, or ~/.kaggle/kaggle.json; public datasets are read"
                " anonymously",
            )
        else:
            # As a header: aiohttp drops it on a redirect to another host (the signed storage
            # URL), which is what a download needs.
            headers["Authorization"] = credentials.authorization
            self.log.info(
                "kaggle_credentials",
                kind=credentials.kind,
                origin=credentials.origin,
                user=credentials.username or None,
            )
        self.client = context.http_client(config, headers=headers)
        self.archive = RawArchive(context.raw_dir, config.name, config.archive, context)
        self.limits = ExtractLimits(
            max_total_bytes=config.max_uncompressed_bytes,
            max_entries=config.max_entries,
            max_ratio=config.max_compression_ratio,
        )

    def report(self) -> Report:
        return self.client.report()

    async def close(self) -> None:
        await self.client.close()

    # --- a pass ------------------------------------------------------------------------------

    async def fetch(self, cursors: Mapping[str, str]) -> AsyncIterator[SourceBatch]:
        for owner, slug in self.refs:
            if self.context.stop.is_set():
                return
            ref = f"{owner}/{slug}"
            cursor = DatasetCursor.decode(cursors.get(ref, ""))
            async for batch in self._fetch_dataset(owner, slug, cursor):
                yield batch

    async def _fetch_dataset(
        self, owner: str, slug: str, cursor: DatasetCursor
    ) -> AsyncIterator[SourceBatch]:
        ref = f"{owner}/{slug}"
        try:
            version = await self._version(owner, slug)
        except HttpError as error:
            batch = self._failure(ref, cursor, error, "view")
            if batch is not None:
                yield batch
            return
        start = cursor.at_version(version, self.log, ref)
        if start is None:
            return
        cursor = start
        folder = self._folder(owner, slug, version)
        try:
            names = await self._members(owner, slug, version)
        except HttpError as error:
            batch = self._failure(ref, cursor, error, "list")
            if batch is not None:
                yield batch
            return
        self.log.info("kaggle_dataset_files", dataset=ref, version=version, files=len(names))
        if self.config.download == "archive":
            sources = {"": sorted(names)}  # one download: the whole dataset
        else:
            sources = {name: [name] for name in sorted(names)}
        for download, members in sources.items():
            if all(member in cursor.done for member in members) and members:
                continue
            try:
                size = names.get(download) if download else None
                local = await self._materialize(owner, slug, version, download, folder, size)
            except HttpError as error:
                if download and error.status == 404:  # one file gone: skip it, read the rest
                    self.log.warning("kaggle_file_not_found", dataset=ref, file=download)
                    drop = Drop(self.name, ref, download, "file_not_found", error.message[:300])
                    cursor = cursor.finish_member(download)
                    yield SourceBatch([], [drop], {ref: cursor.encode()})
                    continue
                batch = self._failure(ref, cursor, error, "download")
                if batch is not None:
                    yield batch
                return  # the next pass tries again from this cursor
            except UnsafeArchive as error:
                if error.reason == "bad_archive":  # damaged, not hostile: try again next pass
                    failed = DownloadIncomplete(200, download or ref, error.detail)
                    batch = self._failure(ref, cursor, failed, "download")
                    if batch is not None:
                        yield batch
                    return
                self.log.error(
                    "kaggle_archive_refused",
                    dataset=ref,
                    file=download or "(dataset)",
                    reason=error.reason,
                    error=error.detail,
                )
                drop = Drop(self.name, ref, download or ref, error.reason, error.detail)
                for member in members:
                    cursor = cursor.finish_member(member)
                yield SourceBatch([], [drop], {ref: cursor.encode()})
                continue
            for member in sorted(local):
                if member in cursor.done:
                    continue
                reader = self._read_member(ref, cursor, member, local[member])
                async for batch, progress in reader:
                    cursor = progress
                    yield batch
                if member in cursor.done:  # read to the end: the raw archive notes the file
                    parts = ["datasets/download", owner, slug] + ([download] if download else [])
                    url = f"{self._url(*parts)}?datasetVersionNumber={version}"
                    responses, note = file_entry(url, ref, version, member, local[member])
                    await self.archive.save(ARCHIVE_KIND, responses, note)
                if self.context.stop.is_set():
                    return
        cursor = cursor.completed()
        self.log.info("kaggle_dataset_read", dataset=ref, version=version)
        await asyncio.to_thread(self._forget_old_versions, owner, slug, version)
        yield SourceBatch([], [], {ref: cursor.encode()})

    # --- the API -------------------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return "/".join([self.base, *(quote(part, safe="/") for part in parts)])

    def _origin(self, ref: str) -> dict[str, Any]:
        """Provenance for every record (collector/licences.py): the dataset's page, its owner,
        and the licence its metadata states (`licenseName`; else the configured one)."""
        owner = ref.partition("/")[0]
        return {
            "license": self.licenses.get(ref) or spdx(self.config.license),
            "url": f"{KAGGLE_SITE}/datasets/{ref}",
            "authors": [{"name": owner, "url": f"{KAGGLE_SITE}/{owner}"}],
        }

    async def _version(self, owner: str, slug: str) -> str:
        _, data = await self.client.get_json(self._url("datasets/view", owner, slug))
        if not isinstance(data, dict):
            raise HttpError(200, self._url("datasets/view", owner, slug), "not a dataset object")
        self.licenses[f"{owner}/{slug}"] = spdx(data.get("licenseName"))
        version = data.get("currentVersionNumber")
        if isinstance(version, int) and not isinstance(version, bool):
            return str(version)
        numbers: list[int] = [
            v["versionNumber"]
            for v in data.get("versions") or []
            if isinstance(v, dict) and isinstance(v.get("versionNumber"), int)
        ]
        if numbers:
            return str(max(numbers))
        # No version number: the update time still changes with every new version.
        return f"updated:{data.get('lastUpdated', '')}"

    async def _members(self, owner: str, slug: str, version: str) -> dict[str, int | None]:
        """The dataset's files to read (`files` from the config, or every CSV/JSON/JSONL),
        with the size the listing gives for each."""
        url = self._url("datasets/list", owner, slug)
        names: dict[str, int | None] = {}
        token = ""
        while True:
            params: dict[str, str | int] = {"pageSize": PAGE_SIZE}
            if version.isdigit():
                params["datasetVersionNumber"] = version
            if token:
                params["pageToken"] = token
            _, data = await self.client.get_json(url, params=params)
            if not isinstance(data, dict):
                raise HttpError(200, url, "the file list is not an object")
            if data.get("errorMessage"):
                raise HttpError(200, url, str(data["errorMessage"]))
            for item in data.get("datasetFiles") or []:
                if isinstance(item, dict):
                    name = item.get("name") or item.get("ref")
                    size = item.get("totalBytes")
                    if isinstance(name, str) and name:
                        names[name] = size if isinstance(size, int) else None
            token = str(data.get("nextPageToken") or "")
            if not token:
                break
        return {name: names[name] for name in self._select(list(names), f"{owner}/{slug}")}

    def _select(self, names: list[str], ref: str) -> list[str]:
        if self.config.files:
            # `files` serves every dataset of the source: each one has some of them.
            wanted = {f.casefold() for f in self.config.files}
            chosen = [n for n in names if n.casefold() in wanted]
            if not chosen:
                self.log.warning("kaggle_files_not_found", dataset=ref, files=self.config.files)
            return sorted(chosen)
        return sorted(n for n in names if member_kind(n) is not None)

    def _folder(self, owner: str, slug: str, version: str) -> Path:
        return (
            self.context.raw_dir
            / safe_part(self.name)
            / "kaggle"
            / safe_part(owner)
            / safe_part(slug)
            / f"v{safe_part(version)}"
        )

    async def _materialize(
        self, owner: str, slug: str, version: str, download: str, folder: Path, size: int | None
    ) -> dict[str, Path]:
        """{member name: local file} for one download (a file, or the whole dataset).

        A plain file must have the size the listing gave (a body cut short with no
        Content-Length would pass unnoticed otherwise); a zip proves itself when extracted.
        Either is downloaded again once when it is found damaged.
        """
        key = safe_part(download) if download else "_dataset"
        extracted = folder / "extracted" / key
        target = folder / "downloads" / key
        if extracted.is_dir():  # extracted on an earlier pass: nothing to fetch
            return self._extracted_members(extracted, download)
        if download and target.is_file() and not is_zip(target):
            return {download: target}  # checked when it was downloaded
        params = {"datasetVersionNumber": version} if version.isdigit() else None
        parts = ["datasets/download", owner, slug] + ([download] if download else [])
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            if not target.is_file():
                started = time.monotonic()
                response = await self.client.download(
                    self._url(*parts),
                    target,
                    params=params,
                    max_bytes=self.config.max_archive_bytes,
                )
                self.log.info(
                    "kaggle_downloaded",
                    dataset=f"{owner}/{slug}",
                    file=download or "(dataset)",
                    bytes=target.stat().st_size,
                    seconds=round(time.monotonic() - started, 3),
                    via=response.url.split("?", 1)[0],  # never the signature
                )
            if download and not is_zip(target):
                got = target.stat().st_size
                if size is None or got == size:
                    return {download: target}
                target.unlink(missing_ok=True)
                message = f"got {got} of the {size} bytes the file list gives"
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise DownloadIncomplete(200, self._url(*parts), message)
                self.log.warning("kaggle_download_corrupt", file=download, error=message)
                continue
            try:
                await asyncio.to_thread(extract_zip, target, extracted, self.limits, self._wanted)
            except UnsafeArchive as error:
                if error.reason != "bad_archive" or attempt == DOWNLOAD_ATTEMPTS:
                    raise
                self.log.warning("kaggle_download_corrupt", file=download, error=error.detail)
                target.unlink(missing_ok=True)
                continue
            target.unlink(missing_ok=True)  # the extracted copy is what is kept
            return self._extracted_members(extracted, download)
        raise AssertionError("unreachable")

    def _wanted(self, name: str) -> bool:
        if self.config.files and self.config.download == "archive":
            return name.casefold() in {f.casefold() for f in self.config.files}
        return member_kind(name) is not None

    def _extracted_members(self, extracted: Path, download: str) -> dict[str, Path]:
        found = {
            path.relative_to(extracted).as_posix(): path
            for path in extracted.rglob("*")
            if path.is_file() and member_kind(path.name) is not None
        }
        if download and len(found) == 1:
            # A single file that came zipped: it keeps the name it has in the dataset.
            return {download: next(iter(found.values()))}
        if download:
            return {f"{download}/{name}": path for name, path in found.items()}
        return found

    def _forget_old_versions(self, owner: str, slug: str, version: str) -> None:
        keep = self._folder(owner, slug, version)
        for old in keep.parent.glob("v*"):
            if old != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    # --- reading a member ----------------------------------------------------------------------

    def _read_member(
        self, ref: str, cursor: DatasetCursor, member: str, path: Path
    ) -> AsyncIterator[tuple[SourceBatch, DatasetCursor]]:
        meta = {**self._origin(ref), "kaggle_version": cursor.version, "member": member}
        return read_member(
            source=self.name,
            dataset=ref,
            member=member,
            path=path,
            cursor=cursor,
            batch_size=self.config.batch_size,
            meta=meta,
            stopped=self.context.stop.is_set,
            log=self.log,
            max_record_bytes=self.config.max_record_bytes,
            batch_bytes=self.config.batch_bytes,
        )

    def records_from_archive(self, entry: ArchiveEntry) -> tuple[list[RawRecord], list[Drop]]:
        """The records of an archived dataset file, read again from disk (`reprocess`)."""
        if entry.kind != ARCHIVE_KIND:
            return [], []
        note = entry.note
        meta = {
            **self._origin(str(note["dataset"])),
            "kaggle_version": str(note["version"]),
            "member": str(note["member"]),
        }
        return records_from_file_entry(
            self.name, entry, meta, self.log, self.config.max_record_bytes
        )

    # --- failures --------------------------------------------------------------------------

    def _failure(
        self, ref: str, cursor: DatasetCursor, error: HttpError, step: str
    ) -> SourceBatch | None:
        """Log a failed request; count it once (the cursor remembers it) as a drop."""
        reason = STATUS_REASONS.get(error.status, "http_error" if error.status else "unreachable")
        if isinstance(error, DownloadIncomplete):
            reason = "download_incomplete"
        hint = {
            "unauthorized": f"check ${self.config.token_env} or"
            f" ${self.config.username_env}/${self.config.key_env}",
            "forbidden": "accept the dataset's rules on kaggle.com, or check access",
        }.get(reason, "")
        self.log.error(
            "kaggle_request_failed",
            dataset=ref,
            step=step,
            status=error.status,
            reason=reason,
            error=error.message,
            hint=hint,
        )
        detail = f"HTTP {error.status}: {error.message}"
        return failure_batch(self.name, ref, cursor, reason, detail, step)
