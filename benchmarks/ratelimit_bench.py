"""Rate-limit benchmark: how much of a server's allowed rate the shared client uses, and how
often it is refused.

The GitHub emulator serves a file with 50 ms latency behind a server-side limit of N requests/s
(a token bucket of N/s holding 100 ms worth of requests, at least 2), in its own thread and
event loop. The real `HttpClient` fetches it
for a fixed time with `rate.per_second = N * safety`, `burst = 1` and enough concurrency to
cover the latency. Figures: achieved rate as a fraction of N (goal >= 0.95) and the 429s
received (goal 0). A baseline in the same run: the same client with no useful rate limit
(per_second = 1000), which is what a naive crawler does; it gets refused and retries.

    .venv/bin/python benchmarks/ratelimit_bench.py [--rates 20 50] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from collector.http import HttpClient, HttpError
from collector.logging import configure_logging, get_logger
from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.faults import FaultConfig
from collector.sources.config import GitHubSourceConfig, RateConfig, RetryConfig

LATENCY = 0.05
PATH = "/repos/jdoe-dev/resume/contents/resume.json"


@dataclass
class Result:
    label: str
    limit: float
    server_burst: float
    client_rate: float
    ok: int
    refused: int
    seconds: float

    @property
    def fraction(self) -> float:
        return self.ok / self.seconds / self.limit


class ServerThread:
    """The emulator on its own event loop in its own thread: the server's timing is not the
    client's (in one loop, a busy client would delay the server's clock and vice versa)."""

    def __init__(self, faults: FaultConfig, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(faults, options), daemon=True)
        self._thread.start()
        self._ready.wait(30)
        self.running: RunningApp

    def _serve(self, faults: FaultConfig, options: dict[str, Any]) -> None:
        asyncio.set_event_loop(self.loop)
        self.running = self.loop.run_until_complete(start_emulator("github", faults, **options))
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.running.stop())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


async def scenario(
    label: str, limit: float, client_rate: float, server_burst: float, seconds: float
) -> Result:
    faults = FaultConfig(latency=LATENCY, rate_limit=limit, rate_burst=server_burst)
    server = ServerThread(faults, core_limit=1_000_000)
    running = server.running
    concurrency = max(2, math.ceil(limit * LATENCY * 2) + 1)
    config = GitHubSourceConfig(
        name="bench",
        rate=RateConfig(per_second=client_rate, burst=1),
        concurrency=concurrency,
        retry=RetryConfig(attempts=8, initial_wait=0.05, max_wait=1.0, secondary_wait=0.2),
        timeout=10.0,
    )
    client = HttpClient(config, get_logger())
    url = f"{running.url}{PATH}"
    ok = 0
    # Warm up (connections, first tokens) before the clock starts.
    await asyncio.gather(*(client.get(url) for _ in range(concurrency)))
    server.loop.call_soon_threadsafe(running.faults.clear)
    await asyncio.sleep(0.05)
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal ok
        while time.monotonic() < deadline:
            try:
                await client.get(url)
                if time.monotonic() <= deadline:
                    ok += 1
            except HttpError:
                pass

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = min(time.monotonic(), deadline) - started
    refused = running.faults.statuses[429]
    await client.close()
    server.stop()
    return Result(label, limit, server_burst, client_rate, ok, refused, elapsed)


async def main(rates: list[float], seconds: float, safety: float) -> list[Result]:
    results = []
    for limit in rates:
        burst = max(2.0, limit / 10)  # 100 ms worth of requests
        results.append(await scenario("rate-limited client", limit, limit * safety, burst, seconds))
    limit = rates[0]
    # A stress case: a server that allows no burst at all refuses any request a little early.
    results.append(await scenario("  ... server burst 1", limit, limit * safety, 1, seconds))
    burst = max(2.0, limit / 10)
    results.append(await scenario("baseline: no client limit", limit, 1000, burst, seconds))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 50])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--safety", type=float, default=0.98, help="client rate / server limit")
    args = parser.parse_args()
    configure_logging("console", "error")
    started = time.monotonic()
    results = asyncio.run(main(args.rates, args.seconds, args.safety))
    print(f"latency {LATENCY * 1000:.0f} ms per response, {args.seconds:.0f} s per scenario")
    print(
        f"{'scenario':<28} {'limit N':>8} {'burst':>6} {'client/s':>9} {'ok':>6} "
        f"{'ok/s':>7} {'of N':>6} {'429s':>6}"
    )
    for r in results:
        print(
            f"{r.label:<28} {r.limit:>8.0f} {r.server_burst:>6.0f} {r.client_rate:>9.1f} "
            f"{r.ok:>6} {r.ok / r.seconds:>7.2f} {r.fraction:>6.3f} {r.refused:>6}"
        )
    print(f"total {time.monotonic() - started:.1f} s")
