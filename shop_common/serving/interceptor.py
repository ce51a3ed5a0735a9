"""The boundary every call crosses: who is calling, and errors → statuses; the request id
its lines of log carry (the call's `x-request-id`); and, when metrics are on, the gRPC
server metrics of the call (`telemetry.GrpcServerMetrics`).

One server interceptor wraps each method handler once (cached per method) so that
handlers run with the caller in `identity.current_caller()` and may raise domain
errors; the table in `serving.status` turns those into statuses with details. The
measurement wraps that, so that it sees the status the client sees; its label children
are resolved with the wrapper, once per method.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import Any, cast

import grpc
from google.protobuf.message import DecodeError

from shop_common.domain import DomainError, InvalidArgument, Unauthenticated, Unavailable
from shop_common.process import reset_request_id, set_request_id
from shop_common.serving import identity
from shop_common.serving.authentication import Authenticator, Metadata
from shop_common.serving.identity import Caller
from shop_common.serving.status import internal_status, status_for
from shop_common.telemetry import GrpcServerMetrics, MethodMetrics, with_exemplars

log = logging.getLogger(__name__)

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]
"""A unary handler is a coroutine; a server-streaming one a coroutine that writes its
responses with `context.write` (as grpc_health's aio `Watch` does), or an async generator."""


async def _abort_for(error: Exception, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(error, DomainError):
        await _abort(context, status_for(error))
    log.exception("unhandled error in %s", type(error).__name__, exc_info=error)
    await _abort(context, internal_status())


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    """`abort_with_status`, spelled as `abort`: a wrapper of the context (the tracing
    interceptor's, which sets its span's status) sees the status only that way."""
    await context.abort(status.code, status.details, status.trailing_metadata)


class _Malformed:
    """A request that did not parse, handed on so that it is refused as any bad input is
    (grpc.aio would answer UNKNOWN, naming a Python exception, with no details)."""

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _parsing(
    deserialize: Callable[[bytes], Any] | None, metrics: MethodMetrics | None
) -> Callable[[bytes], Any] | None:
    """The request parser, which counts what it receives (`grpc_server_msg_received_total`)."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:  # truncated, corrupt, or a string that is not UTF-8
            return _Malformed(error)

    if metrics is None:
        return parse
    received = metrics.received.inc

    def counted(data: bytes) -> Any:
        received()
        return parse(data)

    return counted


async def _admit(
    request: Any,
    context: grpc.aio.ServicerContext[Any, Any],
    metadata: Metadata,
    authenticator: Authenticator,
    rpc: str,
) -> Token[Caller]:
    """Lets the call start with its caller established by the mode's `authenticator`
    (`identity.current_caller()`), or refuses it. (grpc.aio itself never starts a handler
    whose deadline has passed.) A refused credential is logged once, as the policy's
    denials are: the RPC, the reason and the client's address (no caller is known; never
    the credential)."""
    try:
        try:
            caller = await authenticator.authenticate(metadata, context)
        except Unauthenticated as refused:
            log.warning(
                "denied %s to unverified credentials from %s: %s (%s)",
                rpc,
                context.peer(),
                refused.reason,
                refused.message,
            )
            raise
        if type(request) is _Malformed:
            raise InvalidArgument(
                f"the request could not be parsed: {request.error}", reason="MALFORMED_REQUEST"
            )
        return identity.set_caller(caller)
    except DomainError as error:
        await _abort_for(error, context)
    raise AssertionError("abort returned")  # pragma: no cover


def _guarded(
    behavior: Handler, *, streaming: bool, authenticator: Authenticator, rpc: str
) -> Handler:
    """`behavior` run with its caller established, its errors turned into statuses."""

    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = context.invocation_metadata() or ()
        # The lines logged for this call carry its `x-request-id` (looked up only if one is).
        request_id = set_request_id(metadata)
        try:
            token = await _admit(request, context, metadata, authenticator, rpc)
            try:
                result = behavior(request, context)
                if streaming and inspect.isasyncgen(result):
                    async for response in result:
                        await context.write(response)
                    return None
                return await result
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await _abort_for(error, context)
            finally:
                identity.reset_caller(token)
        finally:
            reset_request_id(request_id)

    return handle


def _measured(handle: Handler, metrics: MethodMetrics, exemplars: bool) -> Handler:
    """`handle` counted and timed with the status the client sees: OK when it returns, the
    one it aborted with (the boundary's statuses included), CANCELLED or DEADLINE_EXCEEDED
    when grpc cancels it. With `exemplars` (tracing on), each time observed within a sampled
    trace carries its trace id."""
    started_total, handled = metrics.started, metrics.handled
    observe = with_exemplars(metrics.seconds) if exemplars else metrics.seconds.observe
    ok = handled[grpc.StatusCode.OK]
    clock = time.perf_counter

    async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started_total.inc()
        started = clock()
        try:
            result = await handle(request, context)
        except grpc.aio.AbortError:
            handled[context.code() or grpc.StatusCode.UNKNOWN].inc()
            observe(clock() - started)
            raise
        except asyncio.CancelledError:
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= 0
            handled[
                grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            ].inc()
            observe(clock() - started)
            raise
        ok.inc()
        observe(clock() - started)
        return result

    return measured


def _passing_bytes(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    """A response serializer that lets responses already serialized through (a watch
    builds its responses from serialized events: see `feed.watch`)."""

    def serializer(response: Any) -> bytes:
        if isinstance(response, bytes) or serialize is None:
            return cast(bytes, response)
        return serialize(response)

    return serializer


def _counting(
    serialize: Callable[[Any], bytes], metrics: MethodMetrics | None
) -> Callable[[Any], bytes]:
    """`serialize`, counting each response it is given (`grpc_server_msg_sent_total`):
    grpc serializes each message it sends, whether returned, yielded or written."""
    if metrics is None:
        return serialize
    sent = metrics.sent.inc

    def serializer(response: Any) -> bytes:
        sent()
        return serialize(response)

    return serializer


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    authenticator: Authenticator,
    rpc: str,
    metrics: MethodMetrics | None,
    exemplars: bool = False,
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.request_streaming:
        # No client-streaming RPC in the contracts: none may pass unauthenticated.
        raise TypeError("client-streaming methods are not guarded by the boundary")
    streaming = handler.response_streaming
    behavior = cast(Handler, handler.unary_stream if streaming else handler.unary_unary)
    guarded = _guarded(behavior, streaming=streaming, authenticator=authenticator, rpc=rpc)
    if metrics is not None:
        guarded = _measured(guarded, metrics, exemplars)
    parse = _parsing(handler.request_deserializer, metrics)
    if streaming:
        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=parse,
            response_serializer=_counting(_passing_bytes(handler.response_serializer), metrics),
        )
    serialize = handler.response_serializer
    return grpc.unary_unary_rpc_method_handler(
        guarded,
        request_deserializer=parse,
        response_serializer=serialize if serialize is None else _counting(serialize, metrics),
    )


async def _refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await _abort_for(
        Unavailable("the server is shutting down; retry", reason="SHUTTING_DOWN"), context
    )


_REFUSED_UNARY = grpc.unary_unary_rpc_method_handler(_refuse)
_REFUSED_STREAM = grpc.unary_stream_rpc_method_handler(_refuse)


class BoundaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applied to the application's services; health and reflection pass through.

    Once `refuse()` is called, every new call to the application's services is answered
    UNAVAILABLE (SHUTTING_DOWN), which clients retry: grpc cancels the calls it has
    received but not handed on when the server stops (CANCELLED, which clients do not
    retry), so a stopping server first refuses for a moment, and those calls are handed
    on and refused instead.
    """

    def __init__(
        self,
        service_names: frozenset[str],
        authenticator: Authenticator,
        metrics: GrpcServerMetrics | None = None,
        *,
        exemplars: bool = False,
    ) -> None:
        self._services = service_names
        self._authenticator = authenticator
        self._metrics = metrics
        self._exemplars = exemplars
        """Trace ids on `grpc_server_handling_seconds` (tracing is on)."""
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any] | None] = {}
        self._refusing = False

    def refuse(self) -> None:
        self._refusing = True

    @property
    def refusing(self) -> bool:
        return self._refusing

    async def intercept_service(  # type: ignore[override]  # grpc-stubs omits the None
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if self._refusing and method.split("/")[1] in self._services:
            handler = await continuation(handler_call_details)
            if handler is not None:
                return _REFUSED_STREAM if handler.response_streaming else _REFUSED_UNARY
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(handler_call_details)
        if handler is None or method.split("/")[1] not in self._services:
            return handler
        metrics = None
        if self._metrics is not None:
            metrics = self._metrics.method(method, handler.response_streaming)
        wrapped = self._wrapped[method] = _wrap(
            handler, self._authenticator, method.lstrip("/"), metrics, self._exemplars
        )
        return wrapped
