"""Commands that run or inspect the service: run, once, check-config, stats."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config, with_overrides
from collector.filemodes import data_dir_warning
from processors.optout import OptOutList


def _check_config(args: argparse.Namespace) -> int:
    from collector.environment import online, problems

    args.config = args.config_file or args.config  # `check-config FILE` as before, or --config
    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    found = problems(config)
    if args.online:
        checked = online(config, args.timeout)
        found.errors += checked.errors
        found.notes += checked.notes
    for note in found.notes:
        print(f"{args.config}: {note}")
    for warning in found.warnings:
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    if found.errors:
        return print_config_error(ConfigError(args.config, found.errors))
    if config.privacy.optout:
        try:
            OptOutList.parse(Path(config.privacy.optout).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
            where = f"{args.config}: privacy.optout"
            print(f"{where}: cannot read {config.privacy.optout}: {reason}", file=sys.stderr)
            return 2
    enabled = [s.name for s in config.sources if s.enabled]
    print(f"{args.config}: ok ({len(enabled)} sources enabled: {', '.join(enabled) or 'none'})")
    _print_credentials(args.config, config)
    too_open = data_dir_warning(config.layout().data_dir, config.service.file_mode)
    if too_open is not None:
        print(
            f"{args.config}: warning: service.data_dir {too_open['path']} is readable by others"
            f" (mode {too_open['mode']}, service.file_mode allows {too_open['allowed']}):"
            f" {too_open['fix']}",
            file=sys.stderr,
        )
    return 0


def _print_credentials(path: str, config: Config) -> None:
    """Which credentials each enabled Kaggle source would use (never the secret)."""
    from collector.sources.config import KaggleSourceConfig
    from collector.sources.kaggle import credentials_summary

    for source in config.sources:
        if isinstance(source, KaggleSourceConfig) and source.enabled:
            print(f"{path}: {source.name}: kaggle credentials: {credentials_summary(source)}")


def _run(args: argparse.Namespace) -> int:
    from collector.service import run_service

    def overrides(config: Config) -> Config:  # the command line's, at start and every reload
        return with_overrides(config, log_level=args.log_level, sources=args.source or ())

    if args.sandbox:  # every emulated API served in-process (collector/commands/sandbox.py)
        from collector.commands.sandbox import run_against_sandbox

        return run_against_sandbox(args.config, args.command, overrides=overrides)
    try:
        return run_service(args.config, args.command, resolve=overrides)
    except ConfigError as error:
        return print_config_error(error)


def _stats(args: argparse.Namespace) -> int:
    from collector.state.open import open_state_store
    from processors.grounding import outcome_counts

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    store = open_state_store(config.state)
    placement: dict[str, list[str]] = {}
    try:
        rows = store.counts()
        if config.state.backend == "redis":  # which instance runs which source now
            from collector.scaleout.redis_placement import current_placement
            from collector.state.redis import RedisStateStore

            assert isinstance(store, RedisStateStore)
            placement = current_placement(store)
    finally:
        store.close()
    table: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for source, dataset, what, n in rows:
        table[(source, dataset)][what] = n
    if args.json:
        import msgspec

        out = [{"source": s, "dataset": d, **counts} for (s, d), counts in sorted(table.items())]
        print(msgspec.json.encode(out).decode())
        return 0
    header = ("source", "dataset", "fetched", "written", "pairs", "dropped")
    print("{:<20} {:<40} {:>9} {:>9} {:>7} {:>8}".format(*header))
    for (source, dataset), counts in sorted(table.items()):
        drops = {k.removeprefix("drop:"): v for k, v in counts.items() if k.startswith("drop:")}
        print(
            f"{source:<20} {dataset:<40} {counts.get('fetched', 0):>9} "
            f"{counts.get('written', 0):>9} {counts.get('pairs', 0):>7} {sum(drops.values()):>8}"
        )
        for reason, n in sorted(drops.items(), key=lambda kv: -kv[1]):
            print(f"{'':<20}   dropped {reason}: {n}")
        for kind, n in sorted(counts.items()):
            if kind.startswith("residual:"):
                print(f"{'':<20}   anonymizer's last check replaced {kind[9:]}: {n}")
        invented = outcome_counts(counts)
        if any(invented.values()):
            print(
                f"{'':<20}   answers with invented facts: masked {invented['masked']},"
                f" dropped {invented['dropped']}, kept {invented['kept']}"
            )
    for instance, names in placement.items():
        print(f"instance {instance} runs {len(names)}: {', '.join(names)}")
    return 0


def register(commands: Subparsers) -> None:
    def with_config(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
        return sub

    run = with_config("run", "run as a daemon: every source polls on its own interval")
    run.set_defaults(func=_run)
    once = with_config("once", "one pass over every source, then exit")
    once.set_defaults(func=_run)
    for sub in (run, once):
        sub.add_argument(
            "--sandbox",
            action="store_true",
            help="aim every source at the local API emulators, started in-process",
        )
        sub.add_argument(
            "--log-level",
            choices=["debug", "info", "warning", "error"],
            help="overrides service.log_level (kept across reloads)",
        )
        sub.add_argument(
            "--source",
            action="append",
            metavar="NAME",
            help="run only this source of the config (repeat for more)",
        )
    check = with_config(
        "check-config", "validate a config (every error) and its environment; exit 2 on errors"
    )
    check.add_argument("config_file", nargs="?", metavar="CONFIG", help="same as --config")
    check.add_argument(
        "--online",
        action="store_true",
        help="also check the environment: tokens and where from, endpoints, writable paths",
    )
    check.add_argument("--timeout", type=float, default=5.0, help="seconds per endpoint")
    check.set_defaults(func=_check_config)
    stats = with_config("stats", "counts per dataset and drop reason from the state store")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=_stats)
