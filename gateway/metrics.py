"""The gateway's HTTP metrics, in the registry its admin port serves:

- `shop_gateway_requests_total{method, route, status}`: every request the app answers.
  `route` is the route's template as the OpenAPI document spells it (`/v1/users/{id}`),
  a procedure's path for the RPC protocols (`/shop.user.v1.UserService/GetUser`), a
  built-in route's fixed path (`/healthz`), or `unmatched`; never the raw path.
  `status` is the status sent, `499` when the client left before one was.
- `shop_gateway_request_duration_seconds{method, route}`: unary requests only, so that a
  watch open for an hour does not swamp the latency of the rest.
- `shop_gateway_open_streams{kind}`: NDJSON, SSE, Connect and gRPC-Web streams being
  relayed.
- `shop_gateway_refused_total{status, reason}`: the gateway's own refusals (`REFUSALS`),
  the HTTP server's before a request reaches the app included (those are in no route's
  count: no route was looked for).

The label children are resolved once: per route at start (`RouteMetrics`, with the gRPC
client metrics of the method it calls), per status on the first response with it. Every
route with its own method and success status, both kinds of stream and every refusal exist
at zero from the start, so that dashboards and alerts see them before the first request.
Labels are bounded: methods outside `METHODS` are `other`, routes are templates, statuses
are the gateway's own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.routes import Route
from gateway.rpc import Procedure
from shop_common.telemetry import BUCKETS, GrpcClientMetrics, MethodMetrics

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})
"""HTTP methods counted by name; any other is `other` (a client picks the method)."""
OTHER_METHOD = "other"
UNMATCHED = "unmatched"
CLIENT_GONE = 499
"""The status counted for a request whose client left before a status was sent (nginx's)."""
STREAM_KINDS = ("ndjson", "sse", "connect", "grpc-web")

REFUSALS: tuple[tuple[int, str], ...] = (
    # The HTTP server's, before the app (transport, refusals).
    (400, "MALFORMED_HTTP"),
    (400, "INVALID_CONTENT_LENGTH"),
    (400, "UPGRADE_UNSUPPORTED"),
    (408, "HEAD_TIMEOUT"),
    (408, "BODY_TIMEOUT"),
    (414, "URL_TOO_LONG"),
    (431, "HEADERS_TOO_LARGE"),
    (503, "TOO_MANY_CONNECTIONS"),
    (505, "HTTP_VERSION_UNSUPPORTED"),
    # The app's: limits on what a request may be or how often it may come.
    (413, "BODY_TOO_LARGE"),
    (415, "UNSUPPORTED_MEDIA_TYPE"),
    (429, "RATE_LIMITED"),  # a caller's rate, or its address's refused credentials
    (429, "TOO_MANY_STREAMS"),
    (431, "INVALID_HEADER"),  # the headers forwarded as metadata, too large
    (503, "GATEWAY_STOPPING"),  # a stream asked for while the gateway stops
)
"""Every (HTTP status, ErrorInfo reason) pair counted as a refusal. Other errors of the
gateway's own (a 400 for a bad field, a 404 for no route) are the client's mistakes, in
`requests_total` by status; a refusal is the gateway protecting itself."""


class RouteMetrics:
    """The children one (method, route) pair records into."""

    __slots__ = ("_by_status", "_labels", "_requests", "calls", "duration")

    def __init__(
        self,
        http: GatewayMetrics,
        method: str,
        route: str,
        unary: bool,
        calls: MethodMetrics | None,
    ) -> None:
        self._requests = http.requests
        self._labels = (method, route)
        self._by_status: dict[int, Counter] = {}
        self.duration: Histogram | None = http.duration.labels(method, route) if unary else None
        self.calls = calls
        """The gRPC client metrics of the method the route calls (None: it calls none)."""

    def counter(self, status: int) -> Counter:
        """The child for `status` (made on its first use: the statuses are bounded)."""
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._requests.labels(*self._labels, str(status))
        return child

    def answered(self, status: int, seconds: float) -> None:
        """Counts a request answered with `status` after `seconds`."""
        child = self._by_status.get(status)
        (self.counter(status) if child is None else child).inc()
        if self.duration is not None:
            self.duration.observe(seconds)


class GatewayMetrics:
    """The gateway's metrics in `registry`: its HTTP metrics, and `client`, the gRPC client
    metrics of its calls to the services."""

    def __init__(
        self,
        registry: CollectorRegistry,
        client: GrpcClientMetrics,
        routes: Iterable[tuple[Route, int]],
        builtin_paths: Iterable[str],
        procedures: Iterable[Procedure] = (),
    ) -> None:
        """`routes`: each route with the status its success is answered with;
        `procedures`: those the RPC protocols serve."""
        self.client = client
        self.requests = Counter(
            "shop_gateway_requests",
            "HTTP requests answered by the gateway, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "shop_gateway_request_duration_seconds",
            "Time from a request's head to its response's end (unary requests only).",
            ("method", "route"),
            buckets=BUCKETS,
            registry=registry,
        )
        open_streams = Gauge(
            "shop_gateway_open_streams",
            "Streams the gateway is relaying now, by format (ndjson, sse, connect, grpc-web).",
            ("kind",),
            registry=registry,
        )
        self.open_streams: Mapping[str, Gauge] = {
            kind: open_streams.labels(kind) for kind in STREAM_KINDS
        }
        refused = Counter(
            "shop_gateway_refused",
            "Requests and connections the gateway refused, by status and reason.",
            ("status", "reason"),
            registry=registry,
        )
        self._refused: Mapping[tuple[int, str], Counter] = {
            (status, reason): refused.labels(str(status), reason) for status, reason in REFUSALS
        }
        self._routes: dict[Route, RouteMetrics] = {}
        self._heads: dict[Route, RouteMetrics] = {}
        self._others: dict[tuple[str, str], RouteMetrics] = {}
        for route, success in routes:
            unary = not route.server_streaming
            calls = client.method(route.full_method, route.server_streaming)
            measured = RouteMetrics(self, route.http_method, route.pattern.template, unary, calls)
            measured.counter(success)
            self._routes[route] = measured
            if route.http_method == "GET" and unary:  # HEAD is served by the GET's route
                self._heads[route] = RouteMetrics(self, "HEAD", route.pattern.template, True, calls)
        self._procedures: dict[tuple[str, str], RouteMetrics] = {}
        for procedure in procedures:
            unary = not procedure.server_streaming
            calls = client.method(procedure.path, procedure.server_streaming)
            for method in sorted(procedure.http_methods):
                measured = RouteMetrics(self, method, procedure.path, unary, calls)
                measured.counter(200)
                self._procedures[(method, procedure.path)] = measured
        self.builtin: dict[str, RouteMetrics] = {}
        for path in builtin_paths:
            self.builtin[path] = self.other("GET", path)
            self.builtin[path].counter(200)

    def route(self, method: str, route: Route) -> RouteMetrics:
        """A request's children when it matched `route`."""
        if method == route.http_method:
            return self._routes[route]
        head = self._heads.get(route)
        return head if head is not None and method == "HEAD" else self.other(method, UNMATCHED)

    def procedure(self, method: str, procedure: Procedure) -> RouteMetrics:
        """A request's children when its path is a procedure's (the RPC protocols)."""
        found = self._procedures.get((method, procedure.path))
        return found if found is not None else self.other(method, procedure.path)

    def other(self, method: str, route: str) -> RouteMetrics:
        """The children of a request that matched no route of the services: `route` is a
        built-in path or `UNMATCHED`, or the path of a preflight's route."""
        key = (method, route)
        found = self._others.get(key)
        if found is None:
            label = method if method in METHODS else OTHER_METHOD
            found = self._others.get((label, route))
            if found is None:
                found = self._others[(label, route)] = RouteMetrics(self, label, route, True, None)
            if label == method:
                self._others[key] = found
        return found

    def refused(self, status: int, reason: str) -> None:
        """Counts a refusal, if (`status`, `reason`) is one (`REFUSALS`)."""
        counter = self._refused.get((status, reason))
        if counter is not None:
            counter.inc()
