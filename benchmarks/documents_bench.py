"""How many PDF and DOCX resumes give their text with their sections found.

200 synthetic resumes (`tests/resume_documents.py`, made-up text): 100 PDF in four layouts
(one column, two columns, an experience table, a running page header over two pages) and 100
DOCX in five (one column with list styles, a two-column layout table, an experience table, name
and contacts in the page header, typed bullets under bold headings). A resume counts when
`read_document` gives its name line and finds its summary, experience, education and skills
sections; its bullets count when exactly the bullets written come back.

Baseline, in the same run: the text the libraries give by their most common use
(`pypdf` page text in layout mode, `python-docx` `document.paragraphs`) cut by the same section
finder. Goal: >= 98 % of the resumes with their sections found.

    python benchmarks/documents_bench.py
"""

from __future__ import annotations

import io
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.sources.documents import DocumentRefused, read_document
from processors.formatters.document import DOCUMENT_KEY
from processors.formatters.sections import resume_sections
from tests.resume_documents import (
    DOCX_LAYOUTS,
    PDF_LAYOUTS,
    SyntheticResume,
    build,
    synthetic_resume,
)

PER_FORMAT = 100
NEEDED = {"summary", "experience", "education", "skills"}
GOAL = 0.98


def naive_text(data: bytes, fmt: str) -> str:
    if fmt == "pdf":
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        return "\n".join(page.extract_text(extraction_mode="layout") for page in reader.pages)
    from docx import Document

    return "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)


def judged(
    resume: SyntheticResume, text: str, kinds: set[str], bullets: list[str]
) -> tuple[bool, bool]:
    found = resume.name in text.split("\n") and kinds >= NEEDED
    expected = [b for job in resume.jobs for b in job.bullets]
    return found, bullets == expected


def main() -> None:
    cases = [("pdf", PDF_LAYOUTS[i % len(PDF_LAYOUTS)], i) for i in range(PER_FORMAT)]
    cases += [
        ("docx", DOCX_LAYOUTS[i % len(DOCX_LAYOUTS)], PER_FORMAT + i) for i in range(PER_FORMAT)
    ]
    ours: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    base: dict[str, list[bool]] = defaultdict(list)
    failures: list[str] = []
    seconds = 0.0
    for fmt, layout, seed in cases:
        resume = synthetic_resume(seed)
        data = build(resume, fmt, layout)
        start = time.perf_counter()
        try:
            document = read_document(data, f"cv.{fmt}")[DOCUMENT_KEY]
        except DocumentRefused as refused:
            ours[f"{fmt} {layout}"].append((False, False))
            failures.append(f"{fmt} {layout} seed {seed}: {refused.reason}")
            continue
        seconds += time.perf_counter() - start
        assert isinstance(document, dict)
        kinds = {s["kind"] for s in document["sections"]}
        result = judged(resume, document["text"], kinds, document["bullets"])
        ours[f"{fmt} {layout}"].append(result)
        if not result[0]:
            failures.append(f"{fmt} {layout} seed {seed}: sections {sorted(kinds)}")
        plain = naive_text(data, fmt)
        naive_kinds = {s.kind for s in resume_sections(plain)}
        base[f"{fmt} {layout}"].append(judged(resume, plain, naive_kinds, [])[0])

    print(
        f"{'format, layout':24} {'n':>4} {'sections found':>15} {'bullets exact':>14}"
        f" {'baseline':>9}"
    )
    for key in ours:
        rows = ours[key]
        found = sum(r[0] for r in rows) / len(rows)
        exact = sum(r[1] for r in rows) / len(rows)
        naive = sum(base[key]) / len(base[key]) if base[key] else 0.0
        print(f"{key:24} {len(rows):>4} {found:>14.1%} {exact:>14.1%} {naive:>9.1%}")
    every = [r for rows in ours.values() for r in rows]
    every_base = [r for rows in base.values() for r in rows]
    share = sum(r[0] for r in every) / len(every)
    print(
        f"{'all':24} {len(every):>4} {share:>14.1%} {sum(r[1] for r in every) / len(every):>14.1%}"
        f" {sum(every_base) / len(every_base):>9.1%}"
    )
    print(f"read in {seconds:.2f} s ({len(every) / seconds:.0f} documents/s on one core)")
    print(f"goal >= {GOAL:.0%} with sections found: {'met' if share >= GOAL else 'NOT met'}")
    for failure in failures[:10]:
        print("  missed:", failure)


if __name__ == "__main__":
    main()
