"""Settings of the chunk roller and the uploader."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class UploadConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # "folder" writes the Hub layout on local disk; "hub" commits to a dataset repo.
    target: Literal["folder", "hub"] = "folder"
    folder: str = "training-data/published"
    repo_id: str = ""
    private: bool = True
    token_env: str = "HF_TOKEN"
    max_records: Annotated[int, msgspec.Meta(ge=1)] = 50_000
    max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024**2
    max_age: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    max_files_per_commit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
    max_commits_per_hour: Annotated[int, msgspec.Meta(ge=1)] = 20
