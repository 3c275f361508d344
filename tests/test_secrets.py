"""No secret reaches a log line or a metric, whatever code logs it, error paths included."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from collector.config import load_config
from collector.http import HttpClient, HttpError
from collector.logging import configure_logging, get_logger
from collector.redact import REDACTED, SecretRedactor, secret_env_names
from collector.sources.config import InboxSourceConfig, RetryConfig
from tests.conftest import write_config
from tests.daemon_process import Daemon

SECRETS = {
    "GITHUB_TOKEN": "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2,
    "HF_TOKEN": "hf_" + "QwErTyUiOpAsDfGhJkLz" * 2,
    "OPENAI_API_KEY": "sk-proj-" + "ZxCvBnMqWeRtYu" * 3,
    "KAGGLE_KEY": "0123456789abcdef0123456789abcdef",
    "SE_APP_KEY": "Zq8mPp1x)custom(app-key",  # no known shape: only the env name reveals it
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Logging configured as the daemon does, into a buffer; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("json", "debug", buffer)
    yield buffer
    structlog.configure(**saved)
    root.handlers, root.level = handlers, level


def assert_no_secret(text: str, secrets: dict[str, str] = SECRETS) -> None:
    for name, value in secrets.items():
        assert value not in text, f"{name} leaked"


# --- the processor ------------------------------------------------------------------------------


def test_env_values_named_by_the_config_are_redacted_wherever_they_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: io.StringIO
) -> None:
    monkeypatch.setenv("SE_APP_KEY", SECRETS["SE_APP_KEY"])
    path = tmp_path / "c.toml"
    path.write_text('[[sources]]\ntype = "stackexchange"\nname = "se"\nkey_env = "SE_APP_KEY"\n')
    assert "SE_APP_KEY" in secret_env_names(load_config(path))
    log = get_logger(source="se", dataset="stackexchange/workplace")
    key = SECRETS["SE_APP_KEY"]
    log.warning("odd", note=f"the key is {key}", nested={"list": [key, {"deep": key}]})
    log.warning("encoded", url="https://x/y?k=Zq8mPp1x%29custom%28app-key")
    text = captured.getvalue()
    assert key not in text and "Zq8mPp1x%29custom%28app-key" not in text
    assert text.count(REDACTED) == 4
    assert '"source": "se"' in text and '"dataset": "stackexchange/workplace"' in text


@pytest.mark.parametrize(
    ("logged", "secret"),
    [
        ({"headers": {"Authorization": "token abc123secret"}}, "abc123secret"),
        ({"request": "GET / Authorization: Bearer eyJhbGciOi.abc.def"}, "eyJhbGciOi"),
        ({"header": "authorization=Basic dXNlcjpwYXNzd29yZA=="}, "dXNlcjpwYXNzd29yZA"),
        ({"url": "https://api.example.com/q?site=so&key=k3yk3yk3y"}, "k3yk3yk3y"),
        ({"url": "https://h/x?access_token=t0k3nt0k3n&a=1"}, "t0k3nt0k3n"),
        ({"url": "https://h/x?token=t0k3nt0k3n"}, "t0k3nt0k3n"),
        ({"url": "https://alice:s3cr3tpw@h.example/x"}, "s3cr3tpw"),
        ({"redis": "redis://:s3cr3tpw@127.0.0.1:6379/0"}, "s3cr3tpw"),
        ({"error": "bad credentials " + SECRETS["GITHUB_TOKEN"]}, SECRETS["GITHUB_TOKEN"]),
        ({"error": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"}, "github_pat_11ABC"),
        ({"error": "token " + SECRETS["HF_TOKEN"]}, SECRETS["HF_TOKEN"]),
        ({"error": "key " + SECRETS["OPENAI_API_KEY"]}, SECRETS["OPENAI_API_KEY"]),
        ({"password": "hunter2"}, "hunter2"),
        ({"api_key": "whatever-it-is"}, "whatever-it-is"),
    ],
)
def test_secret_shapes_are_redacted(logged: dict[str, Any], secret: str) -> None:
    redactor = SecretRedactor(environ={})
    out = redactor(None, "error", {"event": "request_failed", **logged})
    assert secret not in repr(out)
    assert REDACTED in repr(out)
    assert out["event"] == "request_failed"


def test_ordinary_fields_are_left_alone() -> None:
    redactor = SecretRedactor(environ={"HF_TOKEN": "x"})  # too short to be hunted in text
    event = {
        "event": "batch_written",
        "records": 12,
        "file": "local__a.jsonl",
        "key": "search",  # a rate-limit key, not a secret
        "token_env": "GITHUB_TOKEN",  # the name of a variable, not its value
        "url": "https://api.stackexchange.com/2.3/questions?site=workplace&pagesize=100",
        "text": "taxi rides x",
    }
    assert redactor(None, "info", dict(event)) == event


def test_exceptions_and_other_libraries_records_are_redacted(captured: io.StringIO) -> None:
    token = SECRETS["GITHUB_TOKEN"]
    try:
        raise RuntimeError(f"401 from https://u:{token}@h/x?access_token={token}")
    except RuntimeError:
        get_logger(source="gh").exception("request_failed")
        logging.getLogger("aiohttp.client").exception("unclosed %s", f"https://h/?token={token}")
    text = captured.getvalue()
    assert token not in text
    assert "aiohttp.client" in text and "Traceback" in text


# --- error paths that log a request -------------------------------------------------------------


@pytest.fixture
async def refusing_api() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An API that refuses every request with 401 or 500, quoting back what it was sent."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        sent = {"url": str(request.url), "authorization": request.headers.get("Authorization", "")}
        seen.append(sent)
        status = 500 if request.path.endswith("/flaky") else 401
        return web.json_response(
            {
                "error_id": status,
                "error_name": "access_denied",
                "error_message": f"refused {sent['url']} with {sent['authorization']}",
            },
            status=status,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_http_client_retries_and_refusals_log_no_secret(
    refusing_api: tuple[str, list[dict[str, str]]], captured: io.StringIO
) -> None:
    base, seen = refusing_api
    token = SECRETS["GITHUB_TOKEN"]
    config = InboxSourceConfig(
        name="gh", retry=RetryConfig(attempts=2, initial_wait=0.01, max_wait=0.01)
    )
    log = get_logger(source="gh")
    client = HttpClient(config, log, headers={"Authorization": f"token {token}"})
    try:
        for path in ("/flaky", "/private"):
            with pytest.raises(HttpError) as caught:
                await client.get(f"{base}{path}", params={"access_token": token})
            log.error("request_failed", error=str(caught.value), body=caught.value.body)
    finally:
        await client.close()
    assert any(token in s["authorization"] and token in s["url"] for s in seen)  # it was sent
    text = captured.getvalue()
    assert "http_retry" in text and "request_failed" in text
    assert token not in text


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_daemon_logs_and_metrics_hold_no_token(
    tmp_path: Path, data_dir: Path, refusing_api: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = refusing_api
    retry = "retry = { attempts = 2, initial_wait = 0.01, max_wait = 0.01 }"
    body = f"""
[metrics]
enabled = true
port = 0

[[sources]]
type = "stackexchange"
name = "se-refused"
base_url = "{base}/2.3"
key_env = "SE_APP_KEY"
interval = 0.5
{retry}

[[sources]]
type = "stackexchange"
name = "se-unreachable"
base_url = "http://127.0.0.1:{closed_port()}/2.3"
key_env = "SE_APP_KEY"
interval = 0.5
{retry}
"""
    config = write_config(tmp_path / "collector.toml", body, data_dir)
    daemon = Daemon(config, tmp_path / "log", env=SECRETS)
    try:
        for _ in range(400):
            failed = {e.get("source") for e in daemon.find("stackexchange_request_failed")}
            if {"se-refused", "se-unreachable"} <= failed or daemon.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert daemon.find("stackexchange_request_failed"), daemon.text()
        port = daemon.wait_event("metrics_listening")["port"]
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        )
    finally:
        code = await asyncio.to_thread(daemon.stop)
    assert code == 0
    assert any(SECRETS["SE_APP_KEY"] in s["url"] for s in seen)  # the key did go out
    text = daemon.text()
    assert REDACTED in text  # the refusal quoted the key back: it was there to hide
    assert_no_secret(text)
    assert_no_secret(metrics)
    basic = base64.b64encode(f"user:{SECRETS['KAGGLE_KEY']}".encode()).decode()
    assert basic not in text
    for event in daemon.events():  # every line about a source says which
        if str(event.get("event", "")).startswith(("stackexchange_", "http_", "source_")):
            assert event.get("source") in {"se-refused", "se-unreachable"}, event
