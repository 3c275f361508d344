"""Answers that teach nothing are dropped with a reason: trivial rewrites, near copies, answers
to a bullet that are no bullet, and job postings' duty lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.config import ConfigError, parse_config
from processors.config import QualityConfig, RewriteCheckConfig
from processors.quality import (
    STOCK_WORDS,
    STOP_WORDS,
    QualityCheck,
    duty_line,
    input_text,
    new_words,
)
from processors.records import Example, Message, RawRecord
from processors.rewrite import RewriteChecker, RewrittenFormatter

CHECK = QualityCheck(QualityConfig())
BULLETS = st.sampled_from(
    [
        "Prepared test cases from functional requirement documents",
        "Executed regression test suites before every release",
        "Responsible for maintaining the billing service",
        "Worked on the payments API",
        "Handled customer escalations for the EMEA region",
    ]
)
INSTRUCTIONS = st.sampled_from(
    [
        'Improve this resume bullet:\n"{b}"',
        "Rewrite this bullet so it reads stronger: {b}",
        "Please improve: {b}",
        'Can you rephrase "{b}"?',
    ]
)
# What an LLM that teaches nothing does to a bullet.
TRIVIAL = st.sampled_from(
    [
        "Successfully {l}.",
        "Effectively {l}, improving results by [X]%.",
        "{b}.",
        "Successfully and efficiently {l}, resulting in [N]% improved results.",
    ]
)


def example(user: str, answer: str) -> Example:
    messages = [Message("system", "You write resumes."), Message("user", user)]
    return Example([*messages, Message("assistant", answer)], "s", "d", "1")


@given(bullet=BULLETS, instruction=INSTRUCTIONS, trivial=TRIVIAL)
@settings(max_examples=100, deadline=None)
def test_a_rewrite_that_only_adds_stock_words_is_trivial(
    bullet: str, instruction: str, trivial: str
) -> None:
    answer = trivial.format(b=bullet, l=bullet[0].lower() + bullet[1:])
    assert CHECK.run(example(instruction.format(b=bullet), answer)) == "trivial_rewrite"


@given(bullet=BULLETS, instruction=INSTRUCTIONS)
@settings(max_examples=50, deadline=None)
def test_a_rewrite_that_says_more_is_kept(bullet: str, instruction: str) -> None:
    answer = (
        f"{bullet}, automating the nightly checks and cutting manual review from [N] hours "
        "to [N] minutes"
    )
    assert CHECK.run(example(instruction.format(b=bullet), answer)) is None


def test_a_near_copy_of_a_long_text_is_dropped() -> None:
    text = (
        "Led the migration of twelve customer facing services from the data center to the "
        "cloud while keeping every release on schedule and training the support team"
    )
    answer = text.replace("Led", "Drove").replace("keeping", "holding") + " on runbooks"
    assert CHECK.run(example(f'Improve this summary: "{text}"', answer)) == "near_copy"


@pytest.mark.parametrize(
    "user",
    [
        "How do I explain a two year gap on my resume?",
        'Write a professional summary for this resume:\n"Jane Doe, data engineer"',
        "Tailor these bullets to the posting below:\nBuilt ETL jobs.",
    ],
)
def test_questions_summaries_and_tailoring_are_not_rewrites(user: str) -> None:
    assert CHECK.run(example(user, "Built ETL jobs.")) is None


def test_the_input_is_the_quoted_text_or_what_follows_the_instruction() -> None:
    assert input_text('Improve this resume bullet:\n"Worked on the API"') == "Worked on the API"
    assert input_text("Improve: worked on the API") == " worked on the API"
    assert new_words("Worked on the API", "Successfully worked on the API.") == []


# --- bullet tasks: an answer that is no bullet, a duty that is no accomplishment -----------

BULLET_TASK = 'Improve this resume bullet:\n"{b}"'
# What follows a bullet's own words in a good rewrite: what came of the work.
OUTCOMES = st.sampled_from(
    [
        ", cutting manual review from [N] hours to [N] minutes",
        ", raising the crash-free rate to [X]% across both mobile apps",
        " that replaced four manual spreadsheets for the finance team",
    ]
)
PAST_OPENERS = st.sampled_from(["Built", "Rebuilt", "Automated", "Led", "Designed", "Owned"])
OBJECTS = st.sampled_from(
    [
        "the nightly reconciliation jobs in Airflow",
        "a Tableau revenue dashboard for regional managers",
        "the payments API in Go",
        "contract tests for the billing service",
    ]
)
# Stack Exchange's tags: `resume`, `job-search`, `cover-letter`.
TAG = st.from_regex(r"[a-z]{3,10}(-[a-z]{3,8})?", fullmatch=True).filter(
    lambda tag: tag not in STOP_WORDS and tag not in STOCK_WORDS
)


def bullet_answer(bullet: str, answer: str) -> Example:
    return example(BULLET_TASK.format(b=bullet), answer)


@given(opener=PAST_OPENERS, thing=OBJECTS, outcome=OUTCOMES)
@settings(max_examples=100, deadline=None)
def test_an_accomplishment_in_one_bullet_is_kept(opener: str, thing: str, outcome: str) -> None:
    assert CHECK.run(bullet_answer("Worked on stuff", f"{opener} {thing}{outcome}.")) is None


@given(opener=PAST_OPENERS, thing=OBJECTS, outcome=OUTCOMES, extra=st.integers(1, 40))
@settings(max_examples=50, deadline=None)
def test_an_answer_too_long_for_a_bullet_is_not_a_bullet(
    opener: str, thing: str, outcome: str, extra: int
) -> None:
    answer = f"{opener} {thing}{outcome}. " + "It also documented every step for the team. " * (
        1 + 60 // 8 + extra // 8
    )
    assert len(answer.split()) > QualityConfig().max_bullet_words
    assert CHECK.run(bullet_answer("Worked on stuff", answer)) == "not_a_bullet"


@given(
    question=st.sampled_from(
        [
            "Could you tell me which {t} you worked on and what changed?",
            "What metrics did {t} improve, and by how much?",
            'Which team owned "{t}" before you joined?',
        ]
    ),
    thing=OBJECTS,
)
@settings(max_examples=50, deadline=None)
def test_a_question_back_is_not_a_bullet(question: str, thing: str) -> None:
    answer = question.format(t=thing)
    assert CHECK.run(bullet_answer("Worked on the payments API", answer)) == "not_a_bullet"


@given(
    tags=st.lists(TAG, min_size=3, max_size=8, unique=True),
    form=st.sampled_from([", ", "; ", " | ", "<>", "#"]),
)
@settings(max_examples=100, deadline=None)
def test_a_list_of_tags_is_not_a_bullet(tags: list[str], form: str) -> None:
    if form == "<>":
        answer = "".join(f"<{t}>" for t in tags)
    elif form == "#":
        answer = " ".join(f"#{t}" for t in tags)
    else:
        answer = form.join(tags)
    assert CHECK.run(bullet_answer("Worked on the payments API", answer)) == "not_a_bullet"


def test_a_bullet_with_commas_is_no_tag_list() -> None:
    answer = "Built APIs, dashboards, alerting rules and runbooks for the billing service."
    assert CHECK.run(bullet_answer("Worked on billing", answer)) is None


# Duty lines as job postings write them (processors/formatters/job_posting.py makes these the
# bullets of `pairs` lines): a verb in its base form, the posting's voice, a requirement.
DUTY_FORMS = st.sampled_from(
    [
        "{V} and maintain {o}",
        "{V} {o} with the data team",
        "You will {v} {o}",
        "You'll {v} {o} and report to the CTO",
        "Responsible for {o}",
        "Will {v} {o} in close collaboration with product",
        "Experience with {o}",
        "{V}s {o} for the whole company",
    ]
)
DUTY_VERBS = st.sampled_from(["build", "design", "maintain", "support", "develop", "monitor"])


@given(form=DUTY_FORMS, verb=DUTY_VERBS, thing=OBJECTS)
@settings(max_examples=150, deadline=None)
def test_a_duty_line_is_not_an_accomplishment(form: str, verb: str, thing: str) -> None:
    answer = form.format(V=verb.capitalize(), v=verb, o=thing) + "."
    assert CHECK.run(bullet_answer("Reports", answer)) == "duty_line"


@given(verb=DUTY_VERBS, thing=OBJECTS, outcome=OUTCOMES)
@settings(max_examples=50, deadline=None)
def test_a_duty_verb_with_what_came_of_it_is_kept(verb: str, thing: str, outcome: str) -> None:
    answer = f"{verb.capitalize()} {thing}{outcome}."
    assert CHECK.run(bullet_answer("Reports", answer)) is None


def test_answers_to_other_tasks_are_not_held_to_a_bullet() -> None:
    answer = "Which metrics matter to the team? Start there, then " + "add detail " * 40
    summary = 'Improve this summary:\n"Data engineer with five years of ETL work"'
    assert CHECK.run(example(summary, answer)) is None
    assert CHECK.run(example("How long should a resume be?", "Python, Django, AWS")) is None


def test_a_line_made_from_a_bullet_is_a_bullet_task_whatever_its_template() -> None:
    line = example(
        "Make it shine: Worked on the payments API", "Successfully worked on the payments API."
    )
    assert CHECK.run(line) is None  # no rewrite request that the check knows
    line.meta = {"bullet": "Worked on the payments API"}
    assert CHECK.run(line) == "trivial_rewrite"
    line.messages[-1] = Message("assistant", "Python, Go, Kafka, Postgres")
    assert CHECK.run(line) == "not_a_bullet"


def test_the_rewrite_stage_drops_a_trivial_rewrite_with_the_same_test() -> None:
    """The LLM's answers are checked before they become lines (collector/rewrite/stage.py)."""
    checker = RewriteChecker(RewriteCheckConfig(), quality=QualityConfig())
    formatter = RewrittenFormatter(checker)
    bullet = "Executed regression test suites before every release"
    long = (
        "Executed the regression test suites of the billing service before every weekly "
        "release and wrote up each failure for the developers"
    )
    for original, answer, reason in [
        (bullet, f"Successfully {bullet.lower()}, improving results by [X]%.", "trivial_rewrite"),
        (long, f"{long} on the payments team's tracker", "near_copy"),
        (bullet, f"{bullet}, catching [N] regressions a quarter before customers saw them", None),
    ]:
        payload = {"original": original, "improved": answer}
        record = RawRecord("inbox", "local/bullets", "1", payload)
        examples, drops = formatter.format(record)
        assert [d.reason for d in drops] == ([reason] if reason else []), answer
        assert len(examples) == (0 if reason else 1)
    assert checker.rejected == {"trivial_rewrite": 1, "near_copy": 1}
    off = RewriteChecker(RewriteCheckConfig(), quality=QualityConfig(enabled=False))
    assert off.check(bullet, f"Successfully {bullet.lower()}.")[1] is None


def test_the_thresholds_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"processing\.quality\.near_copy_ratio"):
        parse_config({"processing": {"quality": {"near_copy_ratio": 0}}})
    with pytest.raises(ConfigError, match=r"processing\.quality\.min_new_words"):
        parse_config({"processing": {"quality": {"min_new_words": -1}}})
    with pytest.raises(ConfigError, match=r"processing\.quality\.max_bullet_words"):
        parse_config({"processing": {"quality": {"max_bullet_words": 2}}})
    off = QualityCheck(QualityConfig(enabled=False))
    assert off.run(example("Improve: worked on the API", "Successfully worked on the API.")) is None


def test_the_demo_publishes_no_trivial_rewrite(demo: tuple[Path, Path]) -> None:
    """The sandbox LLM prefixes "Successfully" to a bullet without a weak opening: none of
    that is published; its real rewrites are."""
    _, data_dir = demo
    published = sorted((data_dir / "published" / "data").glob("*/*.jsonl"))
    rewrites = 0
    for path in published:
        for raw in path.read_text().splitlines():
            line = example("", "")
            messages = json.loads(raw)["messages"]
            line.messages = [Message(m["role"], m["content"]) for m in messages]
            user = next(m["content"] for m in messages if m["role"] == "user")
            answer = messages[-1]["content"]
            if user.startswith("Improve"):
                rewrites += 1
                assert not answer.startswith("Successfully "), (path.name, answer)
                assert len(new_words(input_text(user), answer)) >= 3, (path.name, answer)
    assert rewrites > 0
    reports = [
        json.loads(p.read_text()) for p in (data_dir / "formatted").glob("*__clean_report.json")
    ]
    assert sum(r["drop_reasons"].get("trivial_rewrite", 0) for r in reports) > 0


# --- language -------------------------------------------------------------------------------

# Sentences of resumes and advice in other languages (written for these tests).
FOREIGN = {
    "de": [
        "Ich habe die Zahlungsschnittstelle in Go neu geschrieben und die Antwortzeit halbiert.",
        "Verantwortlich für die Einarbeitung neuer Kollegen und die Pflege der Dokumentation.",
        "Wie erkläre ich eine Lücke von zwei Jahren in meinem Lebenslauf?",
        "Die Abteilung hat unter meiner Leitung jedes Quartal ihre Ziele erreicht.",
    ],
    "es": [
        "Rediseñé la interfaz de pagos y reduje el tiempo de respuesta a la mitad.",
        "¿Cómo explico en mi currículum que estuve dos años sin trabajar?",
        "Coordiné un equipo de ocho personas durante la migración de los servidores.",
        "Es mejor escribir logros concretos que una lista de tareas diarias.",
    ],
    "fr": [
        "J'ai réécrit l'interface de paiement et divisé par deux le temps de réponse.",
        "Comment présenter une période de deux ans sans emploi dans mon curriculum vitae ?",
        "Responsable de l'accueil des nouveaux collaborateurs et de la documentation interne.",
        "Il vaut mieux décrire des résultats concrets plutôt que des tâches quotidiennes.",
    ],
}
ENGLISH = [
    "Rebuilt the checkout API in Go, cutting p95 latency from 900 ms to 120 ms.",
    "How do I explain a two year gap on my resume?",
    "Keep a master resume with every bullet you have ever written, grouped by skill.",
    "Led the migration of fourteen services to AWS ECS, reducing hosting costs by [X]%.",
    "PDF, unless the posting asks for Word: applicant tracking systems read text PDFs fine.",
]


@given(
    language=st.sampled_from(sorted(FOREIGN)),
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    where=st.sampled_from(["user", "assistant", "both"]),
)
@settings(max_examples=100, deadline=None)
def test_a_line_in_a_language_not_configured_is_dropped(
    language: str, picks: list[int], where: str
) -> None:
    foreign = " ".join(FOREIGN[language][i] for i in picks)
    user = foreign if where != "assistant" else ENGLISH[1]
    answer = foreign if where != "user" else ENGLISH[2]
    assert CHECK.run(example(user, answer)) == "language"
    allowed = QualityCheck(QualityConfig(languages=["en", language]))
    assert allowed.run(example(user, answer)) is None


@given(picks=st.lists(st.sampled_from(ENGLISH), min_size=2, max_size=4))
@settings(max_examples=100, deadline=None)
def test_english_lines_are_kept(picks: list[str]) -> None:
    user, *answer = picks
    assert CHECK.run(example(user, " ".join(answer))) is None


def test_short_texts_code_and_tokens_are_not_judged() -> None:
    assert CHECK.run(example("Was ist Go?", "Eine Sprache.")) is None  # too short to tell
    code = '```\n{ "basics": { "name": "[NAME]", "label": "Ingenieur" } }\n```'
    assert CHECK.run(example("What should a JSON Resume file look like?", code)) is None
    nothing = QualityCheck(QualityConfig(languages=[]))
    german = FOREIGN["de"][0]
    assert nothing.run(example(german, german)) is None


def test_languages_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"processing\.quality: languages\[1\]: 'english'"):
        parse_config({"processing": {"quality": {"languages": ["en", "english"]}}})
    with pytest.raises(ConfigError, match=r"processing\.quality\.language_confidence"):
        parse_config({"processing": {"quality": {"language_confidence": 2}}})
    config = parse_config({"processing": {"quality": {"languages": ["en", "de"]}}})
    assert config.processing.quality.languages == ["en", "de"]


# --- Fast paths agree with the plain computations they stand for ---------------------------------
# Each reference below is the check as first written (one pattern or one loop, no shortcut); the
# inputs mix what the shortcuts turn on: ASCII or not, apostrophes, markers, figures, separators,
# punctuation at word ends, the whitespace str.split() knows and bytes.split() does not.

TRICKY = st.lists(
    st.sampled_from(
        [
            *"aZ eE'’_-.,;:!?()\"“”<>#|/•·\n\t\x1c\x1f7[]XN%+",
            *["[NAME]", "[X]%", "[EMAIL_2]", "the", "The", "AND", "with", "bullet", "Bullet"],
            *["ſ", "İ", "ı", "é", "ß", "Ж", "٣", "```", "http://x.io", "www.x", "`c`", "you will"],
            *["Responsible for", "in charge of", "tasked with", "to ", "we need", "result", "cut"],
        ]
    ),
    max_size=40,
).map("".join)


OUTCOME = re.compile(
    r"\d|\[(?:X|N)\]|\b(?:result\w*|cut\w*|reduc\w*|increas\w*|rais\w*|lift\w*|sav\w*|"
    r"grow\w*|grew|boost\w*|shorten\w*|eliminat\w*|enabl\w*|achiev\w*|generat\w*|doubl\w*|"
    r"halv\w*|lower\w*|decreas\w*|accelerat\w*|prevent\w*|improv\w*|replac\w*|freeing)\b",
    re.IGNORECASE,
)


def reference_words(text: str) -> list[str]:
    from processors.markers import MARKER
    from processors.quality import _ASCII_WORD, _WORD

    text = MARKER.sub(" ", text)
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    return [w.lower() for w in _WORD.findall(text)]


def reference_input_text(user: str) -> str:
    from processors.quality import _QUOTED

    quoted = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(user)]
    if quoted:
        return "\n".join(quoted)
    _, newline, rest = user.partition("\n")
    if newline and rest.strip():
        return rest
    _, colon, after = user.partition(":")
    return after if colon and after.strip() else user


def reference_rewrite_reason(
    before: list[str], after: list[str], config: QualityConfig
) -> str | None:
    from difflib import SequenceMatcher

    fresh = [w for w in after if w not in set(before) and w not in STOCK_WORDS | STOP_WORDS]
    if len([w for w in fresh if len(w) > 1]) < config.min_new_words:
        return "trivial_rewrite"
    if before and after:
        ratio = SequenceMatcher(None, before, after, autojunk=False).ratio()
        if ratio >= config.near_copy_ratio:
            return "near_copy"
    return None


def reference_tag_list(text: str) -> bool:
    from processors.quality import (
        _MARKED_TAGS,
        _SEPARATOR_CHARS,
        _TAG_SEPARATORS,
        DUTY_VERBS,
        IRREGULAR_PAST,
    )

    text = text.strip().rstrip(".")
    if _MARKED_TAGS.match(text):
        return True
    if sum(map(text.count, _SEPARATOR_CHARS)) < 2:
        return False
    items = [item for item in _TAG_SEPARATORS.split(text) if item]
    if len(items) < 3 or any(len(item.split()) > 3 for item in items):
        return False
    split = [item.lower().split() for item in items]
    if any(w in STOP_WORDS for item in split for w in item):
        return False
    if split[0][0] in IRREGULAR_PAST or split[0][0] in DUTY_VERBS:
        return False
    openers = [item[0] for item in split if len(item) > 1]
    return not any(w in IRREGULAR_PAST or w in DUTY_VERBS or w.endswith("ed") for w in openers)


def reference_duty_line(answer: str) -> bool:
    from processors.formatters.job_posting import REQUIREMENT_OPENERS
    from processors.quality import _JOB_WAS, _POSTING_VOICE, DUTY_VERBS

    text = answer.strip().lstrip("-*•·– ").strip()
    if _POSTING_VOICE.match(text):
        return True
    if _JOB_WAS.match(text):
        return OUTCOME.search(text) is None
    first, _, rest = text.partition(" ")
    first = first.casefold().strip(",.:;()")
    base = first
    if first not in DUTY_VERBS:
        base = first[:-2] if first.endswith("es") and first[:-2] in DUTY_VERBS else first[:-1]
    if base not in DUTY_VERBS and first not in REQUIREMENT_OPENERS:
        return False
    return OUTCOME.search(rest) is None


def reference_prose(text: str) -> str:
    from processors.language import _NOT_PROSE, SAMPLE_CHARS

    return " ".join(_NOT_PROSE.sub(" ", text[: SAMPLE_CHARS * 4]).split())[:SAMPLE_CHARS]


@given(text=TRICKY)
@settings(max_examples=1500, deadline=None)
def test_the_quality_checks_shortcuts_agree_with_their_plain_forms(text: str) -> None:
    from processors import quality

    assert quality.words(text) == reference_words(text)
    assert input_text(text) == reference_input_text(text)
    assert quality.tag_list(text) == reference_tag_list(text)
    assert quality.duty_line(text) == reference_duty_line(text)
    first = text.partition("\n")[0]
    assert quality.is_bullet_task(example(text, "x"), text) == bool(
        quality._BULLET_TASK.search(first)
    )
    assert quality.states_outcome(text) == (OUTCOME.search(text) is not None)
    for answer in (text, (text + " ") * 3):  # about as many characters as words, and fewer
        stripped = answer.strip()
        question = stripped.rstrip("\"'”’)").endswith("?")
        for max_words in (5, 8, 20):
            expected = len(stripped.split()) > max_words or question or reference_tag_list(stripped)
            assert quality.not_a_bullet(answer, max_words) == expected


@given(
    before=st.lists(st.sampled_from(["a", "the", "billing", "cut", "team", "x", "é", "api"])),
    after=st.lists(st.sampled_from(["a", "the", "billing", "cut", "rate", "successfully", "é"])),
    min_new=st.integers(0, 4),
    ratio=st.sampled_from([0.1, 0.5, 0.85, 1.0]),
)
@settings(max_examples=1000, deadline=None)
def test_the_rewrite_checks_shortcuts_agree_with_their_plain_forms(
    before: list[str], after: list[str], min_new: int, ratio: float
) -> None:
    from processors import quality

    config = QualityConfig(min_new_words=min_new, near_copy_ratio=ratio)
    have = set(before)
    expected = reference_rewrite_reason(before, after, config)
    got = "trivial_rewrite" if quality._count_new_words(have, after, min_new) < min_new else None
    if got is None and quality._near_copy(before, after, ratio, have):
        got = "near_copy"
    assert got == expected
    assert quality._near_copy(before, after, ratio) == quality._near_copy(
        before, after, ratio, have
    )


def test_duty_line_skips_its_patterns_only_for_openings_they_cannot_match() -> None:
    """IGNORECASE matches a letter to itself and to letters of other case only: every character
    with a case is tried in front of each alternative's rest."""
    import sys

    cased = [c for c in map(chr, range(sys.maxunicode + 1)) if c.lower() != c.upper()]
    rests = ["ou will x", "ill x", "o x", "he role will x", "e need x", "esponsible for x"]
    rests += ["n charge of x", "asked with x", "uties include x", "esponsibilities include x"]
    for char in [*cased, "1", " ", "-"]:
        for rest in rests:
            assert duty_line(char + rest) == reference_duty_line(char + rest)


def reference_looks_english(text: str) -> bool:
    from processors.language import _ENGLISH

    words = text.lower().split()
    hits = sum(word.strip(",.;:!?()\"'") in _ENGLISH for word in words)
    return hits >= max(3, (len(words) + 3) // 4)


ENGLISH_CHECK = QualityCheck(QualityConfig(language_confidence=0.0)).language


@given(text=TRICKY)
@settings(max_examples=800, deadline=None)
def test_the_language_checks_shortcuts_agree_with_their_plain_forms(text: str) -> None:
    from processors import language

    for sample in (text, text * 30):  # and past the sample's length
        prose = reference_prose(sample)
        assert language.prose(sample) == prose
        assert language.looks_english(prose) == reference_looks_english(prose)
        head = language._plain_head(sample)
        if head is not None and head.isascii():  # foreign()'s way, in bytes
            encoded, words = language._ascii_prose(head)
            assert encoded.decode() == prose
            assert language._english_words(words) == reference_looks_english(prose)
        letters = len(re.sub(r"[\W\d_]+", "", prose))
        expected = None
        if not reference_looks_english(prose) and letters >= ENGLISH_CHECK.min_chars:
            expected = ENGLISH_CHECK._identify(prose, letters)
        assert ENGLISH_CHECK.foreign(sample) == expected


def test_the_last_unmarked_text_is_only_reused_for_that_very_string() -> None:
    from processors import language, quality
    from processors.markers import MARKER

    answer = "Cut costs by [X]% for [NAME]'s team"
    assert quality.words(answer) == reference_words(answer)
    assert language.prose(answer) == reference_prose(answer)  # the same string: reused
    other = "".join(["Cut costs by [N]", " for the team"])  # another string, made at run time
    assert language.unmarked(other) == MARKER.sub(" ", other) != MARKER.sub(" ", answer)
    assert language.unmarked(answer) == MARKER.sub(" ", answer)
    assert language.unmarked("no marker") == "no marker"
    english = QualityCheck(QualityConfig()).language
    assert english.foreign(answer) is None and english.foreign(answer * 20) is None
