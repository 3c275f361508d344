"""Real first and last names of 105 countries, compiled from the `names-dataset` package.

`names-dataset` (Philippe Remy; Apache License 2.0) ranks 730k first and 983k last names in
each country where they occur. Loading it takes about 3 GB of RAM and 20 s, so it is compiled
once, at build time, into `processors/data/world_names.txt.gz`: the names ranked in the top
`TOP` of at least one country that are no common English word, one a line, `F` or `L` and a
tab before each. That file is what the lexicon reads (a few MB of sets, read in well under a
second); the packages are needed only to compile it again:

    make names    # needs the bench extra: names-dataset and wordfreq
"""

from __future__ import annotations

import gzip
import pickle
import re
from importlib import resources
from pathlib import Path

OUTPUT = Path(__file__).parent.parent / "data" / "world_names.txt.gz"
TOP = 1500
# A name that is also a common English word (`Data`, `Senior`, `Sales`, `Bank`: all in the
# dataset's lists) is left out: its Zipf frequency in English (wordfreq) is this or more, about
# once in 10,000 words. Real names that common (`Maria`, `John`) come from Faker's lists, where
# the lexicon's vocabulary rule asks for evidence before they count.
COMMON_WORD_ZIPF = 4.0
# One name a line: letters, with an inner apostrophe or hyphen (O'Connor, Jean-Luc).
_NAME = re.compile(r"[^\W\d_]{2,}(?:['’\-][^\W\d_]+)*")


def compile_names(output: Path = OUTPUT, top: int = TOP) -> tuple[int, int]:
    """Writes the compact file; (first names, last names) kept."""
    from wordfreq import zipf_frequency

    data = resources.files("names_dataset") / "v3"
    lines: list[str] = []
    counts: list[int] = []
    for kind, tag in (("first", "F"), ("last", "L")):
        with gzip.open(str(data / f"{kind}_names.pkl.gz"), "rb") as handle:
            table = pickle.load(handle)  # the package's own data
        kept = sorted(
            name.strip()
            for name, info in table.items()
            if _NAME.fullmatch(name.strip())
            and zipf_frequency(name.strip().lower(), "en") < COMMON_WORD_ZIPF
            and any(rank is not None and rank <= top for rank in (info.get("rank") or {}).values())
        )
        del table
        lines += [f"{tag}\t{name}" for name in kept]
        counts.append(len(kept))
    text = f"# names-dataset (Apache-2.0), the top {top} names of each country\n"
    text += "\n".join(lines) + "\n"
    # mtime 0: the same names give the same bytes, so a rebuild shows no diff.
    output.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    return counts[0], counts[1]


def read_names(path: Path = OUTPUT) -> tuple[set[str], set[str]]:
    """(first names, last names) of the compiled file, capitalised as the lexicon keeps them."""
    first: set[str] = set()
    last: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            tag, _, name = line.rstrip("\n").partition("\t")
            if tag == "F":
                first.add(name.capitalize())
            elif tag == "L":
                last.add(name.capitalize())
    return first, last


def main() -> None:
    first_count, last_count = compile_names()
    print(f"{OUTPUT}: {first_count} first and {last_count} last names")
