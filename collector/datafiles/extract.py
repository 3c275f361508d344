"""Safe extraction of third-party archives.

Archives from Kaggle (or anywhere else) are treated as hostile:

- no entry may land outside the target folder: absolute paths (`/etc/x`, `C:\\x`, `\\\\host\\x`),
  `..` components, symlinks and special files are refused, as are duplicate names (an entry
  that would overwrite another);
- a zip bomb is stopped by limits on the entry count, the total uncompressed size and the
  expansion ratio of each entry. The declared sizes are checked first (cheap), then the real
  bytes are counted while they stream to disk: headers are never trusted alone;
- encrypted entries are refused (nothing could read them anyway).

A refused archive raises `UnsafeArchive` with a `reason` (a counted drop reason) and leaves
nothing behind: extraction goes to a temporary folder renamed into place only on success.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import msgspec

from collector.datafiles.rows import CHUNK

# Small entries compress extremely well (a file of spaces): the ratio is checked past this size.
RATIO_FLOOR_BYTES = 1024 * 1024


class UnsafeArchive(Exception):
    """An archive that is refused as a whole. `reason` is the drop reason that is counted."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"unsafe archive ({reason}): {detail}")


class ExtractLimits(msgspec.Struct, frozen=True):
    max_total_bytes: int = 8 * 1024**3  # uncompressed bytes written, all entries together
    max_entries: int = 100_000  # entries in the archive, extracted or not
    max_ratio: float = 200.0  # uncompressed / compressed size of one entry
    max_entry_bytes: int | None = None  # one entry; None: only the total limit applies


DEFAULT_LIMITS = ExtractLimits()


class Member(msgspec.Struct, frozen=True):
    name: str  # the entry's name in the archive, with `/` separators
    path: str  # where it was written
    size: int  # bytes written


def is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def safe_name(name: str) -> PurePosixPath:
    """The entry name as a relative path inside the target, or `UnsafeArchive`."""
    if "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise UnsafeArchive("unsafe_name", f"control characters in {name!r}")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise UnsafeArchive("absolute_path", f"entry {name!r} has an absolute path")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive("zip_slip", f"entry {name!r} climbs out of the target folder")
    if not parts:
        raise UnsafeArchive("unsafe_name", f"entry {name!r} has no file name")
    return PurePosixPath(*parts)


def _check_entry(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # made on Unix: the mode bits are meaningful
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchive("symlink", f"entry {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive("special_file", f"entry {info.filename!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise UnsafeArchive("encrypted_entry", f"entry {info.filename!r} is encrypted")


def extract_zip(
    archive: Path,
    target: Path,
    limits: ExtractLimits = DEFAULT_LIMITS,
    select: Callable[[str], bool] = lambda name: True,
) -> list[Member]:
    """Extract the selected entries of `archive` into `target` (which must not exist yet).

    Every entry is checked, selected or not: one hostile entry refuses the whole archive.
    """
    try:
        with zipfile.ZipFile(archive) as bundle:
            infos = bundle.infolist()
            if len(infos) > limits.max_entries:
                raise UnsafeArchive(
                    "too_many_entries", f"{len(infos)} entries, the limit is {limits.max_entries}"
                )
            planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[str] = set()
            declared = 0
            for info in infos:
                relative = safe_name(info.filename)
                _check_entry(info)
                key = relative.as_posix().casefold()
                if key in seen:
                    raise UnsafeArchive("duplicate_entry", f"entry {info.filename!r} repeats")
                seen.add(key)
                if info.is_dir() or not select(relative.as_posix()):
                    continue
                _check_sizes(info, info.file_size, limits)
                declared += info.file_size
                if declared > limits.max_total_bytes:
                    raise UnsafeArchive(
                        "too_large",
                        f"declared sizes exceed {limits.max_total_bytes} bytes uncompressed",
                    )
                planned.append((info, relative))
            return _extract(bundle, planned, target, limits)
    except zipfile.BadZipFile as error:
        raise UnsafeArchive("bad_archive", str(error)) from error
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise UnsafeArchive("bad_archive", f"{type(error).__name__}: {error}") from error


def _check_sizes(info: zipfile.ZipInfo, size: int, limits: ExtractLimits) -> None:
    if limits.max_entry_bytes is not None and size > limits.max_entry_bytes:
        raise UnsafeArchive(
            "entry_too_large",
            f"entry {info.filename!r} is over {limits.max_entry_bytes} bytes uncompressed",
        )
    compressed = max(info.compress_size, 1)
    if size > RATIO_FLOOR_BYTES and size / compressed > limits.max_ratio:
        raise UnsafeArchive(
            "compression_ratio",
            f"entry {info.filename!r} expands {size / compressed:.0f}x "
            f"(the limit is {limits.max_ratio:.0f}x): a zip bomb",
        )


def _extract(
    bundle: zipfile.ZipFile,
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    target: Path,
    limits: ExtractLimits,
) -> list[Member]:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    root = staging.resolve()
    members: list[Member] = []
    total = 0
    try:
        for info, relative in planned:
            destination = staging.joinpath(*relative.parts)
            if not destination.resolve().is_relative_to(root):  # belt and braces
                raise UnsafeArchive("zip_slip", f"entry {info.filename!r} escapes the target")
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with bundle.open(info) as source, destination.open("xb") as out:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if total > limits.max_total_bytes:
                        raise UnsafeArchive(
                            "too_large",
                            f"more than {limits.max_total_bytes} bytes uncompressed",
                        )
                    _check_sizes(info, written, limits)
                    out.write(chunk)
            members.append(
                Member(relative.as_posix(), str(target.joinpath(*relative.parts)), written)
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return members
