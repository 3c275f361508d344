"""Several `resume-collector run` instances sharing one Redis, as an operator runs them.

Each instance has its own data_dir and `state.instance`; sources are spread over the instances by
leases; killing one with kill -9 hands its sources to the others after the lease TTL, and the
union of the instances' outputs holds every source record exactly once.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests import redis_server
from tests.conftest import collector_command, subprocess_env, wait_for

redis_url = redis_server.redis_url
redis_prefix = redis_server.redis_prefix

RECORD = re.compile(r"service number (\d+) of (\S+) for")


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
    """One `resume-collector run` subprocess with its own data_dir; JSON logs to a file."""

    def __init__(self, name: str, config: Path, data_dir: Path, log: Path) -> None:
        self.name = name
        self.config = config
        self.data_dir = data_dir
        self.log_path = log
        self.start()

    def start(self) -> None:
        self.handle = self.log_path.open("ab")
        self.process = subprocess.Popen(
            collector_command("run", "--config", str(self.config)),
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def names(self) -> list[str]:
        return [str(e.get("event")) for e in self.events()]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.handle.close()
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.handle.close()

    def records(self, lengths: dict[str, int] | None = None) -> list[tuple[str, int]]:
        """(source, number) of every training line; only the committed part with `lengths`."""
        out = []
        for path in sorted((self.data_dir / "formatted").glob("*.jsonl")):
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


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
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
    tmp_path: Path, redis_url: str, redis_prefix: str, instances: list[Instance]
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sources = [f"box{i}" for i in range(6)]
    inbox = tmp_path / "inbox"
    body = ""
    for source in sources:
        (inbox / source).mkdir(parents=True)
        body += inbox_source(source, inbox / source)
    expected: list[tuple[str, int]] = []
    counters = dict.fromkeys(sources, 0)

    def append_round(count: int = 15) -> list[tuple[str, int]]:
        added = []
        for source in sources:
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
    held = owners(client, redis_prefix, sources)
    victim = max(instances, key=lambda i: list(held.values()).count(i.name))
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
    takeover = [
        e
        for s in survivors
        for e in s.events()
        if e.get("event") == "lease_acquired" and e.get("source") in victim_sources
    ]
    assert {e["source"] for e in takeover} == set(victim_sources)

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
    for instance in instances:
        assert instance.stop() == 0
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
