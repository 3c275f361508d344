"""A local Kaggle API v1: dataset view, file list and downloads through signed storage URLs.

It speaks what `collector.sources.kaggle` relies on (shapes checked against the official
client's `kagglesdk/datasets/types/dataset_api_service.py`):

- `GET /api/v1/datasets/view/{owner}/{dataset}`: an `ApiDataset` (`ref`, `title`,
  `currentVersionNumber`, `versions[]`, `files[]`, `totalBytes`, `lastUpdated`, ...);
- `GET /api/v1/datasets/list/{owner}/{dataset}?datasetVersionNumber=&pageSize=&pageToken=`:
  `{"datasetFiles": [ApiDatasetFile], "errorMessage": null, "nextPageToken": "..."}`;
- `GET /api/v1/datasets/download/{owner}/{dataset}[/{file}]?datasetVersionNumber=`: a `302`
  to a signed storage URL on another origin, as Kaggle's answer points at Google Cloud
  Storage: a second loopback server (started and stopped with the app, its URL in
  `app[KAGGLE].storage_url`) serves `/storage/...?X-Goog-Expires=&X-Goog-Signature=`: the
  whole dataset as a zip, or one file (zipped when it is over `zip_files_over` bytes, as
  Kaggle zips large files). A storage request that arrives with an `Authorization` header is
  counted (`storage_authorization`) and refused with a `400` (a signed URL is its own
  credential: the client's API key or token must not follow the redirect); it shares the
  API's fault state, so fault rules on `/storage` apply there;
- auth: an access token as `Authorization: Bearer` (what the official clients send first
  today), or the legacy API key as HTTP basic. Public datasets are readable anonymously
  (Kaggle allows it since 2024); tokens are checked against `access_tokens` and keys against
  `users` when given (any are accepted otherwise), wrong ones are a `401`, as is any request
  without them when `require_auth`;
  private datasets need the owner's credentials (`403` for others, `404` when anonymous);
  a dataset with rules to accept answers its downloads with `403`;
- errors: `{"code": N, "message": "..."}`; `429` through the shared fault middleware.

Sample datasets: `data/kaggle/{owner}/{dataset}/...` (shaped like the real ones in
DATASETS.md). Hostile datasets are built in under the owner `sandbox` (`zip-slip`,
`zip-bomb`, `symlink`, `absolute-path`, `truncated-json`, `lfs-pointer`, `rules-required`,
`private`). Tests publish new versions and read what was served through `app[KAGGLE]`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.sandbox import RunningApp, aim_sources, start_app
from collector.sandbox.faults import FAULTS, FaultConfig, install

if TYPE_CHECKING:
    from collector.config import Config

DATA_DIR = Path(__file__).parent / "data" / "kaggle"
CREATED = "2024-02-17T09:00:00.000Z"


@dataclass
class Version:
    number: int
    files: dict[str, bytes]
    created: str = CREATED
    archive: bytes | None = None  # served instead of a zip of `files` (hostile archives)


@dataclass
class EmulatedDataset:
    owner: str
    slug: str
    versions: list[Version]
    title: str = ""
    private: bool = False
    rules_required: bool = False
    license: str = "CC0-1.0"

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def version(self, number: str | None) -> Version | None:
        if not number:
            return self.current
        for version in self.versions:
            if str(version.number) == number:
                return version
        return None


@dataclass
class KaggleStore:
    """The emulated datasets, the accounts, and what was served."""

    datasets: dict[str, EmulatedDataset] = field(default_factory=dict)
    # username -> key; None accepts any username and key (`--sandbox` fills missing secrets
    # with a placeholder), so only tests that check credentials name the accounts.
    users: dict[str, str] | None = None
    # access token -> username; None accepts any token (as the user `ANY_TOKEN_USER`)
    access_tokens: dict[str, str] | None = None
    require_auth: bool = False
    zip_files_over: int = 64 * 1024
    downloads: list[str] = field(default_factory=list)  # "owner/dataset[/file]@version"
    tokens: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    storage_url: str = ""  # the storage server's origin while the app runs
    storage_authorization: int = 0  # storage requests that came with an Authorization header
    storage: RunningApp | None = None

    def add(self, dataset: EmulatedDataset) -> EmulatedDataset:
        self.datasets[dataset.ref.casefold()] = dataset
        return dataset

    def publish(self, ref: str, files: dict[str, bytes]) -> int:
        """A new version of `ref` (created if new); its number."""
        dataset = self.datasets.get(ref.casefold())
        if dataset is None:
            owner, _, slug = ref.partition("/")
            self.add(EmulatedDataset(owner, slug, [Version(1, dict(files))]))
            return 1
        number = dataset.current.number + 1
        dataset.versions.append(Version(number, dict(files)))
        return number


def load_folder(root: Path) -> list[EmulatedDataset]:
    """Every `{owner}/{dataset}/` folder under `root`, its files as version 1."""
    found: list[EmulatedDataset] = []
    if not root.is_dir():
        return found
    for owner in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in owner.iterdir() if p.is_dir()):
            files = {
                path.relative_to(folder).as_posix(): path.read_bytes()
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            }
            title = folder.name.replace("-", " ").title()
            found.append(EmulatedDataset(owner.name, folder.name, [Version(1, files)], title))
    return found


# --- hostile archives ------------------------------------------------------------------------


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


GOOD_CSV = b'Category,Resume\r\nHR,"Handled end to end recruitment for technical roles"\r\n'
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:e7502eedaf0cba4bdd21d85813cb0d09b134b4abb53355c97c75cc76b5425ae4\nsize 4588\n"
)


def hostile_datasets(bomb_bytes: int = 16 * 1024 * 1024) -> list[EmulatedDataset]:
    """Datasets under the owner `sandbox` that exercise the source's defences."""

    def hostile(
        slug: str, archive: bytes, files: dict[str, bytes] | None = None
    ) -> EmulatedDataset:
        names = files or {"resumes.csv": GOOD_CSV}
        return EmulatedDataset("sandbox", slug, [Version(1, names, archive=archive)], slug)

    bomb = _zip([("resumes.csv", b"\0" * bomb_bytes)])
    return [
        hostile("zip-slip", _zip([("resumes.csv", GOOD_CSV), ("../../evil.csv", b"owned")])),
        hostile("absolute-path", _zip([("resumes.csv", GOOD_CSV), ("/tmp/evil.csv", b"owned")])),
        hostile("symlink", _zip([("resumes.csv", GOOD_CSV), _symlink("link.csv", "/etc/passwd")])),
        hostile("zip-bomb", bomb),
        EmulatedDataset(
            "sandbox",
            "truncated-json",
            [
                Version(
                    1,
                    {
                        "resumes.jsonl": b'{"Category": "HR", "Resume": "Hired ten engineers"}\n'
                        b'{"Category": "HR", "Resume": "Ran the onboarding progr',
                        "resumes.json": b'[{"Category": "QA", "Resume": "Wrote test plans"}, '
                        b'{"Category": "QA", "Resume": "Automated the regr',
                    },
                )
            ],
            "truncated json",
        ),
        EmulatedDataset(
            "sandbox", "lfs-pointer", [Version(1, {"resumes.jsonl": LFS_POINTER})], "lfs pointer"
        ),
        EmulatedDataset(
            "sandbox",
            "rules-required",
            [Version(1, {"resumes.csv": GOOD_CSV})],
            "rules required",
            rules_required=True,
        ),
        EmulatedDataset(
            "sandbox", "private", [Version(1, {"resumes.csv": GOOD_CSV})], "private", private=True
        ),
    ]


# --- the app -----------------------------------------------------------------------------------

KAGGLE = web.AppKey("kaggle", KaggleStore)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


ANY_TOKEN_USER = "kaggle-user"


def _user(request: web.Request, store: KaggleStore) -> tuple[str | None, web.Response | None]:
    """The authenticated user ("" when anonymous), or a 401."""
    header = request.headers.get("Authorization", "")
    if not header:
        if store.require_auth:
            return None, _error(401, "Unauthenticated: supply your Kaggle username and API key")
        return "", None
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential:
        if store.access_tokens is None:
            return ANY_TOKEN_USER, None
        user = store.access_tokens.get(credential)
        if user is None:
            return None, _error(401, "Unauthenticated: invalid or expired access token")
        return user, None
    try:
        username, _, key = base64.b64decode(credential, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, _error(401, "Unauthenticated: malformed Authorization header")
    if scheme.lower() != "basic" or not username or not key:
        return None, _error(401, "Unauthenticated: malformed Authorization header")
    if store.users is not None and store.users.get(username) != key:
        return None, _error(401, "Unauthenticated: invalid username or API key")
    return username, None


def _dataset(
    request: web.Request, store: KaggleStore
) -> tuple[EmulatedDataset | None, web.Response | None]:
    user, refusal = _user(request, store)
    if refusal is not None:
        return None, refusal
    owner, slug = request.match_info["owner"], request.match_info["slug"]
    dataset = store.datasets.get(f"{owner}/{slug}".casefold())
    if dataset is None:
        return None, _error(404, f"Dataset {owner}/{slug} not found")
    if dataset.private and user != dataset.owner:
        if not user:
            return None, _error(404, f"Dataset {owner}/{slug} not found")
        return None, _error(403, "Permission denied: this dataset is private")
    return dataset, None


def _file_json(dataset: EmulatedDataset, name: str, data: bytes) -> dict[str, Any]:
    kind = name.rsplit(".", 1)[-1] if "." in name else ""
    return {
        "ref": name,
        "datasetRef": dataset.ref,
        "ownerRef": dataset.owner,
        "name": name,
        "creationDate": CREATED,
        "description": "",
        "fileType": f".{kind}" if kind else "",
        "url": f"https://www.kaggle.com/datasets/{dataset.ref}/data?select={name}",
        "totalBytes": len(data),
        "columns": [],
    }


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """Options: `store` (a KaggleStore), or `data_dir`, `users`, `access_tokens`, `require_auth`,
    `zip_files_over`, `hostile` (default True), `bomb_bytes`."""
    store = options.pop("store", None)
    if store is None:
        data_dir = Path(options.pop("data_dir", DATA_DIR))
        hostile = options.pop("hostile", True)
        bomb_bytes = options.pop("bomb_bytes", 16 * 1024 * 1024)
        store = KaggleStore(**options)
        for dataset in load_folder(data_dir):
            store.add(dataset)
        if hostile:
            for dataset in hostile_datasets(bomb_bytes):
                store.add(dataset)
    app = web.Application()
    install(app, faults)
    app[KAGGLE] = store

    async def view(request: web.Request) -> web.Response:
        dataset, refusal = _dataset(request, store)
        if dataset is None:
            return refusal or _error(500, "no dataset")
        current = dataset.current
        return web.json_response(
            {
                "id": int(hashlib.sha1(dataset.ref.encode()).hexdigest()[:7], 16),
                "ref": dataset.ref,
                "title": dataset.title or dataset.slug,
                "subtitle": "",
                "creatorName": dataset.owner,
                "creatorUrl": dataset.owner,
                "totalBytes": sum(len(d) for d in current.files.values()),
                "url": f"https://www.kaggle.com/datasets/{dataset.ref}",
                "lastUpdated": current.created,
                "downloadCount": len(store.downloads),
                "isPrivate": dataset.private,
                "isFeatured": False,
                "licenseName": dataset.license,
                "description": "",
                "ownerName": dataset.owner,
                "ownerRef": dataset.owner,
                "kernelCount": 0,
                "topicCount": 0,
                "viewCount": 0,
                "voteCount": 0,
                "currentVersionNumber": current.number,
                "usabilityRating": 0.88,
                "tags": [],
                "files": [_file_json(dataset, n, d) for n, d in sorted(current.files.items())],
                "versions": [
                    {
                        "versionNumber": v.number,
                        "creationDate": v.created,
                        "creatorName": dataset.owner,
                        "creatorRef": dataset.owner,
                        "versionNotes": f"Version {v.number}",
                        "status": "Ready",
                    }
                    for v in reversed(dataset.versions)
                ],
            }
        )

    async def list_files(request: web.Request) -> web.Response:
        dataset, refusal = _dataset(request, store)
        if dataset is None:
            return refusal or _error(500, "no dataset")
        version = dataset.version(request.query.get("datasetVersionNumber"))
        if version is None:
            return _error(404, "Dataset version not found")
        try:
            size = max(1, min(200, int(request.query.get("pageSize", "20"))))
            start = int(request.query.get("pageToken") or "0", 36)
        except ValueError:
            return _error(400, "Invalid pageSize or pageToken")
        names = sorted(version.files)
        page = names[start : start + size]
        following = start + size
        return web.json_response(
            {
                "datasetFiles": [_file_json(dataset, n, version.files[n]) for n in page],
                "errorMessage": None,
                "nextPageToken": _base36(following) if following < len(names) else "",
            }
        )

    async def download(request: web.Request) -> web.Response:
        dataset, refusal = _dataset(request, store)
        if dataset is None:
            return refusal or _error(500, "no dataset")
        if dataset.rules_required:
            return _error(403, "You must accept this dataset's rules before downloading it")
        version = dataset.version(request.query.get("datasetVersionNumber"))
        if version is None:
            return _error(404, "Dataset version not found")
        name = request.match_info.get("file", "")
        if name and name not in version.files:
            return _error(404, f"File {name} not found in {dataset.ref}")
        token = hashlib.sha256(f"{dataset.ref}/{name}@{version.number}{time.time_ns()}".encode())
        signature = token.hexdigest()
        store.tokens[signature] = (dataset.ref.casefold(), name, version.number)
        store.downloads.append(f"{dataset.ref}{'/' + name if name else ''}@{version.number}")
        filename = (name.rsplit("/", 1)[-1] if name else dataset.slug) or dataset.slug
        location = (
            f"{store.storage_url}/storage/kaggle-datasets/{dataset.ref}/{version.number}/{filename}"
            f"?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Expires=600&X-Goog-Signature={signature}"
        )
        raise web.HTTPFound(location)

    async def storage(request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            store.storage_authorization += 1
            return web.Response(
                status=400,
                content_type="application/xml",
                text="<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism"
                " allowed: a signed URL, or an Authorization header</Message></Error>",
            )
        found = store.tokens.get(request.query.get("X-Goog-Signature", ""))
        if found is None:
            return web.Response(
                status=403, text="<Error><Code>SignatureDoesNotMatch</Code></Error>"
            )
        ref, name, number = found
        dataset = store.datasets[ref]
        version = dataset.version(str(number))
        assert version is not None
        if version.archive is not None:
            body, filename = version.archive, f"{(name or dataset.slug).rsplit('/', 1)[-1]}.zip"
        elif not name:
            body, filename = _zip(sorted(version.files.items())), f"{dataset.slug}.zip"
        elif len(version.files[name]) > store.zip_files_over:
            body = _zip([(name.rsplit("/", 1)[-1], version.files[name])])
            filename = f"{name.rsplit('/', 1)[-1]}.zip"
        else:
            body, filename = version.files[name], name.rsplit("/", 1)[-1]
        kind = "application/zip" if filename.endswith(".zip") else "application/octet-stream"
        return web.Response(
            body=body,
            content_type=kind,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    app.router.add_get("/api/v1/datasets/view/{owner}/{slug}", view)
    app.router.add_get("/api/v1/datasets/list/{owner}/{slug}", list_files)
    app.router.add_get("/api/v1/datasets/download/{owner}/{slug}", download)
    app.router.add_get("/api/v1/datasets/download/{owner}/{slug}/{file:.+}", download)

    async def start_storage(app: web.Application) -> None:
        storage_app = web.Application()
        install(storage_app, app[FAULTS])
        storage_app.router.add_get("/storage/{path:.+}", storage)
        store.storage = await start_app(storage_app, "kaggle_storage")
        store.storage_url = store.storage.url

    async def stop_storage(app: web.Application) -> None:
        if store.storage is not None:
            await store.storage.stop()
            store.storage, store.storage_url = None, ""

    app.on_startup.append(start_storage)
    app.on_cleanup.append(stop_storage)
    return app


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def point(config: Config, url: str) -> Config:
    """Every Kaggle source aimed at this emulator."""
    from collector.sources.config import KaggleSourceConfig

    return aim_sources(config, KaggleSourceConfig, base_url=f"{url}/api/v1")
