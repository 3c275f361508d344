"""Chain steps benchmark: CPU per record of the processor chain and of each of its steps.

Two fixed corpora: the pipeline benchmark's pair lines (`pairs` recipe) and chat records with
personal data and re-posts (`processors_bench.chain_records`, `chat` recipe), 20k each. Prints
CPU us per record for the whole chain (format included) and the wall us of each step on the
first 5k, then the sha256 of everything the chain produced: a change meant to be faster only
must leave that sha256 as it was (run this on both trees, one after the other).

    .venv/bin/python benchmarks/chain_steps_bench.py [--records 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pipeline_bench import pair_line
from benchmarks.processors_bench import chain_records
from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.records import RawRecord

TIMED = 5000


def pair_lines(count: int) -> list[RawRecord]:
    return [RawRecord("bench", "local/bench", str(i), pair_line(i)) for i in range(count)]


def chat_records(count: int) -> list[RawRecord]:
    return [record for batch in chain_records(count, 1000) for record in batch]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    digest = hashlib.sha256()
    encode = msgspec.json.Encoder().encode
    corpora = (
        (RecipeConfig(name="pairs"), pair_lines(args.records)),
        (RecipeConfig(name="chat"), chat_records(args.records)),
    )
    for recipe, records in corpora:
        chain = ProcessorChain(recipe, ProcessingConfig())
        chain.run(records[:200])  # warm: the lexicon and the language model load on first use
        start = time.process_time()
        out = chain.run(records)
        cpu = time.process_time() - start
        for item in (*out.examples, *out.drops):
            digest.update(encode(item) + b"\n")
        steps: dict[str, float] = {"format": 0.0}
        for record in records[:TIMED]:
            began = time.perf_counter()
            examples, _ = chain.formatter.format(record)
            steps["format"] += time.perf_counter() - began
            for example in examples:
                for step in chain.stages.steps:
                    began = time.perf_counter()
                    reason = step.run(example)
                    steps[step.name] = steps.get(step.name, 0.0) + time.perf_counter() - began
                    if reason is not None:
                        break
        per_step = "  ".join(
            f"{name} {seconds / TIMED * 1e6:.1f}" for name, seconds in steps.items()
        )
        print(
            f"{recipe.name:5s}  {len(records)} records"
            f"  {cpu / len(records) * 1e6:6.1f} us CPU a record"
            f"  kept {len(out.examples)}  dropped {len(out.drops)}"
        )
        print(f"       per step (us wall, first {TIMED}): {per_step}")
    print(f"sha256 of the output: {digest.hexdigest()}")


if __name__ == "__main__":
    main()
