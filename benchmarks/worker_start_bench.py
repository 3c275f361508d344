"""How to start the processor chain's worker processes: forkserver, spawn or fork, side by side.

For each start method: the seconds until N workers have the anonymizer's lexicon loaded and have
processed a first batch, each worker's private memory (USS: what it does not share) and its
PSS, and the records/s of the warm pool. `forkserver` is what collector/workers.py uses: the
lexicon is loaded once in the forkserver (collector/workerboot.py) and shared copy-on-write;
`spawn` loads it in every worker; `fork` copies the service process after it loaded the lexicon.

    .venv/bin/python benchmarks/worker_start_bench.py [--workers 2] [--records 20000]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pipeline_bench import pair_line
from collector import workers
from processors.config import ProcessingConfig, RecipeConfig
from processors.records import RawRecord


def smaps(pid: int) -> tuple[int, int]:
    """USS and PSS of a process, KiB."""
    uss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            uss += int(line.split()[1])
        elif line.startswith("Pss:"):
            pss += int(line.split()[1])
    return uss, pss


def load_in_worker(_: int) -> int:
    from processors.anonymize.lexicon import load_lexicon

    load_lexicon()
    return os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    key = msgspec.msgpack.encode((RecipeConfig(name="pairs"), ProcessingConfig()))
    records = [RawRecord("bench", "local/bench", str(i), pair_line(i)) for i in range(args.records)]
    batches = [msgspec.msgpack.encode(records[i : i + 500]) for i in range(0, len(records), 500)]
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'start method':<28} {'ready in':>9} {'USS/worker':>11} {'PSS/worker':>11} {'rec/s':>8}"
    )
    for method in ("forkserver", "spawn", "fork"):
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["collector.workerboot"])
        elif method == "fork":
            load_in_worker(0)  # the service would have it loaded before it forks
            gc.collect()
            gc.freeze()
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            list(pool.map(load_in_worker, range(args.workers)))
            list(pool.map(workers._run_in_worker, [key] * args.workers, batches[: args.workers]))
            ready = time.perf_counter() - started
            began = time.perf_counter()
            list(pool.map(workers._run_in_worker, [key] * len(batches), batches))
            rate = len(records) / (time.perf_counter() - began)
            memory = [smaps(pid) for pid in (pool._processes or {})]
        uss = sum(m[0] for m in memory) / len(memory) / 1024
        pss = sum(m[1] for m in memory) / len(memory) / 1024
        label = {"forkserver": "forkserver (preloaded)", "fork": "fork (after loading)"}
        print(
            f"{label.get(method, method):<28} {ready:>8.2f}s {uss:>9.1f}MB {pss:>9.1f}MB "
            f"{rate:>8.0f}"
        )


if __name__ == "__main__":
    main()
