"""What runs inside the daemon beside the sources: uploaders, metrics, systemd notification...

A component is built from the config, may add sinks before the pipeline starts, starts once the
sources run, hears the service's lifecycle events, and stops after the pipeline has drained.
Each area adds its component to `build_components`; the service itself stays a wiring diagram.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.config import Config
    from collector.service import Mode, Service

# The lifecycle events a component hears, in order:
#   "ready" once every source runs; "reloading" / "reloaded" / "reload_failed" around SIGHUP;
#   "stopping" when the drain starts; "checkpoint" after every durable commit.
Event = str


class Component:
    name = "component"

    async def prepare(self, service: Service) -> None:
        """Before the pipeline starts: the place to add sinks to `service.sinks`."""

    async def start(self, service: Service) -> None:
        """Once the sources run."""

    def on_event(self, event: Event, fields: dict[str, Any]) -> None:
        """A lifecycle event; must not block (schedule work on the loop if needed)."""

    async def stop(self) -> None:
        """After the pipeline has drained and the last checkpoint is committed."""

    def paused(self) -> AbstractAsyncContextManager[None]:
        """Held while the service rewrites the data folder's files under the component
        (`forget` served in-process): work that reads or publishes them waits."""
        return contextlib.nullcontext()


def build_components(config: Config, mode: Mode) -> list[Component]:
    from collector.health import TestStall
    from collector.metrics import MetricsServer
    from collector.progress import ProgressBar
    from collector.retention import RawRetention
    from collector.rewrite.component import RewriteComponent
    from collector.systemd import SystemdNotifier
    from collector.upload.component import UploadComponent

    components: list[Component] = []
    components += filter(None, [ProgressBar.for_terminal(mode)])  # `once` on a terminal
    components += filter(None, [TestStall.from_environment()])  # tests only: see health.py
    components += filter(None, [SystemdNotifier.from_environment()])  # when NOTIFY_SOCKET is set
    components += filter(None, [MetricsServer.from_config(config.metrics)])  # [metrics] enabled
    components += filter(None, [RewriteComponent.from_config(config, mode)])  # [rewrite] enabled
    components += filter(None, [UploadComponent.from_config(config, mode)])  # [upload] enabled
    components += filter(None, [RawRetention.from_config(config)])  # [raw] retention set
    return components
