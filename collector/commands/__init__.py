"""Subcommands of `resume-collector`, one module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from collector.config import ConfigError

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = Any
# Where the service's config lives on a host (the systemd unit and the Dockerfile say it too);
# $RESUME_COLLECTOR_CONFIG points elsewhere, and every command takes --config.
CONFIG_DEFAULT = os.environ.get("RESUME_COLLECTOR_CONFIG", "/etc/resume-collector/collector.toml")


def print_config_error(error: ConfigError) -> int:
    for line in error.errors:
        print(f"{error.path}: {line}", file=sys.stderr)
    return 2
