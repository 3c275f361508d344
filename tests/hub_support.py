"""The Hub emulator on 127.0.0.1 (port 0) in a thread, so blocking code can call it.

The real `huggingface_hub` client is synchronous, and the service runs as a subprocess: neither
may block the loop that serves the emulator, so the emulator gets a loop of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from collector.sandbox.hub import HubEmulator
from collector.upload.targets import use_lfs_transfer
from tests.conftest import write_config

TOKEN = "hf_emulator_token"


class ThreadedServer:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, name="hub-emulator", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._stop())
        self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def running_hub(hub: HubEmulator | None = None) -> Iterator[tuple[HubEmulator, str]]:
    """A Hub on loopback; the client sends large files through LFS, as the uploader has it."""
    use_lfs_transfer()
    hub = hub or HubEmulator(token=TOKEN)
    server = ThreadedServer(hub.app()).start()
    try:
        yield hub, server.url
    finally:
        server.stop()  # its shutdown lets any held request go


def inbox_config(
    tmp_path: Path, data_dir: Path, inbox: Path, upload: str, sources: str = ""
) -> Path:
    """A daemon's config: one inbox of pairs (`box`, CC BY) published as `[upload]` says, and
    `sources` (more `[[sources]]` tables) after it."""
    return write_config(
        tmp_path / "config.toml",
        f"""
[upload]
{upload}

[[sources]]
type = "inbox"
name = "box"
path = "{inbox}"
interval = 0.2
batch_size = 10
license = "CC-BY-4.0"

[sources.recipe]
name = "pairs"
{sources}""",
        data_dir,
    )
