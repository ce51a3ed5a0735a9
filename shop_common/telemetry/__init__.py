"""Telemetry: each process's own metrics registry and the admin HTTP port that serves it
(`/metrics`, the Prometheus text format), and the gRPC metrics under the names
go-grpc-prometheus gives them (server side: recorded by the serving boundary; client side:
channel interceptors); traces (OpenTelemetry), when the `OTEL_*` variables ask for them.
Loads prometheus-client and OpenTelemetry, nothing of the layers above."""

from shop_common.telemetry.admin import AdminServer, start_admin
from shop_common.telemetry.grpc_client import GrpcClientMetrics, client_interceptors
from shop_common.telemetry.grpc_server import GrpcServerMetrics, MethodMetrics, go_code
from shop_common.telemetry.tracing import (
    Tracing,
    TracingSettings,
    start_tracing,
    with_exemplars,
)

__all__ = [
    "AdminServer",
    "GrpcClientMetrics",
    "GrpcServerMetrics",
    "MethodMetrics",
    "Tracing",
    "TracingSettings",
    "client_interceptors",
    "go_code",
    "start_admin",
    "start_tracing",
    "with_exemplars",
]
