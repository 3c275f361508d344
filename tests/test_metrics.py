"""/metrics and /healthz of a running daemon: the counters match the output files, and the
health check fails while a stage is stuck."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.components import QueueFill, ServiceSnapshot
from collector.config import MetricsConfig
from collector.health import Health
from collector.http import HttpClient
from collector.logging import get_logger
from collector.metrics import LiveView, MetricsServer, ServiceCollector
from collector.reporting import Report, Reporting
from collector.service import SourceRunner
from collector.sources import build_source
from collector.sources.base import SourceContext
from collector.sources.config import (
    GitHubSourceConfig,
    HuggingFaceSourceConfig,
    InboxSourceConfig,
    KaggleSourceConfig,
    RateConfig,
    RetryConfig,
    StackExchangeSourceConfig,
)
from collector.sources.stackexchange import StackExchangeSource
from collector.workers import IN_FLIGHT_PER_PROCESS, resolve_mode
from tests.conftest import wait_for, write_config
from tests.daemon_process import Daemon, inbox_source, write_pairs
from tests.stall import stalling_daemon

METRICS = '\n[metrics]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples:
    status, text = get(f"{base}/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def start(
    tmp_path: Path,
    data_dir: Path,
    daemons: list[Daemon],
    service: str = "",
    stall: Path | None = None,
) -> tuple[Daemon, str]:
    """A daemon with metrics on; with `stall`, its writer waits while that file exists."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    config = write_config(
        tmp_path / "collector.toml", inbox_source("inbox", inbox) + METRICS, data_dir, service
    )
    if stall is None:
        daemon = Daemon(config, tmp_path / "log")
    else:
        daemon = stalling_daemon(config, tmp_path / "log", stall, {})
    daemons.append(daemon)
    listening = daemon.wait_event("metrics_listening")
    return daemon, f"http://127.0.0.1:{listening['port']}"


def test_scraped_counters_match_the_output_files(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    daemon, base = start(tmp_path, data_dir, daemons)
    inbox = tmp_path / "inbox"
    write_pairs(inbox / "a.jsonl", 0, 30, bad=4)
    write_pairs(inbox / "a.jsonl", 0, 5)  # the same five again: duplicates
    write_pairs(inbox / "b.jsonl", 100, 12)
    name = "resume_collector_records_written_total"
    wait_for(lambda: sum(v for (n, _), v in scrape(base).items() if n == name) == 42)

    samples = scrape(base)
    formatted = data_dir / "formatted"
    for dataset, stem in (("local/a", "local__a"), ("local/b", "local__b")):
        lines = len((formatted / f"{stem}.jsonl").read_text().splitlines())
        provenance = len((formatted / f"{stem}__provenance.jsonl").read_text().splitlines())
        written = value(samples, name, source="inbox", dataset=dataset)
        assert written == lines == provenance
    fetched = "resume_collector_records_fetched_total"
    assert value(samples, fetched, source="inbox", dataset="local/a") == 35
    assert value(samples, fetched, source="inbox", dataset="local/b") == 12
    dropped = "resume_collector_records_dropped_total"
    by_reason = {
        dict(labels)["reason"]: v
        for (n, labels), v in samples.items()
        if n == dropped and dict(labels)["dataset"] == "local/a"
    }
    assert by_reason["malformed_json"] == 4
    assert sum(by_reason.values()) == 4 + 5  # and the five duplicates, whatever their reason

    assert value(samples, "resume_collector_queue_depth", queue="work") == 0
    assert value(samples, "resume_collector_queue_capacity", queue="ordered") == 16
    # every queue is bounded: `work` by queue_size and a stop marker per batch in flight (two
    # per worker process, one per worker thread; 2 workers)
    in_flight = 2 * (IN_FLIGHT_PER_PROCESS if resolve_mode("auto") == "process" else 1)
    assert value(samples, "resume_collector_queue_capacity", queue="work") == 16 + in_flight
    assert value(samples, "resume_collector_source_running", source="inbox") == 1
    assert value(samples, "resume_collector_source_passes_total", source="inbox") >= 1
    success = "resume_collector_source_last_success_timestamp_seconds"
    assert value(samples, success, source="inbox") > 1.7e9
    assert value(samples, "resume_collector_pipeline_stuck") == 0
    assert value(samples, "resume_collector_state", state="running") == 1
    assert value(samples, "resume_collector_checkpoints_total") >= 1
    assert daemon.stop() == 0


def test_healthz_fails_while_a_stage_is_stuck_and_recovers(
    tmp_path: Path, data_dir: Path, daemons: list[Daemon]
) -> None:
    stall = tmp_path / "stall"
    daemon, base = start(tmp_path, data_dir, daemons, service="stall_timeout = 0.5", stall=stall)
    status, body = get(f"{base}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    stall.touch()  # the writer's checkpoints now wait
    write_pairs(tmp_path / "inbox" / "a.jsonl", 0, 10)
    wait_for(lambda: get(f"{base}/healthz")[0] == 503)
    report = json.loads(get(f"{base}/healthz")[1])
    assert report["status"] == "stuck" and report["waiting"] >= 1
    assert report["stalled_for"] > 0.5
    assert value(scrape(base), "resume_collector_pipeline_stuck") == 1
    daemon.wait_event("health_failing")

    stall.unlink()
    wait_for(lambda: get(f"{base}/healthz")[0] == 200)
    assert (
        value(
            scrape(base),
            "resume_collector_records_written_total",
            source="inbox",
            dataset="local/a",
        )
        == 10
    )
    assert daemon.stop() == 0


def test_no_listener_unless_enabled(tmp_path: Path, data_dir: Path, daemons: list[Daemon]) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(tmp_path / "c.toml", inbox_source("inbox", inbox), data_dir)
    daemon = Daemon(config, tmp_path / "log")
    daemons.append(daemon)
    daemon.wait_event("service_started")
    assert daemon.stop() == 0
    assert daemon.find("metrics_listening") == []


# --- the collector, without a daemon ----------------------------------------------------------


class StubSource:
    """A source as the metrics see it: it reports its client's figures and one of its own."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def report(self) -> Report:
        return Report(figures={"pages_cached": 7}, http=self.client.report().http)


async def test_http_and_rate_limit_figures_per_source(tmp_path: Path) -> None:
    calls = {"n": 0}

    async def handle(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=500)
        return web.json_response({}, headers={"x-ratelimit-remaining": "41"})

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    config = InboxSourceConfig(
        name="gh",
        rate=RateConfig(per_second=20, burst=1),
        retry=RetryConfig(attempts=3, initial_wait=0.01, max_wait=0.01),
    )
    client = HttpClient(config, get_logger(source="gh"))
    try:
        for _ in range(3):
            await client.get(url)
    finally:
        await client.close()
        await runner.cleanup()
    context = SourceContext(data_dir=tmp_path, log=get_logger(source="gh"))
    nothing: Any = None  # a snapshot reads neither the chain, the pipeline nor the state
    runner = SourceRunner(config, StubSource(client), context, nothing, nothing, nothing, "run")
    runner.passes, runner.last_success = 2, 1.8e9
    snapshot = ServiceSnapshot(
        work=QueueFill(0, 16),
        ordered=QueueFill(0, 16),
        checkpoints=3,
        last_progress=0.0,
        last_checkpoint=0.0,
        sources=[runner.snapshot()],
        components={"upload": {"pending_chunks": 3, "lag_seconds": 12.5}},
    )
    live = LiveView(
        state="running",
        health=Health(stuck=False, waiting=0, stalled_for=0.0),
        snapshot=snapshot,
        last_checkpoint_age=0.5,
    )
    collector = ServiceCollector()
    collector.update([("gh", "owner/ds", "written", 5)], live)
    registry = CollectorRegistry()
    registry.register(collector)
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    assert value(samples, "resume_collector_http_requests_total", source="gh") == 4
    assert value(samples, "resume_collector_http_retries_total", source="gh") == 1
    assert value(samples, "resume_collector_ratelimit_remaining", source="gh") == 41
    assert value(samples, "resume_collector_ratelimit_wait_seconds_total", source="gh") > 0.05
    assert 0 <= value(samples, "resume_collector_ratelimit_tokens", source="gh") <= 1
    assert value(samples, "resume_collector_source_pages_cached", source="gh") == 7
    assert value(samples, "resume_collector_upload_pending_chunks") == 3
    assert value(samples, "resume_collector_upload_lag_seconds") == 12.5
    assert (
        value(samples, "resume_collector_records_written_total", source="gh", dataset="owner/ds")
        == 5
    )


async def test_every_source_that_sends_requests_reports_its_client(tmp_path: Path) -> None:
    # /metrics reads HTTP figures through `Reporting` only: a source holding an HttpClient it
    # does not report would be missing from the http and ratelimit families.
    context = SourceContext(data_dir=tmp_path, log=get_logger())
    configs = [
        InboxSourceConfig(name="inbox", path=str(tmp_path)),
        StackExchangeSourceConfig(name="se"),
        GitHubSourceConfig(name="gh"),
        KaggleSourceConfig(name="kg"),
        HuggingFaceSourceConfig(name="hf", repo_id="owner/ds"),
    ]
    for config in configs:
        source = build_source(config, context)
        if any(isinstance(value, HttpClient) for value in vars(source).values()):
            assert isinstance(source, Reporting), config.name
            assert source.report().http is not None, config.name
        await source.close()


async def test_a_quota_reported_in_bodies_stands_in_for_a_quota_header(tmp_path: Path) -> None:
    context = SourceContext(data_dir=tmp_path, log=get_logger())
    source = build_source(StackExchangeSourceConfig(name="se"), context)
    assert isinstance(source, StackExchangeSource)
    source.quota_remaining = 250  # Stack Exchange says it in every body
    http = source.report().http
    assert http is not None and http.rate_remaining == 250
    source.client.rate_remaining = 40  # a header, when one comes, is what the server said
    http = source.report().http
    assert http is not None and http.rate_remaining == 40
    await source.close()


def test_each_server_has_its_own_registry() -> None:
    first, second = MetricsServer(MetricsConfig()), MetricsServer(MetricsConfig())
    assert first.registry is not second.registry
    assert b"resume_collector" not in generate_latest(REGISTRY)


def test_a_port_in_use_is_a_clear_error_before_any_source_runs(
    tmp_path: Path, data_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        write_pairs(inbox / "a.jsonl", 0, 3)
        body = inbox_source("inbox", inbox) + METRICS.replace("port = 0", f"port = {port}")
        config = write_config(tmp_path / "c.toml", body, data_dir)
        daemon = Daemon(config, tmp_path / "log")
        code = daemon.process.wait(30)
        daemon.kill()
    assert code == 2
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in daemon.text()
    assert daemon.find("metrics_listen_failed")
    assert daemon.find("source_started") == []
