"""Subcommands of `resume-collector`, one module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from collector.config import ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = Any
CONFIG_DEFAULT = "examples/demo.toml"


def print_config_error(error: ConfigError) -> int:
    for line in error.errors:
        print(f"{error.path}: {line}", file=sys.stderr)
    return 2
