"""The log formats: JSON (`SHOP_LOG_FORMAT=json`, one object per line) and text (readable,
as before), the request id and trace ids they add, and `SHOP_LOG_FORMAT` itself."""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace

from gateway.config import Settings as GatewaySettings
from shop_common.process import (
    ConfigError,
    LogFormat,
    current_request_id,
    log_format,
    log_level,
    request_id_in,
    reset_request_id,
    set_request_id,
    valid_request_id,
)
from shop_common.process.logs import JsonFormatter, TextFormatter, span_ids_reader
from shop_common.serving import Common

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def record(
    message: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    """A record as `logging.getLogger("shop.test").log(...)` makes it."""
    return logging.getLogger("shop.test").makeRecord(
        "shop.test", level, __file__, 1, message, args, exc_info, extra=extra
    )


def as_json(made: logging.LogRecord, formatter: JsonFormatter | None = None) -> dict[str, Any]:
    line = (formatter or JsonFormatter()).format(made)
    assert "\n" not in line  # one line per event, whatever it holds
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.fixture
def request_id() -> Iterator[None]:
    token = set_request_id("req-42")
    try:
        yield
    finally:
        reset_request_id(token)


@pytest.fixture
def in_span() -> Iterator[None]:
    context = trace.SpanContext(
        TRACE_ID, SPAN_ID, is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield


def test_json_has_time_level_logger_and_message() -> None:
    made = record()
    line = as_json(made)
    assert list(line) == ["time", "level", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["logger"] == "shop.test"
    assert line["message"] == "hello world"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    seconds = calendar.timegm(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert seconds == int(made.created)
    assert line["time"][20:23] == f"{int(made.msecs):03d}"


def test_json_time_is_utc_whatever_the_local_zone() -> None:
    made = record()
    made.created, made.msecs = 0.0, 5.0
    assert as_json(made)["time"] == "1970-01-01T00:00:00.005Z"


def test_json_carries_every_extra_as_a_field() -> None:
    access = {
        "http_method": "GET",
        "route": "/v1/users/{id}",
        "status": 200,
        "duration_ms": 1.25,
        "request_id": "abc",
    }
    line = as_json(record("%s %s %d %.1fms", ("GET", "/v1/users/{id}", 200, 1.25), extra=access))
    assert line["message"] == "GET /v1/users/{id} 200 1.2ms"
    for key, value in access.items():
        assert line[key] == value


def test_an_extra_does_not_replace_the_formatter_s_fields() -> None:
    line = as_json(record(extra={"level": "forged", "time": "then", "logger": "other"}))
    assert (line["level"], line["logger"]) == ("INFO", "shop.test")
    assert line["time"] != "then"


def test_what_json_cannot_hold_is_written_as_its_text() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    line = as_json(record(extra={"thing": Thing(), "huge": 2**80, "keys": {1: "one"}}))
    assert line["thing"] == "a thing"
    assert line["huge"] == 2**80
    assert line["keys"] == {"1": "one"}


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise ZeroDivisionError("on purpose")
    except ZeroDivisionError:
        line = as_json(record("failed", (), level=logging.ERROR, exc_info=sys.exc_info()))
    assert line["message"] == "failed"
    assert line["exception"].startswith("Traceback (most recent call last):\n")
    assert line["exception"].endswith("ZeroDivisionError: on purpose")


def test_non_ascii_is_kept_as_written() -> None:
    formatter = JsonFormatter()
    text = formatter.format(record("café %s", ("→ 日本 ✓",), extra={"customer": "Zoë"}))
    assert "café → 日本 ✓" in text  # UTF-8, not escaped
    line = json.loads(text)
    assert (line["message"], line["customer"]) == ("café → 日本 ✓", "Zoë")


def test_a_lone_surrogate_still_makes_a_json_line() -> None:
    line = as_json(record("bad %s", ("\udcff",)))
    assert line["message"] == "bad \udcff"


@pytest.mark.usefixtures("request_id")
def test_json_has_the_request_id_of_the_request_being_served() -> None:
    assert as_json(record())["request_id"] == "req-42"


@pytest.mark.usefixtures("request_id")
def test_the_request_id_an_extra_gives_is_the_line_s() -> None:
    assert as_json(record(extra={"request_id": "given"}))["request_id"] == "given"


def test_without_a_request_no_request_id() -> None:
    assert "request_id" not in as_json(record())


@pytest.mark.usefixtures("in_span")
def test_json_has_the_ids_of_the_active_span() -> None:
    line = as_json(record(), JsonFormatter(span_ids_reader()))
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"


def test_without_a_valid_span_no_trace_ids() -> None:
    with trace.use_span(trace.INVALID_SPAN):
        line = as_json(record(), JsonFormatter(span_ids_reader()))
    assert "trace_id" not in line
    assert "span_id" not in line


def test_text_lines_keep_their_shape() -> None:
    line = TextFormatter().format(record(extra={"status": 200}))
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO  shop\.test: hello world", line)


@pytest.mark.usefixtures("request_id")
def test_text_lines_end_with_the_request_id() -> None:
    line = TextFormatter().format(record(level=logging.WARNING))
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING shop\.test: hello world request=req-42", line)


@pytest.mark.usefixtures("request_id", "in_span")
def test_text_traceback_follows_the_line_with_its_ids() -> None:
    try:
        raise ValueError("on purpose")
    except ValueError:
        made = record("failed", (), level=logging.ERROR, exc_info=sys.exc_info())
    first, *rest = TextFormatter(span_ids_reader()).format(made).splitlines()
    assert first.endswith(
        "ERROR shop.test: failed request=req-42 "
        "trace=0af7651916cd43dd8448eb211c80319c span=b7ad6b7169203331"
    )
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: on purpose"


def test_the_request_id_of_a_call_is_read_from_its_metadata_when_asked() -> None:
    token = set_request_id([("authorization", "Bearer x"), ("x-request-id", "from-call")])
    try:
        assert current_request_id() == "from-call"
    finally:
        reset_request_id(token)
    assert current_request_id() is None


@pytest.mark.parametrize(
    "value",
    ["", "has space", "x" * 129, "tab\there", "line\nbreak", "é", b"bytes"],
    ids=["empty", "space", "too-long", "tab", "line-break", "not-ascii", "bytes"],
)
def test_an_unusable_request_id_is_ignored(value: str | bytes) -> None:
    assert valid_request_id(value) is None
    assert request_id_in([("x-request-id", value)]) is None


def test_a_usable_request_id_is_taken() -> None:
    assert request_id_in([("x-request-id", "A-1_b.c:d/" + "z" * 118)]) is not None


def test_log_format_is_text_unless_json() -> None:
    assert log_format({}) is LogFormat.TEXT
    assert log_format({"SHOP_LOG_FORMAT": " JSON "}) is LogFormat.JSON
    assert log_format({"SHOP_LOG_FORMAT": "text"}) is LogFormat.TEXT
    with pytest.raises(ConfigError, match="SHOP_LOG_FORMAT='xml' is not text or json"):
        log_format({"SHOP_LOG_FORMAT": "xml"})


def test_log_level_must_be_a_level() -> None:
    assert log_level({}) == "INFO"
    assert log_level({"SHOP_LOG_LEVEL": "debug"}) == "DEBUG"
    with pytest.raises(ConfigError, match="SHOP_LOG_LEVEL='LOUD'"):
        log_level({"SHOP_LOG_LEVEL": "loud"})


def test_each_process_reads_the_format_with_its_settings() -> None:
    env = {"SHOP_LOG_FORMAT": "json"}
    assert Common.from_env(env).log_format is LogFormat.JSON
    assert GatewaySettings.from_env(env).log_format is LogFormat.JSON
    assert Common.from_env({}).log_format is LogFormat.TEXT


@pytest.mark.parametrize("program", ["user_svc", "order_svc", "gateway"])
def test_a_bad_format_stops_a_process_at_start_with_a_clear_error(program: str) -> None:
    env = {**os.environ, "SHOP_LOG_FORMAT": "yaml"}
    done = subprocess.run(
        [sys.executable, "-m", program], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"{program}: SHOP_LOG_FORMAT='yaml' is not text or json"


def test_a_json_process_writes_nothing_but_json_lines_in_utf8() -> None:
    """Under an ASCII locale too; warnings and an uncaught exception included."""
    code = (
        "import logging, threading, warnings\n"
        "from shop_common.process import LogFormat, configure_logging\n"
        "configure_logging('INFO', LogFormat.JSON)\n"
        "logging.getLogger('x').info('caf\\u00e9')\n"  # ASCII source: argv is ASCII here
        "warnings.warn('careful')\n"
        "thread = threading.Thread(target=lambda: 1 / 0, name='worker')\n"
        "thread.start(); thread.join()\n"
        "raise RuntimeError('boom')\n"
    )
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C", "PYTHONUTF8": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, check=False
    )
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.decode("utf-8").splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("x", "INFO"),
        ("py.warnings", "WARNING"),
        ("uncaught", "CRITICAL"),
        ("uncaught", "CRITICAL"),
    ]
    assert lines[0]["message"] == "café"
    assert "careful" in lines[1]["message"]
    assert lines[2]["message"] == "uncaught exception in thread worker"
    assert lines[2]["exception"].endswith("ZeroDivisionError: division by zero")
    assert lines[3]["exception"].endswith("RuntimeError: boom")
