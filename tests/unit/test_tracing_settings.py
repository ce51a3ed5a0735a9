"""When tracing is on: as the standard `OTEL_*` variables say, read once at start."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from shop_common.process import ConfigError
from shop_common.telemetry import TracingSettings

ENDPOINT = "http://collector:4317"


def settings(**env: str) -> TracingSettings:
    return TracingSettings.from_env(env, "order_svc")


def test_off_without_otel_variables() -> None:
    assert not settings().enabled
    assert not settings(OTEL_SERVICE_NAME="x", OTEL_TRACES_SAMPLER="always_on").enabled


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT},
        {"OTEL_TRACES_EXPORTER": "otlp"},
    ],
)
def test_an_otlp_endpoint_or_exporter_turns_it_on(env: dict[str, str]) -> None:
    on = settings(**env)
    assert on.enabled
    assert on.exporters == ("otlp",)
    assert on.service_name == "order_svc"  # the process's name unless OTEL_SERVICE_NAME


def test_the_service_name_is_otel_service_name_when_set() -> None:
    assert settings(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="orders").service_name == (
        "orders"
    )


def test_exporters_are_named_by_otel_traces_exporter() -> None:
    assert settings(OTEL_TRACES_EXPORTER="console").exporters == ("console",)
    assert settings(OTEL_TRACES_EXPORTER="otlp, console").exporters == ("otlp", "console")
    assert not settings(OTEL_TRACES_EXPORTER="none", OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT).enabled


def test_otel_sdk_disabled_wins() -> None:
    assert not settings(OTEL_SDK_DISABLED="true", OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT).enabled
    assert not settings(OTEL_SDK_DISABLED="TRUE", OTEL_TRACES_EXPORTER="console").enabled
    # The specification: anything but "true" is false.
    assert settings(OTEL_SDK_DISABLED="1", OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT).enabled


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
    ],
)
def test_what_cannot_be_served_is_refused_at_start(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings(**env)


def test_the_traces_protocol_overrides_the_general_one() -> None:
    on = settings(
        OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    assert on.enabled


def test_off_the_sdk_and_the_instrumentation_are_not_even_loaded() -> None:
    # A fresh interpreter: what importing the three programs loads (a tenth of a second
    # of start-up is the SDK's and the instrumentation's, paid only when tracing is on).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gateway.server, order_svc.app, user_svc.app\n"
            "print(' '.join(m for m in sys.modules if m.startswith('opentelemetry')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    ).stdout.split()
    assert "opentelemetry.trace" in loaded  # the API: the context a span would be in
    assert not [m for m in loaded if m.startswith(("opentelemetry.sdk", "opentelemetry.instr"))]
