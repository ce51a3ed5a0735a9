"""The ASGI application: routes a request, builds the request message, calls the backend
over one `grpc.aio` channel per backend, and answers with JSON (or NDJSON for streams).

No framework: each request is a route match, a few precomputed setters and one call.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import grpc
import orjson
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from gateway import docs, errors, openapi, streaming
from gateway.body import ClientGone, has_body, read_body
from gateway.config import Settings
from gateway.cors import Cors
from gateway.errors import (
    GatewayError,
    RequestError,
    from_rpc_error,
    internal_error,
    method_not_allowed,
)
from gateway.headers import RequestHeaders, invalid_header
from gateway.health import HealthChecker
from gateway.metadata import (
    Metadata,
    request_id_of,
    request_metadata,
    response_headers,
)
from gateway.routes import NoRoute, Route, Router, routes_of
from gateway.semantics import Semantics, not_modified, semantics_table
from gateway.streaming import stopping_error
from gateway.transport import left_mid_call
from gateway.types import Headers, Receive, Scope, Send
from gateway.types import Message as AsgiMessage

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"
_HTML = (b"content-type", b"text/html; charset=utf-8")
_BUILTIN_PATHS = frozenset({HEALTH_PATH, OPENAPI_PATH, docs.DOCS_PATH, *docs.ASSET_PATHS})
_BUILTIN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON_TYPE = re.compile(rb"\s*application/(?:[\w.+-]+\+)?json\s*(?:;|\Z)", re.I)
_JSON = (b"content-type", b"application/json")
_ASSET_CACHE = (b"cache-control", b"public, max-age=86400")
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
        routes = routes_of(services, strict=settings.strict, proto_names=settings.proto_names)
        self.router = Router(routes)
        self._semantics = semantics_table(self.router.routes)
        self._cors = Cors(settings.cors_origins)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._unary: dict[str, Unary] = {}
        self._streaming: dict[str, Streaming] = {}
        self._streams: set[grpc.aio.Call] = set()
        self._health: HealthChecker | None = None
        self._stopping = False
        self._openapi_json: bytes | None = None
        self._docs = docs.page(OPENAPI_PATH)
        self._docs_assets: dict[str, docs.Asset] = {}

    async def startup(self) -> None:
        self._docs_assets = await asyncio.to_thread(docs.assets)
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
        headers = RequestHeaders(scope["headers"])
        asked_id = headers.get(b"x-request-id") or b""
        request_id = request_id_of(asked_id)
        extra: Headers = [(b"x-request-id", request_id.encode())]
        if self._cors.enabled:  # else it has nothing to add
            extra += self._cors.response_headers(headers.get(b"origin") or b"")
        started = 0  # the status sent, once sent

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
                await self._dispatch(scope, headers, receive, reply, request_id)
            except GatewayError as error:
                if error.http_status >= 500:
                    log.warning(
                        "%s %s: %d %s (request %s)",
                        scope["method"],
                        scope["path"],
                        error.http_status,
                        error.status.message,
                        request_id,
                    )
                if not started:
                    await respond(reply, error.http_status, error.body(), error.headers)
            except ClientGone:
                pass
            except Exception:
                method, path = scope["method"], scope["path"]
                log.exception("%s %s failed (request %s)", method, path, request_id)
                if not started:  # else the status line is out: the connection just ends
                    failure = internal_error()
                    await respond(reply, 500, failure.body(), failure.headers)
        except asyncio.CancelledError:
            if not left_mid_call(asyncio.current_task()):
                raise
            # Nobody to answer: the call in flight was cancelled with this task.
        if log.isEnabledFor(logging.DEBUG):  # the access log: SHOP_LOG_LEVEL=DEBUG
            log.debug("%s %s %d (request %s)", scope["method"], scope["path"], started, request_id)

    async def _dispatch(
        self,
        scope: Scope,
        headers: RequestHeaders,
        receive: Receive,
        send: Send,
        request_id: str,
    ) -> None:
        method: str = scope["method"]
        if scope["path"] in _BUILTIN_PATHS:
            await self._builtin(method, scope, send)
            return
        if method == "OPTIONS":
            await self._options(scope, headers, send)
            return
        route, captures = self._route(method, scope)
        semantics = self._semantics[route]
        request = await self._request(route, semantics, captures, scope, headers, receive)
        conditional = semantics.apply_headers(headers, request)
        metadata, asked = request_metadata(headers, scope.get("client"))
        metadata.append(("x-request-id", request_id))
        cap = self.settings.max_timeout_seconds
        if route.server_streaming:  # a watch may last: no deadline unless the client sets one
            deadline = None if asked is None else min(asked, cap)
            writer = streaming.writer_for(route, headers, request, self.settings)
            await self._stream(route, request, metadata, deadline, writer, receive, send)
        else:
            deadline = self.settings.timeout_seconds if asked is None else min(asked, cap)
            call = self._unary[route.full_method](request, timeout=deadline, metadata=metadata)
            await self._unary_reply(route, semantics, call, conditional, headers, send)

    async def _options(self, scope: Scope, headers: RequestHeaders, send: Send) -> None:
        """A CORS preflight, or a plain OPTIONS: the methods the path has."""
        try:
            allowed = self.router.methods(_path(scope))
        except UnicodeDecodeError:
            raise _not_utf8() from None
        if not allowed:
            raise _no_route(scope)
        allowed |= {"OPTIONS"}
        origin = headers.get(b"origin") or b""
        asked_method = headers.get(b"access-control-request-method") or b""
        asked_headers = headers.get(b"access-control-request-headers") or b""
        if not (asked_method and origin and self._cors.enabled):
            await respond(send, 204, b"", errors.allow_header(allowed))
            return
        if not self._cors.allows(origin):
            raise RequestError(
                "CORS_ORIGIN_NOT_ALLOWED",
                None,
                f"the origin {origin.decode('latin-1')} may not call this API",
                code=grpc.StatusCode.PERMISSION_DENIED,
            )
        if asked_method.decode("latin-1") not in allowed:
            raise method_not_allowed(asked_method.decode("latin-1"), scope["path"], allowed)
        await respond(send, 204, b"", self._cors.preflight_headers(allowed, asked_headers))

    async def _request(
        self,
        route: Route,
        semantics: Semantics,
        captures: list[str],
        scope: Scope,
        headers: RequestHeaders,
        receive: Receive,
    ) -> Message:
        """The request message: the body first, then the path, then the query."""
        request = route.request_class()
        strict = self.settings.strict
        sent: object = None
        if route.body is not None:
            data = await read_body(headers, receive, self.settings.max_body_bytes)
            if data and (strict or headers.get(b"origin") is not None):
                _require_json(headers)
            sent = route.body.decode(data, request)
        elif strict and has_body(headers):
            raise RequestError("BODY_NOT_ALLOWED", "", f"{route.http_method} takes no body here")
        if captures:
            twice = route.bound_in(request) if strict and sent is not None else None
            if twice is not None:
                raise RequestError(
                    "FIELD_IN_PATH_AND_BODY",
                    twice,
                    f"{twice} is given by the path; leave it out of the body",
                )
            route.bind_path(request, captures)
        query: bytes = scope["query_string"]
        if query and route.query is not None:
            route.query.parse(query, request)
        mask = semantics.mask
        if mask is not None and sent is not None and not request.HasField(mask):
            assert route.body is not None
            getattr(request, mask).paths.extend(semantics.mask_paths(route.body, sent))
        return request

    async def _unary_reply(
        self,
        route: Route,
        semantics: Semantics,
        call: grpc.aio.UnaryUnaryCall[Message, Message],
        conditional: bool,
        headers: RequestHeaders,
        send: Send,
    ) -> None:
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            extra = response_headers(
                errors.pairs(error.initial_metadata()), errors.pairs(error.trailing_metadata())
            )
            failure = from_rpc_error(error, extra)
            if conditional and error.code() == grpc.StatusCode.ABORTED:
                failure.http_status = 412  # the If-Match did not hold
            raise failure from None
        status = semantics.status
        reply: Headers = []
        if semantics.etag_out or semantics.location is not None:
            resource = getattr(response, route.response_body) if route.response_body else response
            etag = semantics.etag_of(resource)
            if etag is not None:
                reply.append((b"etag", etag))
                if route.http_method == "GET" and not_modified(headers, etag):
                    status = 304
            if status == 201:
                location = semantics.location_of(resource)
                if location is not None:
                    reply.append((b"location", location))
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
        if initial or trailing:
            reply.extend(response_headers(initial, trailing))
        if status in (204, 304):
            await send({"type": "http.response.start", "status": status, "headers": reply})
            await send({"type": "http.response.body", "body": b""})
            return
        body = route.encoder.encode(response)
        reply += [_JSON, (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": reply})
        await send({"type": "http.response.body", "body": body})

    def _route(self, method: str, scope: Scope) -> tuple[Route, list[str]]:
        path = _path(scope)
        try:
            return self.router.match(method, path)
        except UnicodeDecodeError:
            raise _not_utf8() from None
        except NoRoute as missing:
            if missing.allowed:
                raise method_not_allowed(method, scope["path"], missing.allowed) from None
            raise _no_route(scope) from None

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

    async def _builtin(self, method: str, scope: Scope, send: Send) -> None:
        """`/healthz`, `/openapi.json`, `/docs` and its assets: GET and HEAD only."""
        if method == "OPTIONS":
            await respond(send, 204, b"", errors.allow_header(_BUILTIN_METHODS))
            return
        path = scope["path"]
        if method not in ("GET", "HEAD"):
            raise method_not_allowed(method, path, _BUILTIN_METHODS)
        if path == HEALTH_PATH:
            assert self._health is not None, "startup() has not run"
            status, body = await self._health.check()
            await respond(send, status, body)
        elif path == OPENAPI_PATH:
            await respond(send, 200, self._openapi())
        elif path == docs.DOCS_PATH:
            await respond(send, 200, self._docs, [_HTML])
        else:
            assert self._docs_assets, "startup() has not run"
            asset = self._docs_assets[path]
            headers = [(b"content-type", asset.content_type), _ASSET_CACHE]
            await respond(send, 200, asset.body, headers)


def _require_json(headers: RequestHeaders) -> None:
    """A body from a browser (or in strict mode) must say it is JSON: a page may send
    `text/plain` or a form to any origin without a preflight, so that is what CSRF uses."""
    for value in headers.lines(b"content-type"):
        if _JSON_TYPE.match(value):
            return
    raise RequestError(
        "UNSUPPORTED_MEDIA_TYPE",
        "content-type",
        "the body must be sent as Content-Type: application/json",
        http=415,
    )


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


async def respond(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    """A whole response: JSON unless `headers` name another content type; a 204 has no
    content at all (not even its length, RFC 9110 8.6)."""
    extra = headers or []
    if status == 204:
        start = extra
    else:
        typed = any(name == b"content-type" for name, _ in extra)
        start = [*(() if typed else (_JSON,)), (b"content-length", b"%d" % len(body)), *extra]
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
