"""Resume documents of the inbox (PDF, DOCX, TXT, Markdown, HTML) read as whole texts.

`read_document(data, name)` turns the bytes of one file into a `ResumeDocument` payload: the
text in reading order with its line breaks (the anonymizer's name-line rule needs them), mojibake
repaired, and the sections and bullets `processors/formatters/sections.py` finds in it. A file
that cannot give a text raises `DocumentRefused` with the counted reason:

- `document_unreadable`: not a valid file of its kind (a damaged PDF, a DOCX that is no zip);
- `document_encrypted`: a PDF that needs a password (one with an owner password only, which
  every reader opens, is read), an encrypted DOCX (an OLE container, not a zip);
- `document_no_text`: no text layer (a scanned PDF of page images), an empty document.

How each format is read:
- PDF (pypdf): the text of each page in content order, which is the order a writer drew it:
  one column after the other for the two-column templates of word processors. A line that
  repeats at the top or bottom of every page (a running header with the name, a page footer)
  is kept once.
- DOCX (python-docx): the first section's page header (templates put the name and contacts
  there), then paragraphs and tables in body order, a table cell by cell in row order (a
  two-column layout table reads its sidebar, then its main column). A list paragraph (a list
  style or numbering) gets a `•` in front, as its bullet is not part of its text.
- TXT and Markdown: UTF-8 (a BOM dropped), else cp1252; Markdown headings lose their `#`,
  list items get a `•`, emphasis marks go.
- HTML: the visible text, block elements and `<li>` as lines (`html_to_text`, stdlib parser).
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter

import msgspec


def document_id(stream: str) -> str:
    """A document's record id: a digest of its path in the inbox, never its file name, which
    is often the person's own (`Jane_Doe_CV.pdf`) and would reach the provenance and pairs
    files; the same file keeps the same id, and the suffix tells the format."""
    digest = hashlib.blake2b(stream.encode(), digest_size=8).hexdigest()
    suffix = stream.rsplit(".", 1)[-1].lower() if "." in stream.rsplit("/", 1)[-1] else ""
    return f"doc-{digest}.{suffix}" if suffix else f"doc-{digest}"


# The formats read, by file suffix (lower case).
DOCUMENT_FORMATS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
}
# Fewer letters than this in the whole document: no text layer (a scan) or an empty file.
MIN_LETTERS = 20
# An encrypted Office file is an OLE compound file holding the encrypted package, not a zip.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_MD_ITEM = re.compile(r"^(\s*)(?:[*+\-]|\d{1,2}[.)])\s+")
_MD_EMPHASIS = re.compile(r"(\*\*|__|`)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


class DocumentRefused(Exception):
    """The file gives no text: `reason` is the counted drop reason, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def document_format(name: str) -> str | None:
    """The format a file name's suffix says (`pdf`, `docx`...), or None when it is no document."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    return DOCUMENT_FORMATS.get(suffix)


def read_document(data: bytes, name: str) -> dict[str, object]:
    """The payload of a record for one document file (`{DOCUMENT_KEY: {...}}`)."""
    # The processors' text tools load with the first document read, not with the inbox: most
    # inboxes hold data files only, and the service's start is shorter by their import.
    from processors.formatters.bullets import html_to_text, normalize_text
    from processors.formatters.document import DOCUMENT_KEY, ResumeDocument
    from processors.formatters.sections import ACHIEVEMENT_KINDS, resume_sections

    kind = document_format(name)
    if kind is None:
        raise DocumentRefused("unsupported_file_type", f"{name}: not a document")
    if kind == "pdf":
        text, pages = _pdf_text(data), 0
        pages = text.count("\f") + 1
        text = text.replace("\f", "\n")
    elif kind == "docx":
        text, pages = _docx_text(data), 0
    else:
        decoded = _decode(data)
        text = html_to_text(decoded) if kind == "html" else decoded
        text = _markdown_text(text) if kind == "markdown" else text
        pages = 0
    text = _tidy(normalize_text(text))
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        detail = "no text layer (a scanned image?)" if kind == "pdf" else "no text"
        raise DocumentRefused("document_no_text", detail)
    sections = resume_sections(text)
    bullets = [b for s in sections if s.kind in ACHIEVEMENT_KINDS for b in s.bullets]
    document = ResumeDocument(
        file=name, format=kind, pages=pages, text=text, sections=sections, bullets=bullets
    )
    return {DOCUMENT_KEY: msgspec.to_builtins(document)}


def _tidy(text: str) -> str:
    """Lines stripped at the right, no run of more than one blank line, no edges."""
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _markdown_text(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        line = _MD_HEADING.sub("", line)
        line = _MD_ITEM.sub(lambda m: f"{m.group(1)}• ", line)
        line = _MD_LINK.sub(r"\1 (\2)", _MD_EMPHASIS.sub("", line))
        lines.append(line)
    return "\n".join(lines)


# --- PDF ------------------------------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    """The text of every page, pages separated by a form feed."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner password alone opens with an empty one
            except (DependencyError, NotImplementedError) as error:
                raise DocumentRefused("document_encrypted", f"cannot decrypt: {error}") from None
            if not opened:
                raise DocumentRefused("document_encrypted", "a password is needed to open it")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentRefused:
        raise
    except FileNotDecryptedError as error:
        raise DocumentRefused("document_encrypted", str(error)) from None
    except Exception as error:  # a hostile or damaged file: pypdf raises many kinds of error
        detail = f"not a readable PDF ({type(error).__name__}: {error})"
        raise DocumentRefused("document_unreadable", detail[:300]) from None
    return "\f".join(_without_running_lines(pages))


def _without_running_lines(pages: list[str]) -> list[str]:
    """Pages with a line repeated at the top or bottom of every page kept on the first only."""
    if len(pages) < 2:
        return pages
    edges: Counter[str] = Counter()
    for page in pages:
        lines = [line.strip() for line in page.split("\n") if line.strip()]
        edges.update(set(lines[:3] + lines[-2:]))
    running = {line for line, count in edges.items() if count == len(pages)}
    if not running:
        return pages
    out = [pages[0]]
    for page in pages[1:]:
        out.append("\n".join(line for line in page.split("\n") if line.strip() not in running))
    return out


# --- DOCX -----------------------------------------------------------------------------------


def _docx_text(data: bytes) -> str:
    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    if data.startswith(_OLE_MAGIC):
        raise DocumentRefused("document_encrypted", "an encrypted Word file (an OLE container)")
    try:
        document = Document(io.BytesIO(data))
        lines: list[str] = []
        if document.sections:
            header = document.sections[0].header
            if not header.is_linked_to_previous:
                _docx_blocks(header.iter_inner_content(), lines)
        _docx_blocks(document.iter_inner_content(), lines)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        detail = f"not a readable DOCX ({type(error).__name__}: {error})"
        raise DocumentRefused("document_unreadable", detail[:300]) from None
    except Exception as error:  # lxml and python-docx raise many kinds on a damaged file
        detail = f"not a readable DOCX ({type(error).__name__}: {error})"
        raise DocumentRefused("document_unreadable", detail[:300]) from None
    return "\n".join(lines)


def _docx_blocks(blocks: object, lines: list[str]) -> None:
    """Paragraphs and tables in order; a table cell by cell, each merged cell once."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for block in blocks:  # type: ignore[attr-defined]
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                lines.append("")
            elif _is_list_paragraph(block):
                lines.append(f"• {text}")
            else:
                lines.extend(text.split("\n"))
        elif isinstance(block, Table):
            # `row.cells` repeats a merged cell's `<w:tc>` for each grid cell it spans, so
            # a cell is read only the first time its element comes up. The set holds the
            # elements themselves, not their `id()`: lxml makes a new proxy object for an
            # element each time one is asked for, and frees it once the row's cells are
            # dropped, so CPython can give a later row's cell the same address (and `id`).
            # Keeping the proxies in the set keeps them alive, and they compare by identity.
            seen: set[object] = set()
            for row in block.rows:
                for cell in row.cells:
                    if cell._tc in seen:
                        continue
                    seen.add(cell._tc)
                    _docx_blocks(cell.iter_inner_content(), lines)
                    lines.append("")


def _is_list_paragraph(paragraph: object) -> bool:
    from docx.text.paragraph import Paragraph

    assert isinstance(paragraph, Paragraph)
    properties = paragraph._p.pPr
    if properties is not None and properties.numPr is not None:
        return True
    style = paragraph.style
    return style is not None and (style.name or "").lower().startswith("list")
