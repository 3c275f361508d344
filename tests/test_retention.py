"""Raw archive retention: `raw.retention` removes raw files older than that, on a schedule
inside the daemon, and `reprocess` says what it can no longer rebuild."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from collector.config import ConfigError, parse_config
from collector.sources.archive import EXPIRED_NOTE, Expired, RawArchive
from tests.conftest import run_collector, wait_for, write_config
from tests.daemon_process import Daemon

DAY = 86400.0


def raw_file(root: Path, relative: str, age_days: float) -> Path:
    """A file under `root`, last written `age_days` ago."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"personal data")
    then = time.time() - age_days * DAY
    os.utime(path, (then, then))
    return path


def today(name: str) -> str:
    return time.strftime("%Y/%m/%d/", time.gmtime()) + name


def test_expire_removes_what_was_written_before_the_cutoff_and_notes_it(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path, "kaggle-resumes")
    old_entry = raw_file(archive.root, "2020/01/01/000000-1-000001-file.json.gz", 100)
    old_part = raw_file(archive.root, "2020/01/02/000000-2-000002-file.json.gz.part", 100)
    old_dataset = raw_file(archive.root, "kaggle/owner/resumes/v1/Resume.csv", 100)
    recent = raw_file(archive.root, today("120000-3-000003-file.json.gz"), 1)
    recent_dataset = raw_file(archive.root, "kaggle/owner/resumes/v2/Resume.csv", 1)
    cutoff = time.time() - 30 * DAY
    assert archive.expire(cutoff) == 3
    assert not old_entry.exists() and not old_part.exists() and not old_dataset.exists()
    assert recent.exists() and recent_dataset.exists()
    assert not (archive.root / "2020").exists()  # past days left empty go too
    assert archive.expired() == Expired(before=cutoff, files=3)
    # Nothing more to remove: the note stays as it was; later removals add up.
    assert archive.expire(cutoff) == 0
    assert archive.expired() == Expired(before=cutoff, files=3)
    os.utime(recent, (cutoff - 1, cutoff - 1))
    assert archive.expire(cutoff + 1) == 1
    assert archive.expired() == Expired(before=cutoff + 1, files=4)
    assert (archive.root / EXPIRED_NOTE).exists()
    assert recent.parent.is_dir()  # today's folder is kept: entries are still written there


@pytest.mark.parametrize("value", ["90", "d", "-1d", "0d", "3 months"])
def test_a_bad_retention_fails_at_load_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"raw": {"retention": value}})
    assert raised.value.errors == [
        "raw: retention must be a positive number and a unit (s, m, h, d, w) such as '90d',"
        f" not {value!r}"
    ]


def test_retention_defaults_to_keeping_everything() -> None:
    assert parse_config({}).raw.retention_seconds is None
    assert parse_config({"raw": {"retention": "90d"}}).raw.retention_seconds == 90 * DAY


def test_the_daemon_removes_old_raw_files_on_a_schedule_and_reprocess_says_what_is_lost(
    tmp_path: Path, data_dir: Path
) -> None:
    raw = data_dir / "raw" / "se-workplace"
    old = raw_file(raw, "2020/01/01/000000-1-000001-questions.json.gz", 400)
    recent = raw_file(raw, today("120000-2-000002-questions.json.gz"), 0)
    gone_source = raw_file(data_dir / "raw" / "old-source", "2020/01/01/x.json.gz", 400)
    body = """
[raw]
retention = "30d"
sweep_interval = 0.2

[[sources]]
type = "stackexchange"
name = "se-workplace"
base_url = "http://127.0.0.1:9/2.3"
retry = { attempts = 1 }
"""
    config = write_config(tmp_path / "c.toml", body, data_dir)
    daemon = Daemon(config, tmp_path / "log.jsonl")
    try:
        daemon.wait_event("raw_expired", count=2)
        assert not old.exists() and recent.exists()
        assert not gone_source.exists()  # a source no longer configured: its raw files expire too
        expired = {e["source"]: e["files"] for e in daemon.find("raw_expired")}
        assert expired == {"se-workplace": 1, "old-source": 1}
        # A later sweep, not only the one at start: the recent file grows old while it runs.
        then = time.time() - 31 * DAY
        os.utime(recent, (then, then))
        wait_for(lambda: not recent.exists())
        assert daemon.stop() == 0
    finally:
        daemon.kill()

    done = run_collector("reprocess", "--config", str(config), "--output", str(tmp_path / "r"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reprocess: se-workplace cannot be rebuilt in full from raw:" in done.stdout
    assert "raw.retention removed 2 files written before" in done.stdout
