"""Logs on stderr, one line per event: readable text (a terminal, `make run`), or JSON
(`SHOP_LOG_FORMAT=json`) for a log pipeline, with the request id and, when tracing, the
trace and span ids of the request a line belongs to.

orjson and opentelemetry-api are imported when logging is configured, not with this module:
importing `shop_common.process` loads the standard library only. Without opentelemetry-api
installed, lines simply carry no trace ids.
"""

from __future__ import annotations

import codecs
import enum
import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from shop_common.process.env import ConfigError, text
from shop_common.process.log_context import current_request_id


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def log_format(env: Mapping[str, str]) -> LogFormat:
    """`SHOP_LOG_FORMAT`: `text` (the default) or `json`, any case."""
    raw = text(env, "SHOP_LOG_FORMAT", LogFormat.TEXT.value).lower()
    try:
        return LogFormat(raw)
    except ValueError:
        raise ConfigError(f"SHOP_LOG_FORMAT={raw!r} is not text or json") from None


def log_level(env: Mapping[str, str]) -> str:
    """`SHOP_LOG_LEVEL`: DEBUG, INFO (the default), WARNING, ERROR or CRITICAL, any case."""
    raw = text(env, "SHOP_LOG_LEVEL", "INFO").upper()
    if raw not in logging.getLevelNamesMapping():
        raise ConfigError(f"SHOP_LOG_LEVEL={raw!r} is not DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return raw


SpanIds = Callable[[], tuple[str, str] | None]
"""The current span's trace and span ids (hex, as W3C traceparent spells them), if any."""


def _no_span() -> None:
    return None


def span_ids_reader() -> SpanIds:
    """Reads the active span from opentelemetry-api's context when the package is there
    (the tracing, which sets spans, may be off: then no span is ever valid)."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - a dependency of the project; kept optional here
        return _no_span
    current_span = trace.get_current_span

    def span_ids() -> tuple[str, str] | None:
        context = current_span().get_span_context()
        if not context.is_valid:
            return None
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    return span_ids


class TextFormatter(logging.Formatter):
    """`12:00:00 INFO  user_svc.app: message request=<id>`; `trace=… span=…` when tracing; a
    traceback, if any, on the lines after."""

    def __init__(self, span_ids: SpanIds = _no_span) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")
        self._span_ids = span_ids
        self._second: tuple[int, str] = (-1, "")
        """The last second formatted and its text, as `JsonFormatter` keeps it."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%H:%M:%S", time.localtime(second)))
            self._second = cached
        return cached[1]

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = record.__dict__.get("request_id") or current_request_id()
        if request_id:
            line = f"{line} request={request_id}"
        ids = self._span_ids()
        if ids is not None:
            line = f"{line} trace={ids[0]} span={ids[1]}"
        return line


# Attributes every LogRecord has: any other is an `extra` of the call that logged it.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12+
    "color_message",  # uvicorn's copy of its message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (RFC 3339, UTC, milliseconds), `level`, `logger`,
    `message`, `request_id` when known, `trace_id` and `span_id` when a span is active,
    every `extra` of the call, and `exception` (the formatted traceback) if any. An `extra`
    named as one of the formatter's own fields does not replace it (but an `extra`
    request_id is the line's request id)."""

    def __init__(self, span_ids: SpanIds = _no_span) -> None:
        super().__init__()
        import orjson

        self._dumps = orjson.dumps
        self._options = orjson.OPT_NON_STR_KEYS
        self._encode_error = orjson.JSONEncodeError
        self._span_ids = span_ids
        self._second: tuple[int, str] = (-1, "")
        """The last second formatted, and its text: most lines share their second with the
        line before. (One tuple, replaced whole: safe from any thread.)"""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[Any, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        request_id = fields.get("request_id") or current_request_id()
        if request_id:
            payload["request_id"] = request_id
        ids = self._span_ids()
        if ids is not None:
            payload["trace_id"], payload["span_id"] = ids
        for key, value in fields.items():
            if key not in _STANDARD and key not in payload:
                payload[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        try:
            return self._dumps(payload, default=str, option=self._options).decode()
        except (self._encode_error, TypeError):
            # What orjson refuses (an integer past 64 bits, a lone surrogate in a string):
            # the standard library writes it, slower, with anything else as its str().
            return json.dumps(payload, default=str, skipkeys=True, separators=(",", ":"))


def configure_logging(level: str, fmt: LogFormat = LogFormat.TEXT) -> None:
    """The root logger at `level`, writing `fmt` lines to stderr.

    JSON lines are UTF-8 (as JSON is) whatever the locale says; warnings and uncaught
    exceptions (a thread's too) are logged too, so that no line of the process is anything
    but JSON."""
    # What no line of ours shows, and each record would otherwise gather (the logging
    # HOWTO's "Optimization"): the caller's frame, thread, process. A third off every line,
    # the gateway's access line included (~45 -> ~30 µs).
    logging._srcfile = None  # documented, if underscored
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    span_ids = span_ids_reader()
    formatter: logging.Formatter = TextFormatter(span_ids)
    if fmt is LogFormat.JSON:
        stderr = sys.stderr
        if isinstance(stderr, io.TextIOWrapper) and codecs.lookup(stderr.encoding).name != "utf-8":
            stderr.reconfigure(encoding="utf-8")
        formatter = JsonFormatter(span_ids)
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler])


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:  # pragma: no cover - the thread raised an exception
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("uncaught").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
