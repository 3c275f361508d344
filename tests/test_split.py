"""Splits: deterministic from the group key, stable as records are added."""

from __future__ import annotations

from collections import Counter

import pytest

from processors.config import SplitConfig
from processors.split import assign_split

CONFIG = SplitConfig()


def test_the_same_group_key_always_lands_in_the_same_split() -> None:
    assert {assign_split("group-42", CONFIG) for _ in range(5)} == {
        assign_split("group-42", CONFIG)
    }


def test_default_proportions_are_about_90_5_5() -> None:
    counts = Counter(assign_split(f"key-{i}", CONFIG) for i in range(20_000))
    assert counts["train"] / 20_000 == pytest.approx(0.90, abs=0.01)
    assert counts["validation"] / 20_000 == pytest.approx(0.05, abs=0.006)
    assert counts["test"] / 20_000 == pytest.approx(0.05, abs=0.006)


def test_adding_records_never_moves_an_existing_record() -> None:
    before = {f"key-{i}": assign_split(f"key-{i}", CONFIG) for i in range(1000)}
    for i in range(1000, 5000):  # more records arrive later
        assign_split(f"key-{i}", CONFIG)
    assert {k: assign_split(k, CONFIG) for k in before} == before


def test_members_of_one_near_duplicate_group_share_a_split() -> None:
    # Group members carry the cluster's group key, whatever their own content.
    assert len({assign_split("cluster-7", CONFIG) for _member in range(10)}) == 1


def test_proportions_and_seed_are_configurable() -> None:
    only_test = SplitConfig(train=0.0, validation=0.0, test=1.0)
    assert {assign_split(f"k{i}", only_test) for i in range(100)} == {"test"}
    weights = SplitConfig(train=8, validation=1, test=1)  # normalised by their sum
    counts = Counter(assign_split(f"k{i}", weights) for i in range(10_000))
    assert counts["train"] / 10_000 == pytest.approx(0.8, abs=0.02)
    reseeded = SplitConfig(seed="another")
    moved = sum(
        assign_split(f"k{i}", reseeded) != assign_split(f"k{i}", CONFIG) for i in range(500)
    )
    assert moved > 0


def test_negative_or_all_zero_proportions_are_refused() -> None:
    with pytest.raises(ValueError, match="proportions"):
        assign_split("k", SplitConfig(train=0, validation=0, test=0))
    with pytest.raises(ValueError, match="proportions"):
        assign_split("k", SplitConfig(train=1.2, validation=-0.1, test=-0.1))
