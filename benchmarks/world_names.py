"""Real first and last names per country, sampled once from the `names-dataset` package.

`names-dataset` (PyPI, Philippe Remy; code and data under the Apache License 2.0, as its wheel's
LICENSE says; its metadata also says MIT) ships 730k first and 983k last names with their rank in
each of 105 countries, taken from the public 2021 Facebook dump. Loading it takes about 3 GB of
RAM, so a child process reads its two pickles once and writes a small sample (the best-ranked
names of each country below, plus some rarer ones) to a JSON cache; later runs read the cache.

The sample keeps romanized names only (Latin letters, accents, apostrophes and hyphens): resumes
written in English spell them that way. The anonymizer's own lexicon holds the 1,500 most common
names of each country of the same package (processors/data/world_names.txt.gz), so the best-ranked
names here are in it, as common names in real resumes are; the rarer ones (ranks 3,000 to 10,000)
are not. `in_faker` tells, per name, whether the anonymizer's lexicon holds it (the name is
historical: Faker's lists were its only source), and the report gives recall for both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Country -> the region of the world it stands for in the report. Every continent, and the
# regions the issue names: South Asia, East and South-East Asia, Africa, Arabic, Persian, Turkish,
# Slavic, Latin America, Europe, North America, Oceania.
COUNTRIES: dict[str, str] = {
    "IN": "South Asia",
    "BD": "South Asia",
    "MV": "South Asia",
    "CN": "East Asia",
    "JP": "East Asia",
    "KR": "East Asia",
    "TW": "East Asia",
    "ID": "South-East Asia",
    "MY": "South-East Asia",
    "PH": "South-East Asia",
    "SG": "South-East Asia",
    "NG": "Africa",
    "GH": "Africa",
    "ZA": "Africa",
    "ET": "Africa",
    "CM": "Africa",
    "BW": "Africa",
    "EG": "Arabic",
    "SA": "Arabic",
    "JO": "Arabic",
    "MA": "Arabic",
    "IQ": "Arabic",
    "IR": "Persian",
    "AF": "Persian",
    "TR": "Turkish",
    "AZ": "Turkish",
    "RU": "Slavic",
    "PL": "Slavic",
    "RS": "Slavic",
    "HR": "Slavic",
    "BG": "Slavic",
    "MX": "Latin America",
    "BR": "Latin America",
    "AR": "Latin America",
    "CO": "Latin America",
    "PE": "Latin America",
    "FR": "Europe",
    "DE": "Europe",
    "IT": "Europe",
    "ES": "Europe",
    "NL": "Europe",
    "SE": "Europe",
    "GR": "Europe",
    "HU": "Europe",
    "US": "North America",
    "CA": "North America",
    "JM": "North America",
    "FJ": "Oceania",
}
TOP = 400  # the best-ranked names kept per country and kind
RARE = 100  # and this many of rank 3,000 to 10,000: real names that short lists miss
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ɏ][A-Za-zÀ-ÖØ-öø-ɏ'’-]*[a-zß-öø-ɏ]")


@dataclass(frozen=True)
class WorldName:
    text: str
    rank: int  # the name's rank in its country in names-dataset (1 = most common)
    in_faker: bool  # Faker's person providers hold it (the anonymizer's lists today)


@dataclass(frozen=True)
class CountryNames:
    country: str
    region: str
    first: list[WorldName]
    last: list[WorldName]


def cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "resume-collector" / "bench-names-dataset-3.3.1.json"


_SAMPLER = r"""
import gzip, json, random, re, sys
from pathlib import Path
import names_dataset

countries, top, rare, pattern = json.loads(sys.argv[1])
latin = re.compile(pattern)
root = Path(names_dataset.__file__).parent / "v3"
out = {}
for kind in ("first", "last"):
    with gzip.open(root / f"{kind}_names.pkl.gz", "rb") as f:
        table = __import__("pickle").load(f)
    ranked = {c: [] for c in countries}
    for name, info in table.items():
        if not latin.fullmatch(name) or name.isupper():
            continue
        for country, rank in info["rank"].items():
            if rank is not None and country in ranked:
                ranked[country].append((rank, name))
    del table
    for country, names in ranked.items():
        names.sort()
        pool = [n for n in names if 3000 <= n[0] <= 10000]
        picked = names[:top] + random.Random(country + kind).sample(pool, min(rare, len(pool)))
        out.setdefault(country, {})[kind] = picked
json.dump(out, sys.stdout)
"""


def _sample_from_package() -> dict[str, dict[str, list[list[object]]]]:
    arg = json.dumps([list(COUNTRIES), TOP, RARE, _LATIN.pattern])
    done = subprocess.run(
        [sys.executable, "-c", _SAMPLER, arg], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            "names-dataset could not be read (pip install names-dataset==3.3.1):\n" + done.stderr
        )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def faker_names() -> set[str]:
    """Every first and last name of the anonymizer's own lexicon (Faker's person providers and
    the compiled names-dataset list), lower-cased: the breakdown tells names it looks up from
    names only its structural rules can find."""
    from processors.anonymize.lexicon import load_lexicon

    return {name.lower() for name in load_lexicon().name_words}


@lru_cache(maxsize=1)
def world_names() -> list[CountryNames]:
    path = cache_path()
    if path.exists():
        raw = json.loads(path.read_text(encoding="utf-8"))
    else:
        raw = _sample_from_package()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    faker = faker_names()
    result = []
    for country, region in COUNTRIES.items():
        kinds = raw[country]
        first, last = (
            [WorldName(str(n), int(r), str(n).lower() in faker) for r, n in kinds[kind]]  # type: ignore[call-overload]
            for kind in ("first", "last")
        )
        result.append(CountryNames(country, region, first, last))
    return result


if __name__ == "__main__":
    for entry in world_names():
        print(
            entry.country,
            entry.region,
            len(entry.first),
            len(entry.last),
            " ".join(n.text for n in entry.first[:6]),
            "|",
            " ".join(n.text for n in entry.last[:6]),
        )
