"""The `resume-collector` command line: each area registers its own subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from collector import __version__, poolserver


def command_modules() -> list[ModuleType]:
    """Each module has `register(subparsers)`; add a module here to add its commands.
    Imported when the parser is built, after `main` has started the pool's forkserver."""
    from collector.commands import (
        forget,
        operations,
        processing,
        report,
        reprocess,
        rewrite,
        sandbox,
        service,
        upload,
    )

    return [service, operations, rewrite, upload, reprocess, processing, sandbox, forget, report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resume-collector",
        description="Collect, clean and publish an instruction-tuning dataset for resume writing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in command_modules():
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Before the commands' imports: the forkserver loads the processors on another core
    # meanwhile (collector/poolserver.py).
    poolserver.start_early(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
