"""A realistic inbox of resume documents through the real CLI, end to end.

1,000 synthetic resumes (`tests/resume_documents.py`, made-up text), half PDF in its four
layouts and half DOCX in its five, plus five files that give no text (an encrypted PDF, a
PDF cut short, a PDF page with no text layer, an empty DOCX) or are no document (an `.xlsx`),
are written into a temporary inbox. `resume-collector once` runs on it as a child process
(`python -m collector`, the pipeline's default worker pool) with a minimal config: one inbox
source, no rewrite, the published chunks to a folder. Printed:

- documents/s over the child's wall time and per CPU-second of the child and its workers
  (`getrusage(RUSAGE_CHILDREN)`), the peak RSS of the largest of those processes (`ru_maxrss`)
  and the peak of their sum (sampled from /proc every 0.1 s);
- how many documents gave a training line, pairs for the rewrite stage, both or neither;
- the drop reasons with their counts, from `formatted/*__clean_report.json`;
- the privacy check: how many of the generator's person names (the full name, and each part
  as a word: first, last, the e-mail's `first.last`) appear in any file of the run's data
  folder (formatted, chunks, published). Must be 0.

Baseline, in the same run: the same documents' text by the libraries' plain use alone
(`pypdf` `extract_text()` per page, `python-docx` `document.paragraphs`) in this process, so the
pipeline's figures read as an overhead over extraction.

    python benchmarks/inbox_documents_bench.py [--count N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.sources.documents import document_id
from tests.resume_documents import DOCX_LAYOUTS, PDF_LAYOUTS, build, synthetic_resume

ROOT = Path(__file__).resolve().parent.parent

# Files that give no text or are no document, each with the reason it must be counted under.
BAD_FILES = {
    "locked.pdf": "document_encrypted",
    "garbled.pdf": "document_unreadable",
    "scan.pdf": "document_no_text",
    "empty.docx": "document_unreadable",
    "sheet.xlsx": "unsupported_file_type",
}
# Documents whose plain text the privacy check must find names in (that it can see a leak).
CONTROL = 20


def bad_files(sample_pdf: bytes) -> dict[str, bytes]:
    from pypdf import PdfReader, PdfWriter

    locked = PdfWriter(clone_from=PdfReader(io.BytesIO(sample_pdf)))
    locked.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    blank = PdfWriter()
    blank.add_blank_page(width=612, height=792)
    files = {"locked.pdf": locked, "scan.pdf": blank}
    out = {}
    for name, writer in files.items():
        buffer = io.BytesIO()
        writer.write(buffer)
        out[name] = buffer.getvalue()
    out["garbled.pdf"] = sample_pdf[: len(sample_pdf) // 3]
    out["empty.docx"] = b""
    out["sheet.xlsx"] = b"PK\x03\x04 a spreadsheet, never opened"
    return out


def write_inbox(inbox: Path, count: int) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The documents (file name -> the person's full name) and the baseline's (path, format)."""
    names: dict[str, str] = {}
    readable: list[tuple[str, str]] = []
    for i in range(count):
        fmt = "pdf" if i % 2 == 0 else "docx"
        layouts = PDF_LAYOUTS if fmt == "pdf" else DOCX_LAYOUTS
        layout = layouts[(i // 2) % len(layouts)]
        resume = synthetic_resume(10_000 + i)
        file = f"{i:05d}-{layout}.{fmt}"
        (inbox / file).write_bytes(build(resume, fmt, layout))
        names[file] = resume.name
        readable.append((file, fmt))
    for file, data in bad_files(build(synthetic_resume(1), "pdf", "one_column")).items():
        (inbox / file).write_bytes(data)
    settled = time.time() - 10  # the inbox reads a file once it is untouched for a second
    for path in inbox.iterdir():
        os.utime(path, (settled, settled))
    return names, readable


def plain_extraction(
    inbox: Path, readable: list[tuple[str, str]]
) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds to get every readable document's text by the libraries alone, and
    the first texts (the privacy check's control: there the names must be found)."""
    from docx import Document
    from pypdf import PdfReader

    kept: list[str] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for file, fmt in readable:
        data = (inbox / file).read_bytes()
        if fmt == "pdf":
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        else:
            text = "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)
        if len(kept) < CONTROL:
            kept.append(text)
    return time.perf_counter() - wall, time.process_time() - cpu, kept


def write_config(work: Path, inbox: Path) -> Path:
    """One inbox source, no rewrite, chunks published to a folder; all under `work`."""
    config = work / "bench.toml"
    config.write_text(
        f"""[service]
data_dir = "{work / "data"}"
log_format = "json"

[state]
path = "{work / "state" / "collector.sqlite3"}"

[upload]
target = "folder"

[[sources]]
type = "inbox"
name = "inbox-resumes"
path = "{inbox}"
owner = "local"
license = "CC0-1.0"
"""
    )
    return config


def tree_rss_kib(pid: int) -> int:
    """The summed resident memory of a process and its descendants, in KiB (0 once gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
        pending += [int(child) for child in children]
    return total


def run_once(config: Path, log: Path) -> tuple[int, float, resource.struct_rusage, int]:
    """`resume-collector once`: exit code, wall seconds, the children's rusage after it, and
    the peak of the process tree's summed RSS in KiB."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    with log.open("w") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "collector", "once", "--config", str(config)],
            env=env,
            cwd=config.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.1):
                peak = max(peak, tree_rss_kib(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait(timeout=900)
        done.set()
        sampler.join()
    return code, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN), peak


def documents_with_output(formatted: Path) -> tuple[Counter[str], Counter[str]]:
    """Per document id: its training lines (provenance rows) and its pairs."""
    lines: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    for path, counter in (
        (formatted / "local__resume_documents__provenance.jsonl", lines),
        (formatted / "local__resume_documents__pairs.jsonl", pairs),
    ):
        if path.exists():
            for row in path.read_text().splitlines():
                counter[json.loads(row)["record_id"].split("/")[0]] += 1
    return lines, pairs


def name_leaks(data_dir: Path, names: dict[str, str]) -> tuple[int, int, list[str]]:
    """Full names found, name parts found as words, and a few examples with their file."""
    full = {name.lower() for name in names.values()}
    parts = {part.lower() for name in names.values() for part in name.split()}
    parts |= {name.lower().replace(" ", ".") for name in names.values()}
    part_pattern = re.compile(
        r"\b(" + "|".join(sorted(map(re.escape, parts), key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )
    full_found = parts_found = 0
    examples: list[str] = []
    for path in sorted(data_dir.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        lowered = text.lower()
        full_found += sum(lowered.count(name) for name in full)
        for match in part_pattern.finditer(text):
            parts_found += 1
            if len(examples) < 5:
                around = text[max(0, match.start() - 40) : match.end() + 40]
                examples.append(f"{path.relative_to(data_dir)}: ...{around!r}...")
    return full_found, parts_found, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="resume documents (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inbox-documents-bench-") as tmp:
        work = Path(tmp)
        inbox = work / "inbox"
        inbox.mkdir()
        started = time.perf_counter()
        names, readable = write_inbox(inbox, args.count)
        print(
            f"inbox: {len(names)} resumes ({sum(f == 'pdf' for _, f in readable)} PDF,"
            f" {sum(f == 'docx' for _, f in readable)} DOCX) + {len(BAD_FILES)} bad files,"
            f" written in {time.perf_counter() - started:.1f} s"
        )

        base_wall, base_cpu, plain_texts = plain_extraction(inbox, readable)
        count = len(readable)

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        config = write_config(work, inbox)
        code, wall, after, tree_peak = run_once(config, work / "once.log")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        # The same run over an empty inbox: start-up and shutdown alone (run after the real
        # one, so ru_maxrss above is the real run's).
        idle = work / "idle"
        (idle / "inbox").mkdir(parents=True)
        _, idle_wall, idle_after, _ = run_once(write_config(idle, idle / "inbox"), idle / "log")
        idle_cpu = (idle_after.ru_utime - after.ru_utime) + (idle_after.ru_stime - after.ru_stime)

        levels: Counter[str] = Counter()
        for line in (work / "once.log").read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                levels["not_json"] += 1
                continue
            if event.get("level") in {"warning", "error", "critical"}:
                levels[f"{event['level']} {event['event']}"] += 1

        print(f"\n{'':34} {'documents/s':>12} {'per CPU-s':>10} {'wall s':>8} {'CPU s':>7}")
        print(
            f"{'plain extraction (in process)':34} {count / base_wall:>12.1f}"
            f" {count / base_cpu:>10.1f} {base_wall:>8.1f} {base_cpu:>7.1f}"
        )
        print(
            f"{'resume-collector once (child)':34} {count / wall:>12.1f}"
            f" {count / cpu:>10.1f} {wall:>8.1f} {cpu:>7.1f}"
        )
        print(
            f"{'  less an empty inbox run':34} {count / (wall - idle_wall):>12.1f}"
            f" {count / (cpu - idle_cpu):>10.1f} {wall - idle_wall:>8.1f} {cpu - idle_cpu:>7.1f}"
        )
        print(
            f"pipeline over extraction: x{wall / base_wall:.1f} wall, x{cpu / base_cpu:.1f} CPU;"
            f" less start-up: x{(wall - idle_wall) / base_wall:.1f} wall,"
            f" x{(cpu - idle_cpu) / base_cpu:.1f} CPU (start-up and shutdown, an empty inbox:"
            f" {idle_wall:.1f} s wall, {idle_cpu:.1f} CPU s)"
        )
        print(
            f"peak RSS: largest process {after.ru_maxrss / 1024:.0f} MiB (ru_maxrss);"
            f" child and workers summed {tree_peak / 1024:.0f} MiB (sampled)"
        )
        print(f"exit code {code}; warnings/errors logged: {dict(levels) or 'none'}")

        data_dir = work / "data"
        formatted = data_dir / "formatted"
        lines, pairs = documents_with_output(formatted)
        ids = {document_id(file): file for file in names}
        with_line = sum(1 for i in ids if lines[i])
        with_pairs = sum(1 for i in ids if pairs[i])
        both = sum(1 for i in ids if lines[i] and pairs[i])
        neither = [ids[i] for i in ids if not lines[i] and not pairs[i]]
        print(
            f"\ndocuments: {with_line}/{count} gave a training line"
            f" ({sum(lines.values())} lines), {with_pairs}/{count} gave pairs"
            f" ({sum(pairs.values())} pairs), {both} both, {len(neither)} neither"
        )
        for file in neither[:5]:
            print("  nothing from:", file)

        reasons: Counter[str] = Counter()
        fetched = written = 0
        for report_path in sorted(formatted.glob("*__clean_report.json")):
            report = json.loads(report_path.read_text())
            reasons.update(report["drop_reasons"])
            fetched += report["fetched"]
            written += report["written"]
        print(f"clean reports: fetched {fetched}, written {written}, drops by reason:")
        for reason, n in reasons.most_common():
            print(f"  {reason:28} {n:>6}")
        expected = Counter(BAD_FILES.values())
        missing = {r: n for r, n in expected.items() if reasons[r] < n}
        print(f"bad files counted with their reason: {missing or 'all'}")

        full, parts, examples = name_leaks(data_dir, names)
        print(
            f"\nprivacy: {len(set(names.values()))} person names; full names found in output"
            f" files: {full} (must be 0); name parts found as words: {parts}"
        )
        for example in examples:
            print("  ", example)
        control = work / "control"
        control.mkdir()
        (control / "plain.txt").write_text("\n".join(plain_texts))
        found, _, _ = name_leaks(control, names)
        print(
            f"control: the same check finds {found} full names"
            f" in {len(plain_texts)} documents' plain text"
        )


if __name__ == "__main__":
    main()
