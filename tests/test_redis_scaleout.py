"""Several `resume-collector run` instances sharing one Redis, as an operator runs them.

Each instance has its own data_dir and `state.instance`; sources are spread over the instances by
leases; killing one with kill -9 hands its sources to the others after the lease TTL, and the
union of the instances' outputs holds every source record exactly once.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from collector.sandbox import RunningApp, start_emulator
from collector.sandbox.github import STORE, GitHubStore
from tests import redis_server
from tests.conftest import collector_command, subprocess_env, wait_for
from tests.daemon_process import log_events

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix

RECORD = re.compile(r"service number (\d+) of (\S+) for")
GITHUB_TOKEN = "ghp_shared_by_every_instance"
# Three GitHub sources with one token, each on its own slice of the emulator's repositories.
GITHUB_QUERIES = [
    "topic:jsonresume created:<2019-10-01",
    "topic:jsonresume created:2019-10-01..2020-09-30",
    "topic:jsonresume created:>=2020-10-01",
]
GITHUB_RESUMES = 10  # the emulator's sample data: 11 repositories, one is not a resume
# The token's limits in the emulator, per resource and per 1 s window. Each source is allowed
# 4 requests/s with a burst of 1: at most 5 in any second for the three together when they
# share the bucket (as they must), 15 when each counts for itself.
GITHUB_LIMIT_PER_SECOND = 6


def write_config(
    path: Path, data_dir: Path, url: str, prefix: str, instance: str, sources: str
) -> Path:
    path.write_text(
        f"""
[service]
data_dir = "{data_dir}"
flush_interval = 0.2
shutdown_timeout = 20

[state]
backend = "redis"
url = "{url}"
prefix = "{prefix}"
instance = "{instance}"
lease_ttl = 2.0
{sources}
"""
    )
    return path


def inbox_source(name: str, path: Path) -> str:
    return f"""
[[sources]]
type = "inbox"
name = "{name}"
path = "{path}"
interval = 0.2
batch_size = 20

[sources.recipe]
name = "pairs"
"""


def github_source(name: str, url: str, query: str) -> str:
    return f"""
[[sources]]
type = "github"
name = "{name}"
base_url = "{url}"
token_env = "GH_SCALEOUT_TOKEN"
queries = ["{query}"]
per_page = 1
interval = 60
timeout = 5

[sources.rate]
per_second = 4
burst = 1

[sources.retry]
attempts = 3
initial_wait = 0.05
max_wait = 0.2
secondary_wait = 0.2

[sources.recipe]
name = "resume_json"
"""


class EmulatorThread:
    """The GitHub emulator on 127.0.0.1 in a thread of the test process (its own loop)."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running: RunningApp = asyncio.run_coroutine_threadsafe(
            start_emulator("github", **options), self.loop
        ).result(10)
        self.url = self.running.url

    @property
    def store(self) -> GitHubStore:
        return self.running.app[STORE]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def github() -> Iterator[EmulatorThread]:
    emulator = EmulatorThread(
        core_limit=GITHUB_LIMIT_PER_SECOND,
        search_limit=GITHUB_LIMIT_PER_SECOND,
        window_seconds=1.0,
        core_window_seconds=1.0,
    )
    yield emulator
    emulator.stop()


def append_pairs(path: Path, source: str, start: int, count: int) -> list[tuple[str, int]]:
    """Distinct bullet pairs; returns (source, number) of each, the record's identity."""
    written = []
    with path.open("a") as handle:
        for i in range(start, start + count):
            bullet = f"Maintained service number {i} of {source} for the billing team"
            improved = f"Cut the error rate of service number {i} of {source} by half this year"
            handle.write(json.dumps({"original": bullet, "improved": improved}) + "\n")
            written.append((source, i))
    return written


class Instance:
    """One `resume-collector run` subprocess with its own data_dir; JSON logs to a file.

    Supervised as systemd would (Restart=on-failure): an instance that exits by itself (exit 75
    when it lost a lease with uncommitted output, after a stall) is started again; `restarts`
    counts those.
    """

    def __init__(self, name: str, config: Path, data_dir: Path, log: Path) -> None:
        self.name = name
        self.config = config
        self.data_dir = data_dir
        self.log_path = log
        self.lock = threading.Lock()
        self.restarts: list[int] = []  # exit codes of the runs that ended by themselves
        self.start()

    def start(self) -> None:
        with self.lock:
            self.wanted_up = True
            self.handle = self.log_path.open("ab")
            self.process = subprocess.Popen(
                collector_command("run", "--config", str(self.config)),
                stdout=self.handle,
                stderr=subprocess.STDOUT,
                env={**subprocess_env(), "GH_SCALEOUT_TOKEN": GITHUB_TOKEN},
            )

    def revive(self) -> None:
        with self.lock:
            code = self.process.poll()
            if not self.wanted_up or code is None:
                return
            self.handle.close()
            self.restarts.append(code)
        self.start()

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log_path)

    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events()]

    def stop(self) -> int:
        with self.lock:
            self.wanted_up = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.handle.close()
        return code

    def kill(self) -> None:
        with self.lock:
            self.wanted_up = False
        self.process.kill()
        self.process.wait(10)
        self.handle.close()

    def records(self, lengths: dict[str, int] | None = None) -> list[tuple[str, int]]:
        """(source, number) of every training line; only the committed part with `lengths`."""
        out = []
        for path in sorted((self.data_dir / "formatted").glob("local__*.jsonl")):
            if path.name.endswith(("__pairs.jsonl", "__provenance.jsonl")):
                continue
            data = path.read_bytes()
            if lengths is not None:
                data = data[: lengths.get(f"formatted/{path.name}", 0)]
            for line in data.decode().splitlines():
                user = json.loads(line)["messages"][1]["content"]
                match = RECORD.search(user)
                assert match, user
                out.append((match.group(2), int(match.group(1))))
        return out

    def github_lines(self) -> list[dict[str, Any]]:
        """Every line the GitHub sources wrote (bullet pairs: the resumes have no rewrites)."""
        out = []
        for path in sorted((self.data_dir / "formatted").glob("*.jsonl")):
            if path.name.startswith("local__") or path.name.endswith("__provenance.jsonl"):
                continue
            out += [json.loads(line) for line in path.read_text().splitlines()]
        return out


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    done = threading.Event()

    def supervise() -> None:
        while not done.wait(0.2):
            for instance in list(started):
                instance.revive()

    supervisor = threading.Thread(target=supervise, daemon=True)
    supervisor.start()
    yield started
    done.set()
    supervisor.join()
    for instance in started:
        if instance.process.poll() is None:
            instance.kill()


def owners(client: redis.Redis, prefix: str, sources: list[str]) -> dict[str, str | None]:
    """source -> the instance holding its lease now (None: free)."""
    out: dict[str, str | None] = {}
    for source in sources:
        holder = client.get(f"{prefix}:lease:source-name:{source}")
        out[source] = None if holder is None else str(holder).split(":")[0]
    return out


def committed_lengths(client: redis.Redis, prefix: str, instance: str) -> dict[str, int]:
    lengths: dict[str, str] = client.hgetall(f"{prefix}:local:{instance}:kv:files")  # type: ignore[assignment]
    return {key: int(value) for key, value in lengths.items()}


def test_three_instances_share_the_sources_and_survive_a_kill_9_exactly_once(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    instances: list[Instance],
    github: EmulatorThread,
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    boxes = [f"box{i}" for i in range(6)]
    inbox = tmp_path / "inbox"
    body = ""
    for source in boxes:
        (inbox / source).mkdir(parents=True)
        body += inbox_source(source, inbox / source)
    for i, query in enumerate(GITHUB_QUERIES):
        body += github_source(f"gh{i}", github.url, query)
    sources = boxes + [f"gh{i}" for i in range(len(GITHUB_QUERIES))]
    expected: list[tuple[str, int]] = []
    counters = dict.fromkeys(boxes, 0)

    def append_round(count: int = 15) -> list[tuple[str, int]]:
        added = []
        for source in boxes:
            added += append_pairs(
                inbox / source / f"{source}.jsonl", source, counters[source], count
            )
            counters[source] += count
        expected.extend(added)
        return added

    append_round()
    for name in ("node-a", "node-b", "node-c"):
        data_dir = tmp_path / name
        config = write_config(
            tmp_path / f"{name}.toml", data_dir, redis_url, redis_prefix, name, body
        )
        instances.append(Instance(name, config, data_dir, tmp_path / f"{name}.log"))

    # Every source runs, on exactly one instance at a time, and all three are up.
    wait_for(lambda: all(owners(client, redis_prefix, sources).values()), timeout=30)
    wait_for(lambda: all("service_started" in i.names() for i in instances), timeout=30)
    for _ in range(4):
        append_round()
        time.sleep(0.3)

    # Kill -9 the instance that runs the most sources, while records keep coming.
    held = owners(client, redis_prefix, boxes)
    victim = max(instances, key=lambda i: list(held.values()).count(i.name))
    held = owners(client, redis_prefix, sources)
    victim_sources = [s for s, owner in held.items() if owner == victim.name]
    assert victim_sources
    wait_for(lambda: len(victim.records()) > 0)
    victim.kill()
    killed_at = time.monotonic()
    survivors = [i for i in instances if i is not victim]
    after_kill = []
    for _ in range(4):
        after_kill += append_round()
        time.sleep(0.3)

    # Its sources are taken over once their leases expire, and continue from its cursors.
    def taken_over() -> bool:
        now = owners(client, redis_prefix, victim_sources)
        return all(owner in {s.name for s in survivors} for owner in now.values())

    wait_for(taken_over, timeout=30)
    assert time.monotonic() - killed_at >= 1.0  # not before the TTL ran out (2 s)

    # A survivor logs `lease_acquired` just after Redis says it holds the lease: on a loaded
    # machine the test can read Redis in between, so it waits for the log it checks.
    def taken_over_sources() -> set[str]:
        return {
            str(e["source"])
            for s in survivors
            for e in s.events()
            if e.get("event") == "lease_acquired" and e.get("source") in victim_sources
        }

    wait_for(lambda: taken_over_sources() == set(victim_sources), timeout=10)

    # The committed part of every instance's output, the dead one's included: all, once each.
    def committed_union() -> Counter[tuple[str, int]]:
        union: Counter[tuple[str, int]] = Counter()
        for instance in instances:
            union.update(instance.records(committed_lengths(client, redis_prefix, instance.name)))
        return union

    wait_for(lambda: set(committed_union()) == set(expected), timeout=30)
    assert max(committed_union().values()) == 1
    survivor_records = {r for s in survivors for r in s.records()}
    moved = [r for r in after_kill if r[0] in victim_sources]
    assert moved and all(r in survivor_records for r in moved)

    # The dead instance comes back (as systemd would restart it): it cuts its files back to
    # what it had committed, and takes part again.
    victim.start()
    wait_for(lambda: victim.names().count("service_started") >= 2, timeout=30)
    append_round()
    wait_for(lambda: set(committed_union()) == set(expected), timeout=30)

    def github_union() -> Counter[str]:
        lines: Counter[str] = Counter()
        for instance in instances:
            lines.update(json.dumps(line, sort_keys=True) for line in instance.github_lines())
        return lines

    def github_resumes() -> set[str]:
        """The resumes bullets came from (a pair's record_id is `{repo}/{path}/{bullet}`)."""
        return {str(json.loads(line)["record_id"]).rsplit("/", 1)[0] for line in github_union()}

    wait_for(lambda: len(github_resumes()) == GITHUB_RESUMES, timeout=60)

    # Nine sources on three instances: `stats` shows each running at most three of them.
    def placement() -> dict[str, int]:
        shown = subprocess.run(
            collector_command("stats", "--config", str(instances[0].config)),
            capture_output=True,
            env=subprocess_env(),
            check=True,
        ).stdout.decode()
        runs = re.findall(r"^instance (\S+) runs (\d+):", shown, re.MULTILINE)
        return {name: int(n) for name, n in runs}

    wait_for(lambda: sum((p := placement()).values()) == 9 and max(p.values()) <= 3, timeout=30)
    for instance in instances:
        assert instance.stop() == 0
    # GitHub: every resume's bullets written once, and the token's limits were never exceeded
    # although its three sources ran at once on different instances.
    lines = github_union()
    assert lines and max(lines.values()) == 1
    assert len(github_resumes()) == GITHUB_RESUMES
    assert set(github.store.tokens_seen) == {GITHUB_TOKEN}
    assert sum(github.store.refused.values()) == 0, github.store.refused
    union: Counter[tuple[str, int]] = Counter()
    for instance in instances:
        union.update(instance.records())
    assert set(union) == set(expected)
    duplicates = {record: n for record, n in union.items() if n > 1}
    assert duplicates == {}
    # Stopped instances release their leases: nothing is left held.
    assert not any(owners(client, redis_prefix, sources).values())
    client.close()


def test_exact_dedupe_keys_are_shared_between_instances(
    tmp_path: Path, redis_url: str, redis_prefix: str, instances: list[Instance]
) -> None:
    # Two sources with the same lines, each configured on one instance only.
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        with (tmp_path / name / "same.jsonl").open("w") as handle:
            for i in range(30):
                bullet = f"Maintained service number {i} of shared for the billing team"
                improved = f"Cut the error rate of service number {i} of shared by half"
                handle.write(json.dumps({"original": bullet, "improved": improved}) + "\n")
    made = {}
    for name in ("first", "second"):
        config = write_config(
            tmp_path / f"{name}.toml",
            tmp_path / f"data-{name}",
            redis_url,
            redis_prefix,
            name,
            inbox_source(name, tmp_path / name),
        )
        made[name] = Instance(name, config, tmp_path / f"data-{name}", tmp_path / f"{name}.log")
        instances.append(made[name])
        wait_for(lambda name=name: len(made[name].records()) == 30 or _dropped(made[name]) == 30)
    assert len(made["first"].records()) == 30
    assert made["second"].records() == []
    for instance in instances:
        assert instance.stop() == 0
    stats = subprocess.run(
        collector_command("stats", "--json", "--config", str(tmp_path / "second.toml")),
        capture_output=True,
        env=subprocess_env(),
        check=True,
    )
    rows = {row["source"]: row for row in json.loads(stats.stdout)}
    assert rows["second"]["drop:duplicate_exact"] == 30
    assert rows["first"]["written"] == 30


def _dropped(instance: Instance) -> int:
    for event in reversed(instance.events()):
        if event.get("event") == "source_pass_done":
            return int(event.get("dropped", 0))
    return 0
