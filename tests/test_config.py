"""The config file: decoded into Structs, every error named by its field path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from collector.config import ConfigError, load_config, parse_config
from collector.sources.config import InboxSourceConfig
from collector.state.open import open_state_store
from collector.state.sqlite import SqliteStateStore
from tests.conftest import collector_command, subprocess_env

ROOT = Path(__file__).resolve().parent.parent


def test_example_configs_load() -> None:
    demo = load_config(ROOT / "examples/demo.toml")
    assert demo.sources and all(s.name for s in demo.sources)
    assert isinstance(demo.sources[0], InboxSourceConfig)
    load_config(ROOT / "examples/production.toml")


def test_every_error_is_reported_with_its_field_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[service]
queue_size = "big"

[[sources]]
type = "inbox"
name = "a"

[[sources]]
type = "inbox"
name = "b"

[[sources]]
type = "inbox"
name = "c"
rate = { per_second = "fast" }

[[sources]]
type = "carrier-pigeon"
name = "d"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = caught.value.errors
    assert "service.queue_size: expected int, got str" in errors
    assert "sources[2].rate.per_second: expected float, got str" in errors
    assert (
        "sources[3].type: invalid value 'carrier-pigeon'"
        " (allowed: 'inbox', 'stackexchange', 'github', 'kaggle', 'huggingface')"
    ) in errors


def test_unknown_fields_and_duplicate_names_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[[sources]]
type = "inbox"
name = "a"
colour = "blue"

[[sources]]
type = "inbox"
name = "b"

[[sources]]
type = "inbox"
name = "b"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "sources[0].colour: unknown field" in caught.value.errors
    assert "sources: the name 'b' is used more than once" in caught.value.errors


def test_check_config_prints_errors_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[sources]]\ntype = "inbox"\nname = "x"\nrate = { per_second = "a" }\n')
    result = subprocess.run(
        collector_command("check-config", str(path)),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert result.returncode == 2
    assert "sources[0].rate.per_second: expected float, got str" in result.stderr


def test_check_config_accepts_the_demo() -> None:
    result = subprocess.run(
        collector_command("check-config", str(ROOT / "examples/demo.toml")),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[service\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors[0].startswith("invalid TOML")


def test_the_bloom_filter_size_is_a_power_of_two_and_reaches_the_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"state": {"bloom_mb": 12}})
    assert error.value.errors == ["state: bloom_mb must be a power of two, not 12"]
    config = parse_config({"state": {"bloom_mb": 2, "path": str(tmp_path / "s.sqlite3")}})
    store = open_state_store(config.state)
    try:
        assert isinstance(store, SqliteStateStore)
        assert store._sets.bloom.bytes.nbytes == 2 * 2**20
    finally:
        store.close()
