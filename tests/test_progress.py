"""The progress bar and the log lines share a terminal without printing over each other."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from collector.logging import OUTPUT, configure_logging, get_logger
from collector.progress import ProgressBar


def visible(row: str) -> str:
    """What a terminal shows of a row: each carriage return writes again from column 0."""
    shown = ""
    for segment in row.split("\r"):
        shown = segment + shown[len(segment) :]
    return shown.rstrip()


def test_log_lines_go_through_the_bar_while_it_shows_and_stay_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = io.StringIO()  # stdout and stderr on one terminal
    monkeypatch.setattr("sys.stderr", terminal)
    configure_logging("json", "info", terminal)
    bar = ProgressBar()
    host: Any = None  # the bar reads the host only when a checkpoint is committed
    asyncio.run(bar.start(host))
    assert OUTPUT.writer is not None
    log = get_logger(source="box")  # bound before or after the bar: the same output
    log.info("source_pass_done", fetched=3)
    assert bar.bar is not None
    bar.bar.update(3)
    log.info("source_pass_done", fetched=4)
    asyncio.run(bar.stop())
    assert OUTPUT.writer is None  # back to the stream once the bar is gone
    rows = [visible(row) for row in terminal.getvalue().split("\n")]
    # Without the bar's writer a line lands after the bar's text on the bar's row.
    assert not [row for row in rows if "records" in row and "{" in row]
    lines = [json.loads(row) for row in rows if "{" in row]
    assert [line["fetched"] for line in lines] == [3, 4]  # each line whole
    assert any("records" in row for row in rows)  # the bar was drawn too
