"""The opt-out list: people who asked to be left out are dropped as `opted_out` as they are
fetched, matched on the records before anonymization."""

from __future__ import annotations

import json
import os
from pathlib import Path

from collector.logging import get_logger
from collector.optout import OptOutFile
from processors.optout import OptOutList
from processors.records import RawRecord
from tests.conftest import ROOT, run_collector, write_config
from tests.daemon_process import SANDBOX_SOURCES

SANDBOX = ROOT / "collector" / "sandbox" / "data"


def github_record(repo: str, payload: dict[str, object]) -> RawRecord:
    return RawRecord(
        "gh", "github/json-resume", f"{repo}/resume.json", payload, meta={"repo": repo}
    )


def se_record(question_owner: int, answer_owners: list[int]) -> RawRecord:
    payload = {
        "question": {"owner": {"user_id": question_owner}, "body": "How long should it be?"},
        "answers": [{"owner": {"user_id": u}, "body": "One page."} for u in answer_owners],
    }
    return RawRecord("se", "stackexchange/workplace", f"q{question_owner}", payload)


def test_text_entries_match_whole_words_in_any_case_before_anonymization() -> None:
    optout = OptOutList.parse(
        "# asked on 2026-01-05\n\njane.doe@example.com  # by e-mail\nAnn Lee\nhttps://github.com/x1\n"
    )
    jane = github_record("a/r", {"basics": {"email": "JANE.DOE@example.COM"}})
    ann = github_record("b/r", {"basics": {"name": "Ann  Lee"}, "note": "see ann lee's work"})
    joann = github_record("c/r", {"basics": {"name": "Joann Leeds"}})  # not a whole word
    url = github_record("d/r", {"basics": {"profiles": [{"url": "https://github.com/x1"}]}})
    other = github_record("e/r", {"basics": {"profiles": [{"url": "https://github.com/x12"}]}})
    kept, drops = optout.split([jane, ann, joann, url, other])
    assert kept == [joann, other]
    assert [(d.record_id, d.reason, d.detail) for d in drops] == [
        ("a/r/resume.json", "opted_out", "text"),
        ("b/r/resume.json", "opted_out", "text"),
        ("d/r/resume.json", "opted_out", "text"),
    ]
    assert len(optout) == 3


def test_a_github_login_drops_the_records_of_its_repositories_and_names_only_the_kind() -> None:
    optout = OptOutList.parse("github:JDoe-Dev\n")
    theirs = github_record("jdoe-dev/resume", {"basics": {"name": "Jane Doe"}})
    mentions = github_record("someone/cv", {"basics": {"summary": "worked with jdoe-dev"}})
    kept, drops = optout.split([theirs, mentions])
    assert kept == [mentions]  # a login is an account, not a word to look for in text
    assert [(d.record_id, d.detail) for d in drops] == [
        ("jdoe-dev/resume/resume.json", "github login")
    ]
    assert "jdoe" not in drops[0].detail.casefold()  # the entry itself never reaches a report


def test_a_stack_exchange_user_id_drops_what_they_asked_and_what_they_answered() -> None:
    optout = OptOutList.parse("stackexchange:200\n")
    asked = se_record(200, [300])
    answered = se_record(100, [300, 200])
    neither = se_record(101, [300])
    kept, drops = optout.split([asked, answered, neither])
    assert kept == [neither]
    assert [d.detail for d in drops] == ["stackexchange user", "stackexchange user"]


def test_an_empty_list_keeps_everything() -> None:
    records = [se_record(1, [])]
    assert OptOutList.parse("# nobody yet\n\n").split(records) == (records, [])


def test_the_file_is_read_again_when_it_changes_and_kept_while_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text("github:jdoe-dev\n")
    optout = OptOutFile(path, get_logger())
    record = github_record("emma-b/resume", {"basics": {"email": "emma-b@example.com"}})
    assert optout.current().match(record) == ""
    path.write_text("github:jdoe-dev\nemma-b@example.com\n")
    os.utime(path, ns=(1, 1))  # a different version even within the clock's resolution
    assert optout.current().match(record) == "text"
    path.unlink()
    assert optout.current().match(record) == "text"  # the last list read still applies


def test_once_drops_opted_out_people_from_every_output_and_counts_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "training-data"
    optout = tmp_path / "optout.txt"
    optout.write_text("github:jdoe-dev\nEMMA-B@example.com\nstackexchange:100\n")
    privacy = f'\n[privacy]\noptout = "{optout}"\n'
    config = write_config(tmp_path / "config.toml", privacy + SANDBOX_SOURCES, data_dir)
    done = run_collector("once", "--sandbox", "--config", str(config))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_left_out(data_dir)
    assert "emma-b@example.com" not in done.stdout.casefold()  # nor in any log line
    # `reprocess` applies the list too: the way to rebuild output without someone.
    again = tmp_path / "again"
    done = run_collector("reprocess", "--config", str(config), "--output", str(again))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_left_out(again)


def assert_left_out(data_dir: Path) -> None:
    """No output of GitHub's jdoe-dev and emma-b, nor of Stack Exchange user 100; each
    record of theirs counted as opted_out."""
    formatted = data_dir / "formatted"
    pairs = [json.loads(line) for line in (formatted / "github__json-resume__pairs.jsonl").open()]
    owners = {line["record_id"].split("/")[0] for line in pairs}
    assert owners and not owners & {"jdoe-dev", "emma-b"}
    asked_or_answered = se_posts_of(100)
    questions = [
        json.loads(line)["record_id"]
        for line in (formatted / "stackexchange__workplace__provenance.jsonl").open()
    ]
    assert questions and not {q.split("/")[-1] for q in questions} & asked_or_answered
    github = json.loads((formatted / "github__json-resume__clean_report.json").read_text())
    assert github["drop_reasons"]["opted_out"] == 2
    se = json.loads((formatted / "stackexchange__workplace__clean_report.json").read_text())
    assert se["drop_reasons"]["opted_out"] == len(asked_or_answered)


def se_posts_of(user_id: int) -> set[str]:
    """The question ids user `user_id` asked or answered in the sandbox's Stack Exchange."""
    data = json.loads((SANDBOX / "stackexchange" / "workplace.json").read_text())
    asked = {str(q["question_id"]) for q in data["questions"] if q["owner"]["user_id"] == user_id}
    answered = {str(a["question_id"]) for a in data["answers"] if a["owner"]["user_id"] == user_id}
    return asked | answered


def test_a_missing_optout_file_stops_the_start_and_fails_check_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml", f'\n[privacy]\noptout = "{tmp_path}/nope.txt"\n', tmp_path / "data"
    )
    checked = run_collector("check-config", str(config))
    assert checked.returncode == 2
    assert f"privacy.optout: cannot read {tmp_path}/nope.txt: No such file" in checked.stderr
    started = run_collector("once", "--config", str(config))
    assert started.returncode == 2
    assert "optout_unreadable" in started.stdout
