"""`resume-collector report`: figures that match the files, goals, and a page that opens offline."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import run_collector, subprocess_env, write_config

INBOX_SOURCE = """
[[sources]]
type = "inbox"
name = "box"
path = "{inbox}"
license = "CC-BY-4.0"
recipe = {{ name = "chat" }}
"""
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return run_collector("report", *args)


def chat(system: str, user: str, answer: str) -> str:
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": answer},
    ]
    return json.dumps({"messages": messages}) + "\n"


def provenance(**fields: object) -> str:
    line = {"source": "box", "dataset": "local/box", "record_id": "r", "split": "train"}
    return json.dumps({**line, **fields}) + "\n"


@pytest.fixture
def config(tmp_path: Path, data_dir: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return write_config(tmp_path / "c.toml", INBOX_SOURCE.format(inbox=inbox), data_dir)


# --- the demo --------------------------------------------------------------------------------


def rows_of(data_dir: Path) -> list[tuple[dict[str, object], dict[str, object], bool]]:
    """(training line, provenance line, rewritten) of every published row, read plainly."""
    rows = []
    for path in sorted((data_dir / "formatted").glob("*.jsonl")):
        if path.name.endswith(("__provenance.jsonl", "__pairs.jsonl")):
            continue
        lines = path.read_text().splitlines()
        origins = path.with_name(f"{path.stem}__provenance.jsonl").read_text().splitlines()
        assert len(lines) == len(origins)
        for line, origin in zip(lines, origins, strict=True):
            rows.append((json.loads(line), json.loads(origin), "__rewritten" in path.name))
    return rows


@pytest.mark.slow
def test_the_demo_report_is_one_offline_page_with_svg_plots(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    config, _ = demo
    page = tmp_path / "report.html"
    done = report("--config", str(config), "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert html.count("<svg") >= 6  # sources, tasks, splits, synthetic, two histograms, ...
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script" not in html and "@import" not in html
    assert re.findall(r"url\(([^)]*)\)", html) and all(  # clip paths, inside the page
        u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html)
    )
    assert f"report written to {page}" in done.stdout


@pytest.mark.slow
def test_the_demo_report_figures_are_the_counts_of_the_files(demo: tuple[Path, Path]) -> None:
    config, data_dir = demo
    done = report("--config", str(config), "--json", "--out", str(data_dir / "r.html"))
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    rows = rows_of(data_dir)
    assert rows and figures["rows"] == len(rows)
    assert figures["per_source"] == dict(Counter(str(o["source"]) for _, o, _ in rows))
    assert figures["per_split"] == dict(Counter(str(o["split"]) for _, o, _ in rows))
    tasks = Counter(str(o.get("task") or "unknown") for _, o, _ in rows)
    assert figures["per_task"] == dict(tasks)
    assert figures["rewritten"] == sum(rewritten for _, _, rewritten in rows)
    systems: Counter[str] = Counter()
    for line, _, _ in rows:
        messages = line["messages"]
        assert isinstance(messages, list)
        system = [m["content"] for m in messages if m["role"] == "system"]
        systems[system[0].split(" Context:")[0] if system else "(no system prompt)"] += 1
    text, n = systems.most_common(1)[0]
    assert figures["top_system_prompts"][0] == {"text": text, "count": n, "share": n / len(rows)}
    # the drop reasons are the state store's, as `stats` shows them
    stats = json.loads(run_collector("stats", "--config", str(config), "--json").stdout)
    drops: Counter[str] = Counter()
    for dataset in stats:
        for key, value in dataset.items():
            if key.startswith("drop:"):
                drops[key[5:]] += value
    assert figures["drop_reasons"] == dict(drops)
    assert figures["trivial_published"] == 0 and drops["trivial_rewrite"] > 0
    # the text form says the same
    text_out = report("--config", str(config), "--out", str(data_dir / "r.html")).stdout
    assert f"rows published: {len(rows)} " in text_out
    assert f"most common system prompt: {n / len(rows):.1%} ({n})" in text_out
    assert "goal no trivial rewrites published: met" in text_out


# --- small data folders ----------------------------------------------------------------------


def test_a_bad_config_exits_2_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[service]\nqueue_sise = 16\n")
    done = report("--config", str(bad))
    assert done.returncode == 2
    assert "queue_sise" in done.stderr


def test_an_empty_data_dir_gives_a_report_that_says_there_is_nothing_yet(
    config: Path, data_dir: Path
) -> None:
    done = report("--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"nothing yet: no training lines under {data_dir}/formatted" in done.stdout
    page = (data_dir / "report.html").read_text()
    assert "Nothing yet" in page
    assert not (data_dir / "state.sqlite3").exists()  # reading made no state store


def test_published_trivial_rewrites_tasks_and_attribution_are_checked(
    config: Path, data_dir: Path
) -> None:
    formatted = data_dir / "formatted"
    formatted.mkdir()
    bullet = 'Improve this resume bullet:\n"Managed the team."'
    lines = [
        chat("You are a resume writer. Context: Nurse", bullet, "Successfully managed the team."),
        chat(
            "You are a resume writer. Context: Chef",
            bullet,
            "Led a kitchen brigade of [N] cooks through busy weekend service.",
        ),
        chat("Critique this section.", "Review my summary:\nI like code.", "Say what you build."),
    ]
    origins = [
        provenance(
            task="improve_bullet", url="https://example.org/1", authors=[{"name": "A. Writer"}]
        ),
        provenance(task="improve_bullet", url="https://example.org/2"),  # CC-BY: no author
        provenance(task="critique_section", split="test", rewritten_by="a-model"),
    ]
    (formatted / "local__box.jsonl").write_text("".join(lines) + '{"messages": [')  # torn line
    (formatted / "local__box__provenance.jsonl").write_text("".join(origins))
    done = report("--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["rows"] == 3
    assert figures["per_task"] == {"improve_bullet": 2, "critique_section": 1}
    assert figures["per_split"] == {"train": 2, "test": 1}
    assert figures["trivial_published"] == 1
    assert (figures["rewritten"], figures["synthetic"]) == (0, 1)  # an LLM wrote the third
    assert figures["top_system_prompts"][0]["text"] == "You are a resume writer."
    assert figures["top_user_instructions"][0]["text"] == "Improve this resume bullet:"
    assert figures["missing_attribution"] == 2 and figures["missing_license"] == 0
    goals = {g["name"]: g["status"] for g in figures["goals"]}
    assert goals == {
        "no trivial rewrites published": "not met",
        ">= 5 task types": "not met",
        "no system prompt over 30% of rows": "not met",
        "every published row with source, licence and attribution": "not met",
    }
    assert report("--config", str(config), "--check").returncode == 1


def test_without_matplotlib_the_figures_print_and_the_command_says_how_to_install(
    config: Path, data_dir: Path
) -> None:
    blocked = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from collector.cli import main\n"
        f"raise SystemExit(main(['report', '--config', {str(config)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "nothing yet" in done.stdout
    assert "pip install 'resume-collector[report]'" in done.stderr
    assert not (data_dir / "report.html").exists()
