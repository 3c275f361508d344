"""The `resume-collector` command line: each area registers its own subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from collector import __version__
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

# Each module has `register(subparsers)`; add a module here to add its commands.
COMMAND_MODULES = [service, operations, rewrite, upload, reprocess, processing, sandbox, forget]
COMMAND_MODULES.append(report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resume-collector",
        description="Collect, clean and publish an instruction-tuning dataset for resume writing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
