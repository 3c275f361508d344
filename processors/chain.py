"""The per-record stages run by the service's workers: format -> (anonymize) -> validate.

Deduplication and splitting depend on what came before, so the writer runs them in order.
"""

from __future__ import annotations

from processors.config import ProcessingConfig, RecipeConfig
from processors.formatters import build_formatter
from processors.records import Drop, ProcessedBatch, RawRecord
from processors.validate import Validator


class ProcessorChain:
    def __init__(self, recipe: RecipeConfig, config: ProcessingConfig) -> None:
        self.formatter = build_formatter(recipe)
        self.validator = Validator(config.validate)

    def run(self, records: list[RawRecord]) -> ProcessedBatch:
        out = ProcessedBatch(examples=[], drops=[])
        for record in records:
            examples, drops = self.formatter.format(record)
            out.drops.extend(drops)
            for example in examples:
                reason = self.validator.check(example)
                if reason is None:
                    out.examples.append(example)
                else:
                    out.drops.append(
                        Drop(example.source, example.dataset, example.record_id, reason)
                    )
        return out
