"""The systemd unit: it verifies, it is sandboxed ("OK" or better), and it matches the service."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import load_config
from collector.sources.config import InboxSourceConfig

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "resume-collector.service"
INSTALLED_BINARY = "/opt/resume-collector/bin/resume-collector"
MAX_EXPOSURE = 2.5  # systemd-analyze security: "OK" and better

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    analyze is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def unit_settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, by key (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    binary = Path(sys.executable).parent / "resume-collector"
    if not binary.exists():
        binary = Path(sys.executable)
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    path = tmp_path / "resume-collector.service"
    path.write_text(text.replace(INSTALLED_BINARY, str(binary)))
    return path


@needs_analyze
def test_systemd_analyze_verify_passes(unit_here: Path) -> None:
    assert analyze is not None
    result = subprocess.run(
        [analyze, "verify", str(unit_here)], capture_output=True, text=True, check=False
    )
    about_us = [line for line in result.stderr.splitlines() if unit_here.name in line]
    assert result.returncode == 0, result.stderr
    assert about_us == [], "\n".join(about_us)


@needs_analyze
def test_sandboxing_is_rated_ok_or_better(unit_here: Path) -> None:
    assert analyze is not None
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit_here)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    limit = f"--threshold={int(MAX_EXPOSURE * 10)}"  # exposure x 10
    threshold = subprocess.run(
        [analyze, "security", "--offline=true", limit, str(unit_here)],
        capture_output=True,
        check=False,
    )
    assert threshold.returncode == 0


def test_the_unit_speaks_notify_and_reloads_with_sighup() -> None:
    settings = unit_settings()
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["ExecStart"][0].startswith(f"{INSTALLED_BINARY} run --config ")
    for key in ("StateDirectory", "LogsDirectory", "EnvironmentFile", "WatchdogSec"):
        assert key in settings, key
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "DynamicUser"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"]
    assert "AF_UNIX" in settings["RestrictAddressFamilies"][0]  # NOTIFY_SOCKET is a unix socket


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|min)?", value)
    assert match is not None, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_stop_timeout_covers_the_drain_of_the_production_config() -> None:
    settings = unit_settings()
    drain = load_config(ROOT / "examples" / "production.toml").service.shutdown_timeout
    stop = seconds(settings["TimeoutStopSec"][0])
    assert drain < stop <= drain + 30


def test_the_unit_file_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]


def install_steps() -> list[list[str]]:
    """The `install ...` commands of the unit's header and of docs/operations.md, as words."""
    lines = [line.lstrip("# ").strip() for line in UNIT.read_text().splitlines()]
    lines += (ROOT / "docs" / "operations.md").read_text().splitlines()
    return [line.split("#")[0].split() for line in lines if line.startswith("install ")]


def test_the_documentation_is_a_page_the_install_steps_put_there() -> None:
    (url,) = unit_settings()["Documentation"]
    assert url.startswith("file:///"), url
    installed = Path(url.removeprefix("file://"))
    copies = [
        words
        for words in install_steps()
        if "-t" in words and words[words.index("-t") + 1] == str(installed.parent)
    ]
    assert copies, f"no install step puts a page in {installed.parent}"
    page = f"docs/{installed.name}"
    assert all(page in words for words in copies)
    assert (ROOT / page).is_file()  # the page comes from the checkout, not from pip


def test_the_inbox_is_a_group_writable_folder_the_service_reads_through_its_group() -> None:
    config = load_config(ROOT / "examples" / "production.toml")
    (inbox,) = [s.path for s in config.sources if isinstance(s, InboxSourceConfig)]
    assert Path(inbox).is_absolute()
    assert not inbox.startswith("/var/lib/")  # a dynamic user's state is out of people's reach
    made = [words for words in install_steps() if words[-1] == inbox and "-d" in words]
    assert made, f"no install step makes {inbox}"
    for words in made:  # the unit's header and docs/operations.md
        mode = int(words[words.index("-m") + 1], 8)
        group = words[words.index("-g") + 1]
        assert mode & 0o070 == 0o070 and mode & 0o2000  # group-writable, files keep the group
        assert mode & 0o007 == 0  # and nobody else's
        assert unit_settings()["SupplementaryGroups"] == [group]


def test_relative_paths_of_the_production_config_land_in_the_state_directory() -> None:
    settings = unit_settings()
    assert settings["WorkingDirectory"] == [f"/var/lib/{settings['StateDirectory'][0]}"]
    config = load_config(ROOT / "examples" / "production.toml")
    assert not Path(config.service.data_dir).is_absolute()
    assert not Path(config.state.path).is_absolute()
