"""Formatted JSONL under `training-data/formatted/`, one file per dataset.

- `{owner}__{dataset}.jsonl`: training lines, nothing but `{"messages": [...]}`;
- `{owner}__{dataset}__rewritten.jsonl`: training lines whose answer an LLM wrote;
- `{owner}__{dataset}__pairs.jsonl`: bullets with no improved version yet (for the rewrite stage);
- `{owner}__{dataset}__provenance.jsonl`: one line per training line, in the same order: where
  it came from and its split, kept out of the training line itself;
- `{owner}__{dataset}__clean_report.json`: counts of records written and dropped, by reason.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from operator import attrgetter
from pathlib import Path

import msgspec
import structlog

from collector.diskfull import replacing
from collector.layout import formatted_dir
from collector.sinks.files import DurableFiles
from collector.sinks.lines import OutputLine, grouped
from collector.sinks.naming import output_name
from collector.state import StateStore
from processors.grounding import outcome_counts

# What places a line in its files: its output name and whether it is a rewrite.
_OUTPUT = attrgetter("source", "dataset", "rewritten")


class CleanReport(msgspec.Struct):
    file: str
    datasets: list[str]
    fetched: int
    written: int
    pairs: int
    dropped: int
    drop_reasons: dict[str, int]
    # What the anonymizer's last check still caught and replaced, by kind: misses of its
    # detectors that never reached a file.
    residual: dict[str, int] = {}
    # Answers that stated a figure or a name their input does not give (`processors/grounding.py`):
    # how many were masked (placeholders put in), dropped (also in drop_reasons) and kept.
    invented_facts: dict[str, int] = {}


def file_stem(source: str, dataset: str, rewritten: bool) -> str:
    """`{owner}__{dataset}`, with `__rewritten` for lines whose answer an LLM wrote."""
    name = output_name(source, dataset)
    return f"{name}__rewritten" if rewritten else name


class FormattedSink:
    name = "formatted"

    def __init__(
        self, data_dir: Path, state: StateStore, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self.dir = formatted_dir(data_dir)
        self.state = state
        self.files = DurableFiles(data_dir, state, log)
        self._touched: set[str] = set()
        self._keys: dict[tuple[str, str, bool], tuple[str, str, str, str]] = {}

    def _file_keys(self, line: OutputLine) -> tuple[str, str, str, str]:
        """(name, training, provenance, pairs) file keys of a line, cached: a hot path."""
        ident = (line.source, line.dataset, line.rewritten)
        keys = self._keys.get(ident)
        if keys is None:
            name, stem = output_name(line.source, line.dataset), file_stem(*ident)
            keys = self._keys[ident] = (
                name,
                self.files.key(self.dir / f"{stem}.jsonl"),
                self.files.key(self.dir / f"{stem}__provenance.jsonl"),
                self.files.key(self.dir / f"{stem}__pairs.jsonl"),
            )
        return keys

    async def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.files.recover, self.dir)

    @property
    def pending_bytes(self) -> int:
        return self.files.pending_bytes

    def write(self, lines: list[OutputLine]) -> None:
        # Each file's lines for the whole batch, handed to it at once: `append` per line was a
        # good part of the cost of a line. A group's lines all go to the same files.
        for group in grouped(lines, _OUTPUT):
            name, training, provenance, pairs = self._file_keys(group[0])
            self._touched.add(name)
            kept = [line for line in group if line.kind != "pairs"]
            if len(kept) != len(group):
                self.files.extend(pairs, [line.line for line in group if line.kind == "pairs"])
            if kept:
                self.files.extend(training, [line.line for line in kept])
                self.files.extend(provenance, [line.provenance for line in kept])

    async def flush(self) -> dict[str, dict[str, str]]:
        return {"files": await asyncio.to_thread(self.files.flush)}

    def note_drops(self, source: str, dataset: str) -> None:
        """A dataset with drops only still gets its clean report."""
        self._touched.add(output_name(source, dataset))

    async def committed(self) -> None:
        if self._touched:
            touched, self._touched = self._touched, set()
            try:
                await asyncio.to_thread(self._write_reports, touched)
            except OSError:  # a full disk: written at the next try, the counts are committed
                self._touched |= touched
                raise

    def _write_reports(self, names: set[str]) -> None:
        # A run whose every record was dropped has written no line, so no folder yet.
        self.dir.mkdir(parents=True, exist_ok=True)
        totals: dict[str, Counter[str]] = {}
        datasets: dict[str, set[str]] = {}
        for source, dataset, what, n in self.state.counts():
            name = output_name(source, dataset)
            if name in names:
                totals.setdefault(name, Counter())[what] += n
                datasets.setdefault(name, set()).add(dataset)
        for name, counts in totals.items():
            reasons = {
                k.removeprefix("drop:"): v
                for k, v in sorted(counts.items())
                if k.startswith("drop:")
            }
            report = CleanReport(
                file=f"{name}.jsonl",
                datasets=sorted(datasets[name]),
                fetched=counts["fetched"],
                written=counts["written"],
                pairs=counts["pairs"],
                dropped=sum(reasons.values()),
                drop_reasons=reasons,
                residual={
                    k.removeprefix("residual:"): v
                    for k, v in sorted(counts.items())
                    if k.startswith("residual:")
                },
                invented_facts=outcome_counts(counts),
            )
            path = self.dir / f"{name}__clean_report.json"
            tmp = path.with_suffix(".json.tmp")
            with replacing(tmp, path):
                tmp.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
                os.replace(tmp, path)

    async def close(self) -> None:
        self.files.close()
