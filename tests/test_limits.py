"""The daemon under abusive input: limits that hold, measured on the real process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import collector_command, subprocess_env, write_config
from tests.daemon_process import inbox_source, write_pairs

MIB = 1024 * 1024


def write_huge_line(path: Path, size: int) -> None:
    """Append one JSON line of `size` bytes, written a MiB at a time."""
    with path.open("ab") as handle:
        handle.write(b'{"original": "')
        for _ in range(size // MIB):
            handle.write(b"x" * MIB)
        handle.write(b'"}\n')


def once_with_peak_rss(config: Path) -> tuple[int, int]:
    """`resume-collector once` to its end: (exit code, peak RSS in bytes of the daemon and the
    workers it waited for, as the kernel counted it for this child alone)."""
    process = subprocess.Popen(
        collector_command("once", "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=subprocess_env(),
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss * 1024


def stats(config: Path) -> dict[str, dict[str, int]]:
    out = subprocess.run(
        collector_command("stats", "--json", "--config", str(config)),
        check=True,
        capture_output=True,
        env=subprocess_env(),
    )
    return {row["dataset"]: row for row in json.loads(out.stdout)}


def test_a_200_mb_line_is_counted_its_neighbours_written_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    runs = {}
    for name, huge in (("plain", False), ("huge", True)):
        inbox, data_dir = tmp_path / name / "inbox", tmp_path / name / "data"
        inbox.mkdir(parents=True)
        data_dir.mkdir()
        path = inbox / "pairs.jsonl"
        write_pairs(path, 0, 1)
        if huge:
            write_huge_line(path, 200 * MIB)
        write_pairs(path, 1, 1)
        config = write_config(tmp_path / f"{name}.toml", inbox_source("box", inbox), data_dir)
        code, peak = once_with_peak_rss(config)
        assert code == 0
        runs[name] = peak, stats(config)["local/pairs"]
    (plain_rss, plain), (huge_rss, huge) = runs["plain"], runs["huge"]
    assert plain["written"] == huge["written"] == 2  # the good records beside it are kept
    assert huge["drop:record_too_large"] == 1
    assert "drop:record_too_large" not in plain
    # At most one record's worth (max_record_bytes, 16 MiB) more than without it, with margin;
    # before the limit, this line took the daemon to 3.8 GB.
    assert huge_rss < plain_rss + 48 * MIB, (plain_rss // MIB, huge_rss // MIB)
