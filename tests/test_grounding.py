"""Grounding: an answer that transforms a user's text states no figure or name it lacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.config import ConfigError, parse_config
from processors.chain import ExampleStages, ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.grounding import (
    PLACEHOLDER,
    GroundingCheck,
    figures,
    grounded_values,
    judge,
    mask,
)
from processors.records import Example, Message, RawRecord
from tests.conftest import (
    formatted_tasks,
    run_collector,
    write_config,
)

# --- generators of real-world figures --------------------------------------------------------

counts = st.integers(min_value=2, max_value=9_999_999)


def thousands(n: int) -> str:
    return f"{n:,}"


@st.composite
def figure_forms(draw: st.DrawFn) -> tuple[str, str]:
    """(a figure as resumes write it, the placeholder form masking must give it)."""
    n = draw(counts)
    small = draw(st.integers(min_value=2, max_value=999))
    decimal = draw(st.integers(min_value=1, max_value=99)) / 10 + draw(st.integers(0, 9))
    decimal_text = f"{decimal:.1f}".rstrip("0").rstrip(".")
    return draw(
        st.sampled_from(
            [
                (f"{thousands(n)}+", "[N]+"),
                (f"{small}%", "[X]%"),
                (f"{decimal_text}%", "[X]%"),
                (f"{small} TB/day", "[N] TB/day"),
                (f"${decimal_text}M", "$[X]M"),
                (f"€{small}k", "€[X]k"),
                (f"{small}k", "[X]k"),
                (f"p95 {small} ms", "p95 [N] ms"),
                (f"{small} percent", "[X] percent"),
                (f"{small}-person", "[N]-person"),
                (f"{small} million", "[X] million"),
                ("two thirds of", "[X]% of"),
                ("a third", "[X]%"),
                ("twenty-five", "[N]"),
                ("three hundred", "[N]"),
                ("twice", "[N] times"),
            ]
        )
    )


VERBS = ["Resolved", "Shipped", "Cut", "Moved", "Raised", "Handled", "Reduced"]
NOUNS = ["support tickets", "services", "build time", "latency", "costs", "regressions"]


def improve(bullet: str) -> list[Message]:
    return [
        Message("system", "You are a world-class tech resume writer. Context: Engineer"),
        Message("user", f'Improve this resume bullet:\n"{bullet}"'),
    ]


def example(bullet: str, answer: str, source: str = "box") -> Example:
    return Example([*improve(bullet), Message("assistant", answer)], source, "d", "r")


# --- figures ---------------------------------------------------------------------------------


@given(figure_forms(), st.sampled_from(VERBS), st.sampled_from(NOUNS))
def test_an_invented_figure_in_any_form_is_found_and_masked(
    form: tuple[str, str], verb: str, noun: str
) -> None:
    written, placeholder = form
    answer = f"{verb} {written} {noun} across the team."
    verdict = judge(f'Improve this resume bullet:\n"{verb} {noun}."', answer)
    assert [f.text for f in verdict.figures], answer
    assert verdict.maskable
    masked = mask(answer, verdict.figures)
    assert masked == f"{verb} {placeholder} {noun} across the team."
    assert judge(f"{verb} {noun}.", masked).grounded


@given(figure_forms(), st.sampled_from(VERBS), st.sampled_from(NOUNS))
def test_a_figure_the_input_states_passes(form: tuple[str, str], verb: str, noun: str) -> None:
    written, _ = form
    bullet = f"{verb.lower()} {written} {noun}"
    assert judge(f"Improve: {bullet}", f"{verb} {written} {noun}, end to end.").grounded


@given(counts, st.sampled_from(NOUNS))
def test_the_same_value_written_another_way_passes(n: int, noun: str) -> None:
    assert judge(f"handled {n} {noun}", f"Handled {thousands(n)} {noun}").grounded
    if n % 1000 == 0:
        assert judge(f"handled {n} {noun}", f"Handled {n // 1000}k {noun}").grounded
    assert judge("cut costs by half", "Cut costs by 50%").grounded
    assert judge("mentored five juniors", "Mentored 5 juniors").grounded
    assert judge("a $2M budget", "a $2,000,000 budget, 2 million in all").grounded


@given(
    st.integers(min_value=1990, max_value=2020),
    st.integers(min_value=1, max_value=15),
)
def test_a_figure_derived_from_the_input_passes(start: int, years: int) -> None:
    end = start + years
    source = f"Ran the payments team ({start}-{end})."
    assert judge(source, f"Ran the payments team for {years} years.").grounded
    before, after = 900, 250
    source = f"Cut p95 latency from {before} ms to {after} ms."
    for answer in (
        f"Cut p95 latency by 72% (from {before} ms to {after} ms).",
        "Made checkout 3.6x faster.",
        "Cut p95 latency by 650 ms.",
    ):
        assert judge(source, answer).grounded, answer


@given(
    st.lists(st.sampled_from(["[N]", "[X]", "[X]%", "[N]+", "$[X]M", "[X]k", "[#]"]), min_size=1),
    st.sampled_from(VERBS),
)
def test_placeholders_pass(placeholders: list[str], verb: str) -> None:
    answer = f"{verb} " + ", ".join(
        f"{p} {noun}" for p, noun in zip(placeholders, NOUNS * 3, strict=False)
    )
    assert judge("Did some work.", answer).grounded
    assert figures(answer) == []


def test_names_with_digits_idioms_and_tokens_are_not_figures() -> None:
    text = "Ran S3, EC2 and OAuth2 on-call 24/7 with 2FA, paged [NAME_1] at [PHONE]; p99 too."
    assert figures(text) == []


_WORDY = st.sampled_from(
    [
        *("one", "two", "twelve", "Twenty-Five", "HUNDRED", "a", "dozen", "thousand", "half"),
        *("third", "thirds", "quarter", "quarters", "of", "twice", "doubled", "halves"),
        *("tenfold", "one-one", "service", "team", "Q3", "12%", "3.5M", "ſix", "K"),
    ]
)


@given(st.lists(_WORDY, min_size=1, max_size=8), st.sampled_from([" ", "-", ", "]))
def test_figures_skips_no_number_word_the_patterns_would_find(words: list[str], sep: str) -> None:
    """`figures` runs its word patterns only on texts holding one of their words: a shortcut
    that must find everything running them on every text finds."""
    from processors import grounding

    text = sep.join(words)
    blank = grounding._blank(text)
    patterns = (grounding._NUMBER_WORDS, grounding._FRACTIONS, grounding._MULTIPLES)
    expected = {m.start() for p in patterns for m in p.finditer(blank)}
    expected -= {
        m.start()
        for m in grounding._NUMBER_WORDS.finditer(blank)
        if m.group("words").lower() in ("a", "one")
    }
    found = {f.start for f in figures(text)}
    covered = {s for s in expected if any(f.start <= s < f.end for f in figures(text))}
    assert covered == expected, (text, found)


def test_invented_names_are_found_and_never_masked() -> None:
    verdict = judge(
        'Improve this resume bullet:\n"Built ETL jobs."',
        "Designed Airflow ETL jobs moving 3 TB/day into Snowflake with 99.9% on-time delivery.",
    )
    assert verdict.entities == ["Airflow", "Snowflake"]
    assert not verdict.maskable
    for answer, name in [
        ("Rebuilt the payments API in Go.", "Go"),
        ("Joined the platform team at Acme.", "Acme"),
        ("Moved CI from Jenkins to GitHub Actions.", "Jenkins"),
        ("Earned the PMP certification.", "PMP"),
        ("Cleaned data with pandas.", "pandas"),
    ]:
        assert name in judge("Worked on the platform.", answer).entities, answer


def test_names_the_input_gives_and_generic_terms_pass() -> None:
    source = "Built ETL jobs in airflow feeding snowflake; set up CI/CD on GitHub."
    answer = "Designed Airflow ETL jobs feeding Snowflake, with CI and API tests on GitHub."
    assert judge(source, answer).grounded
    assert judge("Did stuff.", "Next, shipped the KPI dashboards.").grounded


# --- the check in the chain ------------------------------------------------------------------

ISSUE_ANSWER = (
    "Resolved 1,200+ support tickets a quarter with a 96% satisfaction score, "
    "contributing to a 15% drop in churn."
)
ISSUE_MASKED = (
    "Resolved [N]+ support tickets a quarter with a [X]% satisfaction score, "
    "contributing to a [X]% drop in churn."
)


def test_mask_turns_invented_figures_into_placeholders() -> None:
    check = GroundingCheck("mask")
    line = example("Answered support tickets.", ISSUE_ANSWER)
    assert check.run(line) is None
    assert line.messages[-1].content == ISSUE_MASKED
    assert line.grounding == "masked"
    assert check.outcomes == {"checked": 1, "masked": 1}


def test_mask_drops_an_invented_name_and_drop_and_keep_do_as_they_say() -> None:
    airflow = "Designed Airflow ETL jobs."
    assert GroundingCheck("mask").run(example("Built ETL jobs.", airflow)) == "invented_fact"
    assert GroundingCheck("drop").run(example("Answered tickets.", ISSUE_ANSWER)) == (
        "invented_fact"
    )
    keep = GroundingCheck("keep")
    line = example("Answered support tickets.", ISSUE_ANSWER)
    assert keep.run(line) is None
    assert line.messages[-1].content == ISSUE_ANSWER
    assert line.grounding == "kept"
    assert keep.outcomes == {"checked": 1, "kept": 1}


def test_a_grounded_answer_is_left_alone() -> None:
    check = GroundingCheck("mask")
    line = example("Answered 1,200 tickets a quarter.", "Resolved 1,200+ tickets a quarter.")
    assert check.run(line) is None
    assert line.grounding == ""
    assert line.messages[-1].content == "Resolved 1,200+ tickets a quarter."


def test_chat_lines_are_checked_only_when_the_user_asks_for_a_transformation() -> None:
    check = GroundingCheck.for_recipe(RecipeConfig(name="chat"))
    assert check is not None
    question = Example(
        [
            Message("user", "How long should a resume be for five years of experience?"),
            Message("assistant", "One page; keep the two latest roles with 3 to 5 bullets."),
        ],
        "chat",
        "d",
        "r",
    )
    assert check.run(question) is None
    assert question.grounding == ""
    rewrite = Example(
        [Message("user", "Can you rewrite my summary: backend engineer"), Message("assistant", "")],
        "chat",
        "d",
        "r",
    )
    rewrite.messages[-1] = Message("assistant", "Backend engineer with 8 years of Go.")
    assert check.run(rewrite) == "invented_fact"  # Go is a name: no placeholder for it
    assert GroundingCheck.for_recipe(RecipeConfig(name="qa")) is None


def test_the_chain_grounds_after_anonymizing_and_before_validating() -> None:
    chain = ProcessorChain(RecipeConfig(name="pairs", grounding="mask"), ProcessingConfig())
    record = RawRecord(
        "box",
        "local/b",
        "1",
        {"original": "Answered support tickets.", "improved": ISSUE_ANSWER, "context": "Support"},
    )
    out = chain.run([record])
    assert [e.messages[-1].content for e in out.examples] == [ISSUE_MASKED]
    assert chain.stages.grounding is not None
    assert chain.stages.grounding.outcomes["masked"] == 1
    dropping = ExampleStages(ProcessingConfig(), GroundingCheck("drop"))
    assert dropping.run(example("Answered tickets.", ISSUE_ANSWER)) == "invented_fact"


def test_grounding_is_validated_at_load_with_the_field_named() -> None:
    def source(recipe: str) -> dict[str, object]:
        return {
            "sources": [{"type": "inbox", "name": "box", "recipe": msgspec.json.decode(recipe)}]
        }

    config = parse_config(source('{"name": "pairs", "grounding": "drop"}'))
    assert config.sources[0].recipe.grounding == "drop"
    with pytest.raises(ConfigError) as bad:
        parse_config(source('{"name": "pairs", "grounding": "hide"}'))
    assert "sources[0].recipe.grounding" in str(bad.value)
    with pytest.raises(ConfigError) as qa:
        parse_config(source('{"name": "qa", "grounding": "mask"}'))
    assert "sources[0].recipe: grounding" in str(qa.value)


# --- the demo --------------------------------------------------------------------------------

_QUOTED = re.compile(r'"(.*)"', re.DOTALL)


@pytest.mark.slow
def test_no_published_demo_answer_states_a_figure_its_input_lacks(
    demo: tuple[Path, Path],
) -> None:
    _, data = demo
    published = sorted((data / "published" / "data").glob("*/*.jsonl"))
    task_of = formatted_tasks(data)
    checked = 0
    for path in published:
        for raw in path.read_text().splitlines():
            messages = json.loads(raw)["messages"]
            if task_of[raw] not in ("improve_bullet", "star_bullet", "tailor_to_posting"):
                continue  # questions (Stack Exchange, the inbox's advice) are not transformations
            checked += 1
            given_text = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
            have = grounded_values(given_text)
            for message in messages:
                if message["role"] != "assistant":
                    continue
                answer = message["content"]
                invented = [f.text for f in figures(answer) if not (f.values & have)]
                assert not invented, (path.name, answer)
                # and, plainly: every run of digits outside a placeholder is in the input
                digits = re.findall(r"(?<![A-Za-z\d])\d+", PLACEHOLDER.sub(" ", answer))
                for run in digits:
                    assert run in given_text.replace(",", "") or run in have, (path.name, answer)
    # The sandbox LLM prefixes "Successfully" to a bullet without a weak opening: those trivial
    # rewrites are dropped (processors/quality.py), the curated bullets and the rewrites with
    # words of their own remain.
    assert checked >= 15


def test_clean_report_and_stats_count_masked_dropped_and_kept_per_source(
    tmp_path: Path, data_dir: Path
) -> None:
    rows = [
        ("Answered support tickets.", ISSUE_ANSWER),
        (
            "Built ETL jobs.",
            "Designed Airflow ETL jobs that load partner invoices nightly.",
        ),  # a name
    ]
    sources = ""
    for name, action in (("masking", "mask"), ("dropping", "drop"), ("keeping", "keep")):
        inbox = tmp_path / name
        inbox.mkdir()
        grounded = (
            f"Answered 40 {name} tickets a day.",
            f"Resolved 40 {name} tickets a day through a shared triage queue and written replies.",
        )
        lines = [{"original": o, "improved": i, "context": "Support"} for o, i in [*rows, grounded]]
        (inbox / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        sources += f"""
[[sources]]
type = "inbox"
name = "{name}"
path = "{inbox}"
recipe = {{ name = "pairs", grounding = "{action}" }}
"""
    config = write_config(tmp_path / "c.toml", sources, data_dir)
    done = run_collector("once", "--config", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    formatted = data_dir / "formatted"

    def report(name: str) -> dict[str, object]:
        return dict(json.loads((formatted / f"local__{name}__clean_report.json").read_text()))

    assert report("masking")["invented_facts"] == {"masked": 1, "dropped": 1, "kept": 0}
    assert report("dropping")["invented_facts"] == {"masked": 0, "dropped": 2, "kept": 0}
    assert report("dropping")["drop_reasons"] == {"invented_fact": 2}
    assert report("keeping")["invented_facts"] == {"masked": 0, "dropped": 0, "kept": 2}
    masked = (formatted / "local__masking.jsonl").read_text()
    assert ISSUE_MASKED in masked and ISSUE_ANSWER not in masked
    assert ISSUE_ANSWER in (formatted / "local__keeping.jsonl").read_text()
    stats = run_collector("stats", "--config", str(config))
    assert stats.returncode == 0, stats.stderr
    assert "answers with invented facts: masked 1, dropped 1, kept 0" in stats.stdout
    assert "answers with invented facts: masked 0, dropped 0, kept 2" in stats.stdout


# --- shortcuts agree with the long way -------------------------------------------------------
# `processors/grounding.py` takes shortcuts for speed. Each test below runs a shortcut and the way
# it stands for on texts made to trip it: capitals, letters outside ASCII that match ASCII ones
# case-insensitively (`ſ`, the Kelvin sign `K`), digits outside ASCII (`٣`), spaces `\s` matches
# but ASCII lacks (`\x1c`), figures that a line break cuts (`twenty\nfive hundred`, `50\n%`).

# The patterns as they were written before they were rewritten for speed.
_DIGITS_BEFORE = (
    r"(?P<num>\d(?<![A-Za-z0-9_.,]\d)(?:\d{0,2}(?:,\d{3})+(?!\d)|\d*))(?P<frac>\.\d+)?"
    r"(?:(?P<glued>k|K|M|MM|B|bn|mn)\b|\s?(?P<word>thousand|million|billion|trillion)\b)?"
    r"(?P<pct>\s?%|\s?percent\b|\s?per\s?cent\b)?"
)
_IDIOMS_BEFORE = (
    r"[1-5](?<![\w/].)(?:(?<=2)4/7|(?<=2)4x7|(?<=1):1|(?<=1)-on-1|(?<=3)60(?:-degree|°)|(?<=2)FA"
    r"|(?<=[2-5])G|(?<=[23])D)(?!\w)"
)

_TRICKY = [
    *("half", "Half", "HALF", "halves", "a", "A", "one", "One", "two", "TWO", "three", "third"),
    *("thirds", "quarter", "Quarters", "of", "part", "-part", "-", "twenty", "Five", "hundred"),
    *("thousand", "million", "per", "cent", "percent", "%", "k", "K", "M", "MM", "bn", "mn"),
    *("twice", "Doubled", "tenfold", "1,200", "3", "2", "12.5", "0.5", "7", "2019", "$", "€"),
    *("24/7", "24x7", "1:1", "1-on-1", "360-degree", "360°", "2FA", "5G", "3D", "S3", "p95"),
    *("Q3", "٣", "ſix", "K", "team", "Cut", "the", "_", ".", ",", "/", "[N]", "[NAME]", "é"),
]
_GLUE = st.sampled_from(["", " ", "  ", "\n", " \n ", "-", ", ", ".", "\x1c", "\u2003"])


@st.composite
def tricky_texts(draw: st.DrawFn, words: list[str] = _TRICKY) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(words), _GLUE), max_size=10))
    return "".join(word + glue for word, glue in parts)


def _found(pattern: re.Pattern[str], text: str) -> list[tuple[tuple[int, int], dict[str, str]]]:
    return [(m.span(), m.groupdict()) for m in pattern.finditer(text)]


_TRICKY_CASES = [
    *("one third part", "One third -part", "a third - part", "a third\n-\npart", "two  thirds"),
    *("2\nthirds", "three quarters of", "3 quarters off", "a quarter of", "one QUARTER\nof"),
    *("half", "Half-time", "behalf", "halfway", "half_", "HALF.", "ſix hundred", "twenty-ſix"),
    *("5 per cent", "5percent", "5 %", "5\x1c%", "5\u2003percent", "5\x1cthousand", "5K", "5MM"),
    *("1,200,000", "12,34", "3.5M", "2 thousand", "٣٤%", "x2", "2x", "$5", "€5k", "7.5 per"),
    *("24/7", "24x7", "1:1", "1-on-1", "360°", "360-degree", "2FA", "5G", "3D", "2D", "124/7"),
]


@pytest.mark.parametrize("text", _TRICKY_CASES)
def test_patterns_rewritten_for_speed_find_what_they_did_in_tricky_texts(text: str) -> None:
    _assert_patterns_find_what_they_did(text)


@given(tricky_texts())
def test_patterns_rewritten_for_speed_find_what_they_did(text: str) -> None:
    _assert_patterns_find_what_they_did(text)


def _assert_patterns_find_what_they_did(text: str) -> None:
    from processors import grounding

    assert _found(grounding._DIGITS, text) == _found(re.compile(_DIGITS_BEFORE), text)
    assert _found(grounding._IDIOMS, text) == _found(re.compile(_IDIOMS_BEFORE), text)
    if text.isascii():  # what the ASCII and lower-case forms are used for
        assert _found(grounding._DIGITS_ASCII, text) == _found(grounding._DIGITS, text)
        lowered = text.lower()
        for lower, pattern in [
            (grounding._NUMBER_WORDS_LOWER, grounding._NUMBER_WORDS),
            (grounding._FRACTIONS_LOWER, grounding._FRACTIONS),
            (grounding._MULTIPLES_LOWER, grounding._MULTIPLES),
        ]:
            assert _found(lower, lowered) == _found(pattern, lowered)
            assert [s for s, _ in _found(lower, lowered)] == [s for s, _ in _found(pattern, text)]
        words = set(grounding._letter_runs(text))
        if b"half" in words and words.isdisjoint(grounding._MORE_FRACTIONS):
            assert _found(grounding._HALF, lowered) == _found(grounding._FRACTIONS_LOWER, lowered)


def _digit_figures_before(blank: str) -> list[tuple[object, ...]]:
    """The figures in digits of `blank` as `_figures` made them before its shortcuts."""
    from processors import grounding

    found: list[tuple[object, ...]] = []
    for match in re.finditer(_DIGITS_BEFORE, blank):
        num, frac, glued, word, pct = match.group("num", "frac", "glued", "word", "pct")
        number = num.replace(",", "") + (frac or "")
        value = float(number)
        scale = glued or word
        if scale:
            value *= grounding._SCALES[scale]
        start, end = match.span()
        money = start > 0 and blank[start - 1] in "$€£¥"
        exact = not (pct or scale or frac or money)
        values = grounding._values(value, bool(pct))
        if scale:
            values |= {grounding._canon(float(number))}
        mask_end = start + len(num) + len(frac or "")
        placeholder = "[N]" if exact else "[X]"
        found.append((start, end, match.group(0), values, placeholder, start, mask_end))
    return found


_DIGITS_ONLY = [
    *("1,200", "12,34", "3", "40", "7.5", ".5", "0.91", "2019", "٣", "٤٥", "1st", "S3", "p95"),
    *("k", "K", "M", "MM", "B", "bn", "mn", "thousand", "million", "billion", "trillion", "TB"),
    *("%", "percent", "per", "cent", "$", "€", "£", "¥", "x", "+", "24/7", "2FA", "team"),
]


@given(tricky_texts(_DIGITS_ONLY))
def test_figures_in_digits_are_made_as_they_were(text: str) -> None:
    """`_figures` makes a whole number's figure on a shortcut (`lastindex`): the same figure."""
    from processors import grounding

    blank = grounding._blank(text)
    assert [tuple(f) for f in grounding._figures(blank)] == _digit_figures_before(blank)


def _stated(text: str) -> list[frozenset[str]]:
    return [f.values for f in figures(text)]


# How a text may end and the next begin so that a figure goes on from one into the other.
_ENDS = ["a", "One", "third", "a third", "a third -", "quarters", "quarter", "twenty", "5"]
_ENDS += ["hundred", "5 per", "5k", "2 thousand", "ſix", "K", "3", " ", "\x1c", "-", ""]
_STARTS = ["part", "-part", " part", "five", "Hundred", "%", "percent", "cent", "of", " of"]
_STARTS += ["third", " third", "thousand", "ſix", "\n", ""]


@st.composite
def input_texts(draw: st.DrawFn) -> str:
    ends = st.sampled_from(_ENDS)
    return draw(st.sampled_from(_STARTS)) + draw(tricky_texts()) + draw(ends) + draw(ends)


@given(st.lists(input_texts(), max_size=6))
def test_an_input_read_text_by_text_states_what_the_joined_texts_do(texts: list[str]) -> None:
    """The input of an answer is read in parts, cut at the line breaks that `_figure_may_go_on`
    says no figure goes over: the parts state, in order, just what the whole text states."""
    from processors import grounding

    parts = grounding._Input(texts)._parts
    assert "\n".join(parts) == "\n".join(texts)
    assert [v for part in parts for v in _stated(part)] == _stated("\n".join(texts))


def test_a_figure_that_a_line_break_cuts_is_read_whole() -> None:
    from processors import grounding

    for texts in [
        ["Led twenty", "five hundred engineers"],
        ["Cut costs by 50", "% in a year"],
        ["Cut costs by 5 per", "cent"],
        ["Grew sales by a", "third"],
        ["Grew sales by three quarters", "of a point"],
        ["Cut it by a third -", "part of the plan"],
        ["Cut it by a", "", "third"],
        ["Cut it by a third", "part of the plan"],
        ["Cut it by a quarter", "of its cost"],
        ["Grew it 5", "thousand-fold"],
        ["Led ſix", "hundred people"],  # `ſ` is an `s`, case aside
    ]:
        assert len(grounding._Input(texts)._parts) == 1, texts
    for texts, value, grounded in [
        (["Led twenty", "five hundred engineers"], "2500", True),
        (["Grew sales by a", "third"], "33", True),
        (["Grew sales by three quarters", "of a point"], "75", True),
        (["Cut it by a third -", "part of the plan"], "33", False),  # a third part: no fraction
        (["Cut it by a third", "part of the plan"], "33", False),
    ]:
        assert judge("\n".join(texts), f"x {value}").grounded == grounded
        assert grounding._judge(grounding._Input(texts), f"x {value}").grounded == grounded
    # A text that ends a sentence, or in a word no figure goes on after, ends its figures.
    parts = grounding._Input(["You are a resume writer.", "Improve:", "2 teams", "x"])._parts
    assert len(parts) == 4


@given(
    st.lists(st.lists(st.integers(0, 120), max_size=30), min_size=1, max_size=4),
    st.lists(st.integers(0, 400), min_size=1, max_size=6),
)
def test_the_numbers_paired_are_the_first_of_the_whole_input(
    inputs: list[list[int]], stated: list[int]
) -> None:
    """Each part keeps only its first `_PAIRED_VALUES` numbers: the first of the whole input
    are among them, and only those are paired (`2019-2023` is 4 years)."""
    from processors import grounding

    texts = [" ".join(str(n) for n in numbers) + "." for numbers in inputs]
    answer = " and ".join(str(n) for n in stated)
    have = grounded_values("\n".join(texts))
    invented = [f for f in figures(answer) if not (f.values & have)]
    assert grounding._judge(grounding._Input(texts), answer).figures == invented


def test_the_41st_number_of_an_input_is_not_paired() -> None:
    from processors import grounding

    one_part = [" ".join(str(n) for n in range(1000, 1041))]
    three_parts = [" ".join(str(n) for n in range(n, n + 20)) + "." for n in (1000, 1020)]
    three_parts.append("1040")
    assert len(grounding._Input(three_parts)._parts) == 3
    for texts in (one_part, three_parts):
        assert "40" not in grounded_values("\n".join(texts))  # 1040 - 1000, the 41st number
        assert not grounding._judge(grounding._Input(texts), "Saved 40 ms").grounded
        assert grounding._judge(grounding._Input(texts), "Saved 39 ms").grounded


_ENTITY_WORDS = [
    *("Cut", "cut", "the", "pandas", "Pandas", "Spark", "spark", "AWS", "API", "APIs", "S3"),
    *("p95", "node.js", "Node.js", "C++", "c++", "C#", "c#", "R&D", "a+", "at", "At", "Acme"),
    *("using", "iOS", "e.g", "don't", "field-service", "É", "ñandú", "K", "ſpark", "[NAME]"),
    *("7", "2FA", "GitHub", "GITHUB", "REST", "Kafka", "kafka", "x", "Next", "Go", "go"),
]
_ENTITY_GLUE = st.sampled_from([" ", ". ", ", ", "\n", "-", "'", "’", " (", " “", ": ", "_"])


@st.composite
def sentences(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(_ENTITY_WORDS), _ENTITY_GLUE), max_size=10))
    opening = draw(st.sampled_from(["", " ", "- ", "“", "7 ", "(2) "]))
    return opening + "".join(w + g for w, g in parts)


@given(sentences())
def test_names_found_without_the_shortcut_are_those_found_with_it(text: str) -> None:
    """`_names_nothing` lets `_entities` skip its word-by-word reading: only when that reading
    finds nothing."""
    from unittest import mock

    from processors import grounding

    blank = grounding._blank(text)
    with mock.patch.object(grounding, "_names_nothing", return_value=False):
        word_by_word = grounding._entities(blank)
    assert grounding._entities(blank) == word_by_word
    if grounding._names_nothing(blank, grounding.known_entities()):
        assert word_by_word == []


def test_most_answers_take_the_shortcuts() -> None:
    from processors import grounding

    answer = "Cut the error rate of billing service 7 by half within one year"
    assert grounding._names_nothing(answer, grounding.known_entities())
    assert not grounding._names_nothing("Moved jobs to Airflow", grounding.known_entities())
    assert not grounding._names_nothing("Cleaned data with pandas", grounding.known_entities())
    # a known name that opens no sentence names a tool, first word or not
    assert not grounding._names_nothing("7 Spark jobs", grounding.known_entities())
    assert grounding.entities("7 Spark jobs") == ["Spark"]


def _input_words_before(text: str) -> set[str]:
    from processors import grounding

    words: set[str] = set()
    for match in grounding._ENTITY_WORD.finditer(text):
        for part in [*re.split(r"[.&+#/]", match.group(0)), match.group(0)]:
            if part:
                words |= grounding._word_forms(part)
    return words


@given(sentences())
def test_input_words_are_those_read_match_by_match(text: str) -> None:
    from processors.grounding import input_words

    assert input_words(text) == _input_words_before(text)


def _run_before(check: GroundingCheck, example: Example) -> str | None:
    """`GroundingCheck.run` as it was: each answer judged on all the texts before it, joined."""
    if example.kind != "train" or not any(m.role == "assistant" for m in example.messages):
        return None
    check.outcomes["checked"] += 1
    action = check.per_source.get(example.source, check.action)
    given_texts: list[str] = []
    messages = list(example.messages)
    ungrounded = False
    for index, message in enumerate(messages):
        if message.role != "assistant":
            given_texts.append(message.content)
            continue
        verdict = judge("\n".join(given_texts), message.content)
        if verdict.grounded:
            continue
        ungrounded = True
        if action == "drop" or (action == "mask" and not verdict.maskable):
            check.outcomes["dropped"] += 1
            return "invented_fact"
        if action == "mask":
            messages[index] = Message("assistant", mask(message.content, verdict.figures))
    if not ungrounded:
        return None
    outcome = "masked" if action == "mask" else "kept"
    check.outcomes[outcome] += 1
    example.grounding = outcome
    if action == "mask":
        example.messages = messages
    return None


@given(
    st.lists(
        st.tuples(st.sampled_from(["system", "user", "assistant"]), tricky_texts() | sentences()),
        max_size=8,
    ),
    st.sampled_from(["mask", "drop", "keep"]),
)
def test_a_chat_is_checked_as_when_each_answer_was_judged_on_all_before_it(
    turns: list[tuple[str, str]], action: str
) -> None:
    def line() -> Example:
        return Example([Message(role, text) for role, text in turns], "box", "d", "r")  # type: ignore[arg-type]

    new, old = line(), line()
    check, reference = GroundingCheck(action), GroundingCheck(action)  # type: ignore[arg-type]
    assert check.run(new) == _run_before(reference, old)
    assert (new.messages, new.grounding) == (old.messages, old.grounding)
    assert check.outcomes == reference.outcomes
