"""Synthetic resume documents (PDF with fpdf2, DOCX with python-docx, text) of varied layouts.

Every word is made up here: names are invented syllables, companies and schools fictional, so
no real person's data reaches a test, the demo or a benchmark. `synthetic_resume(seed)` draws
one resume; `build(resume, fmt, layout)` writes it as bytes:

- PDF layouts: `one_column`; `two_columns` (a sidebar with contacts, skills and education
  beside the summary and experience); `table` (experience as a two-column table of dates and
  duties); `running_header` (name and contacts on every page, two pages);
- DOCX layouts: `one_column` (heading styles, `List Bullet` paragraphs whose bullet is no
  text); `two_columns` (a layout table: sidebar cell, main cell); `table` (experience rows);
  `page_header` (name and contacts in the page header); `typed_bullets` (bold headings, `•`
  typed in the text);
- `text`: plain text with `-` bullets.

`python -m tests.resume_documents DIR` writes the demo's two resumes into DIR.
"""

from __future__ import annotations

import datetime
import io
import random
import sys
from dataclasses import dataclass
from pathlib import Path

PDF_LAYOUTS = ("one_column", "two_columns", "table", "running_header")
DOCX_LAYOUTS = ("one_column", "two_columns", "table", "page_header", "typed_bullets")

FIXED_DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_SYLLABLES = ["ka", "lo", "mer", "vin", "tas", "rel", "dor", "ni", "bra", "sel", "quo", "zan"]
_CITIES = ["Porthaven", "Eldmoor", "Westfall Bay", "Calder Rise", "Northbrook"]
_TITLES = [
    "Backend Engineer",
    "Data Analyst",
    "Product Designer",
    "Operations Manager",
    "Marketing Specialist",
    "Site Reliability Engineer",
]
_COMPANIES = ["Brightwater Labs", "Tallis Freight", "Orchard Analytics", "Keelstone Health"]
_SCHOOLS = ["Porthaven Institute of Technology", "University of Eldmoor", "Calder College"]
_VERBS = ["Built", "Led", "Redesigned", "Automated", "Migrated", "Cut", "Launched", "Mentored"]
_OBJECTS = [
    "the billing service used by 40 regional clinics",
    "a reporting pipeline that replaced twelve manual spreadsheets",
    "the onboarding flow for new warehouse staff",
    "quarterly planning for a team of six engineers",
    "the customer support dashboard and its alerting rules",
    "a data quality check suite run on every nightly load",
    "vendor contracts worth 1.2 million in yearly spend",
]
_RESULTS = [
    "reducing processing time by 35%",
    "saving about 20 hours of manual work each week",
    "raising customer satisfaction scores from 3.9 to 4.5",
    "with zero downtime during the cut-over",
    "which lowered the error rate to under 1%",
]
_SKILLS = ["Python", "SQL", "Go", "Figma", "Kubernetes", "Excel", "Tableau", "Terraform", "Jira"]
_SUMMARY_HEADINGS = ["Summary", "Professional Summary", "PROFILE", "About Me"]
_EXPERIENCE_HEADINGS = ["Experience", "WORK EXPERIENCE", "Employment History", "Work History"]
_EDUCATION_HEADINGS = ["Education", "EDUCATION & TRAINING", "Academic Background"]
_SKILLS_HEADINGS = ["Skills", "Technical Skills", "CORE COMPETENCIES", "Areas of Expertise"]


@dataclass
class Job:
    title: str
    company: str
    dates: str
    bullets: list[str]


@dataclass
class SyntheticResume:
    name: str
    headline: str
    contacts: list[str]
    summary: str
    jobs: list[Job]
    education: list[str]
    skills: list[str]
    headings: dict[str, str]  # section kind -> the heading written for it


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def synthetic_resume(seed: int) -> SyntheticResume:
    rng = random.Random(seed)
    first, last = _word(rng), _word(rng)
    title = rng.choice(_TITLES)
    jobs = []
    year = 2024
    for _ in range(rng.randint(2, 3)):
        start = year - rng.randint(2, 4)
        bullets = [
            f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}, {rng.choice(_RESULTS)}"
            for _ in range(rng.randint(2, 4))
        ]
        jobs.append(Job(rng.choice(_TITLES), rng.choice(_COMPANIES), f"{start} - {year}", bullets))
        year = start
    # Every figure of the summary is in the experience too: a summary states nothing new.
    latest = jobs[0].bullets[0]
    summary = (
        f"{title} with a record of practical results: most recently {latest[0].lower()}"
        f"{latest[1:]}. Known for clear writing, careful planning and calm delivery."
    )
    return SyntheticResume(
        name=f"{first} {last}",
        headline=title,
        contacts=[
            f"{first.lower()}.{last.lower()}@example.com",
            f"+1 415 555 01{rng.randint(10, 99)}",
            rng.choice(_CITIES),
        ],
        summary=summary,
        jobs=jobs,
        education=[f"B.Sc. in Computer Science, {rng.choice(_SCHOOLS)}, {year - 4} - {year}"],
        skills=rng.sample(_SKILLS, 5),
        headings={
            "summary": rng.choice(_SUMMARY_HEADINGS),
            "experience": rng.choice(_EXPERIENCE_HEADINGS),
            "education": rng.choice(_EDUCATION_HEADINGS),
            "skills": rng.choice(_SKILLS_HEADINGS),
        },
    )


def build(resume: SyntheticResume, fmt: str, layout: str) -> bytes:
    if fmt == "pdf":
        return _pdf(resume, layout)
    if fmt == "docx":
        return _docx(resume, layout)
    return _text(resume).encode()


def _text(resume: SyntheticResume) -> str:
    h = resume.headings
    lines = [resume.name, resume.headline, " | ".join(resume.contacts), ""]
    lines += [h["summary"], resume.summary, "", h["experience"]]
    for job in resume.jobs:
        lines.append(f"{job.title}, {job.company}, {job.dates}")
        lines += [f"- {b}" for b in job.bullets]
    lines += ["", h["education"], *resume.education, "", h["skills"], ", ".join(resume.skills)]
    return "\n".join(lines) + "\n"


# --- PDF --------------------------------------------------------------------------------------


def _pdf(resume: SyntheticResume, layout: str) -> bytes:
    from fpdf import FPDF

    h = resume.headings

    class Pdf(FPDF):
        def header(self) -> None:
            if layout == "running_header":
                self.set_font("helvetica", "B", 12)
                self.cell(0, 6, resume.name, new_x="LMARGIN", new_y="NEXT")
                self.set_font("helvetica", size=9)
                self.cell(0, 5, " | ".join(resume.contacts), new_x="LMARGIN", new_y="NEXT")
                self.ln(4)

    pdf = Pdf()
    pdf.core_fonts_encoding = "windows-1252"  # `•`, `–` and curly quotes in the core fonts
    pdf.set_creation_date(FIXED_DATE)  # the same bytes at every build
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()

    def heading(text: str, x: float, width: float) -> None:
        pdf.set_x(x)
        pdf.set_font("helvetica", "B", 12)
        pdf.cell(width, 8, text, new_x="LEFT", new_y="NEXT")
        pdf.set_font("helvetica", size=10)

    def para(text: str, x: float, width: float) -> None:
        pdf.set_x(x)
        pdf.multi_cell(width, 5, text, new_x="LEFT", new_y="NEXT")

    def jobs(x: float, width: float) -> None:
        for job in resume.jobs:
            pdf.set_font("helvetica", "B", 10)
            para(f"{job.title}, {job.company}   {job.dates}", x, width)
            pdf.set_font("helvetica", size=10)
            for bullet in job.bullets:
                para(f"• {bullet}", x, width)
            pdf.ln(2)

    left, full = pdf.l_margin, pdf.epw
    if layout != "running_header":
        pdf.set_font("helvetica", "B", 18)
        pdf.cell(0, 10, resume.name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.cell(0, 6, resume.headline, new_x="LMARGIN", new_y="NEXT")
    if layout == "two_columns":
        top = pdf.get_y() + 2
        side = 55.0
        pdf.set_y(top)
        for line in resume.contacts:
            para(line, left, side)
        heading(h["skills"], left, side)
        for skill in resume.skills:
            para(f"• {skill}", left, side)
        heading(h["education"], left, side)
        for line in resume.education:
            para(line, left, side)
        main_x = left + side + 6
        pdf.set_y(top)
        heading(h["summary"], main_x, full - side - 6)
        para(resume.summary, main_x, full - side - 6)
        heading(h["experience"], main_x, full - side - 6)
        jobs(main_x, full - side - 6)
        return bytes(pdf.output())
    if layout != "running_header":
        pdf.set_font("helvetica", size=10)
        pdf.cell(0, 6, " | ".join(resume.contacts), new_x="LMARGIN", new_y="NEXT")
    heading(h["summary"], left, full)
    para(resume.summary, left, full)
    heading(h["experience"], left, full)
    if layout == "table":
        with pdf.table(col_widths=(30, 130), first_row_as_headings=False) as table:
            for job in resume.jobs:
                row = table.row()
                row.cell(job.dates)
                row.cell(f"{job.title}, {job.company}\n" + "\n".join(f"• {b}" for b in job.bullets))
    else:
        jobs(left, full)
    if layout == "running_header":
        pdf.add_page()
    heading(h["education"], left, full)
    for line in resume.education:
        para(line, left, full)
    heading(h["skills"], left, full)
    para(", ".join(resume.skills), left, full)
    return bytes(pdf.output())


# --- DOCX -------------------------------------------------------------------------------------


def _docx(resume: SyntheticResume, layout: str) -> bytes:
    from docx import Document

    h = resume.headings
    document = Document()
    body = document

    def heading(container: object, text: str) -> None:
        if layout == "typed_bullets":
            container.add_paragraph().add_run(text).bold = True  # type: ignore[attr-defined]
        elif container is document:
            document.add_heading(text, level=1)
        else:
            container.add_paragraph(text, style="Heading 1")  # type: ignore[attr-defined]

    def item(container: object, text: str) -> None:
        if layout == "typed_bullets":
            container.add_paragraph(f"•\t{text}")  # type: ignore[attr-defined]
        else:
            container.add_paragraph(text, style="List Bullet")  # type: ignore[attr-defined]

    def experience(container: object) -> None:
        heading(container, h["experience"])
        if layout == "table":
            table = document.add_table(rows=0, cols=2)
            for job in resume.jobs:
                cells = table.add_row().cells
                cells[0].text = job.dates
                cells[1].text = f"{job.title}, {job.company}"
                for bullet in job.bullets:
                    item(cells[1], bullet)
            return
        for job in resume.jobs:
            container.add_paragraph(f"{job.title}, {job.company}, {job.dates}")  # type: ignore[attr-defined]
            for bullet in job.bullets:
                item(container, bullet)

    if layout == "page_header":
        header = document.sections[0].header
        header.is_linked_to_previous = False
        header.paragraphs[0].text = resume.name
        header.add_paragraph(" | ".join(resume.contacts))
        document.add_paragraph(resume.headline)
    else:
        document.add_paragraph(resume.name, style="Title")
        document.add_paragraph(resume.headline)
    if layout == "two_columns":
        table = document.add_table(rows=1, cols=2)
        side, main = table.rows[0].cells
        side.text = "\n".join(resume.contacts)
        heading(side, h["skills"])
        for skill in resume.skills:
            item(side, skill)
        heading(side, h["education"])
        for line in resume.education:
            side.add_paragraph(line)
        main.text = ""
        heading(main, h["summary"])
        main.add_paragraph(resume.summary)
        experience(main)
    else:
        if layout != "page_header":
            document.add_paragraph(" | ".join(resume.contacts))
        heading(body, h["summary"])
        document.add_paragraph(resume.summary)
        experience(body)
        heading(body, h["education"])
        for line in resume.education:
            document.add_paragraph(line)
        heading(body, h["skills"])
        document.add_paragraph(", ".join(resume.skills))
    document.core_properties.created = document.core_properties.modified = FIXED_DATE
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def main() -> None:
    """Write the demo's resumes (one PDF, one DOCX) into the folder named on the command line."""
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synthetic-resume-1.pdf").write_bytes(build(synthetic_resume(1), "pdf", "one_column"))
    (folder / "synthetic-resume-2.docx").write_bytes(
        build(synthetic_resume(2), "docx", "two_columns")
    )


if __name__ == "__main__":
    main()
