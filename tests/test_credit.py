"""A record whose licence requires crediting its author, when that author is the person the
record is about, is not published: the credit would name whom the anonymizer removed."""

from __future__ import annotations

from typing import Any

import pytest

from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.credit import REASON, credit_identifies_subject
from processors.records import RawRecord

OWN_REPOSITORY = {
    "about_author": True,  # the GitHub source's resumes are their owners' own
    "person_names": ["jdoe", "Jane Doe"],
    "url": "https://github.com/jdoe/resume/blob/main/resume.json",
    "authors": [{"name": "jdoe", "url": "https://github.com/jdoe"}],
}


@pytest.mark.parametrize("licence", ["CC-BY-4.0", "CC-BY-SA-4.0", "ODC-By-1.0"])
def test_a_resume_credited_to_its_own_subject_is_not_published(licence: str) -> None:
    assert credit_identifies_subject({**OWN_REPOSITORY, "license": licence})


@pytest.mark.parametrize("licence", ["MIT", "CC0-1.0", "", "unknown"])
def test_a_licence_that_asks_no_credit_publishes_no_credit_and_keeps_the_record(
    licence: str,
) -> None:
    assert not credit_identifies_subject({**OWN_REPOSITORY, "license": licence})


@pytest.mark.parametrize(
    "meta",
    [
        # Advice by other people, whose names are also to be anonymized: nobody's resume.
        {
            "license": "CC-BY-SA-4.0",
            "person_names": ["Lukas Novak"],
            "url": "https://workplace.stackexchange.com/a/5228",
            "authors": [{"name": "Lukas Novak", "url": "https://workplace.stackexchange.com/u/1"}],
        },
        # A published dataset of resumes: its publisher is credited, not the people in it.
        {
            "about_author": True,
            "license": "CC-BY-4.0",
            "person_names": ["Maria Lopez"],
            "url": "https://www.kaggle.com/datasets/someone/resumes",
            "authors": [{"name": "someone", "url": "https://www.kaggle.com/someone"}],
        },
        # A name shares one word with the credit, not all of its words.
        {
            "about_author": True,
            "license": "CC-BY-4.0",
            "person_names": ["Maria Lopez"],
            "authors": [{"name": "Maria Schmidt"}],
        },
    ],
)
def test_a_credit_that_names_someone_else_keeps_the_record(meta: dict[str, Any]) -> None:
    assert not credit_identifies_subject(meta)


def test_the_name_in_any_form_of_the_credit_counts() -> None:
    meta = {"about_author": True, "license": "CC-BY-4.0", "person_names": ["Jane Doe"]}
    assert credit_identifies_subject({**meta, "authors": [{"name": "DOE, Jane"}]})
    assert credit_identifies_subject({**meta, "url": "https://example.org/jane-doe/cv"})


def test_the_chain_drops_it_before_formatting_and_counts_the_reason() -> None:
    chain = ProcessorChain(RecipeConfig(name="pairs"), ProcessingConfig())
    kept = {
        "original": "Responsible for the billing service",
        "improved": "Moved the billing service to a managed queue with nightly reconciliation",
    }
    cc_by, mit = {**OWN_REPOSITORY, "license": "CC-BY-4.0"}, {**OWN_REPOSITORY, "license": "MIT"}
    records = [
        RawRecord("gh", "github/json-resume", "jdoe/resume", kept, meta=cc_by),
        RawRecord("gh", "github/json-resume", "other/resume", kept, meta=mit),
    ]
    processed = chain.run(records)
    assert [(d.record_id, d.reason) for d in processed.drops] == [("jdoe/resume", REASON)]
    assert {e.record_id for e in processed.examples} == {"other/resume"}
