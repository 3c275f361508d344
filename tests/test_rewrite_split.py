"""A rewritten line joins its pair's dedupe group, so it lands in the pair's split."""

from __future__ import annotations

from collector.config import Config
from collector.rewrite.stage import rewrite_chain
from collector.state.sqlite import SqliteStateStore
from processors.config import DedupeConfig, SplitConfig
from processors.dedupe import Deduplicator
from processors.records import RawRecord
from processors.split import assign_split


def test_a_rewrite_keeps_the_group_and_split_of_its_pair() -> None:
    chain = rewrite_chain(Config())
    for n in range(40):
        group = f"pair-group-{n}"
        record = RawRecord(
            source="inbox",
            dataset="local/bullets",
            id=f"bullets.jsonl:{n}",
            payload={
                "original": f"Worked on the billing service number {n}",
                "improved": f"Rebuilt billing service number {n}, cutting failed invoices",
                "context": "Backend Engineer",
                "finish_reason": "stop",
            },
            meta={"group": group},
        )
        processed = chain.run([record])
        assert processed.drops == []
        for near in (False, True):
            dedupe = Deduplicator(DedupeConfig(near=near), SqliteStateStore(":memory:"))
            kept, _ = dedupe.filter(list(processed.examples))
            assert [e.group_key for e in kept] == [group]
            # The split is a function of the group alone: the pair's split.
            assert assign_split(kept[0].group_key, SplitConfig()) == assign_split(
                group, SplitConfig()
            )
