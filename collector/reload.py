"""What a SIGHUP changes: the running config against the file's, both as the service resolved
them (under `--sandbox`, aimed at the emulators), as Vector diffs its old and new topology.

    diff = diff_configs(running, fresh)
    diff.added / removed / changed / unchanged    # sources, by name
    diff.applied                                  # other parts applied at once ("metrics", ...)
    diff.needs_restart                            # parts that keep their running value
    diff.config                                   # what the service runs after the reload

What is applied without a restart, and how:
- sources: added ones start, removed ones drain and stop, changed ones restart from their cursors;
- `service.log_level`, `service.log_format`: the log output switches at once;
- `processing.validate`, `processing.anonymize`: every source restarts with the new chain;
- `privacy`: the opt-out file named is read and used by every source;
- `metrics`, `raw`: their component (the HTTP listener, the retention sweeps) is rebuilt.
Everything else (the data folder, queues, workers, state, dedupe, split, upload, rewrite) is
kept as it runs, named in `needs_restart` with its field path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from collector.config import Config

LIVE_SERVICE_FIELDS = ("log_level", "log_format")
CHAIN_FIELDS = ("validate", "anonymize")  # the parts of `processing` inside each source's chain
COMPONENT_SECTIONS = ("metrics", "raw")  # their component is rebuilt in place
RESTART_SECTIONS = ("state", "upload", "rewrite")


def changed_fields(old: msgspec.Struct, new: msgspec.Struct) -> list[str]:
    """The names of the fields whose values differ, in declaration order."""
    return [
        f.name for f in msgspec.structs.fields(old) if getattr(old, f.name) != getattr(new, f.name)
    ]


@dataclass
class ConfigDiff:
    config: Config
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)

    def applies(self, section: str) -> bool:
        """Whether `section` (or one of its fields) is applied by this reload."""
        return any(p == section or p.startswith(section + ".") for p in self.applied)

    def fields(self) -> dict[str, Any]:
        """The log event's fields."""
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "applied": self.applied,
            "needs_restart": self.needs_restart,
        }


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What reloading `new` over the running `old` does (both resolved the same way)."""
    replace = msgspec.structs.replace
    applied: list[str] = []
    restart: list[str] = []

    service = changed_fields(old.service, new.service)
    applied += [f"service.{f}" for f in service if f in LIVE_SERVICE_FIELDS]
    restart += [f"service.{f}" for f in service if f not in LIVE_SERVICE_FIELDS]
    live_service = {f: getattr(new.service, f) for f in LIVE_SERVICE_FIELDS}

    processing = changed_fields(old.processing, new.processing)
    applied += [f"processing.{f}" for f in processing if f in CHAIN_FIELDS]
    restart += [f"processing.{f}" for f in processing if f not in CHAIN_FIELDS]
    chain = {f: getattr(new.processing, f) for f in CHAIN_FIELDS}

    for section in (*COMPONENT_SECTIONS, "privacy"):
        if getattr(old, section) != getattr(new, section):
            applied.append(section)
    for section in RESTART_SECTIONS:
        restart += [
            f"{section}.{f}" for f in changed_fields(getattr(old, section), getattr(new, section))
        ]

    running = replace(
        new,
        service=replace(old.service, **live_service),
        processing=replace(old.processing, **chain),
        state=old.state,
        upload=old.upload,
        rewrite=old.rewrite,
    )
    diff = ConfigDiff(running, applied=applied, needs_restart=restart)
    before = {s.name: s for s in old.sources if s.enabled}
    after = {s.name: s for s in new.sources if s.enabled}
    chain_changed = any(p.startswith("processing.") for p in applied)
    diff.removed = [n for n in before if n not in after]
    diff.added = [n for n in after if n not in before]
    for name in after:
        if name in before:
            moved = chain_changed or after[name] != before[name]
            (diff.changed if moved else diff.unchanged).append(name)
    return diff
