"""Recorded answers of the real services (tests/contracts/*/*.json, each naming its public
source) against our clients and our emulators.

Each recording is (a) served from a loopback replay server to our client, which must read it
as the real service means it, and (b) set beside our emulator's answer to the same request:
same status, the headers that matter, the body keys our sources read (and, where the real
answer is short, the same body). See tests/contracts/README.md for what each recording is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import structlog
from aiohttp import web

from collector.http import HttpClient, HttpError, next_link
from collector.logging import get_logger
from collector.sandbox import RunningApp, start_app, start_emulator
from collector.sandbox.github import STORE, GitHubStore
from collector.sources.base import SourceContext
from collector.sources.config import (
    GitHubSourceConfig,
    HuggingFaceSourceConfig,
    RateConfig,
    RetryConfig,
)
from collector.sources.github import _license, _login
from collector.sources.huggingface import HuggingFaceSource

HERE = Path(__file__).parent
RETRY = RetryConfig(attempts=2, initial_wait=0.01, max_wait=0.05, secondary_wait=0.01)


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / name).read_text(encoding="utf-8"))
    return data


def test_every_recording_names_its_public_source_and_what_was_changed() -> None:
    names = sorted(p.relative_to(HERE).as_posix() for p in HERE.glob("*/*.json"))
    assert len(names) >= 6
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    for name in names:
        data = recording(name)
        assert "@" in data["source"] and data["changed"], name  # repo@commit path
        assert {"status", "headers", "body"} <= set(data["response"]), name
        assert name in readme, f"{name} is not described in tests/contracts/README.md"


async def replay(name: str) -> RunningApp:
    """A loopback server answering the recorded request's path with the recorded answer."""
    data = recording(name)
    path = urlsplit(data["request"]["url"]).path
    answer = data["response"]

    async def handler(request: web.Request) -> web.Response:
        headers = {k: v for k, v in answer["headers"].items() if k not in ("status",)}
        headers.pop("content-type", None)
        return web.json_response(answer["body"], status=answer["status"], headers=headers)

    app = web.Application()
    app.router.add_get(path, handler)
    return await start_app(app, "replay")


async def emulator_answer(
    running: RunningApp, path_and_query: str
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{running.url}{path_and_query}") as answer,
    ):
        headers = {k.lower(): v for k, v in answer.headers.items()}
        return answer.status, headers, await answer.json(content_type=None)


def client(**overrides: Any) -> HttpClient:
    fields: dict[str, Any] = {
        "name": "contract",
        "rate": RateConfig(per_second=500, burst=20),
        "retry": RETRY,
        "timeout": 5.0,
    }
    fields.update(overrides)
    return HttpClient(GitHubSourceConfig(**fields), get_logger())


@pytest.fixture
async def github() -> AsyncIterator[RunningApp]:
    running = await start_emulator("github")
    yield running
    await running.stop()


# --- GitHub (PyGithub's recordings) -----------------------------------------------------------


async def test_github_search_page_recorded_is_read_by_our_client() -> None:
    data = recording("github/search_repositories.json")
    server = await replay("github/search_repositories.json")
    http = client()
    try:
        url = data["request"]["url"].replace("https://api.github.com", server.url)
        response, body = await http.get_json(url)
    finally:
        await http.close()
        await server.stop()
    assert response.status == 200
    # The next page is the recorded Link's, on the API's origin (never built by us).
    assert next_link(response.headers["link"], "https://api.github.com").endswith("&page=2")
    assert [_login(item) for item in body["items"]] == ["sandbox-owner-1", "sandbox-owner-2"]
    config = GitHubSourceConfig(name="gh", license="unknown")
    assert [_license(item, config) for item in body["items"]] == ["unknown", "unknown"]


async def test_github_search_page_of_the_emulator_has_the_recorded_shape(
    github: RunningApp,
) -> None:
    real = recording("github/search_repositories.json")["response"]
    status, headers, body = await emulator_answer(
        github, "/search/repositories?q=topic:jsonresume&per_page=3"
    )
    assert status == real["status"]
    for header in ("link", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert header in headers, header
    assert set(real["body"]) <= set(body)
    read = {"full_name", "name", "owner", "html_url", "description", "default_branch"}
    real_item, our_item = real["body"]["items"][0], body["items"][0]
    assert read <= set(real_item) and read <= set(our_item)
    assert "login" in real_item["owner"] and "login" in our_item["owner"]


async def test_github_exhausted_limit_recorded_is_waited_out_as_a_rate_limit() -> None:
    server = await replay("github/rate_limit_exhausted.json")
    http = client()
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(HttpError) as caught:
            await http.get_json(f"{server.url}/users/sandbox-user")
    finally:
        await http.close()
        await server.stop()
    assert caught.value.status == 403
    retries = [e for e in logs if e["event"] == "http_retry"]
    # No x-ratelimit-reset in this recording: the message says "rate limit", so it is waited
    # out as a limit (secondary wait), never taken as a refusal for good at once.
    assert [e["reason"] for e in retries] == ["secondary_rate_limit"]


async def test_github_exhausted_limit_of_the_emulator_has_the_recorded_shape() -> None:
    running = await start_emulator("github", store=GitHubStore(core_limit=1))
    try:
        await emulator_answer(running, "/users/sandbox-user")
        status, headers, body = await emulator_answer(running, "/users/sandbox-user")
    finally:
        await running.stop()
    real = recording("github/rate_limit_exhausted.json")["response"]
    assert status == real["status"] == 403
    assert headers["x-ratelimit-remaining"] == real["headers"]["x-ratelimit-remaining"] == "0"
    assert "x-ratelimit-limit" in headers
    assert set(real["body"]) <= set(body)
    assert body["message"].lower().startswith("api rate limit exceeded")
    assert real["body"]["message"].lower().startswith("api rate limit exceeded")
    assert running.app[STORE].refused["core"] == 1


# --- the dataset viewer (its OpenAPI examples) ------------------------------------------------


def hf_source(tmp_path: Path, rows_url: str) -> HuggingFaceSource:
    config = HuggingFaceSourceConfig(
        name="hf",
        repo_id="stanfordnlp/imdb",
        use_rows_api=True,
        rows_url=rows_url,
        config="plain_text",
        rate=RateConfig(per_second=500, burst=20),
        retry=RETRY,
        timeout=5.0,
    )
    return HuggingFaceSource(config, SourceContext(data_dir=tmp_path, log=get_logger()))


async def test_rows_page_recorded_is_read_by_our_client(tmp_path: Path) -> None:
    data = recording("huggingface_rows/rows_page.json")
    server = await replay("huggingface_rows/rows_page.json")
    source = hf_source(tmp_path, server.url)
    try:
        url = data["request"]["url"].replace("https://datasets-server.huggingface.co", server.url)
        _, page = await source.client.get_json(url)
    finally:
        await source.close()
        await server.stop()
    member = "rows:plain_text/train"
    records, drops, offset = source._row_records(page["rows"], member, 234, {})
    assert [r.id for r in records] == [f"{member}#{n}" for n in (235, 236, 237)]
    assert records[0].payload == page["rows"][0]["row"] and drops == [] and offset == 237
    assert page["partial"] is False and page["num_rows_total"] > offset


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("huggingface_rows/rows_length_too_large.json", "length=101"),
        ("huggingface_rows/rows_dataset_not_found.json", "length=100"),
    ],
)
async def test_rows_errors_recorded_are_read_by_our_client_and_answered_alike(
    name: str, query: str
) -> None:
    real = recording(name)["response"]
    server = await replay(name)
    http = client()
    try:
        with pytest.raises(HttpError) as caught:
            await http.get_json(f"{server.url}/rows?dataset=x&config=default&split=train")
    finally:
        await http.close()
        await server.stop()
    assert caught.value.status == real["status"]
    assert caught.value.message == real["body"]["error"]
    emulator = await start_emulator("huggingface_rows")
    try:
        dataset = "inexistent-dataset" if real["status"] == 404 else "datasetmaster/resumes"
        status, _, body = await emulator_answer(
            emulator, f"/rows?dataset={dataset}&config=default&split=train&offset=0&{query}"
        )
    finally:
        await emulator.stop()
    assert (status, body) == (real["status"], real["body"])


async def test_rows_page_of_the_emulator_has_the_recorded_shape() -> None:
    real = recording("huggingface_rows/rows_page.json")["response"]
    emulator = await start_emulator("huggingface_rows")
    try:
        status, _, body = await emulator_answer(
            emulator,
            "/rows?dataset=datasetmaster/resumes&config=default&split=train&offset=0&length=3",
        )
    finally:
        await emulator.stop()
    assert status == real["status"]
    assert set(body) == set(real["body"])
    assert set(body["rows"][0]) == set(real["body"]["rows"][0])
    assert set(body["features"][0]) == set(real["body"]["features"][0])
    assert type(body["partial"]) is type(real["body"]["partial"]) is bool


# --- Stack Exchange (stackapi's mock object) ---------------------------------------------------


async def test_stackexchange_wrapper_of_the_emulator_has_the_recorded_keys() -> None:
    real = recording("stackexchange/wrapper.json")["response"]["body"]
    emulator = await start_emulator("stackexchange")
    try:
        status, _, body = await emulator_answer(
            emulator, "/2.3/questions?site=workplace&pagesize=2"
        )
    finally:
        await emulator.stop()
    assert status == 200
    assert set(real) <= set(body)
    for key in ("quota_max", "quota_remaining"):
        assert type(body[key]) is type(real[key]) is int
    assert type(body["has_more"]) is type(real["has_more"]) is bool
