"""gRPC client metrics (`grpc_client_*`, go-grpc-prometheus's names and labels), recorded
by channel interceptors, one per kind of call (grpc.aio files an interceptor under one kind
only). A call is counted when it starts and, with its status code and duration, when it
ends; a unary call's request and response are its messages (a stream's responses are not
counted: that would mean wrapping the caller's reads).

grpc.aio's interceptor path costs ~30 µs a call: a caller on a hot path (the gateway)
records the same metrics around its calls itself (`MethodMetrics`, `ended_code`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc._common import CYGRPC_STATUS_CODE_TO_STATUS_CODE
from prometheus_client import CollectorRegistry

from shop_common.telemetry.grpc_server import GrpcMetrics, MethodMetrics

if TYPE_CHECKING:  # grpc-stubs make them generic; at run time they are not
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor


class GrpcClientMetrics(GrpcMetrics):
    """The `grpc_client_*` metrics in `registry`; `services` called are registered at zero."""

    def __init__(self, registry: CollectorRegistry, services: Iterable[ServiceDescriptor]) -> None:
        super().__init__("client", registry)
        self.register(services)


def _method_name(details: grpc.aio.ClientCallDetails) -> str:
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


def ended_code(call: Any) -> grpc.StatusCode:
    """The status code of a call that is over, read without a coroutine (grpc.aio offers
    `code()` only as one). Cancelled locally: no status was received. A later interceptor
    that answered with a response instead of a call: that is success."""
    cython = getattr(call, "_cython_call", None)
    if cython is None:
        return grpc.StatusCode.OK
    status = cython._status
    if status is None:
        return grpc.StatusCode.CANCELLED
    code: grpc.StatusCode = CYGRPC_STATUS_CODE_TO_STATUS_CODE[status.code()]
    return code


def _finished(metrics: MethodMetrics, started: float, unary: bool) -> Callable[[Any], None]:
    def done(call: Any) -> None:
        code = ended_code(call)
        metrics.handled[code].inc()
        metrics.seconds.observe(time.perf_counter() - started)
        if unary and code is grpc.StatusCode.OK:
            metrics.received.inc()

    return done


def client_interceptors(metrics: GrpcClientMetrics) -> list[Any]:
    """The interceptors for a channel (one per kind of call)."""
    return [_UnaryUnaryMetrics(metrics), _UnaryStreamMetrics(metrics)]


class _UnaryUnaryMetrics(_UnaryUnary):
    def __init__(self, metrics: GrpcClientMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metrics = self._metrics.method(_method_name(client_call_details), False)
        metrics.started.inc()
        metrics.sent.inc()
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        call.add_done_callback(_finished(metrics, started, unary=True))
        return call


class _UnaryStreamMetrics(_UnaryStream):
    def __init__(self, metrics: GrpcClientMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metrics = self._metrics.method(_method_name(client_call_details), True)
        metrics.started.inc()
        metrics.sent.inc()
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        call.add_done_callback(_finished(metrics, started, unary=False))
        return call
