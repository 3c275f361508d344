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
