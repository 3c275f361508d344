"""The workers' chain: format -> fix encoding -> anonymize -> validate."""

from __future__ import annotations

from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.records import RawRecord


def record(record_id: str, user: str, answer: str, **meta: object) -> RawRecord:
    payload = {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }
    return RawRecord("inbox", "acme/resumes", record_id, payload, meta=dict(meta))


def test_chain_repairs_then_anonymizes_then_validates() -> None:
    chain = ProcessorChain(RecipeConfig(name="chat"), ProcessingConfig())
    batch = chain.run(
        [
            record(
                "1",
                "Improve: octocat didnâ€™t ship, mail octocat@github.com",
                "Shipped the release early; thanks Jane Doe (+44 20 7946 0958).",
                person_names=["octocat"],
            ),
            record("2", "Improve this bullet please", "   "),
            record("3", "Improve this bullet please", "Broken \ufffd answer text"),
        ]
    )
    [example] = batch.examples
    assert example.messages[0].content == "Improve: [NAME] didn’t ship, mail [EMAIL]"
    assert example.messages[1].content == "Shipped the release early; thanks [NAME] ([PHONE])."
    assert sorted((d.record_id, d.reason) for d in batch.drops) == [
        ("2", "assistant_empty"),
        ("3", "encoding_error"),
    ]


def test_formatter_drops_keep_their_reason() -> None:
    chain = ProcessorChain(RecipeConfig(name="chat"), ProcessingConfig())
    batch = chain.run(
        [RawRecord("inbox", "d", "9", {"messages": [{"role": "robot", "content": "x"}]})]
    )
    assert [d.reason for d in batch.drops] == ["unrecognized_role"]


def test_a_batch_gives_what_its_records_give_one_at_a_time_in_the_same_order() -> None:
    # The chain runs a step at a time over the whole batch (its caches stay warm); what it keeps
    # and drops, and in which order, is what taking each record through every step gives.
    chain = ProcessorChain(RecipeConfig(name="chat"), ProcessingConfig())
    robot = RawRecord("inbox", "d", "robot", {"messages": [{"role": "robot", "content": "x"}]})
    credited = RawRecord(
        "inbox",
        "d",
        "credited",
        {"messages": [{"role": "user", "content": "Who is she?"}]},
        meta={
            "license": "CC-BY-4.0",
            "about_author": True,
            "person_names": ["Ann Lee"],
            "authors": [{"name": "Ann Lee", "url": ""}],
        },
    )
    batch = [
        record(
            "1",
            "Improve this resume bullet: worked on the billing service",
            "Rebuilt the billing service's retry logic and on-call runbook with the payments team",
        ),
        record("2", "Improve this bullet please", "   "),
        robot,
        record("3", "Improve this bullet please", "Broken \ufffd answer text"),
        credited,
        record(
            "4",
            "Improve this resume bullet: did tests, ask Jane Doe at jd@example.com",
            "Wrote the integration test suite for checkout and ran its nightly release gate",
        ),
        record("5", "Improve this bullet please", "   "),
    ]
    together = chain.run(batch)
    alone = [chain.run([one]) for one in batch]
    assert together.examples == [e for b in alone for e in b.examples]
    assert together.drops == [d for b in alone for d in b.drops]
    assert [e.record_id for e in together.examples] == ["1", "4"]
    reasons = [d.reason for d in together.drops]
    assert reasons == [
        "assistant_empty",
        "unrecognized_role",
        "encoding_error",
        "credit_would_identify",
        "assistant_empty",
    ]
