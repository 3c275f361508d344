"""Where the service keeps its files, derived once from the config.

    {service.data_dir}/
        raw/{source}/...        API responses as they came (the raw archive, `[raw]`)
        formatted/*.jsonl       training lines and their provenance, per source
        chunks/                 closed and open chunks waiting to be published (`[upload]`)
        published/              the folder target, unless `upload.folder` names another place
    {state.path}                the SQLite state store (its own setting; see StateConfig)

Every command and component asks the config's `DataLayout` (`config.layout()`) for these paths,
or, when it is lent a data folder rather than a config, the functions below: each folder's name
has one home. A leaf: it imports nothing of the service (the config imports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    data_dir: Path  # everything the service writes, but the state store
    raw: Path
    formatted: Path
    chunks: Path
    published: Path  # where the folder target publishes
    state: Path  # the SQLite state store (unused with the Redis backend)

    @classmethod
    def at(cls, data_dir: Path, *, upload_folder: str, state_path: str) -> DataLayout:
        """The layout of `service.data_dir`, with `upload.folder` and `state.path`."""
        return cls(
            data_dir=data_dir,
            raw=raw_dir(data_dir),
            formatted=formatted_dir(data_dir),
            chunks=chunks_dir(data_dir),
            published=published_folder(upload_folder, data_dir),
            state=Path(state_path),
        )


# Each folder's name, for the parts that are lent a data folder rather than a config (a sink, a
# source's context, `forget` working on a copy).
def raw_dir(data_dir: Path) -> Path:
    return data_dir / "raw"


def formatted_dir(data_dir: Path) -> Path:
    return data_dir / "formatted"


def chunks_dir(data_dir: Path) -> Path:
    return data_dir / "chunks"


def published_folder(upload_folder: str, data_dir: Path) -> Path:
    """The folder target's folder: `upload.folder`, or `{data_dir}/published`."""
    return Path(upload_folder) if upload_folder else data_dir / "published"
