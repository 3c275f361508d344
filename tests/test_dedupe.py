"""Deduplication: exact and near-duplicate, persistent in the state store."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from collector.state.sqlite import SqliteStateStore
from processors.config import DedupeConfig
from processors.dedupe import (
    NAMESPACE,
    NEAR_NAMESPACE,
    Deduplicator,
    normalise,
    set_exact_keys,
)
from processors.minhash import MinHasher
from processors.records import Example, Message
from tests.conftest import run_python

BULLET = (
    "Built a real-time fraud detection pipeline on Kafka and Flink that screened 40 million "
    "card transactions a day and cut chargebacks by a third within two quarters"
)


def example(answer: str, record_id: str = "1", source: str = "s") -> Example:
    return Example(
        messages=[
            Message("system", "You are a resume writer. Context: data"),
            Message("user", "Improve this resume bullet: did fraud work"),
            Message("assistant", answer),
        ],
        source=source,
        dataset="d",
        record_id=record_id,
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.sqlite3")


def commit(dedupe: Deduplicator, store: SqliteStateStore) -> None:
    store.commit(dedupe.take_pending())
    dedupe.committed()


def test_normalisation_ignores_case_whitespace_punctuation_and_pii_tokens() -> None:
    assert normalise("Led  the TEAM, [NAME_1] [EMAIL]!") == normalise("led the team")


def test_exact_duplicates_are_dropped_within_a_batch_and_across_batches(
    store: SqliteStateStore,
) -> None:
    dedupe = Deduplicator(DedupeConfig(), store)
    kept, dropped = dedupe.filter([example(BULLET, "1"), example(BULLET.upper() + "!", "2")])
    assert [e.record_id for e in kept] == ["1"]
    assert [(e.record_id, r) for e, r in dropped] == [("2", "duplicate_exact")]
    kept, dropped = dedupe.filter([example(BULLET, "3")])
    assert kept == [] and dropped[0][1] == "duplicate_exact"


@pytest.mark.parametrize("near", [False, True])
def test_keys_set_where_the_chain_ran_dedupe_as_keys_set_by_the_writer(
    store: SqliteStateStore, tmp_path: Path, near: bool
) -> None:
    def batch() -> list[Example]:
        return [example(BULLET, "1"), example(BULLET.upper() + "!", "2"), example("Led a team")]

    here = Deduplicator(DedupeConfig(near=near), store)
    elsewhere = Deduplicator(DedupeConfig(near=near), SqliteStateStore(tmp_path / "other.db"))
    keyed = batch()
    set_exact_keys(keyed)
    kept, dropped = here.filter(batch())
    kept_keyed, dropped_keyed = elsewhere.filter(keyed)
    assert [(e.dedupe_key, e.group_key) for e in kept_keyed] == [
        (e.dedupe_key, e.group_key) for e in kept
    ]
    assert [(e.record_id, r) for e, r in dropped_keyed] == [(e.record_id, r) for e, r in dropped]
    assert elsewhere.take_pending() == here.take_pending()


def test_the_index_survives_a_restart_and_holds_across_sources(
    store: SqliteStateStore, tmp_path: Path
) -> None:
    config = DedupeConfig(near=True)
    first = Deduplicator(config, store)
    first.filter([example(BULLET, "1", source="github")])
    commit(first, store)
    store.close()
    reopened = SqliteStateStore(tmp_path / "state.sqlite3")
    second = Deduplicator(config, reopened)
    kept, dropped = second.filter(
        [example(BULLET, "9", source="kaggle"), example(BULLET + " in 2021", "10", "kaggle")]
    )
    assert kept == []
    assert [r for _, r in dropped] == ["duplicate_exact", "duplicate_near"]


def test_keys_not_committed_are_forgotten_after_a_crash(store: SqliteStateStore) -> None:
    config = DedupeConfig(near=True)
    Deduplicator(config, store).filter([example(BULLET)])  # never committed
    kept, _ = Deduplicator(config, store).filter([example(BULLET)])
    assert len(kept) == 1


def test_pending_keys_are_handed_over_per_namespace_and_cleared_on_commit(
    store: SqliteStateStore,
) -> None:
    dedupe = Deduplicator(DedupeConfig(near=True), store)
    dedupe.filter([example(BULLET)])
    pending = dedupe.take_pending()
    assert len(pending[NAMESPACE]) == 1
    assert len(pending[NEAR_NAMESPACE]) == dedupe.hasher.bands  # type: ignore[union-attr]
    dedupe.committed()
    assert dedupe.take_pending() == {NAMESPACE: {}}


@pytest.mark.parametrize(
    "edited",
    [
        BULLET.replace("a third", "one third"),
        BULLET.replace("Built", "Built and ran"),
        BULLET.replace("40 million", "forty million"),
        BULLET.replace("card", "credit card"),
        BULLET + ", saving $2M a year",
    ],
)
def test_small_edits_are_near_duplicates(store: SqliteStateStore, edited: str) -> None:
    dedupe = Deduplicator(DedupeConfig(near=True), store)
    kept, dropped = dedupe.filter([example(BULLET, "1"), example(edited, "2")])
    assert [e.record_id for e in kept] == ["1"]
    assert [(e.record_id, r) for e, r in dropped] == [("2", "duplicate_near")]


def test_different_bullets_are_kept(store: SqliteStateStore) -> None:
    dedupe = Deduplicator(DedupeConfig(near=True), store)
    other = (
        "Migrated a monolithic billing service to twelve Go microservices on Kubernetes, "
        "halving p99 latency and enabling weekly releases for five product teams"
    )
    kept, dropped = dedupe.filter([example(BULLET, "1"), example(other, "2")])
    assert len(kept) == 2 and dropped == []


def test_near_duplicates_can_be_kept_in_one_group(store: SqliteStateStore) -> None:
    dedupe = Deduplicator(DedupeConfig(near=True, near_action="group"), store)
    kept, dropped = dedupe.filter(
        [example(BULLET, "1"), example(BULLET.replace("a third", "one third"), "2")]
    )
    assert dropped == [] and len(kept) == 2
    assert kept[0].group_key == kept[1].group_key == kept[0].dedupe_key
    commit(dedupe, store)
    later, _ = Deduplicator(DedupeConfig(near=True, near_action="group"), store).filter(
        [example(BULLET + " and more", "3")]
    )
    assert later[0].group_key == kept[0].group_key


def test_char_shingles_work_too(store: SqliteStateStore) -> None:
    config = DedupeConfig(near=True, shingle="char", shingle_size=5)
    dedupe = Deduplicator(config, store)
    kept, dropped = dedupe.filter([example(BULLET, "1"), example(BULLET + "!!", "2")])
    assert len(kept) == 1 and dropped[0][1] == "duplicate_exact"
    kept, dropped = dedupe.filter([example(BULLET.replace("third", "thirds"), "3")])
    assert kept == [] and dropped[0][1] == "duplicate_near"


def test_batch_signatures_equal_datasketch_minhash_bit_for_bit() -> None:
    hasher = MinHasher(DedupeConfig(near=True))
    texts = [normalise(BULLET), "short", "", normalise(BULLET[::-1]), "a b c d e f g h"]
    shingles = [hasher.shingles(t) for t in texts]
    batch = hasher.signatures(shingles)
    for row, values in zip(batch, shingles, strict=True):
        reference = MinHash(hasher.num_perm, seed=1, hashfunc=int, scheme="affine32")
        reference.update_batch([int(v) for v in values])
        assert np.array_equal(row, reference.hashvalues)


def test_band_layout_is_datasketchs_optimal_one_for_the_threshold() -> None:
    hasher = MinHasher(DedupeConfig(near=True, threshold=0.8, num_perm=128))
    assert (hasher.bands, hasher.rows) == (9, 13)
    hasher = MinHasher(DedupeConfig(near=True))  # defaults: 64 permutations, threshold 0.8
    assert (hasher.bands, hasher.rows) == (5, 11)


def test_a_threshold_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        MinHasher(DedupeConfig(near=True, threshold=1.5))


MASK = 2**64 - 1


def reference_shingles(text: str, shingle: str, size: int) -> list[int]:
    """The batch hashing written plainly, one text at a time."""
    poly, mix = 0x100000001B3, 0x9E3779B97F4A7C15
    if shingle == "word":
        units = []
        for word in text.replace("\x1e", " ").split(" "):
            if word:
                units.append(
                    sum(c * pow(poly, j, 2**64) for j, c in enumerate(word.encode())) & MASK
                )
    else:
        units = list(text.encode())
    grams = [units[i : i + size] for i in range(len(units) - size + 1)] or [units]
    out = []
    for gram in grams:
        acc = 0
        for unit in gram:
            acc = (acc * mix + unit) & MASK
        out.append((acc ^ (acc >> 32)) & 0xFFFFFFFF)
    return out


@pytest.mark.parametrize(("shingle", "size"), [("word", 3), ("word", 1), ("char", 5)])
def test_batch_shingle_hashing_equals_the_plain_definition(shingle: str, size: int) -> None:
    config = DedupeConfig(near=True, shingle=shingle, shingle_size=size, sample=1)  # type: ignore[arg-type]
    hasher = MinHasher(config)
    texts = [normalise(BULLET), "two words", "", "zoë müller café\x1eanswer here", "x"]
    flat, lengths = hasher.shingle_batch(texts)
    expected = [reference_shingles(t, shingle, size) for t in texts]
    assert lengths.tolist() == [len(e) for e in expected]
    assert flat.tolist() == [h for e in expected for h in e]


def test_sampling_keeps_the_same_half_of_the_shingles_in_every_text() -> None:
    full = MinHasher(DedupeConfig(near=True, sample=1))
    half = MinHasher(DedupeConfig(near=True, sample=2))
    texts = [normalise(BULLET), normalise(BULLET + " and more"), "tiny"]
    all_hashes, all_lengths = full.shingle_batch(texts)
    kept, kept_lengths = half.shingle_batch(texts)
    assert set(kept.tolist()) <= set(all_hashes.tolist())
    assert all(int(h) % 2 == 0 for h in kept[: kept_lengths[0] + kept_lengths[1]])
    assert 0.3 < kept_lengths[0] / all_lengths[0] < 0.7
    assert kept_lengths[2] >= 1  # a text never ends up with no shingle at all


def test_near_groups_do_not_depend_on_when_checkpoints_fall(tmp_path: Path) -> None:
    # Chains of small edits, so that a text resembles two clusters through different bands.
    # A band keeps the group it was first given, committed or still pending: the groups are
    # the same whether every line is committed at once or one at a time.
    rng = random.Random(7)
    words = BULLET.split()
    texts = []
    for _ in range(300):
        edited = list(words)
        for _ in range(rng.randint(1, 6)):
            edited[rng.randrange(len(edited))] = rng.choice(["led", "ran", "cut", "new", "ops"])
        texts.append(" ".join(edited))
    config = DedupeConfig(exact=False, near=True, near_action="group")  # repeats are kept
    groups = []
    for every in (len(texts), 1):  # commit at the end, or after each line
        store = SqliteStateStore(tmp_path / f"{every}.sqlite3")
        dedupe = Deduplicator(config, store)
        found = []
        for n, text in enumerate(texts, start=1):
            kept, _ = dedupe.filter([example(text, str(n))])
            found.append(kept[0].group_key)
            if n % every == 0:
                commit(dedupe, store)
        groups.append(found)
    assert groups[0] == groups[1]
    assert 1 < len(set(groups[0])) < len(texts)  # some clusters, not one nor none


def test_the_dedupe_keys_load_none_of_the_anonymizers_detectors() -> None:
    # The writer, in the service, needs only the tokens' pattern: importing the detectors
    # (their lexicons' code and some hundred regexes) cost the service's start a tenth of a second.
    script = (
        "import sys\n"
        "import processors.dedupe\n"
        "loaded = [m for m in sys.modules if m.startswith('processors.anonymize.')]\n"
        "assert loaded == ['processors.anonymize.spans'], loaded\n"
    )
    run_python(script)
