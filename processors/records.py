"""The data that crosses stage boundaries: msgspec Structs, passed in batches.

`RawRecord` is what a source fetched, `Example` is one training line plus its provenance,
`Drop` is a record that will not be written, with the reason it was dropped.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant"]
Split = Literal["train", "validation", "test"]
# Where an example goes: a training line, or a bullet still waiting for its improved version.
Kind = Literal["train", "pairs"]


# gc=False: these hold strings, and lists and dicts decoded from JSON, never a cycle, so the
# garbage collector need not track the millions of them a run makes.


class RawRecord(msgspec.Struct, frozen=True, gc=False):
    """One record as a source fetched it, before any formatting."""

    source: str  # the configured source name, e.g. "inbox" or "se-workplace"
    dataset: str  # "{owner}/{dataset}" or a source-defined dataset name
    id: str  # stable within (source, dataset): used for provenance and dedupe
    payload: dict[str, Any]
    cursor: str = ""  # the position after this record, opaque to everything but its source
    fetched_at: float = 0.0
    meta: dict[str, Any] = {}  # source metadata (author names to anonymize, links, licence...)


class Message(msgspec.Struct, frozen=True, gc=False):
    role: Role
    content: str


class Example(msgspec.Struct, gc=False):
    """One line of training data plus its provenance (kept out of the training line)."""

    messages: list[Message]
    source: str
    dataset: str
    record_id: str
    kind: Kind = "train"
    rewritten: bool = False
    split: Split = "train"
    dedupe_key: str = ""
    group_key: str = ""
    meta: dict[str, Any] = {}
    # What the anonymizer's last check still found and replaced, by kind ({"name": 2}): each
    # is a miss of the detectors, counted in the clean report.
    residual: dict[str, int] = {}
    # What the grounding check did to an answer that states facts its input lacks: "masked"
    # (placeholders put in) or "kept" (only counted); "" when it was grounded or not checked.
    grounding: str = ""
    # The task type the line teaches (`processors/templates.py`: improve_bullet, star_bullet,
    # tailor_to_posting, summary_from_resume, critique_section, answer_question, chat): written
    # to the provenance file, never into the training line.
    task: str = ""

    def training_line(self) -> TrainingLine:
        return TrainingLine(messages=self.messages)


class TrainingLine(msgspec.Struct):
    """Exactly what a fine-tuning job reads: nothing but the messages."""

    messages: list[Message]


class Drop(msgspec.Struct, frozen=True, gc=False):
    """A record that is not written, and why. Every drop is counted by its reason."""

    source: str
    dataset: str
    record_id: str
    reason: str
    detail: str = ""


class ProcessedBatch(msgspec.Struct):
    """What the processor chain returns for one batch of raw records."""

    examples: list[Example]
    drops: list[Drop]
