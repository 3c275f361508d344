"""Resume documents in the inbox: PDF, DOCX, TXT, Markdown and HTML read whole, one record a
file; what gives no text is a counted drop with its reason; other file types are counted."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import msgspec
import pytest
from pypdf import PdfReader, PdfWriter

from collector.config import ConfigError, parse_config
from collector.sources.documents import document_id, read_document
from processors.chain import ProcessorChain
from processors.config import ProcessingConfig, RecipeConfig
from processors.formatters.document import DOCUMENT_KEY
from processors.records import RawRecord
from processors.templates import default_templates
from tests.resume_documents import DOCX_LAYOUTS, PDF_LAYOUTS, build, synthetic_resume
from tests.test_inbox import age, collect, make_source


def put(inbox: Path, name: str, data: bytes) -> Path:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    age(path)
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


def sections_of(payload: dict[str, object]) -> list[str]:
    document = payload[DOCUMENT_KEY]
    assert isinstance(document, dict)
    return [section["kind"] for section in document["sections"]]


@pytest.mark.parametrize(
    ("fmt", "layout"),
    [("pdf", layout) for layout in PDF_LAYOUTS] + [("docx", layout) for layout in DOCX_LAYOUTS],
)
async def test_a_pdf_or_docx_resume_is_one_record_with_its_sections_and_bullets(
    inbox: Path, fmt: str, layout: str
) -> None:
    resume = synthetic_resume(3)
    put(inbox, f"cv.{fmt}", build(resume, fmt, layout))
    batches = await collect(make_source(inbox), {})
    [record] = [r for b in batches for r in b.records]
    assert record.id == document_id(f"cv.{fmt}")
    assert record.dataset == "local/resume_documents"
    document = record.payload[DOCUMENT_KEY]
    assert {"summary", "experience", "education", "skills"} <= set(sections_of(record.payload))
    assert document["bullets"] == [b for job in resume.jobs for b in job.bullets]
    assert resume.name in document["text"].split("\n")  # the name line is a line of its own
    assert all(job.dates in document["text"] for job in resume.jobs)  # every table cell read


def docx_table(rows: int, cols: int, merges: list[tuple[int, int, int, int]]) -> bytes:
    """A DOCX of one table whose cell (r, c) reads `r{r}c{c}`; each merge of `merges` joins
    the cells from its first (row, column) to its last, keeping the first one's text."""
    from docx import Document

    document = Document()
    table = document.add_table(rows=rows, cols=cols)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"r{r}c{c}"
    for r1, c1, r2, c2 in merges:
        table.cell(r1, c1).merge(table.cell(r2, c2)).text = f"r{r1}c{c1}"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_every_cell_of_a_docx_table_is_read_once_and_a_merged_cell_once() -> None:
    """A cell is never taken for one already read because Python gave its element's proxy the
    address of a freed one (the `id()` of an earlier row's cell): that lost rows of a table."""
    merges = [(1, 0, 1, 2), (3, 1, 6, 1)]  # across a row; down four rows
    data = docx_table(rows=30, cols=3, merges=merges)
    document = read_document(data, "cv.docx")[DOCUMENT_KEY]
    assert isinstance(document, dict)
    merged = {(1, 1), (1, 2), (4, 1), (5, 1), (6, 1)}
    expected = [f"r{r}c{c}" for r in range(30) for c in range(3) if (r, c) not in merged]
    assert [line for line in document["text"].split("\n") if line] == expected


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cv.txt", "Ada Quill\nSummary\nCareful analyst.\nExperience\n- Built the reports"),
        ("cv.md", "# Ada Quill\n## Summary\nCareful analyst.\n## Experience\n* Built the reports"),
        (
            "cv.html",
            "<h1>Ada Quill</h1><h2>Summary</h2><p>Careful analyst.</p>"
            "<h2>Experience</h2><ul><li>Built the <b>reports</b></li></ul>",
        ),
    ],
)
def test_text_markdown_and_html_resumes_keep_their_lines_sections_and_bullets(
    name: str, data: str
) -> None:
    document = read_document(data.encode(), name)[DOCUMENT_KEY]
    assert isinstance(document, dict)
    assert document["text"].split("\n")[0] == "Ada Quill"
    assert [s["kind"] for s in document["sections"]] == ["header", "summary", "experience"]
    assert document["bullets"] == ["Built the reports"]


def test_mojibake_in_a_document_is_repaired() -> None:
    text = "Ada Quill\nExperience\nâ€¢ Cut costs by 20% for the cafÃ© chainâ€™s stores\n"
    document = read_document(text.encode(), "cv.txt")[DOCUMENT_KEY]
    assert isinstance(document, dict)
    assert document["bullets"] == ["Cut costs by 20% for the café chain’s stores"]


def test_a_bullet_wrapped_over_lines_is_one_bullet() -> None:
    text = (
        "Experience\n• Led a reporting pipeline that replaced twelve manual spreadsheets, which\n"
        "lowered the error rate to under\n1%\n2016 - 2020\n• Cut costs"
    )
    document = read_document(text.encode(), "cv.txt")[DOCUMENT_KEY]
    assert isinstance(document, dict)
    assert document["bullets"] == [
        "Led a reporting pipeline that replaced twelve manual spreadsheets, which lowered the"
        " error rate to under 1%",
        "Cut costs",
    ]


def encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def blank_pdf() -> bytes:
    """A page with no text layer, as a scanner's PDF of page images has."""
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_zip_without_document() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    return out.getvalue()


async def test_unreadable_encrypted_and_text_less_documents_are_counted_with_their_reason(
    inbox: Path,
) -> None:
    pdf = build(synthetic_resume(4), "pdf", "one_column")
    put(inbox, "damaged.pdf", pdf[: len(pdf) // 3])
    put(inbox, "garbage.pdf", b"%PDF-1.7\nthis is no pdf at all")
    put(inbox, "locked.pdf", encrypted(pdf, "secret"))
    put(inbox, "scan.pdf", blank_pdf())
    put(inbox, "empty.docx", b"")
    put(inbox, "not-a-zip.docx", b"PK\x03\x04 cut short")
    put(inbox, "no-body.docx", docx_zip_without_document())
    put(inbox, "locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    put(inbox, "blank.txt", b"   \n\n")
    put(inbox, "readable.pdf", pdf)
    batches = await collect(make_source(inbox), {})
    reasons = {d.record_id: d.reason for b in batches for d in b.drops}
    assert reasons == {
        document_id("damaged.pdf"): "document_unreadable",
        document_id("garbage.pdf"): "document_unreadable",
        document_id("locked.pdf"): "document_encrypted",
        document_id("scan.pdf"): "document_no_text",
        document_id("empty.docx"): "document_unreadable",
        document_id("not-a-zip.docx"): "document_unreadable",
        document_id("no-body.docx"): "document_unreadable",
        document_id("locked.docx"): "document_encrypted",
        document_id("blank.txt"): "document_no_text",
    }
    assert [r.id for b in batches for r in b.records] == [document_id("readable.pdf")]
    # Each is counted once: the next pass finds them done.
    cursors = {k: v for b in batches for k, v in b.cursors.items()}
    assert await collect(make_source(inbox), cursors) == []


def test_a_pdf_with_only_an_owner_password_is_read() -> None:
    pdf = encrypted(build(synthetic_resume(5), "pdf", "one_column"), user_password="")
    document = read_document(pdf, "cv.pdf")[DOCUMENT_KEY]
    assert isinstance(document, dict)
    assert "experience" in [s["kind"] for s in document["sections"]]


async def test_a_document_over_the_size_limit_is_counted_and_not_read(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(inbox, "big.pdf", b"%PDF" + b"x" * 5000)
    put(inbox, "small.txt", b"Ada Quill\nExperience\n- Built the quarterly reports for finance")

    def refuse(data: bytes, name: str) -> dict[str, object]:
        assert name != "big.pdf", "an oversized document is never parsed"
        return read_document(data, name)

    monkeypatch.setattr("collector.sources.inbox.read_document", refuse)
    batches = await collect(make_source(inbox, max_document_bytes=1000), {})
    assert [(d.record_id, d.reason) for b in batches for d in b.drops] == [
        (document_id("big.pdf"), "document_too_large")
    ]
    assert [r.id for b in batches for r in b.records] == [document_id("small.txt")]


def test_max_document_bytes_is_checked_at_load() -> None:
    raw = {"sources": [{"type": "inbox", "name": "box", "max_document_bytes": 0}]}
    with pytest.raises(
        ConfigError, match=r"sources\[0\]\.max_document_bytes: expected `?int`? >= 1"
    ):
        parse_config(raw)


async def test_other_file_types_are_counted_once_as_unsupported_never_opened(
    inbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(inbox, "photo.png", b"\x89PNG")
    put(inbox, "old/cv.doc", b"\xd0\xcf\x11\xe0")
    put(inbox, "a.jsonl", b'{"n": 1}\n')
    opened: list[str] = []
    real_open = os.open

    def spy(path: str, flags: int, *args: object, **kwargs: object) -> int:
        opened.append(str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    batches = await collect(make_source(inbox), {})
    drops = sorted((d.record_id, d.reason) for b in batches for d in b.drops)
    assert drops == [
        ("old/cv.doc", "unsupported_file_type"),
        ("photo.png", "unsupported_file_type"),
    ]
    assert not any(name.endswith((".png", ".doc")) for name in opened)
    assert [r.payload for b in batches for r in b.records] == [{"n": 1}]
    cursors = {k: v for b in batches for k, v in b.cursors.items()}
    again = await collect(make_source(inbox), cursors)
    assert [d for b in again for d in b.drops] == []


async def test_a_document_is_read_again_only_when_it_changes(inbox: Path) -> None:
    path = put(inbox, "cv.txt", b"Ada Quill\nExperience\n- Built the quarterly finance reports")
    first = await collect(make_source(inbox), {})
    assert len([r for b in first for r in b.records]) == 1
    cursors = first[-1].cursors
    assert await collect(make_source(inbox), cursors) == []
    path.write_bytes(b"Ada Quill\nExperience\n- Built the quarterly finance reports in SQL")
    age(path)
    again = await collect(make_source(inbox), cursors)
    assert [r.id for b in again for r in b.records] == [document_id("cv.txt")]


async def test_a_link_to_a_document_is_refused_like_any_link(inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "private.pdf"
    outside.write_bytes(build(synthetic_resume(6), "pdf", "one_column"))
    (inbox / "cv.pdf").symlink_to(outside)
    batches = await collect(make_source(inbox), {})
    assert [(d.record_id, d.reason) for b in batches for d in b.drops] == [
        ("cv.pdf", "outside_inbox")
    ]


def test_a_document_id_never_holds_its_file_name() -> None:
    """Resumes are often named after their person: the id that reaches provenance is a digest."""
    assert document_id("cvs/Jane_Doe_CV.pdf") == document_id("cvs/Jane_Doe_CV.pdf")
    assert "jane" not in document_id("cvs/Jane_Doe_CV.pdf").lower()
    assert document_id("cvs/Jane_Doe_CV.pdf") != document_id("cvs/John_Roe_CV.pdf")
    assert document_id("a/cv.DOCX").endswith(".docx") and document_id("README").startswith("doc-")


def test_a_document_becomes_bullet_pairs_and_a_summary_line_with_no_personal_data() -> None:
    resume = synthetic_resume(8)
    payload = read_document(build(resume, "pdf", "one_column"), "Resume.pdf")
    record = RawRecord("box", "local/resume_documents", "Resume.pdf", payload)
    batch = ProcessorChain(RecipeConfig(name="chat"), ProcessingConfig()).run([record])
    pairs = [e for e in batch.examples if e.kind == "pairs"]
    lines = [e for e in batch.examples if e.kind == "train"]
    assert len(pairs) == sum(len(job.bullets) for job in resume.jobs)
    assert {e.meta["context"] for e in pairs} == {resume.headline}
    [summary] = lines
    assert summary.task == "summary_from_resume"
    phrasings = default_templates().summary_from_resume.user
    assert any(summary.messages[1].content.startswith(p.split("{")[0]) for p in phrasings)
    assert summary.messages[2].content.split()[:3] == resume.summary.split()[:3]
    assert summary.group_key == pairs[0].group_key
    written = msgspec.json.encode(
        [e.messages for e in batch.examples] + [e.meta["bullet"] for e in pairs]
    )
    first, last = resume.name.split()
    for personal in (first, last, resume.contacts[0], resume.contacts[1]):
        assert personal.encode() not in written, personal
    assert b"[NAME]" in written and b"[EMAIL]" in written and b"[PHONE]" in written


def test_a_document_payload_reaches_the_document_formatter_whatever_the_recipe() -> None:
    payload = read_document(b"Ada Quill\nSkills\nPython, SQL", "cv.txt")
    record = RawRecord("box", "local/resume_documents", "cv.txt", payload)
    for recipe in ("chat", "pairs", "resume_text"):
        batch = ProcessorChain(RecipeConfig(name=recipe), ProcessingConfig()).run([record])  # type: ignore[arg-type]
        assert [d.reason for d in batch.drops] == ["document_without_bullets"]
