"""The configured state store, and the name this instance keeps its own namespaces under."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import TYPE_CHECKING

from collector.state.base import StateStore

if TYPE_CHECKING:
    from collector.config import Config, StateConfig


def open_state_store(config: StateConfig, instance: str = "") -> StateStore:
    """The configured store; `instance` (see `instance_name`) keeps local namespaces apart."""
    # Imported on demand: each backend pulls in its own client library.
    if config.backend == "sqlite":
        from collector.state.sqlite import SqliteStateStore

        return SqliteStateStore(config.path, bloom_bits=config.bloom_mb * 8 * 2**20)
    if config.backend == "redis":
        from collector.state.redis import RedisStateStore

        return RedisStateStore.from_config(config, instance or config.instance)
    raise NotImplementedError(f"state.backend = {config.backend!r} is not available yet")


def instance_name(config: Config) -> str:
    """`state.instance`, or the host name and a hash of data_dir: stable across restarts."""
    if config.state.instance:
        return config.state.instance
    data_dir = os.path.abspath(config.service.data_dir)
    digest = hashlib.blake2b(data_dir.encode(), digest_size=4).hexdigest()
    return f"{socket.gethostname()}-{digest}"
