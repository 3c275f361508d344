"""The resume recipes on records shaped like the real datasets of DATASETS.md."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.config import RecipeConfig, ValidateConfig
from processors.formatters import FORMATTERS, build_formatter
from processors.formatters.bullets import html_to_text, split_bullets
from processors.records import Example, RawRecord
from processors.templates import default_templates
from processors.validate import Validator

SAMPLES = Path(__file__).resolve().parent.parent / "collector" / "sandbox" / "data"
MOJIBAKE = ("â€", "â¢", "Ã", "Â", "ï¼", "ï‚", "\u200b", "\ufffd")


def record(payload: dict[str, Any], dataset: str = "owner/data", rid: str = "r1") -> RawRecord:
    return RawRecord(source="test", dataset=dataset, id=rid, payload=payload)


def run(recipe: str, payload: dict[str, Any], **fields: str) -> tuple[list[Example], list[str]]:
    formatter = build_formatter(RecipeConfig(name=recipe, fields=fields))  # type: ignore[arg-type]
    examples, drops = formatter.format(record(payload))
    return examples, [d.reason for d in drops]


def bullets(examples: list[Example]) -> list[str]:
    return [e.meta["bullet"] for e in examples]


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# A datasetmaster/resumes line: personal_info (PII), experience[].responsibilities.
DATASETMASTER = {
    "personal_info": {
        "name": "Priya Raman",
        "email": "priya.raman@example.com",
        "phone": "+1 415 555 0134",
        "location": {"city": "San Francisco", "country": "USA"},
        "linkedin": "https://linkedin.com/in/priyaraman",
    },
    "experience": [
        {
            "company": "Payments Co",
            "title": "Senior Backend Engineer",
            "dates": {"start": "2019-03", "end": "Present"},
            "responsibilities": [
                "Designed the idempotent retry layer for card payment webhooks",
                "Mentored four engineers; Priya Raman ran the weekly code review clinic",
                "Python",
            ],
            "technical_environment": {"technologies": ["Go", "Kafka"]},
        },
        {
            "company": "Retail",
            "title": "Software Engineer",
            "responsibilities": ["Built the order service"],
        },
    ],
    "education": [{"degree": {"level": "Bachelor", "field": "Computer Science"}}],
    "skills": {"technical": {"programming_languages": [{"name": "Go", "level": "expert"}]}},
}

# A JSON Resume (resume.json on GitHub): basics (PII), work[].highlights.
JSON_RESUME = {
    "basics": {
        "name": "Jordan Lee",
        "email": "jordan@example.org",
        "phone": "(212) 555-0190",
        "profiles": [
            {"network": "GitHub", "username": "jlee-dev", "url": "https://github.com/jlee-dev"}
        ],
    },
    "work": [
        {
            "name": "Acme",
            "position": "Frontend Developer",
            "startDate": "2020-01-01",
            "highlights": [
                "Rebuilt the design system in React and TypeScript",
                "Cut bundle size by 40%",
            ],
        }
    ],
}

# A gauravduttakiit/resume-dataset row: the whole resume in `Resume`, `\r\n` breaks, `â¢` bullets,
# headings glued to the text before them, skill tables and `label - value` lines.
GAURAV = {
    "Category": "Data Science",
    "Resume": (
        "Skills * Programming Languages: Python (pandas, numpy), Sql, Java. * Machine learning: "
        "Regression, SVM, NaÃ¯ve Bayes, KNN.Education Details \r\nMay 2013 to May 2017 B.E   "
        "UIT-RGPV\r\nData Scientist \r\n\r\nData Scientist - Matelabs\r\nSkill Details \r\n"
        "Python- Exprience - Less than 1 year months\r\nStatsmodels- Exprience - 12 monthsCompany "
        "Details \r\ncompany - Matelabs\r\ndescription - ML Platform for business professionals, "
        "dummies and enthusiasts.\r\n60/A Koramangala 5th block,\r\nAchievements/Tasks behind sukh "
        "sagar, Bengaluru,\r\nIndia                               Developed and deployed auto "
        "scalable web application on AWS\r\nâ¢ Built a churn prediction model for telecom customers"
        "\r\nâ¢ Built a churn prediction model for telecom customers\r\nâ¢ Automated weekly "
        "reporting with Python scripts"
    ),
}


# --- registry -------------------------------------------------------------------------------


def test_the_resume_recipes_are_registered() -> None:
    assert {"resume_json", "resume_text", "job_posting"} <= set(FORMATTERS)


# --- resume_json ----------------------------------------------------------------------------


def test_resume_json_makes_a_pairs_line_per_responsibility_with_the_job_title_as_context() -> None:
    examples, drops = run("resume_json", DATASETMASTER)
    assert bullets(examples) == [
        "Designed the idempotent retry layer for card payment webhooks",
        "Mentored four engineers; Priya Raman ran the weekly code review clinic",
        "Built the order service",
    ]
    assert [e.meta["context"] for e in examples] == [
        "Senior Backend Engineer",
        "Senior Backend Engineer",
        "Software Engineer",
    ]
    assert {e.kind for e in examples} == {"pairs"}
    assert all(len(e.messages) == 2 for e in examples)  # no assistant turn, not even an empty one
    assert drops == ["bullet_not_bullet_like"]  # the one-word "Python"


def test_resume_json_never_copies_personal_info_but_hands_names_to_the_anonymizer() -> None:
    examples, _ = run("resume_json", DATASETMASTER)
    text = json.dumps([[m.content for m in e.messages] for e in examples])
    for secret in ("priya.raman@example.com", "415 555 0134", "linkedin.com", "San Francisco"):
        assert secret not in text
    assert all(e.meta["person_names"] == ["Priya Raman"] for e in examples)


def test_resume_json_reads_json_resume_work_highlights_and_profile_handles() -> None:
    examples, drops = run("resume_json", JSON_RESUME)
    assert bullets(examples) == [
        "Rebuilt the design system in React and TypeScript",
        "Cut bundle size by 40%",
    ]
    assert {e.meta["context"] for e in examples} == {"Frontend Developer"}
    assert examples[0].meta["person_names"] == ["Jordan Lee", "jlee-dev"]
    assert "jordan@example.org" not in json.dumps([m.content for m in examples[0].messages])
    assert drops == []


def test_resume_json_record_ids_are_stable_per_bullet() -> None:
    first, _ = run("resume_json", DATASETMASTER)
    second, _ = run("resume_json", DATASETMASTER)
    assert [e.record_id for e in first] == ["r1/1", "r1/2", "r1/4"] == [e.record_id for e in second]


def test_resume_json_bullet_with_an_improved_version_becomes_a_training_line() -> None:
    payload = {
        "experience": [
            {
                "title": "Analyst",
                "responsibilities": [
                    {
                        "text": "Made reports",
                        "improved": "Built 12 weekly Tableau reports for sales",
                    },
                    "Cleaned the customer table every week",
                ],
            }
        ]
    }
    examples, _ = run("resume_json", payload)
    assert [e.kind for e in examples] == ["train", "pairs"]
    assert examples[0].messages[-1].content == "Built 12 weekly Tableau reports for sales"


def test_resume_json_fields_are_configurable_case_insensitive_and_nested() -> None:
    payload = {
        "Resume": {
            "Jobs": [
                {"JobTitle": "Nurse", "Duties": ["Triaged patients in a busy emergency ward"]}
            ],
            "Contact": {"FullName": "Sam Park"},
        }
    }
    examples, _ = run(
        "resume_json",
        payload,
        experience="resume.jobs",
        bullets="duties",
        title="jobtitle",
        personal="resume.contact",
        name="fullname",
    )
    assert bullets(examples) == ["Triaged patients in a busy emergency ward"]
    assert examples[0].meta["context"] == "Nurse"
    assert examples[0].meta["person_names"] == ["Sam Park"]


def test_resume_json_without_experience_is_dropped_with_a_reason() -> None:
    assert run("resume_json", {"personal_info": {"name": "A"}, "experience": []}) == (
        [],
        ["no_experience"],
    )
    assert run("resume_json", {"experience": [{"title": "X", "responsibilities": []}]}) == (
        [],
        ["no_bullets"],
    )
    assert run("resume_json", {"experience": ["not a job"]})[1] == ["job_not_an_object"]


def test_resume_json_job_without_title_gets_a_system_prompt_naming_no_context() -> None:
    examples, _ = run("resume_json", {"experience": [{"responsibilities": ["Ran the payroll"]}]})
    assert examples[0].meta["context"] == "general"  # what the rewrite stage is told
    system = examples[0].messages[0].content
    assert system in default_templates().improve_bullet.system
    assert "{context}" not in system and "general" not in system


# --- resume_text ----------------------------------------------------------------------------


def test_resume_text_splits_a_kaggle_text_resume_into_achievement_bullets() -> None:
    examples, drops = run("resume_text", GAURAV)
    assert bullets(examples) == [
        "Developed and deployed auto scalable web application on AWS",
        "Built a churn prediction model for telecom customers",  # repeated once in the source
        "Automated weekly reporting with Python scripts",
    ]
    assert drops == []
    assert {e.meta["context"] for e in examples} == {"Data Science"}
    assert {e.kind for e in examples} == {"pairs"}


def test_resume_text_skips_skill_tables_dates_addresses_and_label_lines() -> None:
    text = " ".join(bullets(run("resume_text", GAURAV)[0]))
    for junk in ("Exprience", "Matelabs", "Koramangala", "Bengaluru", "May 2013", "NaÃ¯ve", "SVM"):
        assert junk not in text


def test_resume_text_reads_the_html_column_and_repairs_mojibake() -> None:
    rows = csv_rows(SAMPLES / "kaggle/snehaanbhawal/resume-dataset/Resume/Resume.csv")
    examples, drops = run("resume_text", rows[0])
    assert drops == []
    assert bullets(examples)[:2] == [
        "Helps to develop policies, directs and coordinates activities such as employment, "
        "compensation, labor relations, benefits and training.",
        "Prepares employee separation notices and related documentation",
    ]
    for text in bullets(examples):
        assert not any(mark in text for mark in MOJIBAKE), text
        assert "Company Name" not in text and "City , State" not in text


def test_resume_text_html_and_text_columns_give_the_same_bullets() -> None:
    for row in csv_rows(SAMPLES / "kaggle/snehaanbhawal/resume-dataset/Resume/Resume.csv"):
        from_html = bullets(run("resume_text", row)[0])
        from_text = bullets(run("resume_text", row, html="")[0])
        assert from_html == from_text
        assert from_html


def test_resume_text_context_is_the_category_made_readable() -> None:
    rows = csv_rows(SAMPLES / "kaggle/snehaanbhawal/resume-dataset/Resume/Resume.csv")
    examples, _ = run("resume_text", rows[1])
    assert examples[0].meta["context"] == "Information Technology"
    assert "INFORMATION-TECHNOLOGY" not in examples[0].messages[0].content


def test_resume_text_without_text_or_bullets_is_dropped_with_a_reason() -> None:
    assert run("resume_text", {"Category": "HR"})[1] == ["missing_resume_text"]
    assert run("resume_text", {"Category": "HR", "Resume": "Skills\r\nExcel, Word"})[1] == [
        "no_bullets"
    ]


def test_html_blocks_and_fields_never_glue_words() -> None:
    assert html_to_text("<ul><li>Built</li><li>Ran</li></ul>").split() == ["•", "Built", "•", "Ran"]
    spans = '<span class="jobstate">State</span><span class="jobtitle">HR Administrator</span>'
    assert html_to_text(spans) == "State HR Administrator"
    assert html_to_text("<p>Led <b>six</b> engineers</p>").strip() == "Led six engineers"
    assert html_to_text("<b>S</b>ales up 10%") == "Sales up 10%"


SEPARATORS = st.sampled_from([" ", "\n", "\r\n", "   ", " • ", "\nâ€¢ ", "\nâ¢ ", " * ", "\n- "])
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(WORDS, SEPARATORS), min_size=1, max_size=40))
def test_splitting_never_glues_two_words_together(parts: list[tuple[str, str]]) -> None:
    text = "".join(word + sep for word, sep in parts)
    words = {word for word, _ in parts}
    for bullet in split_bullets(text, min_words=1):
        for token in bullet.split():
            assert token.strip(".,;") in words, (token, text)


# --- job_posting ----------------------------------------------------------------------------


def test_job_posting_turns_duty_lines_into_pairs_with_the_title_as_context() -> None:
    rows = csv_rows(
        SAMPLES / "kaggle/asaniczka/upwork-job-postings-dataset-2024-50k-records/upwork-jobs.csv"
    )
    examples, drops = run("job_posting", rows[0])
    assert bullets(examples) == [
        "Build and maintain ETL pipelines in Airflow",
        "Design dashboards for the sales team in Looker",  # "You will design ..." in the posting
        "Monitor data quality and fix broken jobs",
    ]
    assert {e.meta["context"] for e in examples} == {"Data Engineer for ETL Pipelines"}
    assert {e.meta["origin"] for e in examples} == {"job_posting"}
    assert drops == []


def test_job_posting_never_makes_a_training_line_or_uses_the_posting_as_an_answer() -> None:
    rows = csv_rows(
        SAMPLES / "kaggle/asaniczka/upwork-job-postings-dataset-2024-50k-records/upwork-jobs.csv"
    )
    for row in rows:
        examples, _ = run("job_posting", {**row, "improved": "Senior data engineer"})
        for example in examples:
            assert example.kind == "pairs"
            assert [m.role for m in example.messages] == ["system", "user"]
            assert row["description"] not in example.messages[1].content


def test_job_posting_requirements_and_prose_yield_nothing() -> None:
    prose = {"title": "Logo Design", "description": "We need a modern logo for our coffee brand."}
    assert run("job_posting", prose) == ([], ["posting_without_duty_lines"])
    requirements = {
        "title": "Python Developer",
        "description": "Requirements:\n- 5+ years of Python\n- Strong communication skills\n"
        "- Experience with AWS Redshift\n- Can you start next week?",
    }
    assert run("job_posting", requirements)[1] == ["posting_without_duty_lines"]
    assert run("job_posting", {"title": "X"})[1] == ["missing_description"]


def test_job_posting_reads_html_lists_and_repaired_bullet_glyphs() -> None:
    rows = csv_rows(
        SAMPLES / "kaggle/asaniczka/upwork-job-postings-dataset-2024-50k-records/upwork-jobs.csv"
    )
    assert bullets(run("job_posting", rows[2])[0]) == [
        "Manage inbox and reply to routine customer emails",
        "Schedule meetings across three time zones",
        "Update the CRM after every sales call",
    ]
    assert bullets(run("job_posting", rows[4])[0]) == [
        "Fix crashes reported in the Android build of our fitness app",
        "Add push notifications with Firebase Cloud Messaging",
        "Write unit tests for the workout tracking screens",
    ]


# --- the bundled sample datasets, end to end through validation ----------------------------


@pytest.mark.parametrize(
    ("recipe", "path"),
    [
        ("resume_text", "kaggle/gauravduttakiit/resume-dataset/UpdatedResumeDataSet.csv"),
        ("resume_text", "kaggle/snehaanbhawal/resume-dataset/Resume/Resume.csv"),
        (
            "job_posting",
            "kaggle/asaniczka/upwork-job-postings-dataset-2024-50k-records/upwork-jobs.csv",
        ),
        ("resume_json", "huggingface/datasetmaster/resumes/master_resumes.jsonl"),
    ],
)
def test_sample_datasets_give_valid_clean_pairs_lines(recipe: str, path: str) -> None:
    file = SAMPLES / path
    if file.suffix == ".csv":
        rows: list[dict[str, Any]] = csv_rows(file)
    else:
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    formatter = build_formatter(RecipeConfig(name=recipe))  # type: ignore[arg-type]
    validator = Validator(ValidateConfig())
    produced = 0
    for index, row in enumerate(rows):
        examples, _ = formatter.format(record(row, rid=str(index)))
        for example in examples:
            produced += 1
            assert validator.run(example) is None
            assert example.kind == "pairs"
            assert not any(mark in example.meta["bullet"] for mark in MOJIBAKE)
    assert produced >= len(rows)


# --- Fast paths of the prompts agree with the plain computations they stand for -----------------

PROMPT_TEXT = st.lists(
    st.sampled_from(
        [
            *"aZ {}_.,7[]xXnN%\n\"'é",
            *["{context}", "{bullet}", "{posting}", "{{bullet}}", "{}", "{ context}", "{bul{let}"],
            *["cut", "Cutting", "reduced", "saved", "saving", "so that", "sped up", "speed it up"],
            *["leading to", "grew", "caught", "[X]", "[n]", "İ", "ſaved", "KG", "_1", "ab9"],
        ]
    ),
    max_size=30,
).map("".join)


RESULT = re.compile(
    r"\d|\[(?:X|N)\]|\b(?:cut|cutting|reduc\w*|rais\w*|increas\w*|improv\w*|sav(?:ed|ing)|"
    r"grew|grow\w*|boost\w*|lower\w*|shorten\w*|doubl\w*|halv\w*|prevent\w*|caught|"
    r"resulting|leading to|so that|enabling|eliminat\w*|speed\w* up|sped up)\b",
    re.IGNORECASE,
)


def reference_pick(texts: list[str], seed: str, salt: str) -> str:
    import hashlib

    digest = hashlib.blake2b(f"{salt}\x1f{seed}".encode(), digest_size=8).digest()
    return texts[int.from_bytes(digest, "big") % len(texts)]


def reference_render(text: str, values: dict[str, str]) -> str:
    from processors.templates import _PLACEHOLDER

    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def reference_get_field(payload: Any, path: str) -> Any:
    current = payload
    for part in path.split("."):
        if isinstance(current, dict):
            if part in current:
                current = current[part]
                continue
            lowered = part.casefold()
            for key, value in current.items():
                if isinstance(key, str) and key.casefold() == lowered:
                    current = value
                    break
            else:
                return None
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


@given(text=PROMPT_TEXT, seed=PROMPT_TEXT, salt=st.sampled_from(["task", "system", "user:x", "é"]))
@settings(max_examples=1000, deadline=None)
def test_the_prompts_shortcuts_agree_with_their_plain_forms(
    text: str, seed: str, salt: str
) -> None:
    from processors.formatters import prompts
    from processors.templates import pick, render, system_phrasing

    for count in (1, 2, 3, 8):
        texts = [f"{text}{i}" for i in range(count)]
        assert pick(texts, seed, salt) == reference_pick(texts, seed, salt)
    for values in ({}, {"bullet": seed, "context": "{posting}"}, {"context": "", "bul{let": "x"}):
        assert render(text, values) == reference_render(text, values)
    # The lower-case ASCII pattern against the one IGNORECASE pattern, on any text.
    assert prompts.shows_result(text) == (RESULT.search(text) is not None)
    phrasings = [text, "You coach {context} people.", "No context here.", seed]
    for context in ("", "Data engineer"):
        picked = reference_pick(
            phrasings if context else ([p for p in phrasings if "{context}" not in p] or phrasings),
            seed,
            "system",
        )
        assert system_phrasing(phrasings, context, "general", seed) == reference_render(
            picked, {"context": context or "general"}
        )


def test_pick_raises_on_a_seed_utf8_cannot_encode_even_with_one_text() -> None:
    from processors.templates import pick

    with pytest.raises(UnicodeEncodeError):
        pick(["only"], "lone \ud800 surrogate", "task")
    with pytest.raises(UnicodeEncodeError):
        reference_pick(["only"], "lone \ud800 surrogate", "task")


@given(
    payload=st.recursive(
        st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["", " x ", "Text"])),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.sampled_from(["original", "Original", "ORIGINAL", "a.b", "a", "B", "ǅ", "K"]),
                inner,
                max_size=4,
            ),
        ),
        max_leaves=10,
    ),
    path=st.sampled_from(["original", "oRiginal", "a.b", "a", "a.0", "b.a", "0", "k", "ǆ", ""]),
)
@settings(max_examples=1000, deadline=None)
def test_field_look_up_shortcuts_agree_with_the_plain_walk(payload: Any, path: str) -> None:
    from processors.formatters.fields import get_field, get_text

    expected = reference_get_field(payload, path)
    assert get_field(payload, path) == expected
    if isinstance(expected, str):
        assert get_text(payload, path) == expected.strip()
    elif isinstance(expected, int) and not isinstance(expected, bool):
        assert get_text(payload, path) == str(expected)
    else:
        assert get_text(payload, path) == ""


@pytest.mark.parametrize(
    "tasks", [[], ["improve_bullet"], ["star_bullet"], ["star_bullet", "improve_bullet"]]
)
@given(bullet=PROMPT_TEXT, improved=PROMPT_TEXT)
@settings(max_examples=200, deadline=None)
def test_the_bullet_task_is_chosen_as_its_plain_rule_chooses(
    tasks: list[str], bullet: str, improved: str
) -> None:
    from processors.config import BULLET_TASKS
    from processors.formatters.prompts import bullet_task, shows_result

    recipe = RecipeConfig(name="pairs", tasks=tasks)  # type: ignore[arg-type]
    improved = improved or "x"
    eligible = [t for t in BULLET_TASKS if t in (tasks or BULLET_TASKS)]
    if not shows_result(improved) or shows_result(bullet):
        eligible = [t for t in eligible if t != "star_bullet"]
    expected = reference_pick(list(eligible), bullet, "task") if eligible else "improve_bullet"
    assert bullet_task(recipe, bullet, improved) == expected
