"""Prometheus `/metrics` and `/healthz` on an optional HTTP listener (`[metrics] enabled`).

The listener (aiohttp, default `127.0.0.1:9464`) serves:

- `/metrics`: the Prometheus text format, built at each scrape from the service itself by a
  custom collector in the component's own `CollectorRegistry` (no global registry, no counter
  kept twice). Record counts come from the state store: what the writer committed with its
  checkpoints, which is exactly what the output files hold (and survives restarts).
- `/healthz`: 200 with a JSON body while the pipeline moves or idles, 503 when it is stuck
  (`collector.health`: work waiting and nothing moving for `service.stall_timeout`).

What else is exported, read from the service's snapshot (`Host.snapshot`, a
`collector.components.ServiceSnapshot`) at each scrape, so that no other module depends on this
one:

- per source: passes, last success time, whether it runs; for a source that sends HTTP
  requests (it implements `collector.reporting.Reporting` and passes its `HttpClient`'s figures
  on): requests, retries, 304s, seconds waited for the rate limiter, tokens left in the bucket,
  the quota the server last reported (or the one the API reports in its bodies, as Stack
  Exchange does) and the seconds left in a server-ordered pause;
- with the Redis backend, the placement of sources over the instances (`collector/scaleout/`):
  per source configured here, whether this instance holds its lease and whether the placement
  gives it to this instance; per live instance of the fleet, the sources placed on it and
  their summed weights; the share (bound) no instance's load goes above;
- a source's own figures (`Report.figures`) as `resume_collector_source_{key}` labelled with
  the source, and a component's (`Component.telemetry`) as `resume_collector_{component}_{key}`
  (e.g. the uploader's `pending_chunks` and `lag_seconds` become
  `resume_collector_upload_pending_chunks`, `..._upload_lag_seconds`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collector import __version__
from collector.components import Component, Event, Host, ServiceSnapshot
from collector.config import ConfigError, MetricsConfig
from collector.health import Health, PipelineMonitor
from collector.logging import Logger, get_logger
from collector.scaleout.placement import PlacementView

if TYPE_CHECKING:
    from aiohttp import web

PREFIX = "resume_collector"
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(key: str) -> str:
    return _NAME.sub("_", key)


@dataclass
class LiveView:
    """What is read from the service on the event loop, at scrape time."""

    state: str
    health: Health
    snapshot: ServiceSnapshot
    last_checkpoint_age: float


def live_view(host: Host, monitor: PipelineMonitor, state: str) -> LiveView | None:
    snapshot = host.snapshot()
    if snapshot is None:  # still starting
        return None
    return LiveView(
        state=state,
        health=monitor.check(),
        snapshot=snapshot,
        last_checkpoint_age=time.monotonic() - snapshot.last_checkpoint,
    )


def _figures(values: Mapping[str, float]) -> dict[str, float]:
    """Figures under names Prometheus accepts."""
    return {_metric_name(str(key)): float(value) for key, value in values.items()}


# Counters of `collector.reporting.HttpFigures`, each as `resume_collector_http_{name}`.
HTTP_COUNTERS = {
    "requests": "HTTP requests sent",
    "retries": "HTTP requests retried (429, 5xx, timeouts, resets)",
    "not_modified": "conditional requests answered 304 Not Modified",
}


class ServiceCollector:
    """A Prometheus collector over the last `update`: committed counts plus a live view."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, str, str, int]] = []
        self.live: LiveView | None = None

    def update(self, counts: list[tuple[str, str, str, int]], live: LiveView | None) -> None:
        self.counts, self.live = counts, live

    def describe(self) -> list[Metric]:
        return []  # families vary with sources and datasets: described at collect time

    def collect(self) -> Iterator[Metric]:
        yield from self._records()
        if self.live is not None:
            yield from self._pipeline(self.live)
            yield from self._sources(self.live)
            yield from self._components(self.live)
            if self.live.snapshot.placement is not None:
                yield from self._placement(self.live.snapshot.placement)
        info = GaugeMetricFamily(f"{PREFIX}_info", "the running version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

    def _records(self) -> Iterator[Metric]:
        labels = ["source", "dataset"]
        fetched = CounterMetricFamily(
            f"{PREFIX}_records_fetched", "records fetched (committed)", labels=labels
        )
        written = CounterMetricFamily(
            f"{PREFIX}_records_written", "training lines written (committed)", labels=labels
        )
        pairs = CounterMetricFamily(
            f"{PREFIX}_records_pairs", "pairs written for the rewrite stage", labels=labels
        )
        dropped = CounterMetricFamily(
            f"{PREFIX}_records_dropped",
            "records dropped, by reason (committed)",
            labels=[*labels, "reason"],
        )
        for source, dataset, what, n in self.counts:
            if what == "fetched":
                fetched.add_metric([source, dataset], n)
            elif what == "written":
                written.add_metric([source, dataset], n)
            elif what == "pairs":
                pairs.add_metric([source, dataset], n)
            elif what.startswith("drop:"):
                dropped.add_metric([source, dataset, what.removeprefix("drop:")], n)
        yield from (fetched, written, pairs, dropped)

    def _pipeline(self, live: LiveView) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "batches in a pipeline queue", labels=["queue"]
        )
        capacity = GaugeMetricFamily(
            f"{PREFIX}_queue_capacity", "size of a pipeline queue", labels=["queue"]
        )
        snapshot = live.snapshot
        for queue, fill in (("work", snapshot.work), ("ordered", snapshot.ordered)):
            depth.add_metric([queue], fill.depth)
            capacity.add_metric([queue], fill.capacity)
        yield depth
        yield capacity
        yield GaugeMetricFamily(
            f"{PREFIX}_batches_waiting",
            "batches submitted and not yet durable",
            value=live.health.waiting,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_checkpoints", "checkpoints committed", value=snapshot.checkpoints
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_last_checkpoint_age_seconds",
            "seconds since the last checkpoint",
            value=live.last_checkpoint_age,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pipeline_stuck",
            "1 when work waits and nothing moved for service.stall_timeout",
            value=int(live.health.stuck),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pipeline_stalled_seconds",
            "seconds nothing moved while work waited (0 when idle)",
            value=live.health.stalled_for,
        )
        state = GaugeMetricFamily(f"{PREFIX}_state", "the service's state", labels=["state"])
        for name in ("running", "reloading", "stopping"):
            state.add_metric([name], int(live.state == name))
        yield state

    def _sources(self, live: LiveView) -> Iterator[Metric]:
        source = ["source"]
        running = GaugeMetricFamily(
            f"{PREFIX}_source_running", "1 while the source runs", labels=source
        )
        passes = CounterMetricFamily(
            f"{PREFIX}_source_passes", "passes over the source", labels=source
        )
        success = GaugeMetricFamily(
            f"{PREFIX}_source_last_success_timestamp_seconds",
            "end of the source's last pass without error (unix time)",
            labels=source,
        )
        http = {
            key: CounterMetricFamily(f"{PREFIX}_http_{key}", doc, labels=source)
            for key, doc in HTTP_COUNTERS.items()
        }
        waited = CounterMetricFamily(
            f"{PREFIX}_ratelimit_wait_seconds",
            "seconds requests waited for the rate limiter",
            labels=source,
        )
        tokens = GaugeMetricFamily(
            f"{PREFIX}_ratelimit_tokens", "requests the token bucket allows now", labels=source
        )
        remaining = GaugeMetricFamily(
            f"{PREFIX}_ratelimit_remaining",
            "requests left in the server's quota, as it last reported",
            labels=source,
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_ratelimit_paused_seconds",
            "seconds left in a pause the server asked for",
            labels=source,
        )
        extra: dict[str, GaugeMetricFamily] = {}
        for view in live.snapshot.sources:
            name = [view.name]
            running.add_metric(name, int(view.running))
            passes.add_metric(name, view.passes)
            if view.last_success is not None:
                success.add_metric(name, view.last_success)
            figures = view.report.http
            if figures is not None:
                sent = {
                    "requests": figures.requests,
                    "retries": figures.retries,
                    "not_modified": figures.not_modified,
                }
                for key, family in http.items():
                    family.add_metric(name, sent[key])
                waited.add_metric(name, figures.rate_wait_seconds)
                tokens.add_metric(name, figures.rate_tokens)
                paused.add_metric(name, figures.rate_paused_seconds)
                if figures.rate_remaining is not None:
                    remaining.add_metric(name, figures.rate_remaining)
            for key, value in _figures(view.report.figures).items():
                if key not in extra:
                    doc = f"source telemetry: {key}"
                    extra[key] = GaugeMetricFamily(f"{PREFIX}_source_{key}", doc, labels=source)
                extra[key].add_metric(name, value)
        yield from (running, passes, success, *http.values(), waited, tokens, remaining, paused)
        yield from extra.values()

    def _placement(self, view: PlacementView) -> Iterator[Metric]:
        leased = GaugeMetricFamily(
            f"{PREFIX}_source_leased",
            "1 while this instance holds the source's lease (it runs here), 0 if it is "
            "configured here but runs elsewhere or nowhere",
            labels=["source"],
        )
        placed = GaugeMetricFamily(
            f"{PREFIX}_source_placed",
            "1 if the fleet's placement gives the source to this instance",
            labels=["source"],
        )
        for name in view.wanted:
            leased.add_metric([name], int(name in view.held))
            placed.add_metric([name], int(name in view.placed))
        count = GaugeMetricFamily(
            f"{PREFIX}_placement_sources",
            "sources the fleet's placement gives each live instance (as this instance sees it)",
            labels=["instance"],
        )
        load = GaugeMetricFamily(
            f"{PREFIX}_placement_load",
            "summed weights of the sources placed on each live instance",
            labels=["instance"],
        )
        for instance, (n, weight) in sorted(view.fleet.items()):
            count.add_metric([instance], n)
            load.add_metric([instance], weight)
        yield from (leased, placed, count, load)
        yield GaugeMetricFamily(
            f"{PREFIX}_placement_share",
            "the load (summed source weights) an instance takes sources up to",
            value=view.share,
        )

    def _components(self, live: LiveView) -> Iterator[Metric]:
        for component, values in sorted(live.snapshot.components.items()):
            prefix = f"{PREFIX}_{_metric_name(component)}"
            for key, value in sorted(_figures(values).items()):
                doc = f"{component} telemetry: {key}"
                yield GaugeMetricFamily(f"{prefix}_{key}", doc, value=value)


class MetricsServer(Component):
    name = "metrics"

    def __init__(self, config: MetricsConfig, log: Logger | None = None) -> None:
        self.config = config
        self.log = log or get_logger(component=self.name)
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = ServiceCollector()
        self.registry.register(self.collector)
        self.state = "starting"
        self.host: Host | None = None
        self.monitor: PipelineMonitor | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._failing = False

    @classmethod
    def from_config(cls, config: MetricsConfig) -> MetricsServer | None:
        return cls(config) if config.enabled else None

    async def prepare(self, host: Host) -> None:
        """Listen before any source starts: a port that cannot be bound stops the start."""
        self.host = host
        self.monitor = PipelineMonitor(host.snapshot, host.config.service.stall_timeout)
        # Imported here: a service without the listener (the default) never loads aiohttp's
        # server, nor, with no HTTP source, aiohttp at all.
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            where = f"{self.config.host}:{self.config.port}"
            self.log.error("metrics_listen_failed", address=where, error=str(error))
            # A config the service cannot run with: `run` prints it and exits 2.
            problem = f"metrics: cannot listen on {where}: {error.strerror or error}"
            raise ConfigError(str(host.config_path), [problem]) from None
        address = self._runner.addresses[0]
        self.port = int(address[1])
        self.log.info("metrics_listening", host=self.config.host, port=self.port)

    def on_event(self, event: Event, fields: Mapping[str, Any]) -> None:
        if event in ("ready", "reloaded", "reload_failed"):
            self.state = "running"
        elif event in ("reloading", "stopping"):
            self.state = event

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers -----------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.host is not None and self.monitor is not None
        live = live_view(self.host, self.monitor, self.state)
        counts = await asyncio.to_thread(self.host.state.counts)
        self.collector.update(counts, live)
        body = generate_latest(self.registry)
        from aiohttp import web

        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self.monitor is not None
        health = self.monitor.check()
        if health.stuck and not self._failing:
            self.log.error(
                "health_failing", waiting=health.waiting, stalled_for=round(health.stalled_for, 3)
            )
        elif self._failing and not health.stuck:
            self.log.info("health_recovered")
        self._failing = health.stuck
        body = {
            "status": "stuck" if health.stuck else "ok",
            "state": self.state,
            "waiting": health.waiting,
            "stalled_for": round(health.stalled_for, 3),
            "stall_timeout": self.monitor.detector.timeout,
        }
        from aiohttp import web

        return web.json_response(body, status=503 if health.stuck else 200)
