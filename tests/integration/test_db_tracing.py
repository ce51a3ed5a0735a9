"""The unit of work's span, on each backend: a child of the span current where it was
submitted, current itself in the database thread while the unit runs (what the unit logs
or traces there is of the request), `db.system` the backend's; a database error sets its
status, a refusal the unit raises does not; a unit submitted outside any trace (the feed's
polling, housekeeping) makes no span."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.engine import Connection

from shop_common.storage import Database
from shop_common.telemetry import Tracing


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    database_url: str, exported: InMemorySpanExporter
) -> AsyncIterator[tuple[Database, Tracing]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracing = Tracing(provider)
    db = Database(database_url, tracing=tracing)
    try:
        yield db, tracing
    finally:
        await db.close()
        provider.shutdown()


async def test_a_unit_is_a_span_of_the_trace_current_in_its_database_thread(
    traced: tuple[Database, Tracing], exported: InMemorySpanExporter
) -> None:
    db, tracing = traced
    seen: list[trace.SpanContext] = []

    def unit(conn: Connection) -> int:
        seen.append(trace.get_current_span().get_span_context())
        return int(conn.execute(sa.text("SELECT 1")).scalar_one())

    with tracing.tracer.start_as_current_span("request") as request:
        assert await db.write(unit) == 1
        assert await db.read(unit) == 1

    spans = [s for s in exported.get_finished_spans() if s.name != "request"]
    assert [s.name for s in spans] == ["db write", "db read"]
    system = "postgresql" if db.is_postgres else "sqlite"
    for span, kind, context in zip(spans, ("write", "read"), seen, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.attributes == {"db.system": system, "shop.unit_of_work.kind": kind}
        assert span.status.status_code is StatusCode.UNSET
        assert context.span_id == span.context.span_id  # current in the database thread


async def test_a_database_error_sets_the_status_a_refusal_does_not(
    traced: tuple[Database, Tracing], exported: InMemorySpanExporter
) -> None:
    db, tracing = traced

    def broken(conn: Connection) -> None:
        conn.execute(sa.text("SELECT * FROM no_such_table"))

    def refused(conn: Connection) -> None:
        raise LookupError("a domain refusal rolls the unit back")

    with tracing.tracer.start_as_current_span("request"):
        with pytest.raises(sa.exc.DBAPIError):
            await db.write(broken)
        with pytest.raises(LookupError):
            await db.write(refused)

    failed, rolled_back = [s for s in exported.get_finished_spans() if s.name == "db write"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] in ("OperationalError", "ProgrammingError")
    assert rolled_back.status.status_code is StatusCode.UNSET


async def test_a_unit_outside_any_trace_makes_no_span(
    traced: tuple[Database, Tracing], exported: InMemorySpanExporter
) -> None:
    db, _ = traced
    seen: list[bool] = []

    def unit(conn: Connection) -> None:
        seen.append(trace.get_current_span().get_span_context().is_valid)

    await db.write(unit)
    await db.read(unit)

    assert seen == [False, False]
    assert exported.get_finished_spans() == ()
