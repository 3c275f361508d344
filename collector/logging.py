"""Structured logs: JSON lines on stdout by default, a readable console format on request.

Events are short snake_case names with fields: `log.info("batch_written", records=..., file=...)`.
Secrets are redacted from every line before it is written (`collector.redact`), and records of
the standard library's `logging` (aiohttp, huggingface_hub...) go through the same chain.

The level and the format can change while the service runs (a SIGHUP reload, `--log-level`):
loggers bound before keep following them. Every line goes through one `LogOutput`, which a
progress bar on the same terminal takes over (`route_lines`) so the two never overwrite each other.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import structlog

from collector.redact import REDACTOR

Logger = structlog.typing.FilteringBoundLogger

LogLevel = Literal["debug", "info", "warning", "error"]
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_METHOD_LEVELS = {**LEVELS, "critical": logging.CRITICAL, "exception": logging.ERROR}


class LogOutput:
    """Where every log line goes: the stream, or a writer that took it over (a progress bar)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.writer: Callable[[str], None] | None = None
        self._lock = threading.Lock()  # lines of worker threads (stdlib logging) stay whole

    def write_line(self, line: str) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer(line)
                return
            self.stream.write(line + "\n")
            self.stream.flush()


class _LineLogger:
    """structlog's final logger: one rendered line to the shared output."""

    def __init__(self, output: LogOutput) -> None:
        self._output = output

    def msg(self, message: str) -> None:
        self._output.write_line(message)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _Settings:
    """The level and the renderer every logger reads at each event (changed by `configure`)."""

    def __init__(self) -> None:
        self.level = logging.INFO
        self.renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()

    def drop_below_level(
        self, logger: Any, method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        if _METHOD_LEVELS.get(method, logging.INFO) < self.level:
            raise structlog.DropEvent
        return event

    def render(self, logger: Any, method: str, event: structlog.typing.EventDict) -> Any:
        return self.renderer(logger, method, event)


class ErrorTally:
    """Counts the error events of each source (their `source` field), whatever logged them:
    a pass that logged one did not go well (`once` exits with a code that says so)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(
        self, logger: Any, method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        if _METHOD_LEVELS.get(method, logging.INFO) >= logging.ERROR and "source" in event:
            self.counts[str(event["source"])] += 1
        return event


_SETTINGS = _Settings()
OUTPUT = LogOutput(sys.stdout)
ERRORS = ErrorTally()


class _OutputHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            OUTPUT.write_line(self.format(record))
        except Exception:
            self.handleError(record)


def configure_logging(
    fmt: Literal["json", "console"] = "json", level: str = "info", stream: Any = None
) -> None:
    """Set the format and level (every logger, bound before or after, follows) and the stream."""
    OUTPUT.stream = stream or sys.stdout
    _SETTINGS.level = LEVELS.get(level, logging.INFO)
    _SETTINGS.renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            ERRORS,
            _SETTINGS.drop_below_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            _SETTINGS.render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=lambda *args: _LineLogger(OUTPUT),
        cache_logger_on_first_use=False,
    )
    # Other libraries' warnings: same format, same redaction, and one event name
    # (`library_log`, their free text in `message`) so that events stay names one can count.
    handler = _OutputHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _library_event,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                REDACTOR,
                _SETTINGS.render,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(logging.WARNING, _SETTINGS.level))


def _library_event(
    logger: Any, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A library's message (pypdf's "EOF marker not found") is a sentence, not an event name."""
    event_dict["message"] = event_dict.get("event")
    event_dict["event"] = "library_log"
    return event_dict


def route_lines(writer: Callable[[str], None] | None) -> None:
    """Send every log line to `writer` (a progress bar's), or back to the stream with None."""
    OUTPUT.writer = writer


def get_logger(**fields: Any) -> Logger:
    logger: Logger = structlog.get_logger().bind(**fields)
    return logger
