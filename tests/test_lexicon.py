"""The name lexicon's cache: read when it matches what the lexicon is built from, rebuilt when
it does not or cannot be read, never in the way when it cannot be written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from processors.anonymize import lexicon


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RESUME_COLLECTOR_CACHE_DIR", str(folder))
    return folder


def load() -> lexicon.NameLexicon:
    return lexicon.load_lexicon.__wrapped__()  # past the per-process lru_cache


def cache_file() -> Path:
    path = lexicon.cache_path()
    assert path is not None
    return path


def test_the_first_load_writes_the_cache_and_the_next_reads_the_same_lexicon(cache: Path) -> None:
    built = load()
    (path,) = cache.iterdir()
    assert path == cache_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    written = path.stat().st_mtime_ns
    assert load() == built == lexicon.build_lexicon()
    assert path.stat().st_mtime_ns == written  # read, not written again
    assert {"Maria", "Garcia"} <= built.name_words and "Stack" in built.not_names


@pytest.mark.parametrize("content", [b"", b"\x93\xa3abc", b"not msgpack at all", b"\xc1"])
def test_a_torn_or_foreign_cache_file_is_rebuilt_and_replaced(cache: Path, content: bytes) -> None:
    expected = load()
    path = cache_file()
    path.write_bytes(content)
    assert load() == expected
    assert path.read_bytes() != content
    assert load() == expected


def test_a_cache_folder_that_cannot_be_made_still_gives_the_lexicon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RESUME_COLLECTOR_CACHE_DIR", str(blocker / "cache"))
    assert load() == lexicon.build_lexicon()
    assert blocker.read_text() == ""


def test_a_change_to_any_source_names_another_cache_file(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("one")
    monkeypatch.setattr(lexicon, "_SOURCES", (*lexicon._SOURCES, extra))
    before = cache_file()
    extra.write_text("two")
    assert cache_file() != before
    assert cache_file().parent == cache


def test_writing_a_cache_file_removes_those_of_other_sources(cache: Path) -> None:
    cache.mkdir()
    stale = cache / "lexicon-0123456789abcdef0123456789abcdef.msgpack"
    stale.write_bytes(b"an older lexicon")
    unrelated = cache / "notes.txt"
    unrelated.write_text("kept")
    load()
    assert {p.name for p in cache.iterdir()} == {"notes.txt", cache_file().name}


def test_the_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RESUME_COLLECTOR_CACHE_DIR", "CACHE_DIRECTORY", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    assert lexicon.cache_dir() == Path("/home/someone/.cache/resume-collector")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert lexicon.cache_dir() == Path("/xdg/resume-collector")
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/resume-collector")  # systemd's
    assert lexicon.cache_dir() == Path("/var/cache/resume-collector")
    monkeypatch.setenv("RESUME_COLLECTOR_CACHE_DIR", "/chosen")
    assert lexicon.cache_dir() == Path("/chosen")


def test_a_user_with_no_home_builds_the_lexicon_and_writes_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("RESUME_COLLECTOR_CACHE_DIR", "CACHE_DIRECTORY", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    # expanduser gives "~" back when neither $HOME nor a passwd entry names a home
    monkeypatch.setattr(lexicon.os.path, "expanduser", lambda path: path)
    monkeypatch.chdir(tmp_path)
    assert lexicon.cache_dir() is None and lexicon.cache_path() is None
    assert load() == lexicon.build_lexicon()
    assert list(tmp_path.iterdir()) == []  # no "~" folder made in the working directory
