"""Pipeline benchmark: records/s and peak RSS of `resume-collector once` over an inbox.

Runs the real service as a subprocess for each size (default 200k and 1M records) and, as a
baseline in the same run on the same files, a bare loop that decodes each line and writes it back
out (no processing, no durability): the floor of what reading and writing JSONL costs here.
Peak RSS must not grow with input size: the bounded queues keep memory flat.

    .venv/bin/python benchmarks/pipeline_bench.py [--sizes 200000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import sys, msgspec
decode, encode = msgspec.json.decode, msgspec.json.encode
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as out:
    for line in src:
        record = decode(line)
        out.write(encode({"messages": [{"role": "user", "content": record["original"]},
                                       {"role": "assistant", "content": record["improved"]}]}))
        out.write(b"\\n")
"""


def make_inbox(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    path = folder / "bench.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            original = f"Maintained service number {i} for the billing and payments team"
            improved = f"Cut the error rate of billing service {i} by half within one year"
            handle.write(json.dumps({"original": original, "improved": improved}) + "\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    args = parser.parse_args()
    print(f"{'records':>9} {'what':<24} {'seconds':>8} {'records/s':>10} {'peak RSS':>10}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            source = make_inbox(work / "inbox", size)
            seconds, rss = run([sys.executable, "-c", BASELINE, str(source), str(work / "o.jsonl")])
            print(
                f"{size:>9} {'baseline: decode+write':<24} {seconds:>8.2f} "
                f"{size / seconds:>10.0f} {rss / 1024:>8.1f}MB"
            )
            config = work / "bench.toml"
            config.write_text(
                f"""
[service]
data_dir = "{work}/training-data"
log_format = "json"
log_level = "warning"

[state]
path = "{work}/state.sqlite3"

[[sources]]
type = "inbox"
name = "bench"
path = "{work}/inbox"
recipe = {{ name = "pairs" }}
"""
            )
            seconds, rss = run([sys.executable, "-m", "collector", "once", "--config", str(config)])
            written = sum(1 for _ in (work / "training-data/formatted/local__bench.jsonl").open())
            assert written == size, f"wrote {written} of {size}"
            print(
                f"{size:>9} {'resume-collector once':<24} {seconds:>8.2f} "
                f"{size / seconds:>10.0f} {rss / 1024:>8.1f}MB"
            )


if __name__ == "__main__":
    main()
