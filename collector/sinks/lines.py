"""What the writer hands every sink: each example rendered once.

The formatted sink and the chunk roller write the same training line and draw on the same
provenance. Encoding them once per example, not once per sink, is a good part of what the
service's own process spends per record (`collector/pipeline.py` `Writer`).

Where the chain runs in worker processes, they render too (`prerender`): the service's process
is the one serial stage, and what it does per record caps what any number of cores can give.
A worker knows the final group of every line except one that near dedupe moves into another
group (`near_action = "group"`, decided in the writer), which the writer renders again.
"""

from __future__ import annotations

import msgspec

from collector.licences import OWN, attribution_text, authors_of, requires_attribution
from processors.config import SplitConfig
from processors.dedupe import own_group
from processors.records import Drop, Example
from processors.split import assign_split


class Author(msgspec.Struct):
    """Whom a licence asks to credit: the public profile name and its link, as the source
    shows them (Stack Exchange's display name and user page)."""

    name: str
    url: str = ""


class ProvenanceLine(msgspec.Struct, omit_defaults=True):
    source: str
    dataset: str
    record_id: str
    split: str
    group: str
    url: str = ""  # the record at its origin (a question, a repository file, a dataset page)
    license: str = ""  # SPDX id, as the origin states it (collector/licences.py)
    # Credited only where the licence requires it (CC BY*, ODC-By): personal data otherwise.
    authors: list[Author] = []
    attribution: str = ""  # the credit line: `by NAME (PROFILE) - URL - LICENCE`
    rewritten_by: str = ""  # the model that wrote the answer (a `__rewritten` line)
    task: str = ""  # the task type the line teaches (Example.task: improve_bullet, ...)


def provenance_of(example: Example) -> ProvenanceLine:
    """An example's provenance line: where it came from, under which licence, whom to credit."""
    meta = example.meta
    license = str(meta.get("license") or "")
    url = str(meta.get("url") or meta.get("link") or "")
    credited = authors_of(meta) if requires_attribution(license) else []
    own = license == OWN and not credited
    return ProvenanceLine(
        example.source,
        example.dataset,
        example.record_id,
        example.split,
        example.group_key,
        url=url,
        license=license,
        authors=[Author(a["name"], a["url"]) for a in credited],
        attribution="the operator's own material"
        if own
        else attribution_text(url, credited, license),
        rewritten_by=str(meta.get("rewrite_model") or "") if example.rewritten else "",
        task=example.task,
    )


class OutputLine(msgspec.Struct, gc=False):
    """An example as the sinks take it, with its split set: what every sink needs of it,
    computed once."""

    example: Example
    training: bytes  # the training line (`{"messages": [...]}`) and its newline; b"" for pairs
    provenance: ProvenanceLine


def render(examples: list[Example]) -> list[OutputLine]:
    """Each example's training line and provenance (their split must be set already)."""
    encode = msgspec.json.Encoder().encode  # one per call: nothing shared between threads
    return [
        OutputLine(
            example,
            b"" if example.kind == "pairs" else encode(example.training_line()) + b"\n",
            provenance_of(example),
        )
        for example in examples
    ]


class RenderedBatch(msgspec.Struct):
    """A processed batch as a worker process returns it: each kept example already rendered
    (`prerender`), and the drops."""

    lines: list[OutputLine]
    drops: list[Drop]


def prerender(examples: list[Example], split: SplitConfig) -> list[OutputLine]:
    """`render` ahead of the writer: each example's group (`own_group`) and split set as the
    writer sets them. The exact keys must be set (`processors.dedupe.set_exact_keys`)."""
    for example in examples:
        example.group_key = own_group(example)
        example.split = assign_split(example.group_key, split)
    return render(examples)
