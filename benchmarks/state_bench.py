"""State benchmark: dedupe throughput and memory with Redis against SQLite, 1M records.

Each run feeds synthetic examples through the real `Deduplicator` in batches of 256 (a source
batch) and commits its pending keys every 32 batches with a cursor, as the writer does at a
checkpoint: look-ups are `get_many` on the store, saves are `commit`. One child process per run,
so the peak RSS is the run's own. The baselines, measured in the same run: an in-memory dict
(the floor: no store at all) and SQLite (the default backend).

- exact: 1,000,000 records, 10% exact duplicates of an earlier record;
- near:  MinHash LSH (`dedupe.near = true`) on 200,000 records (1M with --near-records), 10%
  near-duplicates (one word changed).

Redis is a private `redis-server` on a unix socket, without persistence (the figure is the
state work, not the disk); its memory is `used_memory` from INFO after the run. SQLite runs as
the service runs it (WAL, synchronous=FULL: one fsync per checkpoint).

    .venv/bin/python benchmarks/state_bench.py [--records 1000000] [--near-records 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 256
CHECKPOINT_EVERY = 32  # batches; about one flush interval of a busy writer
SYLLABLES = ["ka", "lo", "mi", "ren", "tus", "vo", "pra", "den", "sil", "qua", "bor", "ne"]
# 1,728 made-up words: bullets far apart from each other, as real ones are.
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]


def bullet(i: int) -> str:
    rng = random.Random(i)
    return "Led " + " ".join(rng.choice(WORDS) for _ in range(14)) + f" for {i % 97} teams"


def texts(count: int, near: bool) -> Iterator[str]:
    """Distinct bullets; every tenth repeats an earlier one (exactly, or with one word changed)."""
    for i in range(count):
        if i % 10 == 9 and i > 1000:
            earlier = bullet(i - 997)
            yield earlier.replace("Led ", "Drove ", 1) if near else earlier
        else:
            yield bullet(i)


# --- one run, in a child process -----------------------------------------------------------------


class MemoryIndex:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}

    def get_many(self, namespace: str, keys: Any) -> dict[str, str]:
        found = self.data.get(namespace, {})
        return {k: found[k] for k in keys if k in found}

    def commit(self, puts: dict[str, dict[str, str]], counts: Any = None) -> None:
        for namespace, items in puts.items():
            self.data.setdefault(namespace, {}).update(items)

    def close(self) -> None:
        return None


def child(backend: str, mode: str, count: int, where: str, url: str, prefix: str) -> None:
    from collector.config import StateConfig
    from collector.state.open import open_state_store
    from processors.config import DedupeConfig
    from processors.dedupe import Deduplicator
    from processors.records import Example, Message

    store: Any
    if backend == "memory":
        store = MemoryIndex()
    elif backend == "sqlite":
        store = open_state_store(StateConfig(backend="sqlite", path=f"{where}/state.sqlite3"))
    else:
        store = open_state_store(StateConfig(backend="redis", url=url, prefix=prefix), "bench")
    near = mode == "near"
    dedupe = Deduplicator(DedupeConfig(exact=True, near=near), store)
    kept = dropped = batches = 0
    spent = 0.0  # in the dedupe and the store only, not in making up the examples
    batch: list[Example] = []

    def run(batch: list[Example]) -> None:
        nonlocal kept, dropped, batches
        survivors, duplicates = dedupe.filter(batch)
        kept += len(survivors)
        dropped += len(duplicates)
        batches += 1
        if batches % CHECKPOINT_EVERY == 0:
            checkpoint()

    def checkpoint() -> None:
        puts = dedupe.take_pending()
        puts["cursor"] = {"bench\x1fbench.jsonl": str(batches)}
        store.commit(puts, {("bench", "local/bench", "fetched"): batches})
        dedupe.committed()

    def timed(work: Any, *args: Any) -> None:
        nonlocal spent
        started = time.perf_counter()
        work(*args)
        spent += time.perf_counter() - started

    for i, text in enumerate(texts(count, near)):
        messages = [Message("user", "Improve this resume bullet."), Message("assistant", text)]
        batch.append(
            Example(messages=messages, source="bench", dataset="local/bench", record_id=str(i))
        )
        if len(batch) == BATCH:
            timed(run, batch)
            batch = []
    if batch:
        timed(run, batch)
    timed(checkpoint)
    store.close()
    print(json.dumps({"seconds": spent, "kept": kept, "dropped": dropped}))


# --- the parent: every run, then the table --------------------------------------------------------


def measure(backend: str, mode: str, count: int, url: str, prefix: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="state-bench-") as where:
        command = [
            sys.executable,
            __file__,
            "--child",
            backend,
            mode,
            str(count),
            where,
            url,
            prefix,
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        out = process.stdout.read().decode() if process.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            error = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"{backend}/{mode} failed: {error[-3000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["rss_mib"] = usage.ru_maxrss / 1024
        if backend == "sqlite":
            size = sum(p.stat().st_size for p in Path(where).glob("state.sqlite3*"))
            result["store_mib"] = size / 1024**2
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--near-records", type=int, default=200_000)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, mode, count, where, url, prefix = args.child
        child(backend, mode, int(count), where, url, prefix)
        return

    import redis

    from tests.redis_server import RedisServer

    server = RedisServer()
    client = redis.Redis.from_url(server.url)
    rows = []
    try:
        for mode, count in (("exact", args.records), ("near", args.near_records)):
            if count <= 0:
                continue
            for backend in ("memory", "sqlite", "redis"):
                client.flushall()
                before = int(client.info("memory")["used_memory"])
                result = measure(backend, mode, count, server.url, f"bench-{mode}")
                if backend == "redis":
                    used = int(client.info("memory")["used_memory"]) - before
                    result["store_mib"] = used / 1024**2
                result.update(backend=backend, mode=mode, records=count)
                rows.append(result)
                print(
                    f"  {mode:<5} {backend:<6} {count:>9,} records  "
                    f"{count / result['seconds']:>9,.0f} rec/s",
                    file=sys.stderr,
                )
    finally:
        client.close()
        server.stop()

    print(
        f"\nDedupe through the state store ({BATCH}-record batches, a commit every "
        f"{CHECKPOINT_EVERY} batches), python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    header = (
        f"{'mode':<6} {'backend':<8} {'records':>10} {'seconds':>8} {'records/s':>10} "
        f"{'kept':>9} {'dropped':>8} {'client RSS':>11} {'store size':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        store = f"{row['store_mib']:.0f} MiB" if "store_mib" in row else "(in RSS)"
        print(
            f"{row['mode']:<6} {row['backend']:<8} {row['records']:>10,} {row['seconds']:>8.1f} "
            f"{row['records'] / row['seconds']:>10,.0f} {row['kept']:>9,} {row['dropped']:>8,} "
            f"{row['rss_mib']:>7.0f} MiB {store:>11}"
        )
    print("\nstore size: SQLite file (+WAL) on disk; Redis used_memory after the run (RAM).")


if __name__ == "__main__":
    main()
