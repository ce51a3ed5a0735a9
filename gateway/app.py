"""The ASGI application: routes a request, builds the request message, calls the backend
over one `grpc.aio` channel per backend, and answers with JSON (or NDJSON for streams).

No framework: each request is a route match, a few precomputed setters and one call.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import orjson
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from gateway import errors, openapi, streaming
from gateway.body import ClientGone, read_body
from gateway.codec import CodecError
from gateway.config import Settings
from gateway.errors import GatewayError, bad_request, from_rpc_error, refusal
from gateway.health import HealthChecker
from gateway.metadata import HeaderError, Metadata, request_metadata, response_headers
from gateway.query import QueryError
from gateway.routes import NoRoute, PathError, Route, Router, routes_of
from gateway.streaming import stopping_error
from gateway.types import Receive, Scope, Send

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"
_JSON = (b"content-type", b"application/json")
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
        self.router = Router(routes_of(services))
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._unary: dict[str, Unary] = {}
        self._streaming: dict[str, Streaming] = {}
        self._streams: set[grpc.aio.Call] = set()
        self._health: HealthChecker | None = None
        self._stopping = False
        self._openapi_json: bytes | None = None

    async def startup(self) -> None:
        options = list(self.settings.channel_options)
        for address in sorted(set(self.settings.backends.values())):
            self._channels[address] = grpc.aio.insecure_channel(address, options=options)
        by_service = {name: self._channels[a] for name, a in self.settings.backends.items()}
        for route in self.router.routes:
            channel = by_service[route.method.containing_service.full_name]
            if route.server_streaming:
                self._streaming[route.full_method] = _multicallable(channel, route, stream=True)
            else:
                self._unary[route.full_method] = _multicallable(channel, route, stream=False)
            log.debug("route %s", route)
        self._health = HealthChecker(by_service)

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
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
        try:
            await self._dispatch(scope, receive, send)
        except GatewayError as error:
            await respond(send, error.http_status, error.body(), error.headers)
        except ClientGone:
            pass
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            failure = refusal(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")
            await respond(send, 500, failure.body(), failure.headers)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        if scope["path"] == HEALTH_PATH:
            await self._healthz(method, send)
            return
        if scope["path"] == OPENAPI_PATH and method == "GET":
            await respond(send, 200, self._openapi())
            return
        route, captures = self._route(method, scope)
        request = await self._request(route, captures, scope, receive)
        try:
            metadata, asked = request_metadata(scope["headers"], scope.get("client"))
        except HeaderError as error:
            raise bad_request("INVALID_HEADER", error.header, error.description) from None
        cap = self.settings.max_timeout_seconds
        if route.server_streaming:  # a watch may last: no deadline unless the client sets one
            deadline = None if asked is None else min(asked, cap)
            writer = streaming.writer_for(route, scope["headers"], request, self.settings)
            await self._stream(route, request, metadata, deadline, writer, receive, send)
        else:
            deadline = self.settings.timeout_seconds if asked is None else min(asked, cap)
            await self._unary_call(route, request, metadata, deadline, send)

    async def _request(
        self, route: Route, captures: list[str], scope: Scope, receive: Receive
    ) -> Message:
        """The request message: the body first, then the path, then the query."""
        request = route.request_class()
        if route.body is not None:
            data = await read_body(scope["headers"], receive, self.settings.max_body_bytes)
            try:
                route.body.decode(data, request)
            except CodecError as error:
                raise refusal(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    error.reason,
                    error.description,
                    field=error.field,
                ) from None
        if captures:
            try:
                route.bind_path(request, captures)
            except PathError as error:
                raise bad_request(
                    "INVALID_PATH_PARAMETER", error.variable, error.description
                ) from None
        query: bytes = scope["query_string"]
        if query and route.query is not None:
            try:
                route.query.parse(query, request)
            except QueryError as error:
                raise bad_request("INVALID_QUERY_PARAMETER", error.key, error.description) from None
        return request

    async def _unary_call(
        self, route: Route, request: Message, metadata: Metadata, deadline: float, send: Send
    ) -> None:
        call = self._unary[route.full_method](request, timeout=deadline, metadata=metadata)
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            headers = response_headers(
                errors.pairs(error.initial_metadata()), errors.pairs(error.trailing_metadata())
            )
            raise from_rpc_error(error, headers) from None
        body = route.encoder.encode(response)
        headers = [_JSON, (b"content-length", b"%d" % len(body))]
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
        if initial or trailing:
            headers.extend(response_headers(initial, trailing))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _route(self, method: str, scope: Scope) -> tuple[Route, list[str]]:
        raw: bytes | None = scope.get("raw_path")
        try:
            path = raw.decode() if raw else scope["path"]
            return self.router.match(method, path)
        except UnicodeDecodeError:
            raise bad_request("INVALID_PATH", "", "the path is not UTF-8") from None
        except NoRoute as missing:
            if missing.allowed:
                raise refusal(
                    grpc.StatusCode.UNIMPLEMENTED,
                    "METHOD_NOT_ALLOWED",
                    f"{method} is not allowed on {scope['path']}",
                    http=405,
                    headers=errors.allow_header(missing.allowed),
                    metadata={"allow": ", ".join(sorted(missing.allowed))},
                ) from None
            raise refusal(
                grpc.StatusCode.NOT_FOUND,
                "ROUTE_NOT_FOUND",
                f"no route for {scope['path']}",
                metadata={"path": scope["path"]},
            ) from None

    async def _stream(
        self,
        route: Route,
        request: Message,
        metadata: Metadata,
        deadline: float | None,
        writer: streaming.Writer,
        receive: Receive,
        send: Send,
    ) -> None:
        if self._stopping:
            raise stopping_error()
        call = self._streaming[route.full_method](request, timeout=deadline, metadata=metadata)
        self._streams.add(call)
        try:
            await streaming.relay(call, writer, receive, send, self.stopping)
        finally:
            self._streams.discard(call)
            call.cancel()

    def _openapi(self) -> bytes:
        if self._openapi_json is None:
            spec = openapi.document(self.router.routes, proto_names=self.settings.proto_names)
            self._openapi_json = orjson.dumps(spec)
        return self._openapi_json

    async def _healthz(self, method: str, send: Send) -> None:
        if method != "GET":
            raise refusal(
                grpc.StatusCode.UNIMPLEMENTED,
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed on {HEALTH_PATH}",
                http=405,
                headers=errors.allow_header(["GET"]),
            )
        assert self._health is not None, "startup() has not run"
        status, body = await self._health.check()
        await respond(send, status, body)


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    start = [_JSON, (b"content-length", b"%d" % len(body)), *(headers or ())]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


def _multicallable(channel: grpc.aio.Channel, route: Route, *, stream: bool) -> Any:
    factory = channel.unary_stream if stream else channel.unary_unary
    return factory(  # type: ignore[call-arg]  # the stubs predate `_registered_method`
        route.full_method,
        request_serializer=route.request_class.SerializeToString,
        response_deserializer=route.response_class.FromString,
        # As the generated stubs do: the channel registers the path once, not per call.
        _registered_method=True,
    )
