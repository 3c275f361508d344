"""What the demo publishes: every example with its provenance beside it, a known licence, the
credit its licence requires, and rewritten rows declared as synthetic, by file and in the card.

One run of `resume-collector once --sandbox` on examples/demo.toml (every source's emulator, its
inbox with PDF and DOCX resumes), read back as a user of the dataset would.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from collector.licences import requires_attribution


@pytest.fixture(scope="module")
def published(demo: tuple[Path, Path]) -> Path:
    return demo[1] / "published"


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_published_example_has_its_provenance_beside_it_line_for_line(
    published: Path,
) -> None:
    data = sorted((published / "data").glob("*/*.jsonl"))
    beside = sorted((published / "provenance").glob("*/*.jsonl"))
    assert data and [p.relative_to(published / "data") for p in data] == [
        p.relative_to(published / "provenance") for p in beside
    ]
    for path in data:
        examples = jsonl(path)
        origins = jsonl(published / "provenance" / path.relative_to(published / "data"))
        assert len(origins) == len(examples), path.name
        rewritten = "__rewritten" in path.name
        for example, origin in zip(examples, origins, strict=True):
            assert set(example) == {"messages"}  # the training line is nothing else
            assert origin["source"] and origin["dataset"], path.name
            licence = str(origin.get("license", ""))
            assert licence and licence.lower() != "unknown", (path.name, origin)
            assert "record_id" not in origin and "group" not in origin  # our ids stay ours
            if requires_attribution(licence):  # whom to credit, and the credit line
                assert origin["url"] or origin["authors"], (path.name, origin)
                assert origin["attribution"], (path.name, origin)
            else:
                assert origin["url"] == "" and origin["authors"] == [], (path.name, origin)
            assert bool(origin["rewritten_by"]) == rewritten, (path.name, origin)


def test_a_stack_exchange_example_credits_its_authors_and_links_the_answer(
    published: Path,
) -> None:
    origins = [
        origin
        for path in (published / "provenance").glob("*/stackexchange__*.jsonl")
        for origin in jsonl(path)
    ]
    assert origins
    for origin in origins:
        assert origin["license"] == "CC-BY-SA-4.0"
        assert re.fullmatch(r"https://\w+\.stackexchange\.com/a/\d+", str(origin["url"]))
        authors = origin["authors"]
        assert isinstance(authors, list) and authors
        for author in authors:
            assert author["name"] in str(origin["attribution"])


def test_the_card_declares_the_synthetic_rows_and_loads_data_and_provenance(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import load_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    rewritten = Counter[str]()
    rows = Counter[str]()
    for path in (published / "data").glob("*/*.jsonl"):
        rows[path.parent.name] += len(jsonl(path))
        if "__rewritten" in path.name:
            rewritten[path.parent.name] += len(jsonl(path))
    total = sum(rewritten.values())
    assert total > 0  # the demo's rewrite stage publishes rows, and says so
    card = (published / "README.md").read_text()
    synthetic = card.split("## Synthetic rows", 1)[1].split("\n## ", 1)[0]
    assert f"{total} rows" in synthetic
    cache = str(tmp_path / "hf-cache")
    examples = load_dataset(str(published), cache_dir=cache)
    provenance = load_dataset(str(published), "provenance", cache_dir=cache)
    assert {s: examples[s].num_rows for s in examples} == dict(rows)
    assert {s: provenance[s].num_rows for s in provenance} == dict(rows)
    assert examples["train"].column_names == ["messages"]
    assert {"source", "dataset", "license"} <= set(provenance["train"].column_names)
