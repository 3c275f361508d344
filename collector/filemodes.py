"""Who may read what the collector writes: owner-only unless `service.file_mode` says otherwise.

Before anonymization the collector holds personal data (the raw archive keeps API responses as
they came; the state and the formatted files carry names until they are scrubbed), so every
file it creates is 0600 and every folder 0700 by default. `service.file_mode = "0640"` opens
them to a group on purpose; folders get the matching x bits (0750).

The rule has one home: the process's umask, set here when a command that writes starts. The
umask applies to every file and folder the process creates, whoever creates it (the sinks, the
raw archive, SQLite's database and its -wal and -shm files, downloads, the published folder),
so a new place that writes needs nothing to be private. Files and folders that existed before
keep their modes: `data_dir_readable_by_others` says so at start and in `check-config`.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FILE_MODE = "0600"
_OCTAL = re.compile(r"0?[0-7]{3}")


@dataclass(frozen=True)
class FileModes:
    file: int  # e.g. 0o640
    folder: int  # the same with x where r is: 0o750

    @classmethod
    def parse(cls, text: str) -> FileModes:
        """`"0640"` -> FileModes(0o640, 0o750); a ValueError says what is wrong."""
        if not _OCTAL.fullmatch(text):
            raise ValueError(f"file_mode must be an octal mode such as '0640', not {text!r}")
        mode = int(text, 8)
        if mode & 0o600 != 0o600:
            raise ValueError(f"file_mode must let the owner read and write (0600), not {text!r}")
        if mode & 0o111:
            raise ValueError(f"file_mode is for data files: no execute bits, not {text!r}")
        readable = mode & 0o444
        return cls(file=mode, folder=mode | readable >> 2)

    @property
    def umask(self) -> int:
        # Files are created 0666 & ~umask, folders 0777 & ~umask: both come out as above.
        return 0o777 & ~self.folder


def apply_file_modes(text: str) -> FileModes:
    """Make every file and folder this process creates from now on get `text`'s modes."""
    modes = FileModes.parse(text)
    os.umask(modes.umask)
    return modes


def data_dir_warning(path: Path, text: str) -> dict[str, str] | None:
    """The fields of a `data_dir_readable_by_others` warning when `path` lets group or others
    in beyond what `text` allows; None when it does not, or does not exist yet (it will be
    created with the right mode)."""
    modes = FileModes.parse(text)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    extra = mode & 0o077 & ~modes.folder
    if not extra:
        return None
    remove = ",".join(
        who + "-" + "".join(c for c, bit in zip("rwx", (4, 2, 1), strict=True) if bits & bit)
        for who, bits in (("g", extra >> 3 & 7), ("o", extra & 7))
        if bits
    )
    return {
        "path": str(path),
        "mode": f"{mode:04o}",
        "allowed": f"{modes.folder:04o}",
        "fix": f"chmod -R {remove} {path}",
    }
