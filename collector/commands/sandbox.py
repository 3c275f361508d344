"""`resume-collector sandbox`: the local API emulators, on their own or under the service.

    resume-collector sandbox                       # serve every emulator until SIGTERM/SIGINT
    resume-collector sandbox --only github --latency 0.05 --rate-limit 20 --p-429 0.05
    resume-collector once --sandbox -c examples/demo.toml   # the real sources, emulated APIs
    resume-collector sandbox --once -c examples/demo.toml   # the same

With a config, the emulators start in the same process on 127.0.0.1 (ports chosen by the OS),
every source, uploader or rewriter they emulate is aimed at them (each emulator module's
`point`), secrets the config names but the environment lacks get a sandbox value, and the
service runs as usual (`once`: one pass, then exit; `run`: until SIGTERM). A SIGHUP reload
resolves the file the same way, so the sources keep talking to the emulators and only what
the file changed counts as changed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config

SANDBOX_SECRET = "sandbox-secret"


def emulator_options() -> dict[str, dict[str, Any]]:
    """What the emulators are started with here: the LLM's quota (`SANDBOX_REQUESTS_PER_MINUTE`)."""
    from collector.sandbox.openai import SANDBOX_REQUESTS_PER_MINUTE

    return {"openai": {"requests_per_minute": SANDBOX_REQUESTS_PER_MINUTE}}


def sandbox_secrets(config: Config) -> list[str]:
    """Give every `*_env` the config names a sandbox value if it is unset; the names set."""
    sections: list[Any] = [*config.sources, config.upload, config.rewrite]
    filled: list[str] = []
    for section in sections:
        for field in msgspec.structs.fields(section):
            if not field.name.endswith("_env"):
                continue
            name = getattr(section, field.name)
            if isinstance(name, str) and name and not os.environ.get(name):
                os.environ[name] = SANDBOX_SECRET
                filled.append(name)
    return filled


def run_against_sandbox(
    config_path: str,
    mode: str,
    names: list[str] | None = None,
    overrides: Callable[[Config], Config] | None = None,
) -> int:
    """Run the service (`once` or `run`) with every emulated API served in-process;
    `overrides` are the command line's (`--log-level`, `--source`), applied before pointing."""
    override = overrides or (lambda config: config)
    from collector.components import Mode
    from collector.logging import configure_logging, get_logger
    from collector.sandbox import Sandbox
    from collector.service import Service

    try:
        config = override(load_config(config_path))
    except ConfigError as error:
        return print_config_error(error)
    configure_logging(config.service.log_format, config.service.log_level)
    log = get_logger()

    async def main() -> int:
        async with Sandbox(names, options=emulator_options()) as sandbox:
            filled: list[str] = []

            def resolve(config: Config) -> Config:  # at start and at every SIGHUP reload
                pointed = sandbox.point(override(config))
                filled.extend(sandbox_secrets(pointed))
                return pointed

            pointed = sandbox.point(config)
            filled.extend(sandbox_secrets(pointed))
            log.info("sandbox_started", urls=sandbox.urls, secrets_filled=filled)
            run_mode: Mode = "once" if mode == "once" else "run"
            service = Service(config_path, run_mode, pointed, resolve=resolve)
            return await service.run()

    try:
        return asyncio.run(main())
    except ValueError as error:  # an unknown emulator name in --only
        print(f"sandbox: {error}", file=sys.stderr)
        return 2


def _faults(args: argparse.Namespace) -> Any:
    from collector.sandbox.faults import FaultConfig

    return FaultConfig(
        latency=args.latency,
        rate_limit=args.rate_limit,
        retry_after=args.retry_after,
        p_rate_limit=args.p_429,
        p_server_error=args.p_500,
        p_reset=args.p_reset,
        p_truncated=args.p_truncated,
        p_slow=args.p_slow,
        seed=args.seed,
    )


def _serve(args: argparse.Namespace) -> int:
    from collector.sandbox import Sandbox

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with Sandbox(args.only, _faults(args), emulator_options()) as sandbox:
            if args.json:
                print(msgspec.json.encode(sandbox.urls).decode(), flush=True)
            else:
                for name, url in sandbox.urls.items():
                    print(f"{name:<20} {url}", flush=True)
            await stop.wait()
        return 0

    return asyncio.run(main())


def _sandbox(args: argparse.Namespace) -> int:
    if args.once or args.run:
        return run_against_sandbox(args.config, "once" if args.once else "run", args.only)
    try:
        return _serve(args)
    except ValueError as error:  # an unknown emulator name
        print(f"sandbox: {error}", file=sys.stderr)
        return 2


def register(commands: Subparsers) -> None:
    sub = commands.add_parser(
        "sandbox", help="serve the local API emulators (or run the service against them)"
    )
    sub.add_argument("--only", action="append", help="only this emulator (repeatable)")
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass of --config against them")
    mode.add_argument("--run", action="store_true", help="run --config against them")
    sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    sub.add_argument("--json", action="store_true", help="print the URLs as one JSON object")
    faults = sub.add_argument_group("faults (every emulator)")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    faults.add_argument("--rate-limit", type=float, default=0.0, help="requests/s (0: none)")
    faults.add_argument("--retry-after", type=float, default=1.0, help="with random 429/503")
    faults.add_argument("--p-429", type=float, default=0.0, help="probability of a 429")
    faults.add_argument("--p-500", type=float, default=0.0, help="probability of a 500")
    faults.add_argument("--p-reset", type=float, default=0.0, help="of a connection reset")
    faults.add_argument("--p-truncated", type=float, default=0.0, help="of truncated JSON")
    faults.add_argument("--p-slow", type=float, default=0.0, help="of a slow body")
    faults.add_argument("--seed", type=int, default=0, help="random seed of the faults")
    sub.set_defaults(func=_sandbox)
