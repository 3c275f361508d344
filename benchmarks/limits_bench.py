"""Limits benchmark: peak RSS of `resume-collector once` with and without a huge record.

Runs the real service on the same inbox of N good records twice: once as it is, once with one
line of `--huge` MB (200 by default) in the middle of the file, in JSONL, CSV and JSON. The
huge record is over `max_record_bytes` (16 MiB by default): it is read past as it streams,
never held, and counted as `record_too_large`; every good record is written either way. Peak
RSS is the service's own and the whole process tree's (service + workers), as
`benchmarks/pipeline_bench.py` measures them.

    .venv/bin/python benchmarks/limits_bench.py [--records 50000] [--huge 200] \
        [--kinds jsonl csv json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_bench import Run, run  # noqa: E402

MIB = 1024 * 1024


def record(i: int) -> dict[str, str]:
    return {
        "original": f"Maintained service number {i} for the billing and payments team",
        "improved": f"Cut the error rate of billing service {i} by half within one year",
    }


def write_inbox(path: Path, kind: str, count: int, huge_mib: int) -> None:
    """`count` good records in one file, with a `huge_mib` MB record in the middle (0: none),
    written a MiB at a time."""
    path.parent.mkdir(parents=True)
    half = count // 2
    with path.open("wb") as out:
        if kind == "csv":
            out.write(b"original,improved\n")
        elif kind == "json":
            out.write(b"[")
        for i in range(count):
            if i == half and huge_mib:
                if kind == "csv":
                    out.write(b'"')
                else:
                    out.write(b'{"original": "')
                for _ in range(huge_mib):
                    out.write(b"x" * MIB)
                out.write(
                    b'",b\n' if kind == "csv" else b'"}' + (b",\n" if kind == "json" else b"\n")
                )
            item = record(i)
            if kind == "csv":
                out.write(f"{item['original']},{item['improved']}\n".encode())
            else:
                separator = "," if kind == "json" and i < count - 1 else ""
                out.write((json.dumps(item) + separator + "\n").encode())
        if kind == "json":
            out.write(b"]\n")
    old = time.time() - 60
    os.utime(path, (old, old))


def once(work: Path, name: str, kind: str, count: int) -> tuple[Run, dict[str, int]]:
    run_dir = work / name
    config = work / f"{name}.toml"
    config.write_text(
        f"""
[service]
data_dir = "{run_dir}/training-data"
log_level = "warning"

[state]
path = "{run_dir}/state.sqlite3"

[[sources]]
type = "inbox"
name = "bench"
path = "{work}/inbox-{name}"
recipe = {{ name = "pairs" }}
"""
    )
    result = run([sys.executable, "-m", "collector", "once", "--config", str(config)])
    stats = subprocess.run(
        [sys.executable, "-m", "collector", "stats", "--json", "--config", str(config)],
        check=True,
        capture_output=True,
    )
    rows = json.loads(stats.stdout)
    shutil.rmtree(run_dir)
    return result, rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--huge", type=int, default=200, help="MB of the huge record")
    parser.add_argument("--kinds", nargs="+", choices=["jsonl", "csv", "json"], default=["jsonl"])
    args = parser.parse_args()
    print(
        f"{'file':<6} {'huge record':>12} {'seconds':>8} {'written':>8} {'too large':>10} "
        f"{'peak RSS':>10} {'+workers':>10}"
    )
    for kind in args.kinds:
        for huge in (0, args.huge):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                name = f"{kind}-{huge}"
                write_inbox(work / f"inbox-{name}" / f"bench.{kind}", kind, args.records, huge)
                result, stats = once(work, name, kind, args.records)
                print(
                    f"{kind:<6} {f'{huge} MB' if huge else 'none':>12} {result.seconds:>8.2f} "
                    f"{stats.get('written', 0):>8} {stats.get('drop:record_too_large', 0):>10} "
                    f"{result.rss_kib / 1024:>8.1f}MB {result.tree_rss_kib / 1024:>8.1f}MB"
                )
    print("peak RSS: the service alone (kernel's count); +workers: the process tree, sampled")


if __name__ == "__main__":
    main()
