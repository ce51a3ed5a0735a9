"""Traces for real: the three processes started as `make run` starts them, with the standard
`OTEL_*` variables pointing at an OTLP receiver this test runs (the collector's protocol is
gRPC: `opentelemetry.proto.collector.trace.v1.TraceService`). A REST CreateOrder sent with a
client's `traceparent` is one trace across every hop, with the process of each span as its
`service.name`; errors set the statuses the conventions say. Without the variables (or with
`OTEL_SDK_DISABLED=true`) nothing is exported."""

from __future__ import annotations

import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.e2e.conftest import ROOT, System, started_system, system_env
from tests.integration.helpers import UNKNOWN_ID

pytestmark = pytest.mark.e2e

SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT
ERROR, UNSET = trace_pb2.Status.STATUS_CODE_ERROR, trace_pb2.Status.STATUS_CODE_UNSET
ORDERS, USERS = "shop.order.v1.OrderService", "shop.user.v1.UserService"


@dataclass(frozen=True)
class Span:
    service: str
    span: trace_pb2.Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def id(self) -> bytes:
        return self.span.span_id

    @property
    def parent(self) -> bytes:
        return self.span.parent_span_id

    def attribute(self, key: str) -> object:
        for kv in self.span.attributes:
            if kv.key == key:
                value = kv.value
                kind = value.WhichOneof("value")
                return None if kind is None else getattr(value, kind)
        return None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span it is sent, with its resource's service."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    kv.value.string_value
                    for kv in resource_spans.resource.attributes
                    if kv.key == "service.name"
                )
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(Span(service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: bytes) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.span.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        servicer, server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(None)


def _without_otel(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("OTEL_")}


@pytest.fixture
def traced_system(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int]
) -> Iterator[System]:
    env = {
        **_without_otel(system_env(tmp_path_factory)),
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    with started_system([sys.executable, str(ROOT / "tools" / "run.py")], env) as running:
        yield running


def traceparent() -> tuple[bytes, bytes, str]:
    trace_id, span_id = secrets.token_bytes(16), secrets.token_bytes(8)
    return trace_id, span_id, f"00-{trace_id.hex()}-{span_id.hex()}-01"


def spans_of(receiver: Receiver, trace_id: bytes, *, until: int) -> list[Span]:
    """The trace's spans once at least `until` have arrived (and a moment for stragglers)."""
    give_up = time.monotonic() + 20
    while len(receiver.trace(trace_id)) < until:
        if time.monotonic() > give_up:
            found = [(s.service, s.name) for s in receiver.trace(trace_id)]
            pytest.fail(f"only {found} arrived")
        time.sleep(0.05)
    time.sleep(0.5)
    return receiver.trace(trace_id)


def one(spans: list[Span], service: str, name: str, kind: int) -> Span:
    found = [s for s in spans if (s.service, s.name, s.span.kind) == (service, name, kind)]
    assert len(found) == 1, [(s.service, s.name, s.span.kind) for s in spans]
    return found[0]


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent == parent.id]


_ORDER_METRICS = re.compile(r"order_svc metrics on (http://\S+)")
ITEM = {"sku": "TEA-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "2"}}


def test_a_rest_create_order_is_one_trace_across_every_hop(
    traced_system: System, receiver: tuple[Receiver, int]
) -> None:
    base, spans_in = traced_system.gateway_url, receiver[0]
    user = httpx.post(f"{base}/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"})
    assert user.status_code == 201
    trace_id, client_span, header = traceparent()

    created = httpx.post(
        f"{base}/v1/orders",
        json={"userId": user.json()["id"], "items": [ITEM]},
        headers={"traceparent": header},
    )

    assert created.status_code == 201, created.text
    spans = spans_of(spans_in, trace_id, until=4)
    assert {s.service for s in spans} >= {"gateway", "order_svc"}
    http = one(spans, "gateway", "POST /v1/orders", SERVER)
    assert http.parent == client_span  # the client's span, honoured
    assert http.attribute("http.route") == "/v1/orders"
    assert http.attribute("http.request.method") == "POST"
    assert http.attribute("http.response.status_code") == 201
    assert http.span.status.code == UNSET
    call = one(spans, "gateway", f"/{ORDERS}/CreateOrder", CLIENT)
    assert call.parent == http.id
    served = one(spans, "order_svc", f"/{ORDERS}/CreateOrder", SERVER)
    assert served.parent == call.id
    assert served.attribute("rpc.grpc.status_code") == 0
    below = children(spans, served)
    writes = [s for s in below if s.name == "db write"]
    assert writes, [(s.service, s.name) for s in below]
    for write in writes:
        assert write.service == "order_svc"
        assert write.span.kind == CLIENT
        assert write.attribute("db.system") == "sqlite"
        assert write.attribute("shop.unit_of_work.kind") == "write"
    # The order service asks the user service only when its view has not seen the user yet.
    for ask in [s for s in below if s.name == f"/{USERS}/GetUser"]:
        assert ask.service == "order_svc"
        answered = one(children(spans, ask), "user_svc", f"/{USERS}/GetUser", SERVER)
        reads = children(spans, answered)
        assert [(s.service, s.name) for s in reads] == [("user_svc", "db read")]
    assert {s.span.trace_id for s in spans} == {trace_id}
    # The service's latency histogram links to the trace (an exemplar, in OpenMetrics).
    metrics = next(
        m.group(1) for line in traced_system.output if (m := _ORDER_METRICS.search(line))
    )
    scraped = httpx.get(metrics, headers={"Accept": "application/openmetrics-text"})
    exemplars = [
        line
        for line in scraped.text.splitlines()
        if line.startswith("grpc_server_handling_seconds_bucket")
        and 'grpc_method="CreateOrder"' in line
        and f'# {{trace_id="{trace_id.hex()}"}}' in line
    ]
    assert len(exemplars) == 1, scraped.text


def test_an_order_for_a_missing_user_has_error_statuses(
    traced_system: System, receiver: tuple[Receiver, int]
) -> None:
    trace_id, client_span, header = traceparent()

    refused = httpx.post(
        f"{traced_system.gateway_url}/v1/orders",
        json={"userId": UNKNOWN_ID, "items": [ITEM]},
        headers={"traceparent": header},
    )

    assert refused.status_code == 400, refused.text  # FAILED_PRECONDITION
    spans = spans_of(receiver[0], trace_id, until=6)
    http = one(spans, "gateway", "POST /v1/orders", SERVER)
    assert http.parent == client_span
    assert http.attribute("http.response.status_code") == 400
    assert http.span.status.code == UNSET  # a 4xx is the client's error, not the server's
    call = one(spans, "gateway", f"/{ORDERS}/CreateOrder", CLIENT)
    assert call.span.status.code == ERROR
    assert call.attribute("rpc.grpc.status_code") == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    served = one(spans, "order_svc", f"/{ORDERS}/CreateOrder", SERVER)
    assert served.parent == call.id
    # The server's span carries the code; by the conventions only server faults are errors.
    assert served.attribute("rpc.grpc.status_code") == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    ask = one(children(spans, served), "order_svc", f"/{USERS}/GetUser", CLIENT)
    assert ask.span.status.code == ERROR
    assert ask.attribute("rpc.grpc.status_code") == grpc.StatusCode.NOT_FOUND.value[0]
    answered = one(children(spans, ask), "user_svc", f"/{USERS}/GetUser", SERVER)
    assert answered.attribute("rpc.grpc.status_code") == grpc.StatusCode.NOT_FOUND.value[0]


def test_applying_the_user_feed_is_a_trace_of_its_own(
    traced_system: System, receiver: tuple[Receiver, int]
) -> None:
    base, spans_in = traced_system.gateway_url, receiver[0]
    trace_id, _, header = traceparent()

    created = httpx.post(
        f"{base}/v1/users",
        json={"email": f"{uuid.uuid4().hex}@example.com"},
        headers={"traceparent": header},
    )

    assert created.status_code == 201
    give_up = time.monotonic() + 20
    while True:
        applied = [s for s in spans_in.spans if s.name == "apply WatchUsers response"]
        if applied or time.monotonic() > give_up:
            break
        time.sleep(0.05)
    assert applied, "no response of the feed was applied within a span"
    root = applied[-1]
    assert root.service == "order_svc"
    assert root.parent == b""  # not linked to the write: no trace id in the public feed
    assert root.span.trace_id != trace_id
    time.sleep(0.5)
    below = [s for s in spans_in.trace(root.span.trace_id) if s.parent == root.id]
    assert [(s.name, s.attribute("shop.unit_of_work.kind")) for s in below] == [
        ("db write", "write")
    ]


def test_nothing_is_exported_when_the_sdk_is_disabled(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[Receiver, int]
) -> None:
    env = {
        **_without_otel(system_env(tmp_path_factory)),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SDK_DISABLED": "true",
    }
    _, _, header = traceparent()
    with started_system([sys.executable, str(ROOT / "tools" / "run.py")], env) as running:
        base = running.gateway_url
        user = httpx.post(f"{base}/v1/users", json={"email": f"{uuid.uuid4().hex}@example.com"})
        order = httpx.post(
            f"{base}/v1/orders",
            json={"userId": user.json()["id"], "items": [ITEM]},
            headers={"traceparent": header},
        )
        assert order.status_code == 201
        time.sleep(1.0)  # twenty export periods, had there been anything to export
    assert receiver[0].spans == []
