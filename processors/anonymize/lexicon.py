"""The name lexicon the anonymizer looks names up in: plain sets, built once per process.

First and last names come from Faker's person providers (MIT, released every few weeks): about
31,000 first names and 28,000 last names from 86 locales, accents and non-Latin scripts
included; and from `names-dataset` (Apache-2.0) through `world_names.py`: the 1,500 most common
first and last names of each of 105 countries, about 80,000 and 100,000. A name list alone
over-matches resume text, so two more sets temper it:

- `vocabulary`: common English words (Faker's English word list and the words of its job titles)
  plus `data/resume_vocabulary.txt`. A first name that is also a word (`Will`, `Grant`, `Chase`)
  only counts when a known surname follows it.
- `not_names`: `data/not_names.txt`, capitalised words of resumes that must never be taken for
  names (places, companies, products, technologies, section titles), even where a name list
  holds them (`Stack`, `York`, `Jenkins`).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from processors.anonymize.world_names import read_names

DATA = Path(__file__).parent.parent / "data"


@dataclass(frozen=True)
class NameLexicon:
    first: frozenset[str]
    last: frozenset[str]
    vocabulary: frozenset[str]
    not_names: frozenset[str]
    name_words: frozenset[str]  # first | last


def _words(path: Path) -> set[str]:
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.update(_title(word) for word in line.split())
    return out


def _title(word: str) -> str:
    return word.capitalize()


def _add(target: set[str], value: object) -> None:
    if isinstance(value, dict):
        value = list(value)
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            if isinstance(item, tuple):  # ja_JP pairs: (kanji, kana, romanized)
                _add(target, item)
            elif isinstance(item, str):
                # Faker lists hold a few compound entries ("Mary Ann"); take their words.
                target.update(_title(part) for part in item.split() if len(part) > 1)


@lru_cache(maxsize=1)
def load_lexicon() -> NameLexicon:
    import faker.providers.job.en_US as jobs
    import faker.providers.lorem.en_US as lorem
    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for module_info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module_info.name}").Provider
        for attribute, value in vars(provider).items():
            # first_names, first_names_female, first_romanized_names, last_names_male, ...
            if "name" not in attribute or attribute.startswith("_"):
                continue
            if attribute.startswith(("first", "middle")):
                _add(first, value)
            elif attribute.startswith("last") or attribute.endswith("last_names"):
                _add(last, value)
    world_first, world_last = read_names()
    first |= world_first
    last |= world_last
    vocabulary = {_title(word) for word in lorem.Provider.word_list}
    for job in jobs.Provider.jobs:
        vocabulary.update(_title(w.strip(",()/")) for w in job.split() if len(w) > 2)
    vocabulary |= _words(DATA / "resume_vocabulary.txt")
    not_names = _words(DATA / "not_names.txt")
    first -= not_names
    last -= not_names
    return NameLexicon(
        first=frozenset(first),
        last=frozenset(last),
        vocabulary=frozenset(vocabulary),
        not_names=frozenset(not_names),
        name_words=frozenset(first | last),
    )
