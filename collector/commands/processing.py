"""Processing commands on existing files: `process`, `anonymize`, `validate`.

- `resume-collector process IN.jsonl... --out DIR`: repair, anonymize, validate, dedupe and
  split chat JSONL files. Writes `DIR/{train,validation,test}/{name}.jsonl` (nothing but
  `{"messages": [...]}`) and `DIR/{name}__clean_report.json`, where `{name}` is the input file's
  stem. The dedupe index and the counts live in `DIR/state.sqlite3`, so a second run on the
  same folder adds only what is new, and dedupe holds across all the files processed into it.
- `resume-collector anonymize [FILE]`: text lines in (stdin by default), anonymized lines out,
  one for one: a filter. With `--jsonl` each line is a whole document: a JSON string, or an
  object with a `text` field (its other fields kept), written back in the same shape.
- `resume-collector validate FILE`: checks every line, prints the report, exits 1 when any
  line fails (2 when the file cannot be read).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from collector.commands import Subparsers, print_config_error
from collector.config import ConfigError, load_config
from processors.config import AnonymizeConfig, DedupeConfig, ProcessingConfig, RecipeConfig
from processors.records import Example

# The processors are imported by the commands that run them, not here: every command of the
# command line is registered on each start, the service's included.
if TYPE_CHECKING:
    from collector.sinks.formatted import CleanReport
    from processors.anonymize.anonymizer import Anonymizer
    from processors.chain import ExampleStages
    from processors.dedupe import Deduplicator

SPLITS = ("train", "validation", "test")
BATCH = 2000
SOURCE = "file"


def _processing_config(args: argparse.Namespace) -> ProcessingConfig:
    config = load_config(args.config).processing if args.config else ProcessingConfig()
    dedupe = config.dedupe
    if args.near or args.threshold is not None:
        dedupe = msgspec.structs.replace(
            dedupe,
            near=True,
            threshold=dedupe.threshold if args.threshold is None else args.threshold,
        )
    if args.no_near:
        dedupe = msgspec.structs.replace(dedupe, near=False)
    anonymize = config.anonymize
    if args.no_anonymize:
        anonymize = msgspec.structs.replace(anonymize, enabled=False)
    return msgspec.structs.replace(config, dedupe=dedupe, anonymize=anonymize)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


class _Outputs:
    """Append-only split files of one input, made durable before the state commit."""

    def __init__(self, out: Path, name: str) -> None:
        self.paths = {split: out / split / f"{name}.jsonl" for split in SPLITS}
        self.handles: dict[str, IO[bytes]] = {}

    def write(self, split: str, line: bytes) -> None:
        handle = self.handles.get(split)
        if handle is None:
            self.paths[split].parent.mkdir(parents=True, exist_ok=True)
            handle = self.handles[split] = self.paths[split].open("ab")
        handle.write(line)

    def sync(self) -> None:
        for handle in self.handles.values():
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _process(args: argparse.Namespace) -> int:
    from collector.state.sqlite import SqliteStateStore
    from processors.chain import ExampleStages
    from processors.dedupe import Deduplicator
    from processors.grounding import GroundingCheck

    try:
        config = _processing_config(args)
        deduplicator_config: DedupeConfig = config.dedupe
    except ConfigError as error:
        return print_config_error(error)
    inputs = [Path(p) for p in args.inputs]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        print(f"cannot read {', '.join(missing)}: no such file", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = SqliteStateStore(out / "state.sqlite3")
    # Chat lines: those whose user asks for a rewrite are grounded, questions are not.
    stages = ExampleStages(config, GroundingCheck.for_recipe(RecipeConfig(name="chat")))
    try:
        deduplicator = Deduplicator(deduplicator_config, state)
    except ValueError as error:
        print(f"dedupe: {error}", file=sys.stderr)
        return 2
    runner = _FileRun(stages, deduplicator, state, config)
    try:
        for path in inputs:
            report = runner.process(path, out)
            print(
                f"{path}: {report.fetched} read, {report.written} written, "
                f"{report.dropped} dropped"
                + "".join(f"\n  dropped {r}: {n}" for r, n in report.drop_reasons.items())
            )
    finally:
        state.close()
    return 0


class _FileRun:
    """One input file through the stages, in batches: each batch is durable, then committed."""

    def __init__(
        self,
        stages: ExampleStages,
        deduplicator: Deduplicator,
        state: Any,
        config: ProcessingConfig,
    ) -> None:
        self.stages = stages
        self.deduplicator = deduplicator
        self.state = state
        self.config = config
        self.decoder = msgspec.json.Decoder()
        self.encoder = msgspec.json.Encoder()

    def process(self, path: Path, out: Path) -> CleanReport:
        name = path.stem
        outputs = _Outputs(out, name)
        counts: Counter[str] = Counter()
        batch: list[Example] = []
        try:
            for number, raw in _lines(path):
                counts["fetched"] += 1
                example = self._example(raw, counts)
                if example is None:
                    continue
                example.dataset, example.record_id = name, f"{name}:{number}"
                batch.append(example)
                if len(batch) >= BATCH:
                    self._flush(self._kept(batch, counts), counts, outputs, name)
                    batch = []
            self._flush(self._kept(batch, counts), counts, outputs, name)
        finally:
            outputs.close()
        return _write_report(self.state, out, name)

    def _kept(self, batch: list[Example], counts: Counter[str]) -> list[Example]:
        """The examples the steps keep (run a step at a time over the batch); drops counted."""
        kept = []
        for example, reason in zip(batch, self.stages.run_all(batch), strict=True):
            if reason is None:
                kept.append(example)
            else:
                counts[f"drop:{reason}"] += 1
        return kept

    def _example(self, raw: bytes, counts: Counter[str]) -> Example | None:
        try:
            line = self.decoder.decode(raw)
        except msgspec.DecodeError:
            counts["drop:invalid_json"] += 1
            return None
        example, problem = self.stages.validator.check_line(line)
        if example is None:
            counts[f"drop:{problem}"] += 1
        return example

    def _flush(
        self, batch: list[Example], counts: Counter[str], outputs: _Outputs, name: str
    ) -> None:
        from processors.grounding import COUNTER_PREFIX
        from processors.split import assign_split

        kept, duplicates = self.deduplicator.filter(batch)
        for _example, reason in duplicates:
            counts[f"drop:{reason}"] += 1
        for example in kept:
            example.split = assign_split(example.group_key, self.config.split)
            outputs.write(example.split, self.encoder.encode(example.training_line()) + b"\n")
            counts["written"] += 1
            if example.grounding:
                counts[f"{COUNTER_PREFIX}{example.grounding}"] += 1
        outputs.sync()
        totals = {(SOURCE, name, what): n for what, n in counts.items()}
        self.state.commit(self.deduplicator.take_pending(), totals)
        self.deduplicator.committed()
        counts.clear()


def _write_report(state: Any, out: Path, name: str) -> CleanReport:
    from collector.sinks.formatted import CleanReport
    from processors.grounding import outcome_counts

    counts: Counter[str] = Counter()
    for source, dataset, what, n in state.counts():
        if source == SOURCE and dataset == name:
            counts[what] += n
    reasons = {
        k.removeprefix("drop:"): v for k, v in sorted(counts.items()) if k.startswith("drop:")
    }
    report = CleanReport(
        file=f"{name}.jsonl",
        datasets=[name],
        fetched=counts["fetched"],
        written=counts["written"],
        pairs=0,
        dropped=sum(reasons.values()),
        drop_reasons=reasons,
        invented_facts=outcome_counts(counts),
    )
    path = out / f"{name}__clean_report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    os.replace(tmp, path)
    return report


def _anonymize(args: argparse.Namespace) -> int:
    from processors.anonymize.anonymizer import Anonymizer
    from processors.anonymize.spans import RecordNames

    try:
        config = load_config(args.config).processing.anonymize if args.config else None
    except ConfigError as error:
        return print_config_error(error)
    config = config or AnonymizeConfig()
    if args.consistent:
        config = msgspec.structs.replace(config, consistent_names=True)
    try:
        anonymizer = Anonymizer(config)
    except ValueError as error:
        print(f"anonymize: {error}", file=sys.stderr)
        return 2
    known = tuple(args.known_name or ())
    try:
        source = open(args.file, "rb") if args.file else sys.stdin.buffer  # noqa: SIM115
    except OSError as error:
        print(f"cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    out = sys.stdout
    interactive = out.isatty()
    record = RecordNames(numbered=config.consistent_names)
    if args.jsonl:
        try:
            return _anonymize_jsonl(anonymizer, source, out, known, record)
        finally:
            if args.file:
                source.close()
    try:
        for raw in source:
            text = raw.decode("utf-8", errors="replace")
            body = text.rstrip("\r\n")
            ending = text[len(body) :]
            if config.consistent_names:
                line = anonymizer.anonymize(body, known, record=record)
            else:
                line = anonymizer.anonymize(body, known)
            out.write(line + (ending.replace("\r\n", "\n") or ""))
            if interactive:
                out.flush()
    except BrokenPipeError:  # `... | head`: the reader is gone, nothing left to do
        sys.stderr.close()
        return 0
    finally:
        if args.file:
            source.close()
    out.flush()
    return 0


def _anonymize_jsonl(
    anonymizer: Anonymizer, source: IO[bytes], out: IO[str], known: tuple[str, ...], record: Any
) -> int:
    """One document a line, in the shape it came: a line that is neither a JSON string nor an
    object with a string `text` is an error naming the line (exit 1); the others go on."""
    failed = 0
    try:
        for number, raw in enumerate(source, 1):
            if not raw.strip():
                out.write(raw.decode("utf-8", errors="replace"))
                continue
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError as error:
                print(f"line {number}: not JSON ({error})", file=sys.stderr)
                failed += 1
                continue
            numbered = anonymizer.config.consistent_names
            if isinstance(value, str):
                line = msgspec.json.encode(
                    anonymizer.anonymize(value, known, record=record if numbered else None)
                )
            elif isinstance(value, dict) and isinstance(value.get("text"), str):
                text = anonymizer.anonymize(
                    value["text"], known, record=record if numbered else None
                )
                line = msgspec.json.encode({**value, "text": text})
            else:
                print(f"line {number}: not a string nor an object with a text", file=sys.stderr)
                failed += 1
                continue
            out.write(line.decode() + "\n")
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    out.flush()
    return 1 if failed else 0


class ValidationReport(msgspec.Struct):
    file: str
    lines: int
    valid: int
    invalid: int
    repaired: int
    reasons: dict[str, int]
    # reason -> the first line numbers that failed with it
    examples: dict[str, list[int]]


def _validate(args: argparse.Namespace) -> int:
    from processors.validate import EncodingRepair, Validator

    try:
        config = load_config(args.config).processing.validate if args.config else None
    except ConfigError as error:
        return print_config_error(error)
    path = Path(args.file)
    if not path.is_file():
        print(f"cannot read {path}: no such file", file=sys.stderr)
        return 2
    processing = ProcessingConfig() if config is None else ProcessingConfig(validate=config)
    validator = Validator(processing.validate)
    repair = EncodingRepair(processing.validate)
    decoder = msgspec.json.Decoder()
    reasons: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    lines = valid = 0
    for number, raw in _lines(path):
        lines += 1
        reason: str | None
        try:
            line = decoder.decode(raw)
        except msgspec.DecodeError:
            reason = "invalid_json"
        else:
            example, reason = validator.check_line(line)
            if example is not None:
                repair.run(example)
                reason = validator.run(example)
        if reason is None:
            valid += 1
            continue
        reasons[reason] += 1
        first = examples.setdefault(reason, [])
        if len(first) < 5:
            first.append(number)
    report = ValidationReport(
        file=str(path),
        lines=lines,
        valid=valid,
        invalid=lines - valid,
        repaired=repair.repaired,
        reasons=dict(reasons.most_common()),
        examples=examples,
    )
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode())
    else:
        print(f"{path}: {lines} lines, {valid} valid, {lines - valid} invalid")
        if report.repaired:
            print(f"  {report.repaired} lines need an encoding repair (process repairs them)")
        for reason, n in report.reasons.items():
            where = ", ".join(str(i) for i in examples[reason])
            print(f"  {reason}: {n} (lines {where}{', ...' if n > len(examples[reason]) else ''})")
    return 1 if lines - valid else 0


def register(commands: Subparsers) -> None:
    process = commands.add_parser(
        "process",
        help="repair, anonymize, validate, dedupe and split chat JSONL files into a folder",
    )
    process.add_argument("inputs", nargs="+", metavar="IN.jsonl")
    process.add_argument("--out", "-o", required=True, help="output folder (holds the state)")
    process.add_argument("--config", "-c", help="take [processing] from this service config")
    process.add_argument("--near", action="store_true", help="near-duplicate dedupe on")
    process.add_argument("--no-near", action="store_true", help="near-duplicate dedupe off")
    process.add_argument("--threshold", type=float, help="near-duplicate Jaccard threshold")
    process.add_argument("--no-anonymize", action="store_true", help="keep the text as it is")
    process.set_defaults(func=_process)

    anonymize = commands.add_parser(
        "anonymize", help="anonymize text lines from FILE or stdin to stdout, one for one"
    )
    anonymize.add_argument("file", nargs="?", help="text file (default: stdin)")
    anonymize.add_argument("--config", "-c", help="take [processing.anonymize] from this config")
    anonymize.add_argument(
        "--known-name", action="append", help="a name to replace wherever it appears (repeat)"
    )
    anonymize.add_argument(
        "--consistent", action="store_true", help="[NAME_1], [NAME_2]... across the whole input"
    )
    anonymize.add_argument(
        "--jsonl",
        action="store_true",
        help="each line a whole document: a JSON string or an object with a `text` field",
    )
    anonymize.set_defaults(func=_anonymize)

    validate = commands.add_parser(
        "validate", help="check a chat JSONL file; print the report; exit 1 if any line fails"
    )
    validate.add_argument("file")
    validate.add_argument("--config", "-c", help="take [processing.validate] from this config")
    validate.add_argument("--json", action="store_true", help="machine-readable report")
    validate.set_defaults(func=_validate)
