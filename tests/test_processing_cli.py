"""`resume-collector process`, `anonymize` and `validate` on real files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from tests.conftest import collector_command, subprocess_env

SYSTEM = {"role": "system", "content": "You are a world-class tech resume writer."}
ANSWER = (
    "Built a real-time fraud detection pipeline on Kafka and Flink that screened 40 million "
    "card transactions a day and cut chargebacks by a third within two quarters"
)
# The facts of ANSWER, as the user gives them: a rewrite states no figure or name it lacks.
FRAUD = (
    "did fraud work on Kafka and Flink: 40 million card transactions a day, chargebacks down "
    "by a third in two quarters"
)


def chat(user: str, answer: str, *, system: bool = True) -> dict[str, Any]:
    messages = [SYSTEM] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_lines(out: Path, name: str) -> list[dict[str, Any]]:
    return [
        line
        for split in ("train", "validation", "test")
        for line in read_jsonl(out / split / f"{name}.jsonl")
    ]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        collector_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )


@pytest.fixture
def resumes(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "acme__resumes.jsonl",
        [
            chat(f"Improve: {FRAUD}. Jane Doe, jane.doe@gmail.com", ANSWER),
            chat(f"Improve: {FRAUD.upper()}!  jane.doe@gmail.com", ANSWER.upper()),  # exact dup
            chat(f"Improve: {FRAUD}", ANSWER.replace("a third", "one third")),  # near dup
            chat(
                "Improve: moved 40 services to Go in Q3 2021",
                "Didnâ€™t stop at the plan: moved 40 services to Go in Q3 2021 and retired "
                "their old deploy scripts",
            ),
            chat("Improve: did things", "   "),
            "{not json",
            {"messages": [{"role": "robot", "content": "hi"}]},
            {"text": "no messages here"},
            chat(
                "Improve: hired 12 engineers 2019-2023, ARR $1.2M, 25%",
                "Hired 12 engineers over 2019-2023, grew ARR $1.2M (25%) and wrote the hiring "
                "playbook",
            ),
        ],
    )


def test_process_writes_splits_and_a_clean_report(resumes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("process", str(resumes), "--out", str(out), "--near")
    assert result.returncode == 0, result.stderr
    lines = all_lines(out, "acme__resumes")
    assert len(lines) == 3
    assert all(set(line) == {"messages"} for line in lines)
    text = json.dumps(lines, ensure_ascii=False)
    assert "[NAME]" in text and "[EMAIL]" in text
    assert "jane" not in text.lower() and "gmail" not in text
    assert "Didn’t stop" in text and "2019-2023, grew ARR $1.2M (25%)" in text
    report = json.loads((out / "acme__resumes__clean_report.json").read_text())
    assert report["fetched"] == 9 and report["written"] == 3 and report["dropped"] == 6
    assert report["drop_reasons"] == {
        "assistant_empty": 1,
        "duplicate_exact": 1,
        "duplicate_near": 1,
        "invalid_json": 1,
        "missing_messages": 1,
        "unrecognized_role": 1,
    }
    assert "3 written, 6 dropped" in result.stdout


def test_a_second_run_adds_only_what_is_new_and_dedupes_across_files(
    resumes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run("process", str(resumes), "--out", str(out)).returncode == 0
    first = all_lines(out, "acme__resumes")
    other = write_jsonl(
        tmp_path / "other.jsonl",
        [chat(f"Improve: {FRAUD}", ANSWER), chat("Improve: a new one", "Cut build time 40%")],
    )
    assert run("process", str(resumes), str(other), "--out", str(out)).returncode == 0
    assert all_lines(out, "acme__resumes") == first  # nothing written twice
    assert len(all_lines(out, "other")) == 1
    report = json.loads((out / "other__clean_report.json").read_text())
    assert report["drop_reasons"] == {"duplicate_exact": 1}
    assert (out / "state.sqlite3").exists()


def test_split_files_follow_the_group_hash(tmp_path: Path) -> None:
    lines = [
        chat(f"Improve bullet number {i}", f"Shipped feature {i} to {i * 7} customers")
        for i in range(300)
    ]
    source = write_jsonl(tmp_path / "many.jsonl", lines)
    out = tmp_path / "out"
    assert run("process", str(source), "--out", str(out), "--no-anonymize").returncode == 0
    sizes = {s: len(read_jsonl(out / s / "many.jsonl")) for s in ("train", "validation", "test")}
    assert sum(sizes.values()) == 300
    assert sizes["train"] > 240 and sizes["validation"] > 0 and sizes["test"] > 0


def test_process_refuses_a_missing_input(tmp_path: Path) -> None:
    result = run("process", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "nope.jsonl" in result.stderr


def test_anonymize_is_a_line_for_line_filter() -> None:
    text = (
        "Jane Doe\n"
        "\n"
        "reach me at jane dot doe at gmail dot com or +44 20 7946 0958\n"
        "Led Full Stack team in New York 2019-2023, $1.2M, v2.3.1\n"
        "last line without newline"
    )
    result = run("anonymize", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n") == [
        "[NAME]",
        "",
        "reach me at [EMAIL] or [PHONE]",
        "Led Full Stack team in New York 2019-2023, $1.2M, v2.3.1",
        "last line without newline",
    ]


def test_anonymize_jsonl_takes_whole_documents_and_keeps_their_shape(tmp_path: Path) -> None:
    resume = (
        "Tsegaye Xandoval\nData Engineer\n"
        "tsegaye.xandoval@gmail.com | linkedin.com/in/tsegaye-xandoval-61024944\n"
        "Led the 2019-2023 migration at Goldman Sachs."
    )
    source = tmp_path / "docs.jsonl"
    lines = [
        json.dumps(resume),
        json.dumps({"id": 7, "text": resume}),
        "",
        "{not json",
        json.dumps({"id": 8}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("anonymize", "--jsonl", str(source))
    assert result.returncode == 1  # two lines failed, each named; the others went through
    assert "line 4: not JSON" in result.stderr and "line 5:" in result.stderr
    out = result.stdout.split("\n")
    expected = (
        "[NAME]\nData Engineer\n[EMAIL] | [URL]\nLed the 2019-2023 migration at Goldman Sachs."
    )
    assert json.loads(out[0]) == expected  # newlines kept: the name line rule needs them
    assert json.loads(out[1]) == {"id": 7, "text": expected}
    assert out[2:] == ["", ""]


def test_anonymize_reads_a_file_and_takes_known_names(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("octocat fixed it\nthanks octocat, mail me: a@b.io\n", encoding="utf-8")
    result = run("anonymize", str(source), "--known-name", "octocat")
    assert result.stdout == "[NAME] fixed it\nthanks [NAME], mail me: [EMAIL]\n"


def test_validate_passes_a_clean_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [chat(f"Improve: {FRAUD}", ANSWER)] * 3)
    assert main(["validate", str(good)]) == 0
    assert "3 lines, 3 valid, 0 invalid" in capsys.readouterr().out


def test_validate_reports_every_failure_and_exits_1(
    resumes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(resumes), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["lines"] == 9 and report["invalid"] == 4
    assert report["reasons"] == {
        "assistant_empty": 1,
        "invalid_json": 1,
        "unrecognized_role": 1,
        "missing_messages": 1,
    }
    assert report["examples"]["invalid_json"] == [6]
    assert report["repaired"] == 1


def test_validate_without_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err
