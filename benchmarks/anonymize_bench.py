"""Anonymization benchmark: our anonymizer beside Presidio with spaCy, on resumes of real names.

A corpus of resume-shaped documents is built at run time (`resume_corpus.py`, seeded): real first
and last names of 48 countries on every continent from `names-dataset` (Apache License 2.0;
`world_names.py` samples it once into a small cache), in every shape resumes write them
(particles, initials as `Karthik GV`, hyphens, accents, upper case, `Last, First`, names in no
list), spelled again in Indeed / LinkedIn / GitHub links, e-mail local parts, handles, file names
and signatures; references name other people; phones of each country from `phonenumbers` (Apache
License 2.0) in its own formats, with extensions, some alone on a line; numbers that no region
calls a valid phone (`780 166 1994 transactions processed`) that must survive.

Both systems run on the same texts in the same run: ours as the service runs it
(`Anonymizer(AnonymizeConfig()).anonymize(text)`, no known names), and Presidio
(presidio-analyzer + presidio-anonymizer, spaCy `en_core_web_sm`, from the `bench` extra) asked for
PERSON, EMAIL_ADDRESS, PHONE_NUMBER and URL with the same phone regions. Scores, per kind:

- name-part recall: every occurrence of every part (3 letters or more, accents folded) of every
  planted person's name, in plain text, links, e-mail addresses, handles and file names, counted
  by a case-insensitive substring check of the output (the corpus makes sure no part occurs
  anywhere else in its document); also for the resume's owner alone, and the share of
  documents in which no part of the owner's name survives;
- phone recall: a phone is caught when none of its national digits nor its extension's survive;
- e-mail recall: the address's local part is gone;
- other words kept: the share of the resume's own words (everything not planted as personal)
  left as they were, from an alignment of output with input;
- keep items: the non-phone numbers and the companies named after people, left as they were;
- false [NAME] per resume: a name token that replaced text holding no part of a planted name;
- speed: documents per second of the whole anonymizer, ours on every document, Presidio's on
  its sample, and the ratio.

    .venv/bin/python benchmarks/anonymize_bench.py [--docs 2000] [--presidio-docs 300]
        [--seed 7] [--json] [--examples 8] [--skip-presidio]

The first run samples names-dataset (pip install names-dataset==3.3.1) into
~/.cache/resume-collector/ (about 20 s and 3 GB of RAM, once).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.resume_corpus import (  # noqa: E402
    NATIONAL_REGIONS,
    ResumeDoc,
    fold,
    resume_corpus,
)

TOKEN = re.compile(r"(\[(?:EMAIL|PHONE|URL|ADDRESS|NAME|LOCATION)(?:_\d+)?\])")
PEOPLE_NAMED_ORGS = [
    "Goldman Sachs",
    "Johnson & Johnson",
    "Morgan Stanley",
    "Procter & Gamble",
    "Ernst & Young",
    "McKinsey & Company",
    "Wells Fargo",
    "Lockheed Martin",
    "Hewlett Packard Enterprise",
    "Dell Technologies",
    "Ford Motor Company",
    "Philips",
    "Jenkins",
    "Dangote Group",
    "Siemens",
    "Bosch",
]
GOALS = {
    "name_part_recall": (">=", 0.99),
    "docs_no_name_part": (">=", 0.97),
    "phone_recall": (">=", 0.99),
    "email_recall": (">=", 1.0),
    "other_words_kept": (">=", 0.97),
    "false_names_per_doc": ("<=", 0.5),
}


def replaced_ranges(src: str, out: str) -> list[tuple[int, int, str]] | None:
    """The input ranges the output's tokens replaced, or None when the output is not the input
    with some ranges replaced by tokens (then the document is counted as unaligned)."""
    bits = TOKEN.split(out)
    literals, tokens = bits[0::2], bits[1::2]
    if not src.startswith(literals[0]):
        return None
    pos, ranges = len(literals[0]), []
    i = 0
    while i < len(tokens):
        label = tokens[i]
        while i + 1 < len(tokens) and literals[i + 1] == "":  # adjacent tokens: one range
            i += 1
            label += tokens[i]
        after = literals[i + 1]
        if i == len(tokens) - 1:
            end = len(src) - len(after)
            if not src.endswith(after) or end < pos:
                return None
        else:
            end = src.find(after, pos + 1)
            if end < 0:
                return None
        ranges.append((pos, end, label))
        pos = end + len(after)
        i += 1
    return ranges if pos == len(src) or tokens else (ranges if src == out else None)


_HOSTS = ["indeed", "linkedin", "github", "gitlab", "medium", "kaggle", "twitter", "x.com", "https"]


def _covered(ranges: list[tuple[int, int, str]], start: int, end: int) -> bool:
    """Every character of [start, end) lies inside a replaced range."""
    at = start
    for a, b, _ in ranges:
        if a <= at < b:
            at = b
            if at >= end:
                return True
    return at >= end


def _overlaps(ranges: list[tuple[int, int, str]], start: int, end: int) -> bool:
    return any(a < end and start < b for a, b, _ in ranges)


@dataclass
class Score:
    counts: Counter[str] = field(default_factory=Counter)
    survivors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    by_shape: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_region: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, doc: ResumeDoc, out: str) -> None:
        c = self.counts
        c["docs"] += 1
        left = fold(TOKEN.sub("\0", out))
        source = fold(doc.text)
        owner_left = 0
        for who, person in enumerate(doc.people):
            for part in person.scored_parts():
                total, alive = source.count(part), left.count(part)
                c["part_total"] += total
                c["part_left"] += alive
                if who == 0:
                    c["owner_part_total"] += total
                    c["owner_part_left"] += alive
                    owner_left += alive
                    for tally in (self.by_shape[person.shape], self.by_region[person.region]):
                        tally["total"] += total
                        tally["left"] += alive
                    faker = "in_faker" if person.in_faker else "not_in_faker"
                    c[f"{faker}_total"] += total
                    c[f"{faker}_left"] += alive
                if alive:
                    self._where(doc, out, who, part)
        c["docs_clean"] += owner_left == 0
        for span in doc.spans_of("email"):
            local = doc.text[span.start : span.end].split("@")[0]
            c["email_total"] += 1
            whole = rf"(?<![\w.+-]){re.escape(local)}(?![\w+-])"
            caught = re.search(whole, out, re.IGNORECASE) is None
            c["email_caught"] += caught
            if not caught:
                self.survivors["email"].append(doc.text[span.start : span.end])
        out_runs = set(re.findall(r"\d+", TOKEN.sub(" ", out)))
        src_runs = Counter(re.findall(r"\d+", doc.text))
        for span in doc.spans_of("phone"):
            text = doc.text[span.start : span.end]
            runs = [d for d in re.findall(r"\d+", text) if span.digits.find(d) >= 0]
            runs = [d for d in runs if len(d) >= 2 and src_runs[d] == 1] or runs
            c["phone_total"] += 1
            alive = [d for d in runs if d in out_runs]
            c["phone_caught"] += not alive
            if alive:
                line = next(x for x in out.splitlines() if alive[0] in re.findall(r"\d+", x))
                self.survivors["phone"].append(f"{text!r}: {line.strip()[:110]!r}")
        for span in doc.spans_of("keep"):
            text = doc.text[span.start : span.end]
            c["keep_total"] += 1
            c["keep_kept"] += text in out
            if text not in out:
                self.survivors["not_phone_lost"].append(text)
        for org in PEOPLE_NAMED_ORGS:
            n = doc.text.count(org)
            c["org_total"] += n
            c["org_kept"] += min(n, out.count(org))
            if out.count(org) < n:
                self.survivors["org_lost"].append(org)
        ranges = replaced_ranges(doc.text, out)
        if ranges is None:
            c["unaligned"] += 1
            return
        places = [s for s in doc.spans if s.kind in ("url", "email")]
        for span in doc.spans_of("name_part"):  # where the name parts that survived were
            if fold(doc.text[span.start : span.end]) not in doc.people[span.who].scored_parts():
                continue  # a particle or an initial: not scored
            place = next((p for p in places if p.start <= span.start < p.end), None)
            where = "text" if place is None else place.kind
            if place is not None and place.kind == "url":
                host = doc.text[place.start : span.start].lower()
                where = next((h for h in _HOSTS if h in host), "file")
            c[f"at_{where}_total"] += 1
            if not _covered(ranges, span.start, span.end):
                c[f"at_{where}_left"] += 1
                self.survivors[f"name_in_{where}"].append(
                    doc.text[place.start : place.end] if place else doc.text[span.start : span.end]
                )
        names = [s for s in doc.spans if s.kind in ("name", "name_part")]
        for a, b, label in ranges:
            if "[NAME" in label and not any(s.start < b and a < s.end for s in names):
                c["false_names"] += label.count("[NAME")
                self.survivors["false_name"].append(doc.text[a:b])
        for span in doc.spans_of("word"):
            c["word_total"] += 1
            if _overlaps(ranges, span.start, span.end):
                self.survivors["word_lost"].append(doc.text[span.start : span.end])
            else:
                c["word_kept"] += 1

    def _where(self, doc: ResumeDoc, out: str, who: int, part: str) -> None:
        """Remember the output line a surviving name part is on, with the name's shape."""
        line = next((x for x in out.splitlines() if part in fold(x)), "").strip()
        person = doc.people[who]
        kind = "owner" if who == 0 else "reference"
        self.survivors[f"name_{kind}"].append(
            f"{person.full()!r} ({person.shape}, {person.country}): {line[:110]!r}"
        )

    def rate(self, part: str, total: str) -> float:
        return self.counts[part] / max(1, self.counts[total])

    def figures(self) -> dict[str, float]:
        c = self.counts
        return {
            "name_part_recall": 1 - self.rate("part_left", "part_total"),
            "owner_part_recall": 1 - self.rate("owner_part_left", "owner_part_total"),
            "docs_no_name_part": self.rate("docs_clean", "docs"),
            "phone_recall": self.rate("phone_caught", "phone_total"),
            "email_recall": self.rate("email_caught", "email_total"),
            "other_words_kept": self.rate("word_kept", "word_total"),
            "not_phones_kept": self.rate("keep_kept", "keep_total"),
            "people_named_orgs_kept": self.rate("org_kept", "org_total"),
            "false_names_per_doc": c["false_names"] / max(1, c["docs"] - c["unaligned"]),
            "recall_names_in_faker": 1 - self.rate("in_faker_left", "in_faker_total"),
            "recall_names_not_in_faker": 1 - self.rate("not_in_faker_left", "not_in_faker_total"),
            "unaligned_docs": float(c["unaligned"]),
        }


@dataclass
class Run:
    label: str
    docs_per_s: float
    startup_s: float
    score: Score


def timed(label: str, run: Callable[[str], str], docs: list[ResumeDoc], startup: float) -> Run:
    outputs: list[str] = []
    start = time.perf_counter()
    for doc in docs:
        outputs.append(run(doc.text))
    seconds = time.perf_counter() - start
    score = Score()
    for doc, out in zip(docs, outputs, strict=True):
        score.add(doc, out)
    return Run(label, len(docs) / seconds, startup, score)


def ours() -> tuple[Callable[[str], str], float]:
    start = time.perf_counter()
    from processors.anonymize.anonymizer import Anonymizer
    from processors.config import AnonymizeConfig

    anonymizer = Anonymizer(AnonymizeConfig())  # the defaults: every kind on
    anonymizer.anonymize("Jane Doe\njane.doe@example.com\n")  # build the lexicon: start-up
    return anonymizer.anonymize, time.perf_counter() - start


def presidio() -> tuple[Callable[[str], str], float]:
    """Presidio as `processors_bench.py` sets it up, asked for the same kinds and regions."""
    from benchmarks.processors_bench import presidio_engine

    start = time.perf_counter()
    tokens = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "PERSON": "NAME", "URL": "URL"}
    run, _ = presidio_engine(sorted(NATIONAL_REGIONS), tokens)
    run("Jane Doe\njane.doe@example.com\n")
    return run, time.perf_counter() - start


ROWS = [
    ("name_part_recall", "name-part recall (all people, links too)"),
    ("owner_part_recall", "  owner's name parts only"),
    ("docs_no_name_part", "resumes with no part of owner's name"),
    ("recall_names_in_faker", "  owner recall, names in our lexicon"),
    ("recall_names_not_in_faker", "  owner recall, names not in it"),
    ("phone_recall", "phone recall (extensions included)"),
    ("email_recall", "e-mail recall"),
    ("other_words_kept", "other words kept"),
    ("not_phones_kept", "non-phone numbers kept"),
    ("people_named_orgs_kept", "companies named after people kept"),
    ("false_names_per_doc", "false [NAME] per resume"),
    ("unaligned_docs", "outputs not alignable (skipped above)"),
]


def _goal(key: str) -> str:
    if key not in GOALS:
        return ""
    op, value = GOALS[key]
    return f"{op} {value:g}"


def _met(key: str, value: float) -> str:
    if key not in GOALS:
        return ""
    op, goal = GOALS[key]
    return "met" if (value >= goal if op == ">=" else value <= goal) else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="resumes for ours (speed, quality)")
    parser.add_argument("--presidio-docs", type=int, default=300, help="the first M, both systems")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--examples", type=int, default=8, help="surviving examples per kind")
    parser.add_argument("--skip-presidio", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    docs = resume_corpus(args.docs, args.seed)
    built = time.perf_counter() - started
    countries = {d.owner.country for d in docs}
    regions = {d.owner.region for d in docs}
    sample = docs[: args.presidio_docs]
    args.skip_presidio = args.skip_presidio or not sample
    run_ours, startup = ours()
    everything = timed("ours", run_ours, docs, startup)
    runs = [timed("ours", run_ours, sample, startup)] if not args.skip_presidio else []
    if not args.skip_presidio:
        run_presidio, startup_p = presidio()
        runs.append(timed("presidio (spaCy en_core_web_sm)", run_presidio, sample, startup_p))
    figures = {
        "corpus": {
            "docs": len(docs),
            "presidio_docs": len(sample),
            "chars_per_doc": sum(len(d.text) for d in docs) // max(1, len(docs)),
            "countries": len(countries),
            "regions": sorted(regions),
            "seed": args.seed,
            "build_s": round(built, 1),
        },
        f"ours_all_{len(docs)}": {
            "docs_per_s": everything.docs_per_s,
            "startup_s": startup,
            **everything.score.figures(),
        },
        **{
            f"{'ours' if i == 0 else 'presidio'}_same_{len(sample)}": {
                "docs_per_s": run.docs_per_s,
                "startup_s": run.startup_s,
                **run.score.figures(),
            }
            for i, run in enumerate(runs)
        },
    }
    if len(runs) == 2:  # on the same texts: ours on the sample ran warm, after all documents
        figures["speed_ratio"] = runs[0].docs_per_s / runs[1].docs_per_s
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    corpus = figures["corpus"]
    print(
        f"corpus: {corpus['docs']} resumes ({corpus['chars_per_doc']} chars on average), owners "
        f"from {corpus['countries']} countries in {len(regions)} regions, seed {args.seed}, "
        f"built in {built:.1f}s"
    )
    columns = [(f"ours ({len(docs)})", everything.score.figures())]
    columns += [(f"{r.label.split()[0]} ({len(sample)})", r.score.figures()) for r in runs]
    print()
    header = f"{'':<42}" + "".join(f"{label:>16}" for label, _ in columns)
    print(header + f"{'goal':>9}  ours")
    for key, label in ROWS:
        cells = "".join(
            f"{f[key]:>16.0f}" if key == "unaligned_docs" else f"{f[key]:>16.4f}"
            for _, f in columns
        )
        print(f"{label:<42}{cells}{_goal(key):>9}  {_met(key, columns[0][1][key])}")
    speeds = [everything.docs_per_s] + [r.docs_per_s for r in runs]
    print(f"{'docs/s (whole anonymizer, one thread)':<42}" + "".join(f"{s:>16.1f}" for s in speeds))
    print(
        f"{'start-up s (import, first document)':<42}"
        + "".join(f"{s:>16.2f}" for s in [startup] + [r.startup_s for r in runs])
    )
    if len(runs) == 2:
        ratio = figures["speed_ratio"]
        every = everything.docs_per_s / runs[1].docs_per_s
        print(
            f"speed ratio ours / presidio on the same {len(sample)} texts: {ratio:.0f}x   "
            f"goal >= 70x  {_met_ratio(ratio)}   (ours on all {len(docs)}: {every:.0f}x)"
        )
    print()
    print("Owner's name-part recall by name shape and by region (ours, all documents):")
    score = everything.score
    for title, table in (("shape", score.by_shape), ("region", score.by_region)):
        cells = [
            f"{key} {1 - t['left'] / max(1, t['total']):.3f}" for key, t in sorted(table.items())
        ]
        print(f"  {title}: " + ", ".join(cells))
    places = sorted({k[3:-6] for k in score.counts if k.startswith("at_") and k.endswith("_total")})
    print("Name-part occurrences (all people) that survived ours, by where they were written:")
    print(
        "  "
        + ", ".join(
            f"{p} {score.counts[f'at_{p}_left']}/{score.counts[f'at_{p}_total']}" for p in places
        )
    )
    if args.examples:
        print()
        print("What ours missed or broke (first examples of each kind):")
        for kind, items in sorted(score.survivors.items()):
            if kind in ("word_lost", "false_name", "org_lost"):
                common = Counter(items).most_common(args.examples)
            else:  # distinct ones, spread over the corpus
                distinct = list(dict.fromkeys(items))
                step = max(1, len(distinct) // args.examples)
                common = [(item, 1) for item in distinct[::step][: args.examples]]
            print(f"  {kind}: {len(items)}")
            for item, n in common:
                print(f"    {item}" + (f"  x{n}" if n > 1 else ""))


def _met_ratio(ratio: float) -> str:
    return "met" if ratio >= 70 else "MISSED"


if __name__ == "__main__":
    main()
