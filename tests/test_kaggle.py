"""The Kaggle source against the local Kaggle emulator, through the real client code."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from collector.logging import get_logger
from collector.sandbox import RunningApp, start_app
from collector.sandbox.faults import FAULTS, FaultConfig, FaultRule
from collector.sandbox.kaggle import KAGGLE, KaggleStore, create_app
from collector.sources.archive import RawArchive
from collector.sources.base import SourceContext
from collector.sources.config import KaggleSourceConfig, RateConfig, RetryConfig
from collector.sources.kaggle import KaggleCursor, KaggleSource, credentials_summary
from processors.records import RawRecord
from tests.conftest import collector_command, run_collector, subprocess_env, write_config
from tests.passes import run_pass

RETRY = RetryConfig(attempts=4, initial_wait=0.01, max_wait=0.05, secondary_wait=0.05)
GAURAV = "gauravduttakiit/resume-dataset"
SNEHA = "snehaanbhawal/resume-dataset"
UPWORK = "asaniczka/upwork-job-postings-dataset-2024-50k-records"


@pytest.fixture(autouse=True)
def no_real_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may read the developer's ~/.kaggle or environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    yield


async def serve(faults: FaultConfig | None = None, **options: Any) -> RunningApp:
    options.setdefault("bomb_bytes", 8 * 1024 * 1024)
    return await start_app(create_app(faults, **options), "kaggle")


@pytest.fixture
async def kaggle() -> AsyncIterator[RunningApp]:
    running = await serve()
    yield running
    await running.stop()


def store_of(running: RunningApp) -> KaggleStore:
    return running.app[KAGGLE]


def make_source(url: str, data_dir: Path, datasets: list[str], **overrides: Any) -> KaggleSource:
    fields: dict[str, Any] = {
        "name": "kaggle",
        "datasets": datasets,
        "base_url": f"{url}/api/v1",
        "rate": RateConfig(per_second=500, burst=20),
        "retry": RETRY,
        "timeout": 5.0,
        "batch_size": 100,
    }
    fields.update(overrides)
    context = SourceContext(data_dir=data_dir, log=get_logger())
    return KaggleSource(KaggleSourceConfig(**fields), context)


def requests(running: RunningApp, path: str = "") -> list[str]:
    return [r.path for r in running.app[FAULTS].seen(path)]


# --- a full fetch ------------------------------------------------------------------------------


async def test_a_full_fetch_reads_every_row_of_the_selected_files(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    source = make_source(kaggle.url, tmp_path, [GAURAV, SNEHA, UPWORK])
    result = await run_pass(source)
    by_dataset: dict[str, list[RawRecord]] = {}
    for record in result.records:
        by_dataset.setdefault(record.dataset, []).append(record)
    assert {k: len(v) for k, v in by_dataset.items()} == {GAURAV: 6, SNEHA: 4, UPWORK: 5}
    first = by_dataset[GAURAV][0]
    assert first.id == "UpdatedResumeDataSet.csv#1"
    assert set(first.payload) == {"Category", "Resume"}
    assert "\r\n" in first.payload["Resume"]  # a multi-line CSV field, read whole
    assert first.meta["kaggle_version"] == "1"
    assert [r.id for r in by_dataset[SNEHA]] == [f"Resume/Resume.csv#{i}" for i in range(1, 5)]
    assert result.drops == []
    # Only the CSV/JSON/JSONL files were downloaded: not the 2,500 PDFs of the real dataset.
    assert not any(".pdf" in d for d in store_of(kaggle).downloads)
    for ref in (GAURAV, SNEHA, UPWORK):
        cursor = KaggleCursor.decode(result.cursors[ref])
        assert cursor.version == "1" and cursor.complete


async def test_files_named_in_the_config_are_the_only_ones_read(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    store_of(kaggle).publish(
        GAURAV,
        {"UpdatedResumeDataSet.csv": b"Category,Resume\nHR,x\n", "extra.jsonl": b'{"a": 1}\n'},
    )
    source = make_source(kaggle.url, tmp_path, [GAURAV], files=["updatedresumedataset.CSV"])
    result = await run_pass(source)
    assert {r.id for r in result.records} == {"UpdatedResumeDataSet.csv#1"}


async def test_an_unchanged_version_fetches_nothing(kaggle: RunningApp, tmp_path: Path) -> None:
    first = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV, SNEHA]))
    kaggle.app[FAULTS].clear()
    downloads = list(store_of(kaggle).downloads)
    again = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV, SNEHA]), first.cursors)
    assert again.records == [] and again.drops == [] and again.batches == 0
    assert requests(kaggle) == [
        f"/api/v1/datasets/view/{GAURAV}",
        f"/api/v1/datasets/view/{SNEHA}",
    ]
    assert store_of(kaggle).downloads == downloads


async def test_a_new_version_is_read_with_the_same_record_ids(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    first = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV]))
    rows = (
        Path(__file__).parent.parent
        / "collector/sandbox/data/kaggle"
        / GAURAV
        / "UpdatedResumeDataSet.csv"
    ).read_bytes()
    extra = (
        'HR,"Ran payroll for 300 staff\r\nâ¢ Cut overtime costs by planning shifts"\r\n'.encode()
    )
    assert store_of(kaggle).publish(GAURAV, {"UpdatedResumeDataSet.csv": rows + extra}) == 2
    second = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV]), first.cursors)
    assert len(second.records) == len(first.records) + 1
    assert [r.id for r in second.records[:-1]] == [r.id for r in first.records]
    assert second.records[-1].meta["kaggle_version"] == "2"
    assert KaggleCursor.decode(second.cursors[GAURAV]).version == "2"
    assert store_of(kaggle).downloads[-1] == f"{GAURAV}/UpdatedResumeDataSet.csv@2"
    # The files of version 1 are gone from the raw folder; version 2's are kept.
    folder = tmp_path / "raw/kaggle/kaggle" / GAURAV
    assert sorted(p.name for p in folder.iterdir()) == ["v2"]


async def test_a_restart_mid_file_resumes_at_the_next_row_without_downloading_again(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    full = await run_pass(make_source(kaggle.url, tmp_path / "full", [GAURAV, UPWORK]))
    source = make_source(kaggle.url, tmp_path / "run", [GAURAV, UPWORK], batch_size=2)
    before = await run_pass(source, max_batches=2)  # stopped after four rows of the first file
    cursor = KaggleCursor.decode(before.cursors[GAURAV])
    assert cursor.member == "UpdatedResumeDataSet.csv" and cursor.row == 4 and cursor.offset > 0
    downloads = len(store_of(kaggle).downloads)
    source = make_source(kaggle.url, tmp_path / "run", [GAURAV, UPWORK], batch_size=2)
    after = await run_pass(source, before.cursors)
    assert [r.id for r in before.records + after.records] == [r.id for r in full.records]
    assert [r.payload for r in before.records + after.records] == [r.payload for r in full.records]
    # Only the file not yet started was downloaded after the restart.
    assert store_of(kaggle).downloads[downloads:] == [f"{UPWORK}/upwork-jobs.csv@1"]


async def test_the_whole_dataset_archive_is_extracted_and_only_data_files_read(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    source = make_source(kaggle.url, tmp_path, [SNEHA], download="archive")
    result = await run_pass(source)
    assert store_of(kaggle).downloads == [f"{SNEHA}@1"]
    assert [r.id for r in result.records] == [f"Resume/Resume.csv#{i}" for i in range(1, 5)]
    extracted = tmp_path / "raw/kaggle/kaggle" / SNEHA / "v1/extracted/_dataset"
    assert (extracted / "Resume/Resume.csv").is_file()
    assert not list(extracted.rglob("*.pdf"))  # PDFs are checked but not written


async def test_a_large_file_that_comes_zipped_is_extracted(tmp_path: Path) -> None:
    running = await serve(zip_files_over=1024)
    try:
        result = await run_pass(make_source(running.url, tmp_path, [SNEHA]))
    finally:
        await running.stop()
    assert [r.id for r in result.records] == [f"Resume/Resume.csv#{i}" for i in range(1, 5)]
    assert result.records[0].payload["Category"] == "HR"


# --- faults and errors -------------------------------------------------------------------------


async def test_every_injected_fault_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    faults = FaultConfig(
        sequence=[
            FaultRule("rate_limit", path="/datasets/view", count=2, retry_after=0.05),
            FaultRule("truncated_json", path="/datasets/view", count=1),
            FaultRule("server_error", path="/datasets/list", count=2),
            FaultRule("reset", path="/datasets/download", count=1),
            FaultRule("unavailable", path="/storage", count=1, retry_after=0.05),
            FaultRule("truncated_json", path="/storage", skip=1, count=2),  # cut-short bodies
            FaultRule("slow_body", path="/storage", count=1),
        ],
        slow_seconds=0.2,
    )
    running = await serve(faults, zip_files_over=1024)
    try:
        result = await run_pass(make_source(running.url, tmp_path, [GAURAV, SNEHA]))
        injected = dict(running.app[FAULTS].injected)
    finally:
        await running.stop()
    clean = await serve()
    try:
        expected = await run_pass(make_source(clean.url, tmp_path / "clean", [GAURAV, SNEHA]))
    finally:
        await clean.stop()
    assert [r.payload for r in result.records] == [r.payload for r in expected.records]
    assert result.drops == []
    assert injected == {
        "rate_limit": 2,
        "truncated_json": 3,
        "server_error": 2,
        "reset": 1,
        "unavailable": 1,
        "slow_body": 1,
    }


@pytest.mark.parametrize(
    ("dataset", "reason", "detail"),
    [
        ("sandbox/zip-slip", "zip_slip", "../../evil.csv"),
        ("sandbox/absolute-path", "absolute_path", "/tmp/evil.csv"),
        ("sandbox/symlink", "symlink", "link.csv"),
        ("sandbox/zip-bomb", "compression_ratio", "zip bomb"),
    ],
)
async def test_hostile_archives_are_refused_with_a_clear_error(
    kaggle: RunningApp, tmp_path: Path, dataset: str, reason: str, detail: str
) -> None:
    for mode in ("files", "archive"):
        data_dir = tmp_path / mode
        result = await run_pass(make_source(kaggle.url, data_dir, [dataset], download=mode))
        assert result.records == []
        assert result.reasons() == [reason]
        assert detail in result.drops[0].detail
        assert not (tmp_path / "evil.csv").exists() and not list(data_dir.rglob("evil.csv"))
        assert not list(data_dir.rglob("*.partial"))
        # The refusal is final for this version: the next pass does not download it again.
        downloads = len(store_of(kaggle).downloads)
        again = await run_pass(
            make_source(kaggle.url, data_dir, [dataset], download=mode), result.cursors
        )
        assert again.drops == [] and len(store_of(kaggle).downloads) == downloads


async def test_truncated_json_is_counted_and_the_rest_is_read(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    result = await run_pass(make_source(kaggle.url, tmp_path, ["sandbox/truncated-json"]))
    assert [r.payload["Resume"] for r in result.records] == [
        "Wrote test plans",
        "Hired ten engineers",
    ]
    assert [(d.record_id, d.reason) for d in result.drops] == [
        ("resumes.json#2", "truncated_json"),
        ("resumes.jsonl#2", "truncated_json"),
    ]


async def test_a_git_lfs_pointer_is_reported_not_parsed(kaggle: RunningApp, tmp_path: Path) -> None:
    result = await run_pass(make_source(kaggle.url, tmp_path, ["sandbox/lfs-pointer"]))
    assert result.records == []
    assert [(d.record_id, d.reason) for d in result.drops] == [("resumes.jsonl", "lfs_pointer")]


async def test_wrong_credentials_are_a_401_counted_once(
    kaggle: RunningApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_of(kaggle).users = {"sandbox": "sandbox-key"}
    monkeypatch.setenv("KAGGLE_USERNAME", "sandbox")
    monkeypatch.setenv("KAGGLE_KEY", "not-the-key")
    first = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV]))
    assert first.reasons() == ["unauthorized"]
    assert "401" in first.drops[0].detail
    again = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV]), first.cursors)
    assert again.drops == []  # the same failure is logged, not counted again
    monkeypatch.setenv("KAGGLE_KEY", "sandbox-key")
    fixed = await run_pass(
        make_source(kaggle.url, tmp_path, [GAURAV]), again.cursors or first.cursors
    )
    assert len(fixed.records) == 6


async def test_credentials_come_from_kaggle_json_when_the_env_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "kaggle-config"
    folder.mkdir()
    (folder / "kaggle.json").write_text(json.dumps({"username": "sandbox", "key": "sandbox-key"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    running = await serve(require_auth=True, users={"sandbox": "sandbox-key"})
    try:
        result = await run_pass(make_source(running.url, tmp_path, [GAURAV]))
    finally:
        await running.stop()
    assert len(result.records) == 6 and result.drops == []


async def test_an_access_token_is_sent_as_bearer_before_the_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_sandbox-token")
    monkeypatch.setenv("KAGGLE_USERNAME", "sandbox")
    monkeypatch.setenv("KAGGLE_KEY", "a-stale-key")  # would be a 401: the token goes first
    running = await serve(
        require_auth=True,
        users={"sandbox": "sandbox-key"},
        access_tokens={"KGAT_sandbox-token": "sandbox"},
    )
    try:
        result = await run_pass(make_source(running.url, tmp_path, [GAURAV]))
    finally:
        await running.stop()
    assert len(result.records) == 6 and result.drops == []


async def test_an_access_token_comes_from_a_file_named_by_the_env_or_from_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await serve(require_auth=True, access_tokens={"KGAT_from-a-file": "sandbox"})
    try:
        token_file = tmp_path / "kaggle-token"
        token_file.write_text("KGAT_from-a-file\n")
        monkeypatch.setenv("KAGGLE_API_TOKEN", str(token_file))
        named = await run_pass(make_source(running.url, tmp_path / "a", [GAURAV]))
        monkeypatch.delenv("KAGGLE_API_TOKEN")
        home = Path(os.environ["HOME"]) / ".kaggle"
        home.mkdir(parents=True)
        (home / "access_token").write_text("KGAT_from-a-file\n")
        found = await run_pass(make_source(running.url, tmp_path / "b", [GAURAV]))
    finally:
        await running.stop()
    assert len(named.records) == 6 and named.drops == []
    assert len(found.records) == 6 and found.drops == []


async def test_an_expired_access_token_is_a_401_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_expired")
    running = await serve(access_tokens={"KGAT_current": "sandbox"})
    try:
        first = await run_pass(make_source(running.url, tmp_path, [GAURAV]))
        again = await run_pass(make_source(running.url, tmp_path, [GAURAV]), first.cursors)
    finally:
        await running.stop()
    assert first.reasons() == ["unauthorized"]
    assert "access token" in first.drops[0].detail
    assert again.drops == []


def test_credentials_summary_names_the_kind_and_origin_never_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = KaggleSourceConfig(name="kaggle", datasets=[GAURAV])
    assert credentials_summary(config).startswith("none found")
    monkeypatch.setenv("KAGGLE_USERNAME", "sandbox")
    monkeypatch.setenv("KAGGLE_KEY", "sandbox-key-123")
    assert credentials_summary(config) == (
        "API key of sandbox (HTTP basic) from $KAGGLE_USERNAME/$KAGGLE_KEY"
    )
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_secret-456")
    summary = credentials_summary(config)
    assert summary == "access token (Bearer) from $KAGGLE_API_TOKEN"
    assert "456" not in summary and "123" not in summary


def test_check_config_says_which_kaggle_credentials_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path / "kaggle.toml",
        f'[[sources]]\ntype = "kaggle"\nname = "kaggle"\ndatasets = ["{GAURAV}"]\n',
        tmp_path / "data",
    )
    monkeypatch.setenv("KAGGLE_USERNAME", "sandbox")
    monkeypatch.setenv("KAGGLE_KEY", "sandbox-key")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_do-not-print")
    result = run_collector("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "kaggle: kaggle credentials: access token (Bearer) from $KAGGLE_API_TOKEN" in (
        result.stdout
    )
    assert "do-not-print" not in result.stdout + result.stderr
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    result = run_collector("check-config", str(config))
    assert "API key of sandbox (HTTP basic) from $KAGGLE_USERNAME/$KAGGLE_KEY" in result.stdout


@pytest.mark.parametrize("credential", ["access_token", "api_key"])
async def test_downloads_come_from_storage_on_another_origin_without_the_authorization_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credential: str
) -> None:
    if credential == "access_token":
        monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_sandbox-token")
    else:
        monkeypatch.setenv("KAGGLE_USERNAME", "sandbox")
        monkeypatch.setenv("KAGGLE_KEY", "sandbox-key")
    running = await serve(
        require_auth=True,
        users={"sandbox": "sandbox-key"},
        access_tokens={"KGAT_sandbox-token": "sandbox"},
    )
    store = store_of(running)
    try:
        storage = store.storage_url
        assert storage and storage != running.url  # another port: another origin
        with structlog.testing.capture_logs() as logs:
            result = await run_pass(make_source(running.url, tmp_path, [GAURAV, SNEHA]))
        # The tripwire works: the same storage answers 400 when the header does come along.
        async with aiohttp.ClientSession() as session:
            api = f"{running.url}/api/v1/datasets/download/{GAURAV}/UpdatedResumeDataSet.csv"
            header = {"Authorization": "Bearer KGAT_sandbox-token"}
            async with session.get(api, headers=header, allow_redirects=False) as answer:
                signed = answer.headers["Location"]
            async with session.get(signed, headers=header) as refused:
                assert refused.status == 400
    finally:
        await running.stop()
    assert len(result.records) == 10 and result.drops == []
    assert store.storage_authorization == 1  # only the tripwire's own request
    downloads = [e for e in logs if e["event"] == "kaggle_downloaded"]
    assert downloads and all(e["via"].startswith(f"{storage}/storage/") for e in downloads)
    assert signed.startswith(f"{storage}/storage/")


async def test_missing_credentials_where_they_are_required_is_a_clear_401(tmp_path: Path) -> None:
    running = await serve(require_auth=True)
    try:
        result = await run_pass(make_source(running.url, tmp_path, [GAURAV]))
    finally:
        await running.stop()
    assert result.reasons() == ["unauthorized"]


async def test_rules_not_accepted_and_unknown_datasets_are_reported(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    result = await run_pass(
        make_source(kaggle.url, tmp_path, ["sandbox/rules-required", "nobody/nothing", GAURAV])
    )
    assert [(d.dataset, d.reason) for d in result.drops] == [
        ("sandbox/rules-required", "forbidden"),
        ("nobody/nothing", "dataset_not_found"),
    ]
    assert len(result.records) == 6  # the other datasets proceed
    # rules-required is retried on the next pass (it may have been accepted meanwhile)
    assert not KaggleCursor.decode(result.cursors["sandbox/rules-required"]).complete


async def test_a_server_rate_limit_is_respected(tmp_path: Path) -> None:
    running = await serve(FaultConfig(rate_limit=20, rate_burst=2))
    try:
        # A download is two requests (the API, then its storage redirect) for one token: the
        # real storage is another host, but the emulator counts both against its limit.
        rate = RateConfig(per_second=9, burst=1)
        source = make_source(running.url, tmp_path, [GAURAV, SNEHA, UPWORK], rate=rate)
        result = await run_pass(source)
        statuses = dict(running.app[FAULTS].statuses)
    finally:
        await running.stop()
    assert len(result.records) == 15
    assert 429 not in statuses


def test_a_dataset_ref_that_is_not_owner_slash_name_fails_at_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="owner/dataset"):
        make_source("http://127.0.0.1:9", tmp_path, ["just-a-name"])
    with pytest.raises(ValueError, match="owner/dataset"):
        make_source("http://127.0.0.1:9", tmp_path, ["a/b/c"])


# --- end to end: the real service against the emulator ----------------------------------------


async def test_resume_collector_once_collects_kaggle_datasets_into_named_files(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    data_dir = tmp_path / "training-data"
    base = f"{kaggle.url}/api/v1"
    config = write_config(
        tmp_path / "collector.toml",
        f"""
[[sources]]
type = "kaggle"
name = "kaggle-resumes"
datasets = ["{GAURAV}", "{SNEHA}", "sandbox/zip-slip"]
base_url = "{base}"
retry = {{ attempts = 3, initial_wait = 0.01, max_wait = 0.05 }}
rate = {{ per_second = 100, burst = 10 }}
recipe = {{ name = "resume_text" }}

[[sources]]
type = "kaggle"
name = "kaggle-postings"
datasets = ["{UPWORK}"]
base_url = "{base}"
rate = {{ per_second = 100, burst = 10 }}
recipe = {{ name = "job_posting" }}
""",
        data_dir,
    )
    env = {**subprocess_env(), "HOME": str(tmp_path / "home")}
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        env.pop(name, None)

    async def once() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *collector_command("once", "--config", str(config)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode or 0, output.decode(errors="replace")

    code, output = await once()
    # The refused zip-slip archive is an error event of kaggle-resumes: `once` says so with
    # exit 4 (some sources failed) and names it, while every other dataset is collected.
    assert code == 4, output
    assert '"failed": ["kaggle-resumes"]' in output and '"ok": ["kaggle-postings"]' in output
    formatted = data_dir / "formatted"
    names = sorted(p.name for p in formatted.iterdir())
    for stem in (
        "gauravduttakiit__resume-dataset",
        "snehaanbhawal__resume-dataset",
        "asaniczka__upwork-job-postings-dataset-2024-50k-records",
    ):
        assert f"{stem}__pairs.jsonl" in names, names
        assert f"{stem}__clean_report.json" in names
        assert f"{stem}.jsonl" not in names  # no improved bullets yet: no training lines
        lines = (formatted / f"{stem}__pairs.jsonl").read_text(encoding="utf-8").splitlines()
        pairs = [json.loads(line) for line in lines]
        assert pairs and all(p["bullet"] and p["context"] for p in pairs)
    gaurav = [
        json.loads(line)
        for line in (formatted / "gauravduttakiit__resume-dataset__pairs.jsonl").open()
    ]
    assert {p["context"] for p in gaurav} >= {"Data Science", "HR"}
    report = json.loads((formatted / "sandbox__zip-slip__clean_report.json").read_text())
    assert report["drop_reasons"] == {"zip_slip": 1}
    assert not list(tmp_path.rglob("evil.csv"))

    # A second run finds every version unchanged: nothing is downloaded or written again.
    sizes = {p.name: p.stat().st_size for p in formatted.iterdir() if p.suffix == ".jsonl"}
    downloads = len(store_of(kaggle).downloads)
    code, output = await once()
    assert code == 0, output
    assert {p.name: p.stat().st_size for p in formatted.iterdir() if p.suffix == ".jsonl"} == sizes
    assert len(store_of(kaggle).downloads) == downloads


async def test_records_rebuilt_from_the_raw_archive_equal_the_live_ones(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    live = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV, SNEHA]))
    source = make_source(kaggle.url, tmp_path, [GAURAV, SNEHA])
    rebuilt: list[RawRecord] = []
    for _, entry in RawArchive(tmp_path / "raw", "kaggle").entries():
        assert not isinstance(entry, Exception)
        records, drops = source.records_from_archive(entry)
        rebuilt += records
        assert drops == []
    await source.close()
    assert [(r.dataset, r.id, r.payload) for r in rebuilt] == [
        (r.dataset, r.id, r.payload) for r in live.records
    ]


async def test_a_configured_file_that_is_not_data_is_reported(
    kaggle: RunningApp, tmp_path: Path
) -> None:
    pdf = "data/data/HR/16852973.pdf"
    result = await run_pass(make_source(kaggle.url, tmp_path, [SNEHA], files=[pdf]))
    assert result.records == []
    assert [(d.record_id, d.reason) for d in result.drops] == [(pdf, "unsupported_format")]


async def test_the_sandbox_accepts_any_credentials_unless_accounts_are_named(
    kaggle: RunningApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "sandbox-secret")
    monkeypatch.setenv("KAGGLE_KEY", "sandbox-secret")
    result = await run_pass(make_source(kaggle.url, tmp_path, [GAURAV]))
    assert len(result.records) == 6 and result.drops == []
