"""Settings of the chunk roller and the uploader (the `[upload]` table)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class UploadRetryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Retries of one commit on 429, 5xx, timeouts and 412 (a commit landed since)."""

    attempts: Annotated[int, msgspec.Meta(ge=1)] = 8
    initial_wait: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    max_wait: Annotated[float, msgspec.Meta(ge=0)] = 120.0


class UploadConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Roll training lines into chunks and publish them; off, nothing under `chunks/` is written.
    enabled: bool = True
    # "auto": "hub" when `repo_id` is set, else "folder" (the Hub layout on local disk).
    target: Literal["auto", "folder", "hub"] = "auto"
    folder: str = ""  # empty: `{service.data_dir}/published`
    repo_id: str = ""  # "owner/name" of the dataset repo
    private: bool = True  # only used when the repo is created
    token_env: str = "HF_TOKEN"  # the environment variable holding the token
    endpoint: str = ""  # empty: the client's default (`HF_ENDPOINT`, else huggingface.co)
    # A chunk closes at whichever comes first; the defaults keep files well under the Hub's
    # limits and commits rare.
    max_records: Annotated[int, msgspec.Meta(ge=1)] = 50_000
    max_bytes: Annotated[int, msgspec.Meta(ge=1)] = 256 * 1024**2
    max_age: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    interval: Annotated[float, msgspec.Meta(gt=0)] = 300.0  # seconds between upload rounds
    # One commit carries at most this many files, the dataset card included.
    max_files_per_commit: Annotated[int, msgspec.Meta(ge=2, le=100)] = 50
    max_commits_per_hour: Annotated[int, msgspec.Meta(ge=1)] = 20
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 300.0  # seconds per HTTP request to the Hub
    retry: UploadRetryConfig = UploadRetryConfig()
    keep_committed: bool = False  # keep a chunk's local file once it is committed
    # The dataset card.
    pretty_name: str = "Resume writing instructions"
    language: list[str] = msgspec.field(default_factory=lambda: ["en"])

    def __post_init__(self) -> None:
        if self.target == "hub" and not self.repo_id:
            raise ValueError("target 'hub' needs repo_id ('owner/name')")
        if self.repo_id and self.repo_id.count("/") != 1:
            raise ValueError(f"repo_id must be 'owner/name', got {self.repo_id!r}")

    @property
    def resolved_target(self) -> Literal["folder", "hub"]:
        if self.target == "auto":
            return "hub" if self.repo_id else "folder"
        return self.target
