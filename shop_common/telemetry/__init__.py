"""Telemetry: each process's own metrics registry and the admin HTTP port that serves it
(`/metrics`, the Prometheus text format), and the gRPC metrics under the names
go-grpc-prometheus gives them (server side: recorded by the serving boundary; client side:
interceptors, or the gateway around its own calls); the change feed's, the views',
storage's and health's (`shop_*`), recorded through small objects the wiring hands those
layers; traces (OpenTelemetry), when the `OTEL_*` variables ask for them. Loads
prometheus-client and OpenTelemetry, nothing of the layers above."""

from shop_common.telemetry.admin import AdminServer, start_admin
from shop_common.telemetry.feed import FeedMetrics
from shop_common.telemetry.grpc_client import GrpcClientMetrics, client_interceptors, ended_code
from shop_common.telemetry.grpc_server import BUCKETS, GrpcServerMetrics, MethodMetrics, go_code
from shop_common.telemetry.health import HealthMetrics
from shop_common.telemetry.storage import StorageMetrics
from shop_common.telemetry.tracing import (
    Tracing,
    TracingSettings,
    start_tracing,
    with_exemplars,
)
from shop_common.telemetry.view import ViewMetrics

__all__ = [
    "BUCKETS",
    "AdminServer",
    "FeedMetrics",
    "GrpcClientMetrics",
    "GrpcServerMetrics",
    "HealthMetrics",
    "MethodMetrics",
    "StorageMetrics",
    "Tracing",
    "TracingSettings",
    "ViewMetrics",
    "client_interceptors",
    "ended_code",
    "go_code",
    "start_admin",
    "start_tracing",
    "with_exemplars",
]
