"""The RPC protocols in the gateway's metrics and traces, as the REST routes are: requests
counted by the procedure's path as their route (every procedure's methods there at zero from
the start), Connect and gRPC-Web streams gauged by kind, the calls to the services counted
by the gRPC client metrics; each request a span named `POST /package.Service/Method` with
`http.route`, the call to the service its child.

The REST side: `tests/integration/test_gateway_metrics.py`, `tests/integration/test_tracing.py`
(over the real services); here over the fake backends, the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import httpx
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway import RunningGateway, start
from gateway.app import Gateway
from shop.user.v1 import user_pb2
from shop_common.telemetry import Tracing
from tests.gateway import rpc_wire as wire
from tests.gateway.conftest import Backend, settings_for
from tests.integration.test_gateway_metrics import (
    DURATION,
    OPEN_STREAMS,
    REFUSED,
    REQUESTS,
    scraped,
)
from tests.integration.test_metrics import Samples, method, value
from tests.support import eventually

USERS = "shop.user.v1.UserService"
GET_USER = f"/{USERS}/GetUser"
CREATE_USER = f"/{USERS}/CreateUser"
WATCH_USERS = f"/{USERS}/WatchUsers"
FOREVER = user_pb2.WatchUsersRequest(start_revision=1, progress_notify=True)


def requests(samples: Samples, http_method: str, route: str, status: int) -> float:
    return value(samples, REQUESTS, method=http_method, route=route, status=str(status))


@contextlib.asynccontextmanager
async def measured(backend: Backend) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    """A gateway over the fake backends with its metrics on an admin port of its own."""
    settings = settings_for(backend.address, admin_listen="127.0.0.1:0", max_streams_per_caller=4)
    running = await start(settings)
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            yield running, http
    finally:
        await running.stop()


async def get_user(http: httpx.AsyncClient, protocol: str, user: str = "u-1") -> wire.Outcome:
    request = user_pb2.GetUserRequest(id=user)
    return await wire.call(http, protocol, GET_USER, request, user_pb2.GetUserResponse)


# -- metrics ----------------------------------------------------------------------------------


async def test_calls_are_counted_by_procedure_path_method_and_status(backend: Backend) -> None:
    async with measured(backend) as (running, http):
        before = await scraped(running)
        # Each procedure's methods, and both RPC stream kinds, exist at zero from the start.
        assert requests(before, "POST", GET_USER, 200) == 0
        assert requests(before, "GET", GET_USER, 200) == 0  # NO_SIDE_EFFECTS: Connect GET
        assert requests(before, "POST", CREATE_USER, 200) == 0
        assert requests(before, "POST", WATCH_USERS, 200) == 0
        assert (REQUESTS, frozenset({("method", "GET"), ("route", CREATE_USER)})) not in before
        assert value(before, f"{DURATION}_count", method="POST", route=GET_USER) == 0
        assert value(before, OPEN_STREAMS, kind="connect") == 0
        assert value(before, OPEN_STREAMS, kind="grpc-web") == 0

        for protocol in wire.UNARY:
            assert (await get_user(http, protocol)).code == 0
        assert (await get_user(http, wire.CONNECT_JSON, "code-5")).http_status == 404
        assert (await get_user(http, wire.GRPC_WEB, "code-5")).code == 5  # under a 200
        wrong_type = await http.post(GET_USER, content=b"{}", headers={"content-type": "text/xml"})
        assert wrong_type.status_code == 415
        assert (await http.put(GET_USER, content=b"{}")).status_code == 405

        after = await scraped(running)
        posted = len(wire.POSTED_UNARY)
        assert requests(after, "POST", GET_USER, 200) == posted
        assert requests(after, "GET", GET_USER, 200) == 1
        # gRPC-Web's NOT_FOUND went out under a 200: it is counted by its code's status.
        assert requests(after, "POST", GET_USER, 404) == 2
        assert requests(after, "POST", GET_USER, 415) == 1
        assert requests(after, "PUT", GET_USER, 405) == 1
        assert value(after, REFUSED, status="415", reason="UNSUPPORTED_MEDIA_TYPE") == 1
        assert value(after, f"{DURATION}_count", method="POST", route=GET_USER) == posted + 3
        assert value(after, f"{DURATION}_count", method="GET", route=GET_USER) == 1
        # The calls to the service, whatever the protocol.
        get = method("unary", USERS, "GetUser")
        assert value(after, "grpc_client_started_total", **get) == posted + 3
        assert value(after, "grpc_client_handled_total", **get, grpc_code="OK") == posted + 1
        assert value(after, "grpc_client_handled_total", **get, grpc_code="NotFound") == 2
        assert value(after, "grpc_client_handling_seconds_count", **get) == posted + 3


async def test_rpc_streams_are_gauged_by_kind_while_open(backend: Backend) -> None:
    async with measured(backend) as (running, http):
        for protocol, kind in (
            (wire.CONNECT_STREAM, "connect"),
            (wire.GRPC_WEB, "grpc-web"),
            (wire.GRPC_WEB_TEXT, "grpc-web"),
        ):
            asked = wire.request(protocol, WATCH_USERS, FOREVER, streaming=True).send(http)
            async with contextlib.AsyncExitStack() as held:
                response = await http.send(asked, stream=True)
                held.push_async_callback(response.aclose)
                assert response.status_code == 200
                during = await scraped(running)
                assert value(during, OPEN_STREAMS, kind=kind) == 1
                other = "connect" if kind == "grpc-web" else "grpc-web"
                assert value(during, OPEN_STREAMS, kind=other) == 0

            async def closed(kind: str = kind) -> bool:
                assert value(await scraped(running), OPEN_STREAMS, kind=kind) == 0
                return True

            await eventually(closed, 10, f"the {kind} stream is no longer counted open")

        after = await scraped(running)
        assert requests(after, "POST", WATCH_USERS, 200) == 3
        # Streams are not in the latency histogram.
        assert not [
            key for key in after if key[0].startswith(DURATION) and ("route", WATCH_USERS) in key[1]
        ]
        watch = method("server_stream", USERS, "WatchUsers")
        assert value(after, "grpc_client_started_total", **watch) == 3
        assert value(after, "grpc_client_handled_total", **watch, grpc_code="Canceled") == 3


# -- traces -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def traced(backend: Backend) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exported = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = Gateway(settings_for(backend.address))
    app.tracing = Tracing(provider)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http, exported
    finally:
        await app.shutdown()
        provider.shutdown()


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def test_each_call_is_a_span_named_by_its_procedure_with_the_service_call_its_child(
    backend: Backend,
) -> None:
    async with traced(backend) as (http, exported):
        for protocol in wire.UNARY:
            asked = wire.request(protocol, GET_USER, user_pb2.GetUserRequest(id="u-1"))
            response = await http.send(asked.send(http, {"traceparent": PARENT}))
            assert response.status_code == 200
            spans = exported.get_finished_spans()
            exported.clear()
            named = {span.name: span for span in spans}
            http_method = "GET" if protocol == wire.CONNECT_GET else "POST"
            assert set(named) == {f"{http_method} {GET_USER}", GET_USER}, protocol
            server = named[f"{http_method} {GET_USER}"]
            assert server.kind is SpanKind.SERVER
            assert server.attributes is not None
            assert server.attributes["http.route"] == GET_USER
            assert server.attributes["http.request.method"] == http_method
            assert server.attributes["http.response.status_code"] == 200
            assert server.attributes["url.path"] == GET_USER
            assert server.context.trace_id == int(TRACE_ID, 16)  # the page's trace goes on
            call = named[GET_USER]
            assert call.kind is SpanKind.CLIENT
            assert call.parent is not None
            assert call.parent.span_id == server.context.span_id


async def test_a_5xx_of_a_connect_call_is_an_error_span_and_a_4xx_is_not(
    backend: Backend,
) -> None:
    unavailable = f"code-{grpc.StatusCode.UNAVAILABLE.value[0]}"
    async with traced(backend) as (http, exported):
        assert (await get_user(http, wire.CONNECT_JSON, unavailable)).http_status == 503
        assert (await get_user(http, wire.CONNECT_JSON, "code-5")).http_status == 404
        assert (await http.put(GET_USER, content=b"{}")).status_code == 405
    servers = [s for s in exported.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == [f"POST {GET_USER}", f"POST {GET_USER}", f"PUT {GET_USER}"]
    failed, missing, wrong = servers
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "503"
    assert missing.status.status_code is StatusCode.UNSET
    assert wrong.attributes is not None
    assert wrong.attributes["http.route"] == GET_USER


async def test_a_grpc_web_error_under_a_200_is_traced_by_its_code(backend: Backend) -> None:
    unavailable = f"code-{grpc.StatusCode.UNAVAILABLE.value[0]}"
    async with traced(backend) as (http, exported):
        assert (await get_user(http, wire.GRPC_WEB, unavailable)).code == 14
        assert (await get_user(http, wire.GRPC_WEB, "code-5")).code == 5
    servers = [s for s in exported.get_finished_spans() if s.kind is SpanKind.SERVER]
    failed, missing = servers
    for span, code in ((failed, 14), (missing, 5)):
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200  # what went on the wire
        assert span.attributes["rpc.grpc.status_code"] == code
        assert span.attributes["rpc.service"] == "shop.user.v1.UserService"
        assert span.attributes["rpc.method"] == "GetUser"
    assert failed.status.status_code is StatusCode.ERROR
    assert missing.status.status_code is StatusCode.UNSET


async def test_streams_are_spans_of_their_procedure_too(backend: Backend) -> None:
    ends = user_pb2.WatchUsersRequest(start_revision=5)
    async with traced(backend) as (http, exported):
        for protocol in wire.STREAMING:
            asked = wire.request(protocol, WATCH_USERS, ends, streaming=True).send(http)
            response = await http.send(asked)
            ended = wire.read(protocol, user_pb2.WatchUsersResponse, response, response.content)
            assert ended.code == grpc.StatusCode.ABORTED.value[0]
        await asyncio.sleep(0)
    servers = [s for s in exported.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == [f"POST {WATCH_USERS}"] * len(wire.STREAMING)
    assert all(
        s.attributes is not None and s.attributes["http.route"] == WATCH_USERS for s in servers
    )
