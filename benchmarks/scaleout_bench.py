"""Scale-out benchmark: how long each source goes without a write when Redis restarts, crashes,
or one instance is cut off from it (a network partition), with three instances sharing Redis.

The fleet is three `resume-collector run` subprocesses (node-a, node-b, node-c) on one private
`redis-server` (unix socket, AOF with `appendfsync always`, as docs/scale-out.md advises), six
inbox sources that grow by 20 records a second each, the lease TTL `--ttl` (3 s) and a flush
interval of 0.2 s. node-c reaches Redis through a small TCP-less proxy of its own (a unix
socket forwarding to Redis's, run as a child process), so it can be cut off while node-a and
node-b keep Redis:

- **blackhole** partition: the proxy is frozen (SIGSTOP): node-c's requests and connects hang
  until its timeouts fire, as when packets are dropped; healed with SIGCONT;
- **reset** partition: the proxy is killed: node-c's connections are reset and new ones refused,
  as when a host or a firewall rejects them; healed by starting a new proxy.

Scenarios, one after the other on the same fleet, each followed by a settling time:
steady (nothing happens: the baseline), Redis restart (SIGTERM, down 0.5 s), Redis crash
(kill -9, down 0.5 s), a short blackhole (half a TTL), a long blackhole (two TTLs) and a long
reset (two TTLs). An instance that exits is started again after `--restart-sec`, as systemd's
`Restart=on-failure` would (the shipped unit waits 5 s; 1 s here keeps the run short).

What is measured: per source, the longest time without a **committed** write (its committed
output length, summed over the instances, read from Redis every 50 ms): "after cut", among the
gaps in progress at the cut or beginning before the heal; "after heal", among those in progress
at the heal or beginning after it. A gap is counted whole from the write before it (one in
progress at the heal that began at the cut is in both figures), but only up to the next
scenario's cut. In seconds and in lease TTLs. At the end every record must be in the
union of the instances' outputs exactly once (checked on the committed parts, then after SIGTERM
on whole files).

    .venv/bin/python benchmarks/scaleout_bench.py [--ttl 3] [--restart-sec 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402
from tests.test_redis_scaleout import (  # noqa: E402
    Instance,
    append_pairs,
    committed_lengths,
    inbox_source,
    owners,
    write_config,
)

SOURCES = [f"box{i}" for i in range(6)]
NODES = ["node-a", "node-b", "node-c"]
CUT = "node-c"  # the instance the partitions cut off (it reaches Redis through the proxy)
PREFIX = "bench"
FLUSH_INTERVAL = 0.2
FEED_EVERY = 0.1  # seconds between two appends of FEED_COUNT records to every source
FEED_COUNT = 2
POLL_EVERY = 0.05
# Events counted per scenario from the instances' JSON logs.
EVENTS = (
    "redis_retrying",
    "lease_round_failed",
    "lease_expired_unrenewed",
    "lease_lost_with_uncommitted_output",
    "redis_unavailable",
    "leases_abandoned",
    "lease_acquired",
    "lease_handover",
)


# --- the proxy: node-c's only way to Redis -----------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _serve_proxy(listen: str, target: str) -> None:
    async def handle(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_unix_connection(target)
        except OSError:  # Redis itself is down: the client sees its connection closed
            client_out.close()
            return
        await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out))

    server = await asyncio.start_unix_server(handle, path=listen)
    async with server:
        await server.serve_forever()


class Proxy:
    """A child process forwarding `listen` to `target`, both unix sockets."""

    def __init__(self, listen: Path, target: Path) -> None:
        self.listen = listen
        self.target = target
        self.start()

    def start(self) -> None:
        self.listen.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--proxy", str(self.listen), str(self.target)]
        )
        deadline = time.monotonic() + 10
        while not self.listen.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the proxy did not start")
            time.sleep(0.01)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        # The socket file stays with nobody listening: connects are refused.
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


# --- the fleet ---------------------------------------------------------------------------------


class Supervisor:
    """Starts an instance that exited by itself again after `restart_sec`, as systemd would;
    remembers (time, instance, exit code) of every such exit."""

    def __init__(self, fleet: list[Instance], restart_sec: float) -> None:
        self.fleet = fleet
        self.restart_sec = restart_sec
        self.exits: list[tuple[float, str, int]] = []
        self._exited_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for instance in self.fleet:
                code = instance.process.poll()
                if code is None or not instance.wanted_up:
                    continue
                now = time.monotonic()
                if instance.name not in self._exited_at:
                    self._exited_at[instance.name] = now
                    self.exits.append((now, instance.name, code))
                if now - self._exited_at[instance.name] >= self.restart_sec:
                    del self._exited_at[instance.name]
                    instance.revive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Progress:
    """Per source, when its committed output grew, polled from Redis (read directly, never
    through the proxy); a poll that fails while Redis is down is simply skipped."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=1)
        self.writes: dict[str, list[float]] = {s: [] for s in SOURCES}
        self._last: dict[str, int] = dict.fromkeys(SOURCES, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(POLL_EVERY):
            try:
                lengths = [committed_lengths(self.client, PREFIX, node) for node in NODES]
            except redis.RedisError:
                continue
            now = time.monotonic()
            for source in SOURCES:
                key = f"formatted/local__{source}.jsonl"
                total = sum(each.get(key, 0) for each in lengths)
                if total > self._last[source]:
                    self._last[source] = total
                    self.writes[source].append(now)

    def longest_gap(self, source: str, start: float, until: float, end: float) -> float:
        """The longest time without a committed write among the gaps in progress at `start` or
        beginning before `until`, counted whole (from the write before), but cut at `end` (the
        next scenario's cut: what follows is that scenario's)."""
        times = self.writes[source]
        before = [t for t in times if t <= start]
        previous = before[-1] if before else start
        longest = 0.0
        for t in times:
            if t <= start:
                continue
            if previous >= until:
                return longest
            longest = max(longest, min(t, end) - previous)
            previous = t
        return max(longest, end - previous) if previous < until else longest  # no write since

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


@dataclass
class Scenario:
    name: str
    what: str
    cut: Callable[[], object]
    heal: Callable[[], object]
    hold: float  # seconds between cut and heal
    settle: float  # seconds after the heal
    cut_at: float = 0.0
    heal_at: float = 0.0
    end_at: float = 0.0
    wall: tuple[float, float] = (0.0, 0.0)
    holders: dict[str, str | None] = field(default_factory=dict)


def run(args: argparse.Namespace) -> dict[str, object]:
    ttl = args.ttl
    work = Path(tempfile.mkdtemp(prefix="rc-scaleout-bench-"))
    server = RedisServer(persistent=True)
    proxy = Proxy(work / "proxy.sock", server.socket)
    inbox = work / "inbox"
    body = ""
    for source in SOURCES:
        (inbox / source).mkdir(parents=True)
        body += inbox_source(source, inbox / source)
    body = body.replace("interval = 0.2", "interval = 0.1")
    fleet = []
    for node in NODES:
        url = f"unix://{proxy.listen}" if node == CUT else server.url
        config = write_config(work / f"{node}.toml", work / node, url, PREFIX, node, body)
        text = config.read_text().replace("lease_ttl = 2.0", f"lease_ttl = {ttl}")
        config.write_text(
            text.replace("flush_interval = 0.2", f"flush_interval = {FLUSH_INTERVAL}")
        )
        fleet.append(Instance(node, config, work / node, work / f"{node}.log"))
    supervisor = Supervisor(fleet, args.restart_sec)
    expected: list[tuple[str, int]] = []
    stop_feeding = threading.Event()

    def feed() -> None:
        n = 0
        while not stop_feeding.is_set():
            for source in SOURCES:
                path = inbox / source / f"{source}.jsonl"
                expected.extend(append_pairs(path, source, n, FEED_COUNT))
            n += FEED_COUNT
            time.sleep(FEED_EVERY)

    def nothing() -> None:
        pass

    scenarios = [
        Scenario("steady", "nothing happens (the baseline)", nothing, nothing, 0.0, 2 * ttl),
        Scenario(
            "redis-restart",
            "Redis stopped (SIGTERM, AOF written), started again 0.5 s later",
            lambda: server.restart(down_for=0.5),
            nothing,
            0.0,
            2 * ttl,
        ),
        Scenario(
            "redis-crash",
            "Redis killed (kill -9, appendfsync always), started again 0.5 s later",
            lambda: server.restart(kill=True, down_for=0.5),
            nothing,
            0.0,
            2 * ttl,
        ),
        Scenario(
            "partition-short",
            f"{CUT} cut off (blackhole) for half a TTL",
            proxy.freeze,
            proxy.thaw,
            ttl / 2,
            3 * ttl,
        ),
        Scenario(
            "partition-long",
            f"{CUT} cut off (blackhole) for two TTLs",
            proxy.freeze,
            proxy.thaw,
            2 * ttl,
            4 * ttl,
        ),
        Scenario(
            "partition-reset",
            f"{CUT} cut off (connections reset, connects refused) for two TTLs",
            proxy.kill,
            proxy.start,
            2 * ttl,
            4 * ttl,
        ),
    ]
    client = redis.Redis.from_url(server.url, decode_responses=True)
    progress: Progress | None = None
    feeder = threading.Thread(target=feed, daemon=True)
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 120
        while not all("service_started" in i.names() for i in fleet):
            if time.monotonic() > deadline:
                raise RuntimeError("the fleet did not start within 120 s")
            time.sleep(0.1)
        feeder.start()
        progress = Progress(server.url)
        while not all(progress.writes[s] for s in SOURCES):  # every source writes
            if time.monotonic() > deadline:
                raise RuntimeError("not every source wrote within 120 s")
            time.sleep(0.1)
        time.sleep(2 * ttl)  # placement settles (2/2/2)
        for scenario in scenarios:
            scenario.holders = owners(client, PREFIX, SOURCES)
            wall_start = time.time()
            scenario.cut_at = time.monotonic()
            scenario.cut()  # a Redis restart returns once it is up again
            time.sleep(scenario.hold)
            scenario.heal_at = time.monotonic()
            scenario.heal()
            time.sleep(scenario.settle)
            scenario.end_at = time.monotonic()
            scenario.wall = (wall_start, time.time())
            print(f"  {scenario.name}: done", file=sys.stderr)
        stop_feeding.set()
        feeder.join()
        progress.stop()

        # Every record committed once in the union of the committed parts of the outputs...
        def committed() -> Counter[tuple[str, int]]:
            union: Counter[tuple[str, int]] = Counter()
            for i in fleet:
                union.update(i.records(committed_lengths(client, PREFIX, i.name)))
            return union

        deadline = time.monotonic() + 60
        while set(committed()) != set(expected) and time.monotonic() < deadline:
            time.sleep(0.2)
        committed_union = committed()
        supervisor.stop()
        codes = {i.name: i.stop() for i in fleet}
        # ...and, after SIGTERM, in the whole files.
        union: Counter[tuple[str, int]] = Counter()
        for i in fleet:
            union.update(i.records())
        events = {i.name: i.events() for i in fleet}
    finally:
        stop_feeding.set()
        if progress is not None and progress._thread.is_alive():
            progress.stop()
        if supervisor._thread.is_alive():
            supervisor.stop()
        for i in fleet:
            if i.process.poll() is None:
                i.kill()
        proxy.stop()
        client.close()
        server.stop()

    results = []
    for scenario in scenarios:
        lo, hi = scenario.wall
        counted = Counter(
            str(e["event"])
            for each in events.values()
            for e in each
            if e.get("event") in EVENTS and lo <= _when(e) < hi
        )
        exits = [
            (name, code)
            for t, name, code in supervisor.exits
            if scenario.cut_at <= t < scenario.end_at
        ]
        sources = []
        assert progress is not None
        for source in SOURCES:
            after_cut = progress.longest_gap(
                source,
                scenario.cut_at,
                max(scenario.heal_at, scenario.cut_at + 1e-3),
                scenario.end_at,
            )
            after_heal = progress.longest_gap(
                source, scenario.heal_at, scenario.end_at, scenario.end_at
            )
            sources.append(
                {
                    "source": source,
                    "holder": scenario.holders.get(source),
                    "after_cut": round(after_cut, 2),
                    "after_heal": round(after_heal, 2),
                }
            )
        results.append(
            {
                "scenario": scenario.name,
                "what": scenario.what,
                "cut_seconds": round(scenario.heal_at - scenario.cut_at, 2),
                "sources": sources,
                "exits": exits,
                "events": dict(sorted(counted.items())),
            }
        )
    load = os.getloadavg()
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_end": [round(x, 2) for x in load],
            "python": platform.python_version(),
            "redis": _redis_version(),
        },
        "ttl": ttl,
        "flush_interval": FLUSH_INTERVAL,
        "records_per_second_per_source": FEED_COUNT / FEED_EVERY,
        "seconds": round(time.monotonic() - started, 1),
        "scenarios": results,
        "records": len(expected),
        "committed_once": set(committed_union) == set(expected)
        and max(committed_union.values(), default=0) == 1,
        "written_once": set(union) == set(expected) and max(union.values(), default=0) == 1,
        "duplicates": sum(n - 1 for n in union.values() if n > 1),
        "missing": len(set(expected) - set(union)),
        "stop_codes": codes,
        "work": str(work),
    }


def _when(event: dict[str, object]) -> float:
    stamp = str(event.get("timestamp", ""))
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _redis_version() -> str:
    done = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    return done.stdout.split("v=")[1].split()[0] if "v=" in done.stdout else "?"


def report(result: dict[str, object]) -> None:
    ttl = float(result["ttl"])  # type: ignore[arg-type]
    machine = result["machine"]
    print(
        f"three instances, six inbox sources at {result['records_per_second_per_source']:g} "
        f"records/s each, lease TTL {ttl:g} s, flush {result['flush_interval']} s; {machine}"
    )
    print(f"bound from the issue: one TTL plus one flush = {ttl + FLUSH_INTERVAL:g} s\n")
    print(f"{'scenario':<16} {'source':<6} {'holder':<7} {'after cut':>16} {'after heal':>16}")
    for scenario in result["scenarios"]:  # type: ignore[attr-defined]
        for row in scenario["sources"]:
            cut, heal = row["after_cut"], row["after_heal"]
            print(
                f"{scenario['scenario']:<16} {row['source']:<6} {row['holder'] or '-':<7} "
                f"{cut:>6.2f} s {cut / ttl:>4.2f} TTL {heal:>6.2f} s {heal / ttl:>4.2f} TTL"
            )
        worst_cut = max(r["after_cut"] for r in scenario["sources"])
        worst_heal = max(r["after_heal"] for r in scenario["sources"])
        print(
            f"{'':<16} {scenario['what']} ({scenario['cut_seconds']} s): worst "
            f"{worst_cut:.2f} s / {worst_heal:.2f} s = {worst_cut / ttl:.2f} / "
            f"{worst_heal / ttl:.2f} TTL; exits {scenario['exits'] or 'none'}; "
            f"events {scenario['events']}"
        )
    print(
        f"\n{result['records']} records: committed once {result['committed_once']}, written "
        f"once {result['written_once']} ({result['duplicates']} duplicated, "
        f"{result['missing']} missing); exit codes at SIGTERM {result['stop_codes']}; "
        f"{result['seconds']} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttl", type=float, default=3.0, help="state.lease_ttl (s)")
    parser.add_argument(
        "--restart-sec", type=float, default=1.0, help="wait before restarting an exited instance"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    parser.add_argument("--proxy", nargs=2, metavar=("LISTEN", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:  # the child process that forwards node-c's connections
        asyncio.run(_serve_proxy(*args.proxy))
        return 0
    if shutil.which("redis-server") is None:
        print("no redis-server binary: apt-get install redis-server", file=sys.stderr)
        return 2
    result = run(args)
    if not args.keep:
        shutil.rmtree(str(result.pop("work")), ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    ok = result["committed_once"] and result["written_once"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
