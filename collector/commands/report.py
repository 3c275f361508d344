"""`resume-collector report`: the quality report of what the formatted files hold.

    resume-collector report -c CONFIG [--out report.html] [--json] [--check]

Prints the key figures and the goals (as text, or JSON with --json) and writes one HTML page
with inline SVG plots that opens offline (collector/report.py). The plots need matplotlib, the
`report` extra; without it the figures are still printed and the command says how to install it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collector.commands import CONFIG_DEFAULT, Subparsers, print_config_error
from collector.config import Config, ConfigError, load_config

EXIT_GOALS_NOT_MET = 1
EXIT_NO_PLOTTING = 3


def _counts(config: Config) -> list[tuple[str, str, str, int]]:
    """The state store's counters; none when a SQLite store was never created (no run yet)."""
    from collector.state.open import open_state_store

    if config.state.backend == "sqlite" and not config.layout().state.exists():
        return []
    store = open_state_store(config.state)
    try:
        return store.counts()
    finally:
        store.close()


def _report(args: argparse.Namespace) -> int:
    import msgspec

    from collector.report import INSTALL_HINT, read_figures, render_html, text_lines

    try:
        config = load_config(args.config)
    except ConfigError as error:
        return print_config_error(error)
    figures = read_figures(config, _counts(config), tokenizer=args.tokenizer)
    if args.json:
        out = msgspec.structs.asdict(figures)
        del out["chars"], out["tokens"]  # per-row lists: the page plots them
        print(msgspec.json.encode(out).decode())
    else:
        print("\n".join(text_lines(figures)))
    try:
        page = render_html(figures)
    except ImportError:
        print(
            f"report: the HTML page needs matplotlib, which is not installed: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_NO_PLOTTING
    out_path = Path(args.out or config.layout().data_dir / "report.html")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    print(f"report written to {out_path}", file=sys.stderr if args.json else sys.stdout)
    if args.check and any(g.status == "not met" for g in figures.goals):
        return EXIT_GOALS_NOT_MET
    return 0


def register(commands: Subparsers) -> None:
    sub = commands.add_parser(
        "report", help="quality report: figures, goals and an HTML page with plots"
    )
    sub.add_argument("--config", "-c", default=CONFIG_DEFAULT, help="TOML config file")
    sub.add_argument("--out", help="HTML file to write (default: {data_dir}/report.html)")
    sub.add_argument("--json", action="store_true", help="print the figures as JSON")
    sub.add_argument(
        "--check", action="store_true", help="exit 1 when a goal the report checks is not met"
    )
    sub.add_argument(
        "--tokenizer",
        choices=["auto", "estimate"],
        default="auto",
        help="auto: tiktoken where installed, else characters / 4; estimate: always characters / 4",
    )
    sub.set_defaults(func=_report)
