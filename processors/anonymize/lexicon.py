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

Building it reads 86 of Faker's modules and 180,000 names: about 0.6 s of CPU, the most of a
worker pool's start. So the sets built are kept in a cache file (`cache_dir()`), named by a hash
of everything they are built from: Faker's version, this code and the data files. A change to
any of them names another file; a file that cannot be read or written is built around.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import pkgutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import msgspec

from processors.anonymize import world_names
from processors.anonymize.world_names import read_names

DATA = Path(__file__).parent.parent / "data"
# Every file the lexicon is built from, this code included: the cache file's name hashes them.
_SOURCES = (
    Path(__file__),
    Path(world_names.__file__),
    world_names.OUTPUT,
    DATA / "resume_vocabulary.txt",
    DATA / "not_names.txt",
)


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


class _Stored(msgspec.Struct, array_like=True):
    """What a cache file holds: the sets, sorted (the same lexicon gives the same bytes)."""

    first: list[str]
    last: list[str]
    vocabulary: list[str]
    not_names: list[str]


def cache_dir() -> Path | None:
    """Where the lexicon's cache file goes: `$RESUME_COLLECTOR_CACHE_DIR`, systemd's
    `$CACHE_DIRECTORY` (the unit's `CacheDirectory=`), else `$XDG_CACHE_HOME/resume-collector`
    or `~/.cache/resume-collector`; None for a user with no home (a container's arbitrary uid)."""
    for variable in ("RESUME_COLLECTOR_CACHE_DIR", "CACHE_DIRECTORY"):
        if os.environ.get(variable):
            return Path(os.environ[variable])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "resume-collector"
    home = os.path.expanduser("~")  # "~" itself when neither $HOME nor the passwd entry says
    return Path(home) / ".cache" / "resume-collector" if os.path.isabs(home) else None


def cache_path() -> Path | None:
    """The cache file of the lexicon these sources and this Faker build (None: no cache)."""
    folder = cache_dir()
    if folder is None:
        return None
    digest = hashlib.sha256(importlib.metadata.version("faker").encode())
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return folder / f"lexicon-{digest.hexdigest()[:32]}.msgpack"


@lru_cache(maxsize=1)
def load_lexicon() -> NameLexicon:
    """The lexicon: read from its cache file, else built and written there."""
    path = cache_path()
    if path is None:
        return build_lexicon()
    try:
        stored = msgspec.msgpack.decode(path.read_bytes(), type=_Stored)
    except (OSError, msgspec.DecodeError):  # not built yet, or a torn or foreign file
        lexicon = build_lexicon()
        _store(path, lexicon)
        return lexicon
    first, last = frozenset(stored.first), frozenset(stored.last)
    return NameLexicon(
        first=first,
        last=last,
        vocabulary=frozenset(stored.vocabulary),
        not_names=frozenset(stored.not_names),
        name_words=first | last,
    )


def _store(path: Path, lexicon: NameLexicon) -> None:
    """Writes the cache file whole (a reader sees the old file or the new one, never a part),
    and removes those of other sources. Best effort: a read-only or full disk leaves the next
    start to build the lexicon again."""
    stored = _Stored(
        sorted(lexicon.first),
        sorted(lexicon.last),
        sorted(lexicon.vocabulary),
        sorted(lexicon.not_names),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".lexicon-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(msgspec.msgpack.encode(stored))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        for stale in path.parent.glob("lexicon-*.msgpack"):  # built from older sources
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass


def build_lexicon() -> NameLexicon:
    """The lexicon built from its sources (`load_lexicon` reads it from its cache instead)."""
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
