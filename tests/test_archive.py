"""The raw archive, and `once` / `reprocess` end to end against the Stack Exchange emulator."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collector.http import HttpResponse
from collector.sandbox import RunningApp, start_emulator
from collector.sources.archive import (
    REDACTED,
    ArchiveCorrupt,
    RawArchive,
    archived,
    redact_url,
)
from tests.conftest import collector_command, subprocess_env, write_config


def test_secrets_are_redacted_in_the_url_params_and_headers() -> None:
    response = HttpResponse(
        200,
        "https://api.example/2.3/questions?site=workplace&key=abc123&access_token=t0k",
        {"set-cookie": "session=1", "content-type": "application/json"},
        b'{"items": []}',
    )
    entry = archived(
        response,
        {"site": "workplace", "key": "abc123"},
        {"Authorization": "Bearer ghp_secret", "Accept": "application/json"},
    )
    text = json.dumps([entry.url, entry.params, entry.request_headers, entry.headers])
    for secret in ("abc123", "t0k", "ghp_secret", "session=1"):
        assert secret not in text
    assert entry.params == {"site": "workplace", "key": REDACTED}
    assert entry.request_headers["Accept"] == "application/json"
    assert "site=workplace" in entry.url
    assert redact_url("https://x/y") == "https://x/y"


async def test_entries_round_trip_and_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path, "se")
    response = HttpResponse(200, "https://x/q", {}, b'{"items": [1]}')
    path = await archive.save("questions", [archived(response)], {"tag": "resume"})
    assert path is not None and path.name.endswith("-questions.json.gz")
    (entry,) = [e for _, e in archive.entries()]
    assert not isinstance(entry, ArchiveCorrupt)
    assert entry.responses[0].json() == {"items": [1]} and entry.note == {"tag": "resume"}
    cut = path.with_name("zz-cut.json.gz")
    cut.write_bytes(path.read_bytes()[:20])
    garbage = path.with_name("zz-garbage.json.gz")
    garbage.write_bytes(b"not gzip at all")
    wrong = path.with_name("zz-wrong.json.gz")
    wrong.write_bytes(gzip.compress(b'{"hello": 1}'))
    errors = [e for _, e in archive.entries() if isinstance(e, ArchiveCorrupt)]
    assert len(errors) == 3
    with pytest.raises(ArchiveCorrupt):
        RawArchive.read(garbage)


async def test_archiving_can_be_switched_off(tmp_path: Path) -> None:
    archive = RawArchive(tmp_path, "se", enabled=False)
    response = HttpResponse(200, "https://x/q", {}, b"{}")
    assert await archive.save("questions", [archived(response)]) is None
    assert archive.files() == []


@pytest.fixture
async def emulator() -> AsyncIterator[RunningApp]:
    running = await start_emulator("stackexchange")
    yield running
    await running.stop()


def se_config(path: Path, data_dir: Path, url: str) -> Path:
    return write_config(
        path,
        f"""
[[sources]]
type = "stackexchange"
name = "se-workplace"
site = "workplace"
tags = ["resume", "cv"]
base_url = "{url}/2.3"
pagesize = 10
license = "CC-BY-SA-4.0"
rate = {{ per_second = 50, burst = 5 }}
retry = {{ attempts = 3, initial_wait = 0.01, max_wait = 0.05 }}
recipe = {{ name = "qa", min_answer_score = 1 }}
""",
        data_dir,
    )


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *collector_command(*args),
        env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_once_writes_qa_lines_and_reprocess_rebuilds_them_without_fetching(
    emulator: RunningApp, tmp_path: Path, data_dir: Path
) -> None:
    config = se_config(tmp_path / "config.toml", data_dir, emulator.url)
    code, out = await run_cli("once", "--config", str(config))
    assert code == 0, out
    output = data_dir / "formatted" / "stackexchange__workplace.jsonl"
    written = lines(output)
    assert len(written) >= 25
    for line in written:
        roles = [m["role"] for m in line["messages"]]  # type: ignore[index, union-attr]
        assert roles == ["system", "user", "assistant"]
        assert set(line) == {"messages"}
    raw = sorted((data_dir / "raw" / "se-workplace").rglob("*.json.gz"))
    assert raw
    fetched = len(emulator.faults.requests)

    # Reprocess into a fresh folder, with one corrupt file among the archive: no request sent.
    (raw[0].parent / "zzzz-corrupt-questions.json.gz").write_bytes(b"\x1f\x8b broken")
    out_dir = tmp_path / "again"
    code, out = await run_cli("reprocess", "--config", str(config), "--output", str(out_dir))
    assert code == 0, out
    assert len(emulator.faults.requests) == fetched
    assert "1 archive_corrupt" in out
    again = lines(out_dir / "formatted" / "stackexchange__workplace.jsonl")
    key = lambda line: json.dumps(line, sort_keys=True)  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, written))


async def test_reprocess_names_an_unknown_source(tmp_path: Path, data_dir: Path) -> None:
    config = se_config(tmp_path / "config.toml", data_dir, "http://127.0.0.1:9")
    code, out = await run_cli("reprocess", "--config", str(config), "--source", "nope")
    assert code == 2 and "nope" in out
