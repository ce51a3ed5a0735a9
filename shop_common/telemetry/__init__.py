"""Telemetry: each process's own metrics registry and the admin HTTP port that serves it
(`/metrics`, the Prometheus text format), and the gRPC metrics under the names
go-grpc-prometheus gives them (server side: recorded by the serving boundary; client side:
channel interceptors). Loads prometheus-client, nothing of the layers above."""

from shop_common.telemetry.admin import AdminServer, start_admin
from shop_common.telemetry.grpc_client import GrpcClientMetrics, client_interceptors, ended_code
from shop_common.telemetry.grpc_server import BUCKETS, GrpcServerMetrics, MethodMetrics, go_code

__all__ = [
    "BUCKETS",
    "AdminServer",
    "GrpcClientMetrics",
    "GrpcServerMetrics",
    "MethodMetrics",
    "client_interceptors",
    "ended_code",
    "go_code",
    "start_admin",
]
