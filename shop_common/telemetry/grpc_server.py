"""gRPC server metrics under go-grpc-prometheus's names and labels: `grpc_server_started_total`,
`grpc_server_handled_total` (with `grpc_code`), `grpc_server_handling_seconds` (a histogram),
`grpc_server_msg_received_total`, `grpc_server_msg_sent_total`, each labelled `grpc_type`
(`unary`, `server_stream`), `grpc_service` and `grpc_method`.

Every method of the services is registered at start (go-grpc-prometheus's
`InitializeMetrics`): its counters, histogram and `handled_total` for every status code exist
at zero before the first call, and the label children are looked up once, here, never per
call. Labels are the method's names and a status code: bounded, no ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

LABELS = ("grpc_type", "grpc_service", "grpc_method")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""go-grpc-prometheus's (prometheus.DefBuckets): dashboards written for Go services read
the same `le` values."""

_GO_NAMES = {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}


def go_code(code: grpc.StatusCode) -> str:
    """The code as Go's `codes.Code.String()` spells it (`NotFound`), which is what
    go-grpc-prometheus puts in `grpc_code` and what dashboards select on."""
    return _GO_NAMES.get(code) or "".join(p.capitalize() for p in code.name.split("_"))


def grpc_type(server_streaming: bool) -> str:
    return "server_stream" if server_streaming else "unary"


@dataclass(frozen=True, slots=True)
class MethodMetrics:
    """One method's label children, resolved once."""

    started: Counter
    handled: Mapping[grpc.StatusCode, Counter]
    seconds: Histogram
    received: Counter
    sent: Counter


class GrpcMetrics:
    """The five metrics of one side (`server` or `client`) in one registry."""

    def __init__(self, side: str, registry: CollectorRegistry) -> None:
        what = "completed" if side == "server" else "completed by the client"
        self.started = Counter(
            f"grpc_{side}_started",
            f"Total number of RPCs started on the {side}.",
            LABELS,
            registry=registry,
        )
        self.handled = Counter(
            f"grpc_{side}_handled",
            f"Total number of RPCs {what}, regardless of success or failure.",
            (*LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            f"grpc_{side}_handling_seconds",
            f"Histogram of response latency (seconds) of gRPC that had been handled by the {side}.",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        received = "received on the server" if side == "server" else "received by the client"
        self.received = Counter(
            f"grpc_{side}_msg_received",
            f"Total number of RPC stream messages {received}.",
            LABELS,
            registry=registry,
        )
        sent = "sent by the server" if side == "server" else "sent by the client"
        self.sent = Counter(
            f"grpc_{side}_msg_sent",
            f"Total number of gRPC stream messages {sent}.",
            LABELS,
            registry=registry,
        )
        self._methods: dict[str, MethodMetrics] = {}

    def method(self, full_method: str, server_streaming: bool) -> MethodMetrics:
        """The children of `/package.Service/Method` (created, at zero, on the first ask)."""
        found = self._methods.get(full_method)
        if found is not None:
            return found
        service, _, name = full_method.lstrip("/").rpartition("/")
        labels = (grpc_type(server_streaming), service, name)
        children: dict[grpc.StatusCode, MetricWrapperBase] = {
            code: self.handled.labels(*labels, go_code(code)) for code in grpc.StatusCode
        }
        found = self._methods[full_method] = MethodMetrics(
            started=self.started.labels(*labels),
            handled=MappingProxyType(children),  # type: ignore[arg-type]
            seconds=self.seconds.labels(*labels),
            received=self.received.labels(*labels),
            sent=self.sent.labels(*labels),
        )
        return found

    def register(self, services: Iterable[ServiceDescriptor]) -> None:
        """Every method of `services` at zero (go-grpc-prometheus's `InitializeMetrics`)."""
        for service in services:
            for method in service.methods:
                self.method(f"/{service.full_name}/{method.name}", method.server_streaming)


class GrpcServerMetrics(GrpcMetrics):
    """The `grpc_server_*` metrics in `registry`; the boundary interceptor records them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__("server", registry)
