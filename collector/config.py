"""The service configuration: one TOML file decoded into msgspec Structs.

Every error names the field it is about (`sources[2].rate.per_second: expected float, got str`),
and `load_config` reports all of them at once rather than stopping at the first.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from collector.filemodes import DEFAULT_FILE_MODE, FileModes
from collector.layout import DataLayout
from collector.redact import secret_env_names, watch_secret_env
from collector.rewrite.config import RewriteConfig
from collector.sources.config import AnySourceConfig
from collector.upload.config import UploadConfig
from processors.config import ProcessingConfig


class ServiceSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    data_dir: str = "training-data"
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Bounded queues of batches between stages: this is what keeps memory flat.
    queue_size: Annotated[int, msgspec.Meta(ge=1)] = 16
    workers: Annotated[int, msgspec.Meta(ge=1)] = 2
    # Where the processor chains run (collector/workers.py): "process", a pool of `workers`
    # processes that uses every core; "thread", threads of the service, one core between them
    # under the GIL; "auto", processes when more than one core is usable.
    worker_mode: Literal["auto", "process", "thread"] = "auto"
    # A flush makes output durable (fsync) and only then saves the sources' cursors.
    flush_interval: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    flush_bytes: Annotated[int, msgspec.Meta(ge=1)] = 8 * 1024 * 1024
    shutdown_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    # Batches waiting and nothing moving for this long: the pipeline is stuck (/healthz fails,
    # the systemd watchdog stops being fed). Raise it if one batch takes longer to process.
    stall_timeout: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # The mode of every file written under data_dir (folders get the matching x bits): the
    # data is personal until anonymized, so owner-only unless opened on purpose ("0640").
    file_mode: str = DEFAULT_FILE_MODE

    def __post_init__(self) -> None:
        FileModes.parse(self.file_mode)  # a ValueError names the field


class StateConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str = "training-data/state/collector.sqlite3"
    url: str = "redis://127.0.0.1:6379/0"
    password_env: str = ""
    # Redis only (docs/scale-out.md): keys live under `prefix`; `instance` names this instance
    # (default: host name + a hash of data_dir); a source lease lasts `lease_ttl` seconds
    # unless its owner renews it.
    prefix: Annotated[str, msgspec.Meta(min_length=1)] = "resume-collector"
    instance: str = ""
    lease_ttl: Annotated[float, msgspec.Meta(ge=0.5)] = 15.0
    # SQLite only: MiB of the Bloom filter in front of the dedupe sets (collector/state/runs.py),
    # a power of two. 16 gives 0.2% false positives at 10M keys; a bigger set wants more.
    bloom_mb: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 16

    def __post_init__(self) -> None:
        if self.bloom_mb & (self.bloom_mb - 1):
            raise ValueError(f"bloom_mb must be a power of two, not {self.bloom_mb}")


_DURATION = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>[smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`"90d"` -> seconds; s, m, h, d and w are the units. A ValueError says what is wrong."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group("n")) <= 0:
        raise ValueError(
            f"must be a positive number and a unit (s, m, h, d, w) such as '90d', not {text!r}"
        )
    return float(match.group("n")) * _UNIT_SECONDS[match.group("unit")]


class RawConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The raw archive (`{data_dir}/raw/`): API responses as they came, personal data included."""

    # How long a raw file is kept after it was written ("90d", "12h", "2w"); "" keeps them all.
    retention: str = ""
    # Seconds between the daemon's sweeps of the archive when `retention` is set.
    sweep_interval: Annotated[float, msgspec.Meta(gt=0)] = 3600.0

    def __post_init__(self) -> None:
        if self.retention:
            try:
                parse_duration(self.retention)
            except ValueError as error:
                raise ValueError(f"retention {error}") from None

    @property
    def retention_seconds(self) -> float | None:
        return parse_duration(self.retention) if self.retention else None


class PrivacyConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # A file of people who asked to be left out (GitHub logins, Stack Exchange user ids,
    # e-mails, names; processors/optout.py): their records are dropped as `opted_out` as they
    # are fetched. Read again whenever it changes. "": no list.
    optout: str = ""


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    service: ServiceSettings = ServiceSettings()
    state: StateConfig = StateConfig()
    processing: ProcessingConfig = ProcessingConfig()
    upload: UploadConfig = UploadConfig()
    rewrite: RewriteConfig = RewriteConfig()
    metrics: MetricsConfig = MetricsConfig()
    raw: RawConfig = RawConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    sources: list[AnySourceConfig] = []

    def layout(self) -> DataLayout:
        """Where the service keeps its files (collector/layout.py)."""
        return DataLayout.at(
            Path(self.service.data_dir),
            upload_folder=self.upload.folder,
            state_path=self.state.path,
        )


class ConfigError(Exception):
    """A config that cannot be used; `errors` holds one line per problem, each with its field."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = errors
        super().__init__(f"{path}: " + "; ".join(errors))


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _describe(
    prefix: str, error: msgspec.ValidationError, kind: Any = None, value: Any = None
) -> str:
    """`Expected float, got str - at $.x.y` -> `prefix.x.y: expected float, got str`; a bad
    choice lists the allowed ones (`invalid enum value 'loud' (allowed: 'debug', 'info')`)."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern accepts any string
    message, path = match.group("msg"), match.group("path") or ""
    for pattern, text in ((_UNKNOWN, "unknown field"), (_MISSING, "required field is missing")):
        field = pattern.match(message)
        if field:
            path, message = f"{path}.{field.group('field')}", text
    message = message.replace("`", "")
    message = message[:1].lower() + message[1:]
    if kind is AnySourceConfig and path == ".type" and message.startswith("invalid value"):
        tags = [repr(k.__struct_config__.tag) for k in typing.get_args(AnySourceConfig)]
        message += f" (allowed: {', '.join(tags)})"
    elif _ENUM.match(message):
        parts = [p for p in path.split(".") if p and not p.startswith("[")]
        allowed = _allowed(kind, value, [re.sub(r"\[\d+\]$", "", p) for p in parts])
        if allowed:
            message += f" (allowed: {', '.join(allowed)})"
    where = f"{prefix}{path}".lstrip(".") or "(top level)"
    return f"{where}: {message}"


def _sections(raw: dict[str, Any]) -> Iterator[tuple[str, str, Any, Any]]:
    """Each part of the file that is checked on its own, so one mistake hides no other."""
    for name, field in (
        ("service", ServiceSettings),
        ("state", StateConfig),
        ("processing", ProcessingConfig),
        ("upload", UploadConfig),
        ("rewrite", RewriteConfig),
        ("metrics", MetricsConfig),
        ("raw", RawConfig),
        ("privacy", PrivacyConfig),
    ):
        if name in raw:
            yield name, name, raw[name], field
    sources = raw.get("sources", [])
    if isinstance(sources, list):
        for index, source in enumerate(sources):
            yield "sources", f"sources[{index}]", source, AnySourceConfig


_ENUM = re.compile(r"^invalid enum value")


def _allowed(kind: Any, value: Any, path: list[str]) -> list[str] | None:
    """The values a Literal field at `path` (field names under `kind`) allows, if it is one."""
    if kind is AnySourceConfig and isinstance(value, dict):
        kind = next(
            (
                k
                for k in typing.get_args(AnySourceConfig)
                if k.__struct_config__.tag == value.get("type")
            ),
            None,
        )
    for name in path:
        if kind is None or not isinstance(kind, type) or not issubclass(kind, msgspec.Struct):
            return None
        hints = typing.get_type_hints(kind, include_extras=True)
        kind = hints.get(name)
        while typing.get_origin(kind) is Annotated:
            kind = typing.get_args(kind)[0]
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(options) == 1:
            kind = options[0]
    if typing.get_origin(kind) is Literal:
        return [repr(a) for a in typing.get_args(kind)]
    return None


def _field_errors(label: str, value: Any, kind: Any) -> list[str]:
    """Every field's error in one section, not only the first: each field on its own."""
    try:
        msgspec.convert(value, kind)
        return []
    except msgspec.ValidationError as error:
        first = error
    if not isinstance(value, dict):
        return [_describe(label, first, kind, value)]
    required = {k: value[k] for k in ("type", "name") if k in value}
    errors: list[str] = []
    for key in value:
        try:
            msgspec.convert({**required, key: value[key]}, kind)
        except msgspec.ValidationError as error:
            line = _describe(label, error, kind, value)
            if line not in errors:
                errors.append(line)
    return errors or [_describe(label, first, kind, value)]


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> Config:
    errors: list[str] = []
    known = {f.name for f in msgspec.structs.fields(Config)}
    errors += [f"{key}: unknown section" for key in raw if key not in known]
    if "sources" in raw and not isinstance(raw["sources"], list):
        errors.append("sources: expected an array of tables ([[sources]])")
    parsed: dict[str, Any] = {}
    for key, label, value, kind in _sections(raw):
        try:
            item = msgspec.convert(value, kind)
        except msgspec.ValidationError:
            errors += _field_errors(label, value, kind)
            continue
        if key == "sources":
            parsed.setdefault("sources", []).append(item)
        else:
            parsed[key] = item
    names = [source.name for source in parsed.get("sources", [])]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"sources: the name {name!r} is used more than once")
    for index, name in enumerate(names):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            errors.append(f"sources[{index}].name: use letters, digits, '-', '_' and '.' only")
    if errors:
        raise ConfigError(origin, errors)
    return Config(**parsed)


def with_overrides(
    config: Config, *, log_level: str | None = None, sources: Sequence[str] = ()
) -> Config:
    """The config with the command line's overrides: `--log-level`, and `--source NAME`
    (only those sources run). Applied at start and at every reload, like `--sandbox`."""
    if log_level is not None:
        service = msgspec.structs.replace(config.service, log_level=log_level)
        config = msgspec.structs.replace(config, service=service)
    if sources:
        names = [s.name for s in config.sources]
        unknown = [n for n in sources if n not in names]
        if unknown:
            raise ConfigError(
                "--source",
                [f"no source named {n!r}; the config has: {', '.join(names)}" for n in unknown],
            )
        chosen = [s for s in config.sources if s.name in sources]
        config = msgspec.structs.replace(config, sources=chosen)
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from error
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), [f"not UTF-8 text: {error.reason}"]) from error
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), [f"invalid TOML: {error}"]) from error
    config = parse_config(raw, str(path))
    watch_secret_env(secret_env_names(config))  # their values never reach a log line
    return config
