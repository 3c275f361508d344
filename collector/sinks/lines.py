"""What the writer hands every sink: each example rendered once, as bytes and the names that
place it.

The formatted sink and the chunk roller write the same training line and draw on the same
provenance. Encoding them once per example, not once per sink, is a good part of what the
service's own process spends per record (`collector/pipeline.py` `Writer`).

Where the chain runs in worker processes, they render too (`prerender`): the service's process
is the one serial stage, and what it does per record caps what any number of cores can give.
An `OutputLine` is therefore lean: a few names and three encoded lines, which cost the service a
fifth of what decoding the whole `Example` did. The one case a worker cannot render is near
dedupe: the writer reads the examples' texts and may move one into a cluster's group (and
with it its split), so the worker returns the examples themselves (`for_writer`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import msgspec

from collector.licences import OWN, attribution_text, authors_of, requires_attribution
from processors.config import ProcessingConfig
from processors.dedupe import own_group, set_exact_keys
from processors.records import Drop, Example, Kind, ProcessedBatch, Split
from processors.split import assign_split


class Author(msgspec.Struct):
    """Whom a licence asks to credit: the public profile name and its link, as the source
    shows them (Stack Exchange's display name and user page)."""

    name: str
    url: str = ""


class ProvenanceLine(msgspec.Struct, omit_defaults=True):
    """Where a training line came from, beside it in `{stem}__provenance.jsonl`."""

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


class PairLine(msgspec.Struct):
    """A bullet with no improved version yet, in `{stem}__pairs.jsonl` (the rewrite stage's
    input)."""

    bullet: str
    context: str
    source: str
    dataset: str
    record_id: str
    split: str
    # The pair's dedupe group: its rewrite joins the same group, hence the same split.
    group: str = ""
    # Where the bullet came from, so that its rewrite is credited as the bullet would be.
    license: str = ""
    url: str = ""
    authors: list[Author] = []


class PublishedProvenance(msgspec.Struct):
    """An example's provenance as published beside it (`provenance/{split}/...`, line for line
    with `data/{split}/...`): its origin, licence and task, and the credit its licence asks for.

    Nothing else: the record ids and groups are the collector's own (an id may spell a login or
    a file name), and a link or an author is given only where the licence requires credit: a
    link to a record of someone else's would point back at the person it is about. Every line
    has every field (empty where there is nothing to say), so that every file has the columns
    the card declares (collector/upload/card.py `PROVENANCE_FEATURES`).
    """

    source: str
    dataset: str
    license: str = ""
    task: str = ""
    url: str = ""
    authors: list[Author] = []
    attribution: str = ""
    rewritten_by: str = ""


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


def published_provenance(line: ProvenanceLine) -> PublishedProvenance:
    credited = requires_attribution(line.license)
    return PublishedProvenance(
        line.source,
        line.dataset,
        license=line.license,
        task=line.task,
        url=line.url if credited else "",
        authors=line.authors if credited else [],
        attribution=line.attribution if credited else "",
        rewritten_by=line.rewritten_by,
    )


def pair_line(example: Example, origin: ProvenanceLine) -> PairLine:
    return PairLine(
        bullet=str(example.meta.get("bullet", "")),
        context=str(example.meta.get("context", "")),
        source=example.source,
        dataset=example.dataset,
        record_id=example.record_id,
        split=example.split,
        group=example.group_key,
        license=origin.license,
        url=origin.url,
        authors=origin.authors,
    )


# array_like: a line crosses back from a worker process, and field names would be most of it.
class OutputLine(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An example as the writer and every sink take it: where it goes, what the writer counts
    of it, and its lines, each encoded once with its newline."""

    source: str
    dataset: str
    record_id: str
    kind: Kind
    rewritten: bool
    split: Split
    group: str  # the dedupe group its split follows
    dedupe_key: str  # its exact dedupe key (`processors.dedupe.exact_key`)
    # For the formatted sink: the training line (`{"messages": [...]}`), or a pair's `PairLine`.
    line: bytes
    provenance: bytes  # its `ProvenanceLine`; b"" for a pair
    published: bytes  # its `PublishedProvenance`, for the chunk's companion; b"" for a pair
    license: str  # SPDX id, counted per dataset (`license:{spdx}`)
    grounding: str  # Example.grounding: "masked", "kept" or ""
    residual: dict[str, int]  # Example.residual: what the anonymizer's last check replaced


def render(examples: list[Example]) -> list[OutputLine]:
    """Each example as the sinks take it (its split and group must be set already)."""
    encode = msgspec.json.Encoder().encode  # one per call: nothing shared between threads
    # The published provenance of a line whose licence asks for no credit is the same for all
    # lines of a dataset's task: encoded once per call, not once per line.
    published: dict[tuple[str, str, str, str, str], bytes] = {}
    out: list[OutputLine] = []
    for example in examples:
        origin = provenance_of(example)
        if example.kind == "pairs":
            line, provenance, about = encode(pair_line(example, origin)) + b"\n", b"", b""
        else:
            line = encode(example.training_line()) + b"\n"
            provenance = encode(origin) + b"\n"
            ident = (
                origin.source,
                origin.dataset,
                origin.license,
                origin.task,
                origin.rewritten_by,
            )
            about = published.get(ident, b"")
            if not about:
                about = encode(published_provenance(origin)) + b"\n"
                if not requires_attribution(origin.license):
                    published[ident] = about
        out.append(
            OutputLine(
                example.source,
                example.dataset,
                example.record_id,
                example.kind,
                example.rewritten,
                example.split,
                example.group_key,
                example.dedupe_key,
                line,
                provenance,
                about,
                origin.license,
                example.grounding,
                example.residual,
            )
        )
    return out


def grouped(
    lines: list[OutputLine], key: Callable[[OutputLine], Hashable]
) -> list[list[OutputLine]]:
    """`lines` in groups of equal `key` (first met, first), each in the batch's order.

    For the sinks, which hand each file its lines once per batch: a batch is mostly of one
    dataset and split, told here in C (`map`, `list.count`) rather than a line at a time."""
    keys = list(map(key, lines))
    if not keys:
        return []
    if keys.count(keys[0]) == len(keys):
        return [lines]
    groups: dict[Hashable, list[OutputLine]] = {}
    for ident, line in zip(keys, lines, strict=True):
        group = groups.get(ident)
        if group is None:
            group = groups[ident] = []
        group.append(line)
    return list(groups.values())


class RenderedBatch(msgspec.Struct):
    """A processed batch as a worker process returns it: each kept example already rendered
    (`prerender`), and the drops."""

    lines: list[OutputLine]
    drops: list[Drop]


def prerender(examples: list[Example], processing: ProcessingConfig) -> list[OutputLine]:
    """`render` ahead of the writer: each example's exact key, group (`own_group`) and split
    set as the writer sets them without near dedupe."""
    set_exact_keys(examples)
    for example in examples:
        example.group_key = own_group(example)
        example.split = assign_split(example.group_key, processing.split)
    return render(examples)


def renders_ahead(processing: ProcessingConfig) -> bool:
    """Whether a worker process renders the lines (`RenderedBatch`): not when near dedupe will
    read the examples' texts in the writer, and may move one into a cluster's group."""
    return not processing.dedupe.near


def for_writer(
    processed: ProcessedBatch, processing: ProcessingConfig
) -> ProcessedBatch | RenderedBatch:
    """What a worker process returns for a batch: its lines rendered (`RenderedBatch`), or the
    examples themselves with their exact keys set (`ProcessedBatch`): see `renders_ahead`."""
    if renders_ahead(processing):
        return RenderedBatch(prerender(processed.examples, processing), processed.drops)
    set_exact_keys(processed.examples)
    return processed
