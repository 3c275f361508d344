"""A local Hugging Face Hub: the endpoints the installed `huggingface_hub` client calls.

Read from the client's own source (`hf_api.py`, `_commit_api.py`, `file_download.py`,
`utils/_http.py`, `utils/_pagination.py`) and answered the way the real Hub does:

- `POST /api/repos/create` (409 with the repo's `url` when it exists, as `exist_ok` expects);
- `GET /api/{datasets,models,spaces}/{repo}[/revision/{rev}]`: `sha`, `siblings`, `cardData`;
- `GET /api/{kind}/{repo}/tree/{rev}[/{path}]?recursive=&expand=`, paginated with a `Link`
  header (1000 entries a page, 50 with `expand`);
- `POST /api/{kind}/{repo}/paths-info/{rev}` (form: `paths`, `expand`);
- `POST /api/{kind}/{repo}/preupload/{rev}`: `lfs` for a file above `lfs_threshold` bytes, with
  a binary sample (a NUL byte) or matched by an `lfs` filter of `.gitattributes`, else `regular`
  (inline in the commit); `oid` of a file that exists (its sha256 when `lfs`, its git blob id
  when `regular`, what the client's `_local_oid` computes) lets the client skip no-ops;
- the Git LFS batch API, `POST /{datasets/,spaces/,}{repo}.git/info/lfs/objects/batch`
  (`basic` transfer): an object the repo holds has no `actions`; another gets an `upload` href
  (a PUT of the bytes, checked against the sha256 and size, no Authorization needed, like a
  signed storage URL) and a `verify` href;
- `POST /api/{kind}/{repo}/commit/{rev}` (ndjson: a header line, then one line per file):
  real git object ids (sha1 of blobs, trees and commits), a parent chain, 412 when
  `parentCommit` is not the head any more, 429 past a commit quota per hour; an `lfsFile` line
  names an uploaded object by sha256 and the tree holds its pointer file, so the entry's `oid`
  is the git blob id of the pointer, with `lfs: {oid, size, pointerSize}` beside it (tree,
  paths-info; `lfs: {sha256, size, pointerSize}` in a sibling of the info);
- `GET /api/{kind}/{repo}/commits/{rev}` (paginated), `POST /api/validate-yaml`;
- `GET`/`HEAD /{datasets/,spaces/,}{repo}/resolve/{rev}/{path}` with `X-Repo-Commit`, `ETag`
  and byte ranges, as `hf_hub_download` needs.

Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) so the client
raises its typed errors. Faults are scripted per endpoint (`HubFault`): a status (429 with
`Retry-After`, 500...), a hang before or after a commit is applied (the client times out and
cannot know whether its commit landed), and a concurrent commit that lands just before the
client's own; the shared `collector.sandbox.faults` middleware (latency, random 429/500,
resets...) sits in front as in every emulator. Repos can be seeded from a folder:
`{root}/{owner}/{name}/...` becomes the dataset `owner/name` with those files in its first
commit (the sandbox seeds `collector/sandbox/data/huggingface`).

One module per job: `repos.py` (the repo model: commits, git objects, LFS storage),
`routes.py` (`HubEmulator`: that model served over HTTP), `faults.py` (the scripted faults),
`errors.py` (how a refusal is answered). This module is the emulator's entry point
(`create_app`, `point`) and names what tests use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from collector.sandbox import aim_sources
from collector.sandbox.faults import RATE_LIMIT_RESPONSE, FaultConfig, install
from collector.sandbox.hub.errors import HubError
from collector.sandbox.hub.faults import HubFault, hub_rate_limit_response
from collector.sandbox.hub.repos import LFS_THRESHOLD, Commit, Repo, git_blob_oid, lfs_pointer
from collector.sandbox.hub.routes import HUB, HubEmulator

if TYPE_CHECKING:
    from collector.config import Config

__all__ = [
    "HUB",
    "LFS_THRESHOLD",
    "SEED",
    "Commit",
    "HubEmulator",
    "HubError",
    "HubFault",
    "Repo",
    "create_app",
    "git_blob_oid",
    "lfs_pointer",
    "point",
]

# The sandbox's Hub holds the datasets the Hugging Face source reads.
SEED = Path(__file__).parent.parent / "data" / "huggingface"


def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application:
    """The Hub emulator app; `app[HUB]` is its `HubEmulator` (repos, faults, history).

    Options: `emulator` (an existing `HubEmulator`), or the `HubEmulator` arguments (`seed`
    defaults to the sandbox's Hugging Face data; `seed=None` starts empty).
    """
    hub: HubEmulator | None = options.pop("emulator", None)
    if hub is None:
        options.setdefault("seed", SEED)
        hub = HubEmulator(**options)
    app = hub.app()
    app[RATE_LIMIT_RESPONSE] = hub_rate_limit_response
    install(app, faults)
    return app


def point(config: Config, url: str) -> Config:
    """Uploads and every Hugging Face source aimed at this emulator."""
    from collector.sources.config import HuggingFaceSourceConfig

    config = aim_sources(config, HuggingFaceSourceConfig, base_url=url)
    upload = msgspec.structs.replace(config.upload, endpoint=url)
    return msgspec.structs.replace(config, upload=upload)
