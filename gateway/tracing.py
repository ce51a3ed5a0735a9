"""The HTTP request's span at the gateway, when tracing is on: a SERVER span per request,
child of the client's W3C `traceparent` if it sent one, named and labelled as OpenTelemetry's
HTTP conventions say (`POST /v1/orders`: the route template as the OpenAPI document spells
it, never the raw path; `http.request.method`, `http.route`, `http.response.status_code`,
`url.path`). A 5xx sets its status to error; a 4xx is the client's, not the server's error.

Only the trace context is taken from the client (`traceparent`, `tracestate`): its `baggage`
is not carried into the system. Health and documentation paths are not traced (probes would
start a trace every few seconds)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.errors import GatewayError
from gateway.openapi import openapi_path
from gateway.routes import Route
from gateway.types import Message, Receive, Scope, Send
from shop_common.telemetry import Tracing

App = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
"""The methods the conventions name; another is `_OTHER` (its span: `HTTP`)."""

_CONTEXT_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class HttpTracing:
    """Serves requests within their spans (`serve`); the gateway names a request's route
    once it has matched it (`matched`)."""

    def __init__(self, tracing: Tracing, routes: Iterable[Route]) -> None:
        self._tracer = tracing.tracer
        self._propagator = TraceContextTextMapPropagator()
        self._templates = {route: openapi_path(route.pattern)[0] for route in routes}

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: App) -> None:
        carrier = {
            _CONTEXT_HEADERS[name]: value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _CONTEXT_HEADERS
        }
        parent = self._propagator.extract(carrier) if carrier else None
        method: str = scope["method"]
        known = method in METHODS
        attributes = {
            "http.request.method": method if known else "_OTHER",
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
            method if known else "HTTP",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            # What escapes `app` is a client gone (cancelled), not a fault of the server:
            # `app` answers every error itself.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await app(scope, receive, sending)
            finally:
                if status:
                    span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))

    def matched_procedure(self, method: str, path: str) -> None:
        """The current request's span, for an RPC protocol's call: `POST
        /shop.user.v1.UserService/GetUser`, its route the procedure's path, and the
        service and method as OpenTelemetry's RPC conventions name them."""
        span = trace.get_current_span()
        span.update_name(f"{method} {path}")
        service, _, name = path[1:].partition("/")
        span.set_attributes({"http.route": path, "rpc.service": service, "rpc.method": name})

    def rpc_failed(self, error: GatewayError) -> None:
        """An RPC protocol's call that failed under a 200 (gRPC-Web, a Connect stream): its
        code on the span, and the span an error when the code's HTTP status is a 5xx."""
        span = trace.get_current_span()
        span.set_attribute("rpc.grpc.status_code", error.status.code)
        if error.http_status >= 500:
            span.set_attribute("error.type", str(error.http_status))
            span.set_status(Status(StatusCode.ERROR))

    def matched(self, route: Route) -> None:
        """The current request's span takes its route's name: `POST /v1/orders`."""
        span = trace.get_current_span()
        template = self._templates[route]
        span.update_name(f"{route.http_method} {template}")
        span.set_attribute("http.route", template)
