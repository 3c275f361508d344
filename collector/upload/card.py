"""The dataset card (`README.md`): YAML front matter the Hub and `datasets` read, and a body.

The front matter holds `configs` with `data_files` per split (so `load_dataset` finds
train/validation/test without guessing), the licenses of the sources, a size category, the
language and task. The body lists the sources, records per split and source, drop reasons from
the state counters, and the anonymization, dedupe and split settings in force. The card is
built from the ledger alone, never from the files, and carries no timestamps: the same ledger
gives the same bytes, so a retried commit finds nothing to change.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from collector.config import Config
from collector.licences import UNKNOWN, hub_license, requires_attribution, spdx
from collector.upload.chunks import DATA, PROVENANCE
from collector.upload.ledger import ChunkEntry
from processors.grounding import COUNTER_PREFIX as GROUNDING_PREFIX
from processors.grounding import DROP_REASON as GROUNDING_DROP
from processors.grounding import outcome_counts

SPLITS = ("train", "validation", "test")
LICENSE_PREFIX = "license:"  # counters of the licences written records stated (the pipeline's)
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def _strings(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "dtype": "string"} for name in names]


# The columns of each config, declared so that `datasets` casts every file to them instead of
# guessing from the first one (an `authors` list that is empty in one file and not in another).
MESSAGES_FEATURES = [{"name": "messages", "list": _strings("role", "content")}]
PROVENANCE_FEATURES = [
    *_strings("source", "dataset", "license", "task", "url"),
    {"name": "authors", "list": _strings("name", "url")},
    *_strings("attribution", "rewritten_by"),
]


def size_category(records: int) -> str:
    for bound, name in _SIZES:
        if records < bound:
            return name
    return "n>1B"


def split_order(splits: Iterable[str]) -> list[str]:
    present = set(splits)
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]], numeric_from: int) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _settings(struct: msgspec.Struct) -> str:
    fields: dict[str, Any] = msgspec.structs.asdict(struct)
    return ", ".join(f"`{k}` = {msgspec.json.encode(v).decode()}" for k, v in fields.items())


def build_card(
    config: Config,
    entries: list[ChunkEntry],
    counts: list[tuple[str, str, str, int]],
) -> str:
    """The card for a repo that holds exactly `entries` (committed, or in this commit)."""
    # The card's metadata class alone, here rather than at the top: huggingface_hub's
    # `DatasetCard` imports its whole API client (0.15 s, at the start, or, imported here, at
    # the end of a `once` with every worker idle). The text it renders is the metadata's YAML
    # between `---` lines, then the body: exactly what is built here (tests/test_upload.py
    # reads it back with `DatasetCard`).
    from huggingface_hub.repocard_data import DatasetCardData

    upload = config.upload
    described = {e.path.removeprefix(PROVENANCE) for e in entries if e.folder == PROVENANCE}
    entries = [e for e in entries if e.folder == DATA]  # what the counts are of
    configured = {s.name: spdx(s.license) for s in config.sources}
    stated: dict[tuple[str, str], set[str]] = defaultdict(set)
    for source, dataset, what, n in counts:
        if what.startswith(LICENSE_PREFIX) and n > 0:
            stated[(source, dataset)].add(what.removeprefix(LICENSE_PREFIX))

    def licences_of(source: str, dataset: str) -> list[str]:
        """What the records said (`license:{spdx}` counters), else the configured licence."""
        found = stated.get((source, dataset)) or {configured.get(source) or UNKNOWN}
        return sorted(found)

    files: Counter[str] = Counter()
    per_split: Counter[str] = Counter()
    per_origin: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for entry in entries:
        files[entry.split] += 1
        per_split[entry.split] += entry.records
        for origin in entry.origins:
            per_origin[(origin.source, origin.dataset)][entry.split] += origin.records
    splits = split_order(per_split)
    total = sum(per_split.values())
    used = sorted(
        {
            hub_license(x)
            for origin in per_origin
            for part in licences_of(*origin)
            for x in part.split(" AND ")
        }
    )
    license_value: str | list[str] = used[0] if len(used) == 1 else (used or ["unknown"])
    extra: dict[str, Any] = {"tags": ["resume", "instruction-tuning", "chat"]}
    if splits:
        extra["configs"] = [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}/*.jsonl"} for s in splits],
            }
        ]
    provenance_splits = split_order(
        e.split for e in entries if e.path.removeprefix(DATA) in described
    )
    if splits:
        extra["dataset_info"] = [{"config_name": "default", "features": MESSAGES_FEATURES}]
    if provenance_splits:
        extra["dataset_info"].append({"config_name": "provenance", "features": PROVENANCE_FEATURES})
        extra["configs"].append(
            {
                "config_name": "provenance",
                "data_files": [
                    {"split": s, "path": f"provenance/{s}/*.jsonl"} for s in provenance_splits
                ],
            }
        )
    data = DatasetCardData(
        pretty_name=upload.pretty_name,
        language=list(upload.language),
        license=license_value,
        size_categories=[size_category(total)],
        task_categories=["text-generation"],
        **extra,
    )

    body = [f"# {upload.pretty_name}", ""]
    body += [
        "Conversations for fine-tuning a model to write and improve resumes, collected and",
        "cleaned by resume-collector. Every line of every file is one example,",
        '`{"messages": [{"role": ..., "content": ...}, ...]}`, and nothing else. Files are',
        "immutable chunks named `data/{split}/{owner}__{dataset}-{seq}.jsonl`; a name ending in",
        "`__rewritten` holds answers written by an LLM. Beside each,",
        "`provenance/{split}/{owner}__{dataset}-{seq}.jsonl` has one line per example, in the",
        "same order: its source, licence, task type (`task`), the model that wrote a rewritten",
        "answer (`rewritten_by`), and the link, authors and credit line where the licence",
        "requires credit.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'dataset = load_dataset("{upload.repo_id or "path/to/this/folder"}")',
        f'provenance = load_dataset("{upload.repo_id or "path/to/this/folder"}", "provenance")',
        "```",
        "",
        "## Splits",
        "",
    ]
    rows: list[list[object]] = [[s, files[s], per_split[s]] for s in splits]
    total_row: list[object] = ["**total**", sum(files.values()), total]
    rows.append(total_row)
    body += _table(["split", "files", "records"], rows, 1)
    body += ["", "## Sources", ""]
    rows = []
    for (source, dataset), by_split in sorted(per_origin.items()):
        row: list[object] = [source, dataset, ", ".join(licences_of(source, dataset))]
        rows.append([*row, *(by_split[s] for s in splits), sum(by_split.values())])
    body += _table(["source", "dataset", "license", *splits, "total"], rows, 3)
    body += [
        "",
        "## Dropped records",
        "",
        "Records fetched and not published, by reason (state counters, since the first run):",
        "",
    ]
    drops = [
        [source, dataset, what.removeprefix("drop:"), n]
        for source, dataset, what, n in sorted(counts)
        if what.startswith("drop:") and n
    ]
    body += _table(["source", "dataset", "reason", "records"], drops, 3) if drops else ["None."]
    body += _attribution(per_origin, licences_of)
    body += _synthetic(config, entries)
    body += _invented_facts(counts)
    removed = sum(entry.removed for entry in entries)
    if removed:
        revised = sum(1 for entry in entries if entry.removed)
        body += [
            "",
            "## Removed on request",
            "",
            f"{removed} record{' was' if removed == 1 else 's were'} removed from"
            f" {revised} file{'s' if revised != 1 else ''} at the request of the people they"
            " were about (erasure); each of those files was replaced by a version without them.",
        ]
    processing = config.processing
    split = processing.split
    body += [
        "",
        "## Processing",
        "",
        f"- Anonymization: {_settings(processing.anonymize)}.",
        f"- Deduplication: {_settings(processing.dedupe)}.",
        f"- Split: train {split.train:g} / validation {split.validation:g} / test {split.test:g},"
        f" by a hash of each record's group (seed `{split.seed}`), so related examples stay in"
        " one split.",
        f"- Validation: {_settings(processing.validate)}.",
        "",
    ]
    return "---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(body)


def _attribution(
    origins: Iterable[tuple[str, str]], licences_of: Callable[[str, str], list[str]]
) -> list[str]:
    """What the licences that require credit ask of whoever reuses the data."""
    credited = [
        (source, dataset, licence)
        for source, dataset in sorted(origins)
        for licence in licences_of(source, dataset)
        if requires_attribution(licence)
    ]
    lines = ["", "## Attribution", ""]
    if not credited:
        return [*lines, "No source's licence requires crediting its authors."]
    lines += [
        "These sources' licences require crediting the authors. Every example's provenance",
        "line (`provenance/{split}/...`, the same file name as its data file, one line per",
        "example, in order) gives its link (`url`), its licence, its authors' public profile",
        "names with links (`authors`) and a credit line (`attribution`); a Stack Exchange",
        "example credits the question's and the answer's authors and links the answer, as",
        "Stack Exchange's attribution rules ask. Keep that credit with any copy, under the",
        "same licence where it says ShareAlike (CC BY-SA).",
        "",
    ]
    return lines + _table(["source", "dataset", "license"], [list(c) for c in credited], 3)


def _synthetic(config: Config, entries: list[ChunkEntry]) -> list[str]:
    """Which rows a model wrote: the `__rewritten` files, and the model of the rewrite stage."""
    rewritten: Counter[str] = Counter()
    for entry in entries:
        if entry.stem.split("__")[-1] == "rewritten" or "__rewritten__" in entry.stem:
            for origin in entry.origins:
                rewritten[f"{origin.source} / {origin.dataset}"] += origin.records
    lines = ["", "## Synthetic rows", ""]
    if not rewritten:
        return [*lines, "None: every answer was written by a person."]
    total = sum(rewritten.values())
    lines += [
        f"{total} row{'s' if total != 1 else ''}, in the files whose name holds `__rewritten`,"
        f" have an answer written by a model (`{config.rewrite.model}`, the rewrite stage)"
        " from a person's bullet; the provenance line names the model (`rewritten_by`).",
        "",
    ]
    rows: list[list[object]] = [[k, n] for k, n in sorted(rewritten.items())]
    return lines + _table(["source / dataset", "rows"], rows, 1)


def _invented_facts(counts: list[tuple[str, str, str, int]]) -> list[str]:
    """Answers that stated figures or names their input lacks, per source (grounding check)."""
    per: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for source, dataset, what, n in counts:
        if what.startswith(GROUNDING_PREFIX) or what == f"drop:{GROUNDING_DROP}":
            per[(source, dataset)][what] += n
    lines = [
        "",
        "## Invented facts",
        "",
        "Answers to a request to transform the user's text that stated figures or names the",
        "input does not give: masked (each invented figure became a placeholder such as `[N]`),",
        "dropped, or kept as they were (state counters, since the first run):",
        "",
    ]
    rows: list[list[object]] = []
    for (source, dataset), found in sorted(per.items()):
        outcome = outcome_counts(found)
        if any(outcome.values()):
            rows.append([source, dataset, outcome["masked"], outcome["dropped"], outcome["kept"]])
    if not rows:
        return [*lines, "None."]
    return lines + _table(["source", "dataset", "masked", "dropped", "kept"], rows, 2)
