"""The upload lease, taken by the uploader (collector/upload/uploader.py) for each round."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from collector.layout import published_folder
from collector.logging import Logger
from collector.scaleout.leases import HeldLease, LeaseStore, new_owner_token
from collector.state.redis import connect_async

if TYPE_CHECKING:
    from collector.config import Config


class UploadLease:
    """One uploader at a time per upload target across the instances sharing a Redis.

    Each instance commits its own chunks, and a commit that loses a race is retried (412);
    taking turns on top of that keeps the commit budget and the dataset card exact: the
    holder reads the shared ledger, commits and records the commit before anyone else starts.
    """

    def __init__(
        self, store: LeaseStore, name: str, owner: str, ttl: float, log: Logger, wait: float
    ) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.log = log
        self.wait = wait
        self._owns_client = False

    @classmethod
    def for_config(cls, config: Config, instance: str, log: Logger) -> UploadLease | None:
        """A lease on `upload`'s target (repo or folder); None unless the state is Redis."""
        if config.state.backend != "redis":
            return None
        upload = config.upload
        if upload.resolved_target == "hub":
            target = f"hub|{upload.endpoint}|{upload.repo_id}"
        else:
            folder = published_folder(upload.folder, Path(config.service.data_dir))
            target = f"folder|{os.path.abspath(folder)}"
        name = f"upload:{hashlib.blake2b(target.encode(), digest_size=10).hexdigest()}"
        ttl = config.state.lease_ttl
        store = LeaseStore(connect_async(config.state), config.state.prefix, min(5.0, ttl / 3))
        lease = cls(store, name, new_owner_token(instance), ttl, log, wait=upload.interval)
        lease._owns_client = True
        return lease

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[HeldLease]:
        """Hold the lease for one round; `LeaseBusy` if another instance kept it for `wait`."""
        return self.store.hold(self.name, self.owner, self.ttl, wait=self.wait, log=self.log)

    async def close(self) -> None:
        if self._owns_client:
            await self.store.client.aclose()
