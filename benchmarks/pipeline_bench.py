"""Pipeline benchmark: records/s and peak RSS of `resume-collector once` over an inbox.

Runs the real service as a subprocess for each size (default 200k and 1M records) and, as a
baseline in the same run on the same files, a bare loop that decodes each line and writes it back
out (no processing, no durability): the floor of what reading and writing JSONL costs here.
Peak RSS must not grow with input size: the bounded queues keep memory flat.

`--workers` and `--mode` run the service once per combination, side by side on the same files:
the processor chain in a pool of worker processes ("process") or in threads ("thread"), with N
workers (service.workers, service.worker_mode). Scaling is each rate over the 1-worker rate of
the same mode (the goal: >= 0.8 x N up to the cores available). Peak RSS is the service's own
plus its worker processes' (each measured alone, so the pages they share count once per process).

    .venv/bin/python benchmarks/pipeline_bench.py [--sizes 200000 1000000] \
        [--workers 1 2] [--mode process thread] [--repeat 3]

Each row is the median of `--repeat` rounds, each round running every worker count in turn, so
a machine whose speed drifts over minutes (a shared host: 20% between runs here) moves them
alike; the last column shows the spread of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

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


def pair_line(i: int) -> dict[str, str]:
    """The benchmarks' realistic record: a bullet and its rewrite (the `pairs` recipe)."""
    return {
        "original": f"Maintained service number {i} for the billing and payments team",
        "improved": f"Cut the error rate of billing service {i} by half within one year",
    }


def make_inbox(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    path = folder / "bench.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            handle.write(json.dumps(pair_line(i)) + "\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


# The machine's own scaling, the ceiling of the service's: the processor chain alone (no
# service, no transport) over `count` pair lines shared out to N forked processes that run at
# once. On a shared host two busy cores are often each slower than one busy core.
CHAIN_ALONE = """
import sys, time
from multiprocessing import get_context
sys.path.insert(0, sys.argv[3])
from benchmarks.pipeline_bench import pair_line
from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.records import RawRecord

chain = ProcessorChain(RecipeConfig(name="pairs"), ProcessingConfig())
chain.run([RawRecord("bench", "local/bench", "w", pair_line(0))])  # the lexicon, once

def share(part):
    start, count = part
    ids = range(start, start + count)
    records = [RawRecord("bench", "local/bench", str(i), pair_line(i)) for i in ids]
    begun = time.perf_counter()
    for i in range(0, count, 1024):
        chain.run(records[i : i + 1024])
    return time.perf_counter() - begun

processes, count = int(sys.argv[1]), int(sys.argv[2])
each = count // processes
with get_context("fork").Pool(processes) as pool:
    print(max(pool.map(share, [(n * each, each) for n in range(processes)])))
"""


def _scaling(rates: list[float], ones: list[float] | None) -> str:
    """The median over the rounds of each round's rate over the 1-worker rate of the same
    round: the two ran minutes apart at most, so a host's drift between rounds cancels out."""
    if not ones:
        return ""
    ratios = sorted(rate / one for rate, one in zip(rates, ones, strict=True))
    return f"{ratios[len(ratios) // 2]:.2f}x"


def chain_alone(processes: int, count: int) -> float:
    """Records/s of the chain alone in `processes` processes at once (see CHAIN_ALONE)."""
    done = subprocess.run(
        [sys.executable, "-c", CHAIN_ALONE, str(processes), str(count), str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    return count // processes * processes / float(done.stdout.split()[-1])


class Run(NamedTuple):
    seconds: float
    rss_kib: int  # the child's own peak RSS
    tree_rss_kib: int  # peak of the RSS summed over the child and its descendants (workers)
    tree_pss_kib: int  # the same in PSS: pages shared copy-on-write count once in all
    cpu_seconds: float  # user + system of the child and of its descendants (workers), sampled
    service_cpu_seconds: float  # user + system of the child alone (the service), sampled


def _tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _memory(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


def run(command: list[str]) -> Run:
    """Wall seconds and peak memory of one child process and its worker processes."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0, 0]
    cpu: dict[int, float] = {}  # the last CPU time seen of each descendant
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            tree = _tree(process.pid)
            rss, pss = _memory(tree)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            for pid in tree:
                cpu[pid] = max(cpu.get(pid, 0.0), _cpu_seconds(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    # The workers are the forkserver's children, never reaped by the service: sampled.
    # The service's own CPU as last sampled (its final 0.1 s may be missed); the total takes
    # the exact figure from wait4 instead.
    own = cpu.pop(process.pid, 0.0)
    total = usage.ru_utime + usage.ru_stime + sum(cpu.values())
    return Run(elapsed, usage.ru_maxrss, max(peak[0], usage.ru_maxrss), peak[1], total, own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mode", nargs="+", choices=["process", "thread"], default=["process"])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is shown")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"cores: {cores}, load average at start: {' '.join(map(str, os.getloadavg()))}")
    print(
        f"{'records':>9} {'what':<32} {'seconds':>8} {'records/s':>10} {'per core':>9} "
        f"{'scaling':>8} {'CPU us/rec':>10} {'service':>8} {'peak RSS':>10} "
        f"{'+workers':>10} {'PSS':>10} {'records/s of':>13}"
    )
    print(f"{'':>118} {'each round':>13}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            source = make_inbox(work / "inbox", size)
            base = run([sys.executable, "-c", BASELINE, str(source), str(work / "o.jsonl")])
            print(
                f"{size:>9} {'baseline: decode+write':<32} {base.seconds:>8.2f} "
                f"{size / base.seconds:>10.0f} {'':>9} {'':>8} "
                f"{base.cpu_seconds / size * 1e6:>10.1f} {'':>8} {base.rss_kib / 1024:>8.1f}MB"
            )
            for mode in args.mode:
                # Rounds of every worker count in turn, the median of each kept: a machine
                # whose speed drifts (a shared host) moves every count alike, not one of them.
                runs: dict[int, list[Run]] = {workers: [] for workers in args.workers}
                alone: dict[int, list[float]] = {workers: [] for workers in args.workers}
                for _ in range(args.repeat):
                    for workers in args.workers:
                        runs[workers].append(once(work, size, mode, workers))
                        if mode == "process":
                            alone[workers].append(chain_alone(workers, min(size, 100_000)))
                rates_of = {n: [size / r.seconds for r in rounds] for n, rounds in runs.items()}
                for workers in args.workers:
                    rates = sorted(rates_of[workers])
                    result = sorted(runs[workers], key=lambda r: r.seconds)[len(rates) // 2]
                    rate = size / result.seconds
                    scaling = _scaling(rates_of[workers], rates_of.get(1))
                    used = min(cores, workers + 1) if mode == "process" else min(cores, 2)
                    what = f"once, {workers} worker{'s' * (workers > 1)}, {mode}"
                    cpu = result.cpu_seconds / size * 1e6
                    spread = f"{rates[0]:.0f}-{rates[-1]:.0f}" if len(rates) > 1 else ""
                    print(
                        f"{size:>9} {what:<32} {result.seconds:>8.2f} {rate:>10.0f} "
                        f"{rate / used:>9.0f} {scaling:>8} {cpu:>10.1f} "
                        f"{result.service_cpu_seconds / size * 1e6:>8.1f} "
                        f"{result.rss_kib / 1024:>8.1f}MB "
                        f"{result.tree_rss_kib / 1024:>8.1f}MB {result.tree_pss_kib / 1024:>8.1f}MB"
                        f" {spread:>13}"
                    )
                if mode == "process":  # the machine's own scaling, measured in the same rounds
                    for workers in args.workers:
                        rates = sorted(alone[workers])
                        rate = rates[len(rates) // 2]
                        scaling = _scaling(alone[workers], alone.get(1))
                        what = f"chain alone, {workers} process{'es' * (workers > 1)}"
                        spread = f"{rates[0]:.0f}-{rates[-1]:.0f}" if len(rates) > 1 else ""
                        print(
                            f"{min(size, 100_000):>9} {what:<32} {'':>8} {rate:>10.0f} "
                            f"{rate / min(cores, workers):>9.0f} {scaling:>8} {'':>10} {'':>8} "
                            f"{'':>10} {'':>10} {'':>10} {spread:>13}"
                        )
    print(f"load average at end: {' '.join(map(str, os.getloadavg()))}")
    print("per core: records/s over the cores the run can use (the service + its workers)")
    print("CPU us/rec: CPU time of the service and its workers per record (start-up included);")
    print("  1e6 / it is the records/s per core an idle machine would give")
    print("service: the CPU us/rec of the service's own process (reading, writing, checkpoints)")
    print("chain alone: the processor chain with no service in N processes at once, on shares of")
    print("  the same records: the machine's own scaling, the ceiling of the service's")
    print(f"each row: the median of {args.repeat} rounds (rows of a round run one after another);")
    print("  scaling: the median of each round's rate over the same round's 1-worker rate")


def once(work: Path, size: int, mode: str, workers: int) -> Run:
    """`resume-collector once` over the inbox, from an empty data folder and state."""
    run_dir = work / f"{mode}-{workers}"
    config = work / f"{mode}-{workers}.toml"
    config.write_text(
        f"""
[service]
data_dir = "{run_dir}/training-data"
log_format = "json"
log_level = "warning"
workers = {workers}
worker_mode = "{mode}"

[state]
path = "{run_dir}/state.sqlite3"

[[sources]]
type = "inbox"
name = "bench"
path = "{work}/inbox"
recipe = {{ name = "pairs" }}
"""
    )
    result = run([sys.executable, "-m", "collector", "once", "--config", str(config)])
    written = sum(1 for _ in (run_dir / "training-data/formatted/local__bench.jsonl").open())
    assert written == size, f"wrote {written} of {size}"
    shutil.rmtree(run_dir)
    return result


if __name__ == "__main__":
    main()
