"""The ASGI application: matches a request to its route, counts it against its caller's
limits (`ratelimit`, `stream_slots`), has its message built, calls the backend over one
`grpc.aio` channel per backend, and has the reply written (`reply`, or `streams` for a
stream). A request to a procedure's path (`/package.Service/Method`) speaks an RPC protocol
instead (`rpc`: Connect, gRPC-Web), served the same way but for its wire format.

Every error ends here, in `_http`, as one HTTP response; every request is recorded there
too, by its route's template: in the metrics (`metrics`, when on) and in the access log
(`gateway.access`).

No framework: each request is a route match, a few precomputed setters and one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from prometheus_client import CollectorRegistry

from gateway import builtin_routes, rpc, streams
from gateway.authentication import EdgeAuthentication
from gateway.body import ClientGone
from gateway.callers import caller_key, claimed_subject
from gateway.config import Settings
from gateway.cors import Cors
from gateway.errors import (
    GatewayError,
    RequestError,
    from_rpc_error,
    internal_error,
    method_not_allowed,
    pairs,
)
from gateway.headers import RequestHeaders, invalid_header
from gateway.metadata import (
    Metadata,
    custom_headers,
    metadata_headers,
    request_id_of,
    request_metadata,
)
from gateway.metrics import CLIENT_GONE, UNMATCHED, GatewayMetrics, RouteMetrics
from gateway.ratelimit import RateLimiter
from gateway.reply import finished, respond, unary_reply
from gateway.request import build_request
from gateway.routes import NoRoute, Route, Router, routes_of
from gateway.semantics import semantics_table
from gateway.stream_slots import StreamSlots
from gateway.tracing import HttpTracing
from gateway.transport import left_mid_call
from gateway.types import Headers, Receive, Scope, Send
from gateway.types import Message as AsgiMessage
from shop_common.process import reset_request_id, set_request_id
from shop_common.security import open_channel
from shop_common.telemetry import GrpcClientMetrics, MethodMetrics, Tracing, ended_code

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")
"""One INFO line per request: `GET /v1/users/{id} 200 1.2ms`, the route's template (never the
raw path), with `http_method`, `route`, `status`, `duration_ms` and `request_id` as the
record's attributes (fields of a JSON log line)."""

Unary = grpc.aio.UnaryUnaryMultiCallable[Message, Message]
Streaming = grpc.aio.UnaryStreamMultiCallable[Message, Message]


class Gateway:
    """The REST → gRPC gateway as an ASGI 3 application.

    `startup()` and `shutdown()` run on the ASGI lifespan; call them yourself when serving
    the app some other way (e.g. `httpx.ASGITransport`).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        pool = descriptor_pool.Default()
        services = [pool.FindServiceByName(name) for name in settings.backends]
        self.services = services
        """The services routed to (their descriptors)."""
        routes = routes_of(services, strict=settings.strict, proto_names=settings.proto_names)
        self.router = Router(routes)
        self._semantics = semantics_table(self.router.routes)
        self.procedures = rpc.procedures_of(services, self._semantics, strict=settings.strict)
        """What the RPC protocols serve, by path (`/package.Service/Method`)."""
        self._cors = Cors(settings.cors_origins)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.metrics: GatewayMetrics | None = None
        """Where requests and the calls to the services are recorded (`measure`)."""
        self.tracing: Tracing | None = None
        """Tracing (requests and the calls to the services), if set before `startup()`."""
        self._http_tracing: HttpTracing | None = None
        # By gRPC path: messages in and out, and (`_raw_*`) their bytes as they came.
        self._unary: dict[str, Unary] = {}
        self._streaming: dict[str, Streaming] = {}
        self._raw_unary: dict[str, Unary] = {}
        self._raw_streaming: dict[str, Streaming] = {}
        self._streams: set[grpc.aio.Call] = set()
        self._stopping = False
        self._builtins = builtin_routes.BuiltinRoutes(
            self.router.routes,
            proto_names=settings.proto_names,
            docs=settings.docs,
            console=settings.console,
            verified=settings.security.jwt is not None,
        )
        self._builtin_paths = self._builtins.paths
        jwt = settings.security.jwt
        self._auth = None if jwt is None else EdgeAuthentication(jwt)
        self._limiter = (
            RateLimiter(
                settings.rate_limit_per_second,
                settings.rate_limit_burst,
                max_callers=settings.rate_limit_max_callers,
            )
            if settings.rate_limit_per_second > 0
            else None
        )
        self._stream_slots = StreamSlots(settings.max_streams_per_caller)
        self._access_log = settings.access_log

    def measure(self, registry: CollectorRegistry) -> GatewayMetrics:
        """Records the gateway's metrics in `registry` from now on: its requests
        (`gateway.metrics`) and its calls to the services (`grpc_client_*`). The calls are
        recorded here, around each call, not by channel interceptors: grpc.aio's
        interceptor path costs ~30 µs a call."""
        client = GrpcClientMetrics(registry, self.services)
        routes = [(route, self._semantics[route].status) for route in self.router.routes]
        self.metrics = GatewayMetrics(
            registry, client, routes, sorted(self._builtin_paths), self.procedures.values()
        )
        return self.metrics

    async def startup(self) -> None:
        await self._builtins.load_assets()
        if self._auth is not None:
            await self._auth.start()
        options = list(self.settings.channel_options)
        tls = self.settings.security.tls  # the gateway's certificate: it opens, it grants nothing
        interceptors = []
        if self.tracing is not None:
            interceptors = self.tracing.client_interceptors()
            self._http_tracing = HttpTracing(self.tracing, self.router.routes)
        for address in sorted(set(self.settings.backends.values())):
            self._channels[address] = await open_channel(
                address,
                options,
                tls,
                server_name=self.settings.server_names.get(address),
                interceptors=interceptors,
            )
        by_service = {name: self._channels[a] for name, a in self.settings.backends.items()}
        for procedure in self.procedures.values():
            method = procedure.method
            channel = by_service[method.containing_service.full_name]
            typed = (GetMessageClass(method.input_type), GetMessageClass(method.output_type))
            path, stream = procedure.path, procedure.server_streaming
            messages, raw = (
                (self._streaming, self._raw_streaming) if stream else (self._unary, self._raw_unary)
            )
            messages[path] = _multicallable(channel, path, typed, stream=stream)
            raw[path] = _multicallable(channel, path, None, stream=stream)
        for route in self.router.routes:
            log.debug("route %s", route)
        self._builtins.check_health_on(by_service)

    def begin_stop(self) -> None:
        """Ends the open streams (each with a last UNAVAILABLE error) and refuses new ones."""
        self._stopping = True
        for call in list(self._streams):
            call.cancel()

    def stopping(self) -> bool:
        return self._stopping

    async def shutdown(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
        if self._auth is not None:
            await self._auth.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            traced = self._http_tracing
            if traced is None or scope["path"] in self._builtin_paths:
                await self._http(scope, receive, send)
            else:
                await traced.serve(scope, receive, send, self._http)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        headers = RequestHeaders(scope["headers"])
        asked_id = headers.get(b"x-request-id") or b""
        request_id = request_id_of(asked_id)
        # Every line logged for this request carries its id (each request is a task of its
        # own: the id goes with it; reset at the end for callers that reuse their task).
        request_token = set_request_id(request_id)
        extra: Headers = [(b"x-request-id", request_id.encode())]
        if self._cors.enabled:  # else it has nothing to add
            extra += self._cors.response_headers(headers.get(b"origin") or b"")
        started = 0  # the status sent, once sent
        method: str = scope["method"]
        template = UNMATCHED  # the route's, once matched
        metrics = self.metrics
        measured: RouteMetrics | None = None
        exchange: rpc.Exchange | None = None  # the RPC protocol's, once known

        async def reply(message: AsgiMessage) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], *extra]
                started = message["status"]
            await send(message)

        try:  # the client may leave at any await, an error reply's included
            try:
                if asked_id and asked_id.decode("latin-1") != request_id:
                    raise invalid_header("x-request-id", "1 to 128 printable ASCII characters")
                path: str = scope["path"]
                procedure = self.procedures.get(path)
                if path in self._builtin_paths:  # health and docs: not rate limited
                    template = path
                    await self._builtins.answer(method, path, reply)
                elif procedure is not None and method != "OPTIONS":
                    template = path
                    if self._http_tracing is not None:
                        self._http_tracing.matched_procedure(method, path)
                    calls = None
                    if metrics is not None:
                        measured = metrics.procedure(method, procedure)
                        calls = measured.calls
                    try:
                        exchange = rpc.exchange_for(method, procedure, headers)
                    except RequestError:  # 405, 415: counted, as a route's are
                        await self._count(scope, headers, extra)
                        raise
                    await self._call(
                        procedure,
                        exchange,
                        calls,
                        scope,
                        headers,
                        receive,
                        reply,
                        request_id,
                        extra,
                    )
                elif method == "OPTIONS":  # preflights: not rate limited
                    template = await self._options(scope, headers, reply)
                else:
                    route, captures = await self._match(method, scope, headers, extra)
                    template = route.pattern.template
                    if self._http_tracing is not None:
                        self._http_tracing.matched(route)
                    calls = None
                    if metrics is not None:
                        measured = metrics.route(method, route)
                        calls = measured.calls
                    await self._dispatch(
                        route, captures, calls, scope, headers, receive, reply, request_id, extra
                    )
            except GatewayError as error:
                if error.http_status >= 500:
                    log.warning(
                        "%s %s: %d %s",
                        method,
                        scope["path"],
                        error.http_status,
                        error.status.message,
                    )
                if metrics is not None and isinstance(error, RequestError):
                    metrics.refused(error.http_status, error.reason)
                if not started:
                    await _fail(exchange, scope, headers, reply, error)
            except ClientGone:
                pass
            except Exception:
                log.exception("%s %s failed", method, scope["path"])
                if not started:  # else the status line is out: the connection just ends
                    await _fail(exchange, scope, headers, reply, internal_error())
        except asyncio.CancelledError:
            if not left_mid_call(asyncio.current_task()):
                raise
            # Nobody to answer: the call in flight was cancelled with this task.
        status = started or CLIENT_GONE
        if metrics is not None:
            if measured is None:
                measured = metrics.other(method, template)
            measured.answered(status, time.perf_counter() - began)
        if self._access_log and access_log.isEnabledFor(logging.INFO):
            milliseconds = (time.perf_counter() - began) * 1000
            access_log.info(
                "%s %s %d %.1fms",
                method,
                template,
                status,
                milliseconds,
                extra={
                    "http_method": method,
                    "route": template,
                    "status": status,
                    "duration_ms": round(milliseconds, 3),
                    "request_id": request_id,
                },
            )
        reset_request_id(request_token)

    async def _match(
        self, method: str, scope: Scope, headers: RequestHeaders, response_headers: Headers
    ) -> tuple[Route, list[str]]:
        """The request's route and captures. A path or method that does not exist is
        counted against the caller's rate limit too: probing for one is requests."""
        try:
            return self._route(method, scope)
        except RequestError:
            await self._count(scope, headers, response_headers)
            raise

    async def _dispatch(
        self,
        route: Route,
        captures: list[str],
        calls: MethodMetrics | None,
        scope: Scope,
        headers: RequestHeaders,
        receive: Receive,
        send: Send,
        request_id: str,
        response_headers: Headers,
    ) -> None:
        """Serves one request for `route`; adds to `response_headers` what its response must
        carry. `calls`: where the call to the service is recorded (None: nowhere)."""
        subject = await self._count(scope, headers, response_headers)
        semantics = self._semantics[route]
        query: bytes = scope["query_string"]
        request = await build_request(
            route, semantics, captures, query, headers, receive, self.settings
        )
        conditional = semantics.apply_headers(headers, request)
        metadata, asked = request_metadata(headers, scope.get("client"))
        deadline = self._deadline(asked, route.server_streaming)
        metadata.append(("x-request-id", request_id))
        if route.server_streaming:
            writer = streams.writer_for(route, headers, request, self.settings)
            streaming = self._streaming[route.full_method]
            with self._stream_slots.take(caller_key(subject, scope)):
                await self._stream(
                    streaming, request, metadata, deadline, writer, calls, receive, send
                )
        else:
            multicallable = self._unary[route.full_method]
            if calls is None:
                call = multicallable(request, timeout=deadline, metadata=metadata)
                await unary_reply(route, semantics, call, conditional, headers, send)
                return
            calls.started.inc()
            calls.sent.inc()
            sent_at = time.perf_counter()
            call = multicallable(request, timeout=deadline, metadata=metadata)
            await unary_reply(route, semantics, call, conditional, headers, send, calls, sent_at)

    async def _call(
        self,
        procedure: rpc.Procedure,
        exchange: rpc.Exchange,
        calls: MethodMetrics | None,
        scope: Scope,
        headers: RequestHeaders,
        receive: Receive,
        send: Send,
        request_id: str,
        response_headers: Headers,
    ) -> None:
        """Serves one call of an RPC protocol (`exchange`'s): as `_dispatch` serves a route,
        but the request and the response (messages, or their bytes) in the protocol's form."""
        subject = await self._count(scope, headers, response_headers)
        limit = self.settings.max_body_bytes
        request = await exchange.read(receive, headers, scope["query_string"], limit)
        custom = custom_headers(scope["headers"])
        metadata, asked = request_metadata(headers, scope.get("client"), custom)
        timeout = exchange.timeout(headers)
        deadline = self._deadline(asked if timeout is None else timeout, procedure.server_streaming)
        metadata.append(("x-request-id", request_id))
        raw = exchange.codec.raw
        if procedure.server_streaming:
            writer = exchange.writer(headers, self.settings)
            streaming = (self._raw_streaming if raw else self._streaming)[procedure.path]
            with self._stream_slots.take(caller_key(subject, scope)):
                await self._stream(
                    streaming, request, metadata, deadline, writer, calls, receive, send
                )
            return
        sent_at = 0.0
        if calls is not None:
            calls.started.inc()
            calls.sent.inc()
            sent_at = time.perf_counter()
        unary = (self._raw_unary if raw else self._unary)[procedure.path]
        call = unary(request, timeout=deadline, metadata=metadata)
        try:
            response = await finished(call, calls, sent_at)
        except grpc.aio.AioRpcError as error:
            extra = metadata_headers(pairs(error.initial_metadata()))
            raise from_rpc_error(error, extra) from None
        initial = pairs(await call.initial_metadata())
        trailing = pairs(await call.trailing_metadata())
        await exchange.reply(send, response, initial, trailing, headers)

    def _deadline(self, asked: float | None, streaming: bool) -> float | None:
        """The call's deadline from the one the client asked for (None: none): capped; a
        unary call's is the default when none was asked, a watch may last (None)."""
        if asked is not None and asked <= 0:
            # gRPC rounds a deadline up on the wire, so the backend could still start it.
            raise RequestError(
                "DEADLINE_EXCEEDED",
                None,
                "the deadline (Grpc-Timeout, Connect-Timeout-Ms) had passed before the call "
                "could start",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            )
        if asked is None:
            return None if streaming else self.settings.timeout_seconds
        return min(asked, self.settings.max_timeout_seconds)

    async def _count(
        self, scope: Scope, headers: RequestHeaders, response_headers: Headers
    ) -> str | None:
        """Who calls (None: anonymous), before the body is read: verified in jwt mode (a bad
        token is a 401 before anything is counted), as the bearer claims in dev mode. The
        request is counted against its caller's rate limit: its RateLimit fields go into
        `response_headers`, or it is refused (429).

        Refused credentials are counted too, against their client's address (a bucket of
        their own, `refused:`): checking a signature costs ~100 µs, and a client that keeps
        sending bad tokens is refused 429 before any more is checked, until its bucket
        refills, unless its token is one verified before (free to check again: the users
        who share its address are not locked out with it)."""
        if self._auth is not None:
            refused_key = None
            if self._limiter is not None:
                refused_key = "refused:" + caller_key(None, scope)
                blocked = self._limiter.refusal(refused_key)
                if blocked is not None and not self._auth.remembers(headers):
                    raise blocked
            try:
                claims = await self._auth.verify(headers)
            except RequestError as refused:
                if refused_key is not None and self._limiter is not None:
                    with contextlib.suppress(RequestError):
                        self._limiter.take(refused_key)
                # Logged once, as the services log their denials; never the token.
                client = scope.get("client") or ("-", 0)
                log.warning(
                    "denied %s %r to unverified credentials from %s: %s (%s)",
                    scope["method"],
                    scope["path"][:200],
                    client[0],
                    refused.reason,
                    refused.description,
                )
                raise
            subject = None if claims is None else claims.subject
        else:
            subject = claimed_subject(headers)
        if self._limiter is not None:
            response_headers += self._limiter.take(caller_key(subject, scope))
        return subject

    async def _options(self, scope: Scope, headers: RequestHeaders, send: Send) -> str:
        """A CORS preflight, or a plain OPTIONS: the methods the path has. Returns the
        template of the path's routes."""
        procedure = self.procedures.get(scope["path"])
        if procedure is not None:
            granted = self._cors.options(
                procedure.http_methods | {"OPTIONS"}, headers, procedure.path
            )
            await respond(send, 204, b"", granted)
            return procedure.path
        path = _path(scope)
        try:
            allowed = self.router.methods(path)
        except UnicodeDecodeError:
            raise _not_utf8() from None
        if not allowed:
            raise _no_route(scope)
        granted = self._cors.options(allowed | {"OPTIONS"}, headers, scope["path"])
        await respond(send, 204, b"", granted)
        route, _ = self.router.match(min(allowed), path)  # one of its templates: bounded
        return route.pattern.template

    def _route(self, method: str, scope: Scope) -> tuple[Route, list[str]]:
        path = _path(scope)
        try:
            return self.router.match(method, path)
        except UnicodeDecodeError:
            raise _not_utf8() from None
        except NoRoute as missing:
            if missing.allowed:
                raise method_not_allowed(method, scope["path"], missing.allowed) from None
            raise rpc.unknown_procedure(scope["path"]) or _no_route(scope) from None

    async def _stream(
        self,
        streaming: Streaming,
        request: Message,
        metadata: Metadata,
        deadline: float | None,
        writer: streams.Writer,
        calls: MethodMetrics | None,
        receive: Receive,
        send: Send,
    ) -> None:
        if self._stopping:
            raise streams.stopping_error()
        sent_at = 0.0
        if calls is not None:
            calls.started.inc()
            calls.sent.inc()
            sent_at = time.perf_counter()
        call = streaming(request, timeout=deadline, metadata=metadata)
        self._streams.add(call)
        metrics = self.metrics
        open_streams = None if metrics is None else metrics.open_streams[writer.framing.kind]
        if open_streams is not None:
            open_streams.inc()
        try:
            await streams.relay(call, writer, receive, send, self.stopping)
        finally:
            self._streams.discard(call)
            call.cancel()
            if open_streams is not None:
                open_streams.dec()
            if calls is not None:
                calls.handled[ended_code(call)].inc()
                calls.seconds.observe(time.perf_counter() - sent_at)


def _path(scope: Scope) -> str:
    """The request's path, still percent-encoded (the router decodes per segment)."""
    raw: bytes | None = scope.get("raw_path")
    try:
        return raw.decode() if raw else str(scope["path"])
    except UnicodeDecodeError:
        raise _not_utf8() from None


def _not_utf8() -> RequestError:
    return RequestError("INVALID_PATH", "", "the path is not UTF-8")


def _no_route(scope: Scope) -> RequestError:
    return RequestError(
        "ROUTE_NOT_FOUND",
        None,
        f"no route for {scope['path']}",
        code=grpc.StatusCode.NOT_FOUND,
        metadata={"path": scope["path"]},
    )


async def _fail(
    exchange: rpc.Exchange | None,
    scope: Scope,
    headers: RequestHeaders,
    send: Send,
    error: GatewayError,
) -> None:
    """The error response: in the RPC protocol's form when the request speaks one (its
    exchange's, or the one its shape and content type name), else as REST's JSON."""
    if exchange is not None:
        await exchange.fail(send, error)
        return
    form = rpc.refusal_form(scope["method"], scope["path"], headers, error)
    if form is not None:
        await form(send, error)
    else:
        await respond(send, error.http_status, error.body(), error.headers)


def _multicallable(
    channel: grpc.aio.Channel,
    path: str,
    messages: tuple[type[Message], type[Message]] | None,
    *,
    stream: bool,
) -> Any:
    """A method's callable: taking and giving `messages` (request, response classes), or
    bytes (None)."""
    factory = channel.unary_stream if stream else channel.unary_unary
    return factory(  # type: ignore[call-arg]  # the stubs predate `_registered_method`
        path,
        request_serializer=None if messages is None else messages[0].SerializeToString,
        response_deserializer=None if messages is None else messages[1].FromString,
        # As the generated stubs do: the channel registers the path once, not per call.
        _registered_method=True,
    )
