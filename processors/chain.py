"""The per-record stages run by the service's workers:
(credit check) -> format -> repair encoding -> anonymize -> ground -> validate -> quality.

Each step after formatting is a `Step`: `run(example)` changes the example in place and returns
its drop reason, or None.

A record whose licence's credit would name the person it is about is not formatted at all
(processors/credit.py).

Deduplication and splitting depend on what came before, so the writer runs them in order.
Encoding is repaired before anonymizing (a name or an email broken by mojibake would slip
through); grounding compares an answer with its input once both are anonymized (a name is then
`[NAME]` on both sides) and may put placeholders in; validation runs last, on the text that
will be written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from processors.anonymize.anonymizer import Anonymizer
from processors.config import ProcessingConfig, RecipeConfig
from processors.credit import REASON as CREDIT_REASON
from processors.credit import credit_identifies_subject
from processors.formatters import build_formatter
from processors.grounding import GroundingCheck
from processors.quality import QualityCheck
from processors.records import Drop, Example, ProcessedBatch, RawRecord
from processors.validate import EncodingRepair, Validator


class Step(Protocol):
    """One per-example step: changes the example in place, and says why it drops it, if it does.

    A step returns its drop reason rather than counting it: the reasons travel with the batch to
    the writer, which counts them in the same transaction as the batch's output and cursor
    (a count kept in a worker process would be lost with it, or counted twice on a replay).
    """

    name: str

    def run(self, example: Example) -> str | None: ...


class ExampleStages:
    """The steps after formatting, in order; usable on examples read from a file."""

    def __init__(self, config: ProcessingConfig, grounding: GroundingCheck | None = None) -> None:
        """`grounding`: the check of the recipe's answers (None: its answers are not checked)."""
        self.repair = EncodingRepair(config.validate)
        self.anonymizer = Anonymizer(config.anonymize)
        self.grounding = grounding
        self.quality = QualityCheck(config.quality)
        self.validator = Validator(config.validate)
        steps: list[Step | None] = [
            self.repair,
            self.anonymizer,
            grounding,
            self.validator,
            self.quality,
        ]
        self.steps: tuple[Step, ...] = tuple(step for step in steps if step is not None)

    def run(self, example: Example) -> str | None:
        """Runs every step on the example in place; the first drop reason, or None to keep it."""
        return self.run_all([example])[0]

    def run_all(self, examples: list[Example]) -> list[str | None]:
        """`run` on each example, a step at a time over all of them: each one's drop reason,
        or None. The same results (no step carries anything from one example to the next but
        caches and counts), in about three quarters of the time: one step's code and data stay
        in the CPU's caches over a whole batch, where going through every step for each example
        in turn evicts them at every step."""
        reasons: list[str | None] = [None] * len(examples)
        alive: Sequence[int] = range(len(examples))
        for step in self.steps:
            run = step.run
            still: list[int] = []
            for i in alive:
                reason = run(examples[i])
                if reason is None:
                    still.append(i)
                else:
                    reasons[i] = reason
            alive = still
        return reasons


class ProcessorChain:
    def __init__(
        self,
        recipe: RecipeConfig,
        config: ProcessingConfig,
        grounding: GroundingCheck | None = None,
    ) -> None:
        """`grounding`: a check of the answers other than the recipe's own."""
        self.formatter = build_formatter(recipe)
        self.stages = ExampleStages(config, grounding or GroundingCheck.for_recipe(recipe))

    def run(self, records: list[RawRecord]) -> ProcessedBatch:
        out = ProcessedBatch(examples=[], drops=[])
        format_record = self.formatter.format  # looked up once a batch rather than once a record
        examples: list[Example] = []
        # Per record: the drops its formatting gave and the range of its examples in
        # `examples`, so that the batch's drops come in the order a record at a time gives.
        made: list[tuple[list[Drop], int, int]] = []
        for record in records:
            if credit_identifies_subject(record.meta):
                credit = Drop(record.source, record.dataset, record.id, CREDIT_REASON)
                made.append(([credit], 0, 0))
                continue
            formatted, drops = format_record(record)
            start = len(examples)
            examples += formatted
            made.append((drops, start, len(examples)))
        reasons = self.stages.run_all(examples)
        kept, dropped = out.examples, out.drops
        for drops, start, end in made:
            if drops:
                dropped.extend(drops)
            for i in range(start, end):
                example, reason = examples[i], reasons[i]
                if reason is None:
                    kept.append(example)
                else:
                    dropped.append(Drop(example.source, example.dataset, example.record_id, reason))
        return out
