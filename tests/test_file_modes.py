"""Private by default: what the collector writes is owner-only unless `service.file_mode` opens
it, and a data dir that others can read is a warning."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from collector.config import ConfigError, parse_config
from tests.conftest import ROOT, run_collector, write_config
from tests.daemon_process import inbox_source, log_events, write_pairs


def modes(root: Path) -> dict[str, set[str]]:
    """{"0600": {"raw/x.json.gz", ...}, "0700": {...}} for every file and folder under root."""
    out: dict[str, set[str]] = {}
    for path in [root, *root.rglob("*")]:
        mode = f"{stat.S_IMODE(path.lstat().st_mode):04o}"
        kind = "/" if path.is_dir() else ""
        out.setdefault(mode, set()).add(path.relative_to(root).as_posix() + kind)
    return out


def run_once(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # cwd: the demo's inbox paths are relative to the repository.
    done = run_collector("once", *extra, "--config", str(config), timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_every_file_and_folder_the_demo_writes_is_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"  # not there yet: the service creates every folder
    demo = (ROOT / "examples" / "demo.toml").read_text()
    demo = demo.replace('"demo-output/', f'"{out}/')
    demo = demo.replace("requests_per_minute = 1200", "requests_per_minute = 60000")
    config = tmp_path / "demo.toml"
    config.write_text(demo)
    run_once(config, "--sandbox")
    found = modes(out)
    written = found.get("0600", set())
    # Everything the demo writes, personal data before anonymization included.
    for expected in (
        "training-data/raw/github-json-resume/",
        "training-data/formatted/github__json-resume__pairs.jsonl",
        "training-data/formatted/github__json-resume__clean_report.json",
        "training-data/formatted/stackexchange__workplace__provenance.jsonl",
        "training-data/formatted/stackexchange__workplace__clean_report.json",
        "training-data/published/README.md",
        "state/collector.sqlite3",
    ):
        assert expected in written or expected in found["0700"], expected
    assert any(p.startswith("training-data/raw/") and p.endswith(".gz") for p in written)
    assert any(p.startswith("training-data/published/data/") for p in written)
    assert set(found) == {"0600", "0700"}, {m: sorted(p)[:5] for m, p in found.items()}
    assert all(p.endswith("/") for p in found["0700"])
    assert not any(p.endswith("/") for p in written)


def test_file_mode_opens_files_to_a_group_on_purpose(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_pairs(inbox / "a.jsonl", 0, 5)
    data_dir = tmp_path / "training-data"
    config = write_config(
        tmp_path / "c.toml",
        inbox_source("box", inbox) + "\n[upload]\nmax_records = 2\n",
        data_dir,
        service='file_mode = "0640"',
    )
    run_once(config)
    found = modes(data_dir)
    assert set(found) == {"0640", "0750"}
    assert "formatted/local__a.jsonl" in found["0640"]
    assert "state.sqlite3" in found["0640"]
    assert "published/" in found["0750"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0755", "service: file_mode is for data files: no execute bits, not '0755'"),
        ("0440", "service: file_mode must let the owner read and write (0600), not '0440'"),
        ("rw-r-----", "service: file_mode must be an octal mode such as '0640', not 'rw-r-----'"),
        (416, "service.file_mode: expected str, got int"),
    ],
)
def test_a_bad_file_mode_fails_at_load_naming_the_field(value: object, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"service": {"file_mode": value}})
    assert raised.value.errors == [error]


def test_a_data_dir_readable_by_others_is_a_warning_at_start_and_in_check_config(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "training-data"
    data_dir.mkdir()
    data_dir.chmod(0o755)  # as `mkdir` leaves it under the usual umask
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "c.toml", inbox_source("box", inbox), data_dir)
    checked = run_collector("check-config", str(config))
    assert checked.returncode == 0
    assert f"service.data_dir {data_dir} is readable by others (mode 0755" in checked.stderr
    assert f"chmod -R g-rx,o-rx {data_dir}" in checked.stderr
    log = tmp_path / "log.jsonl"
    log.write_text(run_once(config).stdout)
    warnings = [e for e in log_events(log) if e.get("event") == "data_dir_readable_by_others"]
    assert [(w["path"], w["mode"], w["allowed"]) for w in warnings] == [
        (str(data_dir), "0755", "0700")
    ]
    data_dir.chmod(0o700)
    quiet = run_once(config)
    assert "data_dir_readable_by_others" not in quiet.stdout
