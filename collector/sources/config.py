"""Configuration of every source type: a tagged union on `type`.

Secrets never sit in the config file: a source names the environment variable that holds them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from collector.datafiles.rows import DEFAULT_BATCH_BYTES
from processors.config import RecipeConfig

Positive = Annotated[float, msgspec.Meta(gt=0)]


class RateConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A token bucket: `per_second` refill, `burst` capacity, optional daily quota."""

    per_second: Positive = 1.0
    burst: Annotated[int, msgspec.Meta(ge=1)] = 1
    per_day: Annotated[int, msgspec.Meta(ge=1)] | None = None


class RetryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    initial_wait: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_wait: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    # A rate-limit refusal that says nothing about when to retry (GitHub's secondary limits:
    # 403/429 with no retry-after) waits at least this long, doubling on each further refusal.
    secondary_wait: Annotated[float, msgspec.Meta(ge=0)] = 60.0


class SourceConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="type"):
    """Fields every source has. `name` identifies the source in state, logs and metrics."""

    name: str
    enabled: bool = True
    interval: Annotated[float, msgspec.Meta(ge=0)] = 3600.0  # seconds between passes in `run`
    # Records of a file (an inbox file, a dataset's member) go to the pipeline in batches of
    # up to `batch_size` records, a batch ending sooner once it holds `batch_bytes` of input:
    # big batches spread the service's cost per batch thin (256 records cost it ~30% more CPU
    # a record than 1024), the byte bound keeps a batch of big records small.
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 1024
    batch_bytes: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_BATCH_BYTES
    recipe: RecipeConfig = RecipeConfig()
    license: str = "unknown"  # for the dataset card
    rate: RateConfig = RateConfig()
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 1
    retry: RetryConfig = RetryConfig()
    timeout: Positive = 30.0
    max_response_bytes: Annotated[int, msgspec.Meta(ge=1)] = 100 * 1024 * 1024
    # A record (a line, a CSV record, a JSON item, a Parquet row) larger than this is skipped
    # as it streams past, never held whole, and counted as `record_too_large`.
    max_record_bytes: Annotated[int, msgspec.Meta(ge=1)] = 16 * 1024 * 1024
    # Keep every response that produced records under `{data_dir}/raw/{name}/` (gzip JSON), so
    # `resume-collector reprocess` can rebuild the output without fetching.
    archive: bool = True
    # How much work the source is, for placing sources over instances sharing a Redis
    # (docs/scale-out.md): an instance takes sources up to its share of the summed weights.
    # Give a source the same weight in every config that has it.
    weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class InboxSourceConfig(SourceConfig, tag="inbox", frozen=True):
    """A local folder of `.jsonl`, `.json` and `.csv` files and of resume documents (`.pdf`,
    `.docx`, `.txt`, `.md`, `.html`)."""

    path: str = "inbox"
    # The output is `{owner}__{file stem}.jsonl` unless `dataset` names one file for everything
    # (documents: `{owner}__resume_documents.jsonl`).
    owner: str = "local"
    dataset: str = ""
    # The files looked at; one of another type than those above is `unsupported_file_type`.
    patterns: list[str] = msgspec.field(default_factory=lambda: ["*"])
    # A resume document larger than this is not read (`document_too_large`).
    max_document_bytes: Annotated[int, msgspec.Meta(ge=1)] = 20 * 1024 * 1024
    # Who is credited for the inbox's records in the published provenance and the card (with
    # `license`); unset, the records are the operator's own (collector/licences.py OWN).
    attribution: str = ""


class StackExchangeSourceConfig(SourceConfig, tag="stackexchange", frozen=True):
    site: str = "workplace"
    tags: list[str] = msgspec.field(default_factory=lambda: ["resume"])
    base_url: str = "https://api.stackexchange.com/2.3"
    filter: str = "withbody"
    key_env: str = ""  # env var holding the app key, optional
    pagesize: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    max_pages: int = 0  # 0: until has_more is false


class GitHubSourceConfig(SourceConfig, tag="github", frozen=True):
    queries: list[str] = []
    code_queries: list[str] = []
    base_url: str = "https://api.github.com"
    token_env: str = "GITHUB_TOKEN"
    per_page: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    split_queries: bool = False
    # Files read from each repository a `queries` search finds (code searches name their files).
    resume_paths: list[str] = msgspec.field(default_factory=lambda: ["resume.json"])
    # Results GitHub lets a search reach; past it, `split_queries` splits by created:/size:.
    search_cap: Annotated[int, msgspec.Meta(ge=1)] = 1000
    fetch_profiles: bool = True  # read /users/{login} for the profile name (to anonymize)


class KaggleSourceConfig(SourceConfig, tag="kaggle", frozen=True):
    datasets: list[str] = []  # "owner/dataset"
    files: list[str] = []  # member names to read; empty: every csv/json/jsonl member
    base_url: str = "https://www.kaggle.com/api/v1"
    # an access token (Authorization: Bearer), preferred as the official clients do; its value
    # may also be the path of a file holding it; else ~/.kaggle/access_token
    token_env: str = "KAGGLE_API_TOKEN"
    username_env: str = "KAGGLE_USERNAME"  # the legacy API key (HTTP basic), or kaggle.json
    key_env: str = "KAGGLE_KEY"
    max_archive_bytes: int = 2 * 1024**3
    max_uncompressed_bytes: int = 8 * 1024**3
    max_entries: int = 100_000
    # uncompressed / compressed size of one archive entry beyond which it is a zip bomb
    max_compression_ratio: Annotated[float, msgspec.Meta(gt=1)] = 200.0
    # "files": one download per selected file; "archive": the whole dataset as one zip
    download: Literal["files", "archive"] = "files"


class HuggingFaceSourceConfig(SourceConfig, tag="huggingface", frozen=True):
    repo_id: str = ""
    files: list[str] = []
    revision: str = "main"
    base_url: str = "https://huggingface.co"
    rows_url: str = "https://datasets-server.huggingface.co"
    use_rows_api: bool = False
    config: str = "default"
    split: str = "train"
    token_env: str = "HF_TOKEN"


AnySourceConfig = (
    InboxSourceConfig
    | StackExchangeSourceConfig
    | GitHubSourceConfig
    | KaggleSourceConfig
    | HuggingFaceSourceConfig
)
