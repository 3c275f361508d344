"""Commands for operators: `healthcheck` asks a running daemon's `/healthz` (Docker uses it)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import ConfigError, MetricsConfig, load_config

# A listener on every address is asked on loopback.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def health_url(metrics: MetricsConfig) -> str:
    host = _LOOPBACK.get(metrics.host, metrics.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{metrics.port}/healthz"


def _healthcheck(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    metrics = config.metrics
    if not metrics.enabled or metrics.port == 0:
        print(
            f"{args.config}: the health endpoint needs [metrics] enabled = true and a fixed port",
            file=sys.stderr,
        )
        return 1
    url = health_url(metrics)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            print(response.read().decode("utf-8", "replace").strip())
            return 0
    except urllib.error.HTTPError as error:  # 503: the pipeline is stuck
        print(error.read().decode("utf-8", "replace").strip(), file=sys.stderr)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        print(f"{url}: no answer ({reason})", file=sys.stderr)
    return 1


def register(commands: Subparsers) -> None:
    check = commands.add_parser(
        "healthcheck", help="ask the running daemon's /healthz; exit 0 when healthy, 1 if not"
    )
    check.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    check.set_defaults(func=_healthcheck)
