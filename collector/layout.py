"""Where the service keeps its files, derived once from the config.

    {service.data_dir}/
        raw/{source}/...        API responses as they came (the raw archive, `[raw]`)
        formatted/*.jsonl       training lines and their provenance, per source
        chunks/                 closed and open chunks waiting to be published (`[upload]`)
        published/              the folder target, unless `upload.folder` names another place
    {state.path}                the SQLite state store (its own setting; see StateConfig)

Every command and component asks a `DataLayout` for these paths rather than joining
`data_dir` with a folder name itself, so each folder's name has one home.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.config import Config
    from collector.upload.config import UploadConfig


@dataclass(frozen=True)
class DataLayout:
    data_dir: Path  # everything the service writes, but the state store
    raw: Path
    formatted: Path
    chunks: Path
    published: Path  # where the folder target publishes
    state: Path  # the SQLite state store (unused with the Redis backend)

    @classmethod
    def of(cls, config: Config) -> DataLayout:
        data_dir = Path(config.service.data_dir)
        return cls(
            data_dir=data_dir,
            raw=data_dir / "raw",
            formatted=data_dir / "formatted",
            chunks=data_dir / "chunks",
            published=published_folder(config.upload, data_dir),
            state=Path(config.state.path),
        )


def published_folder(upload: UploadConfig, data_dir: Path) -> Path:
    """The folder target's folder: `upload.folder`, or `{data_dir}/published`."""
    return Path(upload.folder) if upload.folder else data_dir / "published"
