"""Local emulators of the remote APIs, for tests and the demo: one aiohttp app each.

Each emulator is a module with

    def create_app(faults: FaultConfig | None = None, **options: Any) -> web.Application
    def point(config: Config, url: str) -> Config        # optional

`create_app` builds the app (and installs `faults.install(app, faults)`); `point` returns the
service config with whatever it emulates aimed at `url` (a source's `base_url`, the upload
endpoint...). Register an emulator with one line in `EMULATORS` (name -> module); modules are
imported only when started, so registering costs nothing.

    async with Sandbox() as sandbox:             # every registered emulator, on 127.0.0.1:0
        url = sandbox.urls["stackexchange"]
        config = sandbox.point(config)           # every source aimed at its emulator
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from collector.sandbox.faults import FAULTS, FaultConfig, FaultRule, FaultState

if TYPE_CHECKING:
    from collector.config import Config

# name -> module with `create_app` (and optionally `point`). One line per emulator.
EMULATORS: dict[str, str] = {
    "stackexchange": "collector.sandbox.stackexchange",
    "github": "collector.sandbox.github",
    "openai": "collector.sandbox.openai",
    "huggingface": "collector.sandbox.hub",
    "kaggle": "collector.sandbox.kaggle",
    "huggingface_rows": "collector.sandbox.hf_rows",
}


def aim_sources(config: Config, kind: type, **fields: str) -> Config:
    """`config` with the given fields (an emulator's URL) set on every source of type `kind`:
    what each emulator's `point` does to the sources it stands in for."""
    import msgspec

    sources = [
        msgspec.structs.replace(s, **fields) if isinstance(s, kind) else s for s in config.sources
    ]
    return msgspec.structs.replace(config, sources=sources)


@dataclass
class RunningApp:
    """An app served on 127.0.0.1 at an OS-chosen port."""

    name: str
    app: web.Application
    runner: web.AppRunner
    url: str  # "http://127.0.0.1:PORT", no trailing slash

    @property
    def faults(self) -> FaultState:
        return self.app[FAULTS]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_app(app: web.Application, name: str = "app", host: str = "127.0.0.1") -> RunningApp:
    """Serve `app` on `host`, port 0 (never a fixed port); stop it with `RunningApp.stop()`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return RunningApp(name, app, runner, f"http://{host}:{port}")


def emulator_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(EMULATORS[name])
    except KeyError:
        known = ", ".join(sorted(EMULATORS))
        raise ValueError(f"no emulator named {name!r} (known: {known})") from None


async def start_emulator(
    name: str, faults: FaultConfig | None = None, **options: Any
) -> RunningApp:
    app = emulator_module(name).create_app(faults, **options)
    return await start_app(app, name)


class Sandbox:
    """Starts registered emulators (all by default) and knows their URLs."""

    def __init__(
        self,
        names: Iterable[str] | None = None,
        faults: FaultConfig | Mapping[str, FaultConfig] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.names = list(names) if names is not None else list(EMULATORS)
        self._faults = faults
        self._options = options or {}
        self.apps: dict[str, RunningApp] = {}

    def _faults_for(self, name: str) -> FaultConfig | None:
        if isinstance(self._faults, FaultConfig) or self._faults is None:
            return self._faults
        return self._faults.get(name)

    async def start(self) -> dict[str, str]:
        try:
            for name in self.names:
                self.apps[name] = await start_emulator(
                    name, self._faults_for(name), **self._options.get(name, {})
                )
        except BaseException:
            await self.stop()
            raise
        return self.urls

    async def stop(self) -> None:
        apps, self.apps = list(self.apps.values()), {}
        for running in reversed(apps):
            await running.stop()

    @property
    def urls(self) -> dict[str, str]:
        return {name: running.url for name, running in self.apps.items()}

    def point(self, config: Config) -> Config:
        """The config with every emulated API aimed at its emulator."""
        for name, running in self.apps.items():
            aim = getattr(emulator_module(name), "point", None)
            if aim is not None:
                config = aim(config, running.url)
        return config

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()


__all__ = [
    "EMULATORS",
    "FAULTS",
    "FaultConfig",
    "FaultRule",
    "FaultState",
    "RunningApp",
    "Sandbox",
    "emulator_module",
    "start_app",
    "start_emulator",
]
