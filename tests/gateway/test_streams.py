"""Server streaming as NDJSON and as Server-Sent Events, over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import httpx
import orjson
import pytest
from google.api import http_pb2
from grpc_health.v1 import health_pb2

from gateway import start
from gateway.headers import RequestHeaders
from gateway.routes import route_for
from gateway.streams import (
    NDJSON_FORMAT,
    SSE_FORMAT,
    Revisions,
    negotiate,
    revisions_of,
    writer_for,
)
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2, user_pb2_grpc
from tests.gateway.conftest import SLACK, Backend, settings_for
from tests.gateway.fakes import Context, FakeUsers, Recorder, abort, echo_metadata, rich_status

WATCH = "/v1/users:watch"


async def test_stream_relays_each_message_then_the_error_that_ended_it(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    async with client.stream(
        "GET", WATCH, params={"startRevision": "10"}, headers={"Grpc-Metadata-X-Echo": "w"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["grpc-metadata-x-echo"] == "w"
        lines = [orjson.loads(line) async for line in response.aiter_lines() if line]
    results = [line["result"] for line in lines[:-1]]
    assert [r["headerRevision"] for r in results] == ["11", "12", "13"]
    assert results[0]["events"] == [
        {
            "type": "TYPE_PUT",
            "user": {"id": "u1", "email": "", "displayName": "", "etag": "", "subject": ""},
            "revision": "11",
        }
    ]
    assert results[0]["compactRevision"] == "0"
    assert results[0]["progressNotify"] is False
    error = lines[-1]["error"]
    assert error["code"] == 10  # ABORTED
    assert error["message"] == "compacted"
    assert error["details"][0]["reason"] == "COMPACTED"
    request = backend.recorder.last("WatchUsers")
    assert request.metadata["x-echo"] == "w"
    assert request.time_remaining is None  # a watch has no default deadline


async def test_stream_failing_before_its_first_message_gets_the_real_status(
    client: httpx.AsyncClient,
) -> None:
    for path in (WATCH, "/v1/orders:watch"):
        response = await client.get(path)
        assert response.status_code == 501, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == 12  # UNIMPLEMENTED


async def test_stream_takes_grpc_timeout(client: httpx.AsyncClient, backend: Backend) -> None:
    async with client.stream(
        "GET", WATCH, params={"startRevision": "1"}, headers={"Grpc-Timeout": "20S"}
    ) as response:
        await response.aread()
    remaining = backend.recorder.last("WatchUsers").time_remaining
    assert remaining is not None
    assert 0 < remaining <= 20 + SLACK


async def test_client_leaving_cancels_the_backend_stream(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    params = {"startRevision": "1", "progressNotify": "true"}
    async with client.stream("GET", WATCH, params=params) as response:
        lines = response.aiter_lines()
        first = await anext(lines)
        assert orjson.loads(first) == {
            "result": {
                "events": [],
                "headerRevision": "0",
                "compactRevision": "0",
                "progressNotify": True,
                "fragment": False,
            }
        }
    # Leaving the block closes the connection mid-stream.
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)


async def test_stopping_the_gateway_ends_open_streams_with_unavailable(backend: Backend) -> None:
    running = await start(settings_for(backend.address))
    try:
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
            http.stream(
                "GET", WATCH, params={"startRevision": "1", "progressNotify": "1"}
            ) as response,
        ):
            lines = response.aiter_lines()
            assert "result" in orjson.loads(await anext(lines))
            stopping = asyncio.create_task(running.stop())
            rest = [orjson.loads(line) async for line in lines if line]
            await stopping
    finally:
        await running.stop()
    assert rest[-1]["error"]["code"] == 14  # UNAVAILABLE
    assert rest[-1]["error"]["details"][0]["reason"] == "GATEWAY_STOPPING"
    assert all("result" in line for line in rest[:-1])
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)


# Server-Sent Events ------------------------------------------------------------------------

SSE = {"Accept": "text/event-stream"}
Block = dict[str, str]
"""One block of an event stream (up to a blank line): field name → value; a comment is
under ":"."""


def blocks(text: str) -> list[Block]:
    """The blocks of an event stream as sent (no `\\r`: the gateway writes `\\n` only)."""
    found = []
    for chunk in text.split("\n\n"):
        if not chunk:
            continue
        block: Block = {}
        for line in chunk.split("\n"):
            name, _, value = line.partition(":")
            block[name or ":"] = value.removeprefix(" ")
        found.append(block)
    return found


class Reader:
    """Reads an event stream that goes on, a block at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._text = ""

    async def blocks(self, count: int) -> list[Block]:
        """The first `count` complete blocks."""
        while len(found := blocks(self._text.rpartition("\n\n")[0])) < count:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                raise AssertionError(f"the stream ended after {self._text!r}")
            self._text += chunk
        return found[:count]

    async def through_events(self, count: int) -> list[Block]:
        """The blocks up to the `count`th event."""
        found: list[Block] = []
        while len(events(found)) < count:
            found = await self.blocks(len(found) + 1)
        return found


async def read_blocks(response: httpx.Response, count: int) -> list[Block]:
    return await Reader(response).blocks(count)


def start_revision(backend: Backend) -> int:
    """The `start_revision` the backend's last watch was asked for."""
    request = backend.recorder.last("WatchUsers").request
    assert isinstance(request, user_pb2.WatchUsersRequest)
    return request.start_revision


def events(found: list[Block]) -> list[Block]:
    return [block for block in found if "data" in block]


def user_event(revision: int, *, fragment: bool = False) -> user_pb2.WatchUsersResponse:
    event = user_pb2.UserEvent(
        type=user_pb2.UserEvent.TYPE_PUT, user=user_pb2.User(id=f"u{revision}"), revision=revision
    )
    return user_pb2.WatchUsersResponse(events=[event], header_revision=revision, fragment=fragment)


Step = user_pb2.WatchUsersResponse | float | grpc.Status
"""A scripted watch: a response to send, seconds to wait, or the status to end with."""


class ScriptedUsers(FakeUsers):
    """`WatchUsers` plays `script`, then waits until it is cancelled."""

    def __init__(self, recorder: Recorder, script: tuple[Step, ...]) -> None:
        super().__init__(recorder)
        self.script = script

    async def WatchUsers(
        self, request: user_pb2.WatchUsersRequest, context: Context
    ) -> AsyncIterator[user_pb2.WatchUsersResponse]:
        self.recorder.record("WatchUsers", request, context)
        await echo_metadata(context)
        try:
            for step in self.script:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, grpc.Status):
                    await abort(context, step)
                else:
                    yield step
            await asyncio.Event().wait()
        finally:
            self.recorder.cancelled.set()


@contextlib.asynccontextmanager
async def scripted(
    *script: Step, heartbeat: float = 10.0
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    """A gateway in front of `ScriptedUsers`, with SSE heartbeats every `heartbeat` s."""
    recorder = Recorder()
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(ScriptedUsers(recorder, script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        settings = settings_for(f"127.0.0.1:{port}", sse_heartbeat_seconds=heartbeat)
        running = await start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                yield http, recorder
        finally:
            await running.stop()
    finally:
        await server.stop(None)


async def test_sse_sends_each_message_as_an_event_with_its_revision_as_id_then_the_error(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    headers = {**SSE, "Grpc-Metadata-X-Echo": "s"}
    async with client.stream(
        "GET", WATCH, params={"startRevision": "10"}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["vary"] == "accept"
        assert response.headers["grpc-metadata-x-echo"] == "s"
        text = await response.aread()
    found = blocks(text.decode())
    assert found[0] == {"retry": "1000"}
    assert [(b.get("id"), b.get("event")) for b in found[1:]] == [
        ("11", None),
        ("12", None),
        ("13", None),
        (None, "error"),
    ]
    first = orjson.loads(found[1]["data"])  # the same JSON as NDJSON's `result`
    assert first["headerRevision"] == "11"
    assert first["events"] == [
        {
            "type": "TYPE_PUT",
            "user": {"id": "u1", "email": "", "displayName": "", "etag": "", "subject": ""},
            "revision": "11",
        }
    ]
    error = orjson.loads(found[-1]["data"])
    assert error["code"] == 10  # ABORTED
    assert error["message"] == "compacted"
    assert error["details"][0]["reason"] == "COMPACTED"
    assert start_revision(backend) == 10


async def test_sse_event_lines_are_exactly_as_the_standard_frames_them(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(WATCH, params={"startRevision": "1"}, headers=SSE)
    text = response.text
    assert text.startswith("retry: 1000\n\nid: 2\ndata: {")
    assert text.endswith("}\n\n")
    assert "\r" not in text
    assert "\n\nevent: error\ndata: {" in text
    for block in text.removesuffix("\n\n").split("\n\n")[1:]:
        lines = block.split("\n")
        assert lines[-1].startswith("data: ")  # one line of JSON per event
        assert all(line.startswith(("id: ", "event: ")) for line in lines[:-1])


async def test_a_fragment_has_no_id_and_the_last_fragment_has_its_revision() -> None:
    multi = user_pb2.WatchUsersResponse(
        events=[*user_event(7).events, *user_event(8).events], header_revision=8
    )
    async with (
        scripted(
            user_event(5),
            user_event(6, fragment=True),
            user_event(6, fragment=True),
            user_event(6),
            multi,
        ) as (http, _),
        http.stream("GET", WATCH, params={"startRevision": "5"}, headers=SSE) as response,
    ):
        found = events(await read_blocks(response, 6))
    assert [b.get("id") for b in found] == ["5", None, None, "6", "8"]
    assert [orjson.loads(b["data"])["fragment"] for b in found] == [
        False,
        True,
        True,
        False,
        False,
    ]


async def test_a_progress_notification_has_the_header_revision_as_id() -> None:
    progress = user_pb2.WatchUsersResponse(progress_notify=True, header_revision=9)
    async with (
        scripted(user_event(3), progress) as (http, _),
        http.stream("GET", WATCH, params={"startRevision": "3"}, headers=SSE) as response,
    ):
        found = events(await read_blocks(response, 3))
    assert [b.get("id") for b in found] == ["3", "9"]
    assert orjson.loads(found[1]["data"])["progressNotify"] is True


async def test_a_compacted_response_has_no_id_and_the_error_follows() -> None:
    compacted = user_pb2.WatchUsersResponse(compact_revision=4, header_revision=9)
    gone = rich_status(grpc.StatusCode.OUT_OF_RANGE, "compacted", "REVISION_COMPACTED")
    async with scripted(compacted, gone) as (http, _):
        response = await http.get(WATCH, params={"startRevision": "1"}, headers=SSE)
    found = blocks(response.text)
    assert response.status_code == 200
    assert [(b.get("id"), b.get("event")) for b in found[1:]] == [(None, None), (None, "error")]
    assert orjson.loads(found[1]["data"])["compactRevision"] == "4"
    assert orjson.loads(found[2]["data"])["code"] == 11  # OUT_OF_RANGE


async def test_an_idle_stream_gets_heartbeats_between_messages() -> None:
    async with (
        scripted(user_event(1), 0.4, user_event(2), heartbeat=0.05) as (http, _),
        http.stream("GET", WATCH, params={"startRevision": "1"}, headers=SSE) as response,
    ):
        found = await Reader(response).through_events(2)
    kinds = ["id" if "id" in b else ":" if ":" in b else "retry" for b in found]
    assert kinds[:2] == ["retry", "id"]
    assert kinds[-1] == "id"
    between = kinds[2:-1]
    assert len(between) >= 2, found
    assert set(between) == {":"}
    assert all(b == {":": "heartbeat"} for b in found[2:-1])


async def test_no_heartbeat_while_messages_flow(backend: Backend) -> None:
    running = await start(settings_for(backend.address, sse_heartbeat_seconds=1.0))
    params = {"startRevision": "1", "progressNotify": "true"}  # a response every 10 ms
    try:
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
            http.stream("GET", WATCH, params=params, headers=SSE) as response,
        ):
            found = await read_blocks(response, 21)
    finally:
        await running.stop()
    assert found[0] == {"retry": "1000"}
    assert all("data" in block for block in found[1:])


async def test_a_stream_silent_from_the_start_opens_with_heartbeats() -> None:
    async with (
        scripted(0.4, user_event(1), heartbeat=0.05) as (http, _),
        http.stream("GET", WATCH, params={"startRevision": "1"}, headers=SSE) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        reader = Reader(response)
        assert await reader.blocks(2) == [{"retry": "1000"}, {":": "heartbeat"}]
        found = await reader.through_events(1)
    assert found[-1]["id"] == "1"


async def test_an_error_after_the_stream_opened_silent_is_an_error_event() -> None:
    failure = rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow", "WATCH_TOO_SLOW")
    async with scripted(0.3, failure, heartbeat=0.05) as (http, _):
        response = await http.get(WATCH, params={"startRevision": "1"}, headers=SSE)
    found = blocks(response.text)
    assert response.status_code == 200
    assert found[-1]["event"] == "error"
    assert orjson.loads(found[-1]["data"])["details"][0]["reason"] == "WATCH_TOO_SLOW"
    assert all(b == {":": "heartbeat"} for b in found[1:-1])


async def test_sse_failing_before_its_first_message_gets_the_real_status(
    client: httpx.AsyncClient,
) -> None:
    for path in (WATCH, "/v1/orders:watch"):
        response = await client.get(path, headers=SSE)
        assert response.status_code == 501, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == 12  # UNIMPLEMENTED


async def test_last_event_id_resumes_after_it_whatever_the_query_says(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    headers = {**SSE, "Last-Event-ID": "41"}
    response = await client.get(WATCH, params={"startRevision": "5"}, headers=headers)
    assert start_revision(backend) == 42
    assert [b["id"] for b in events(blocks(response.text)) if "id" in b] == ["43", "44", "45"]


async def test_last_event_id_zero_resumes_from_the_first_revision(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.get(WATCH, headers={**SSE, "Last-Event-ID": "0"})
    assert start_revision(backend) == 1


async def test_an_empty_last_event_id_is_no_resume(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.get(WATCH, params={"startRevision": "7"}, headers={**SSE, "Last-Event-ID": ""})
    assert start_revision(backend) == 7


async def test_ndjson_ignores_last_event_id(client: httpx.AsyncClient, backend: Backend) -> None:
    for value in ("41", "not-a-number"):
        response = await client.get(
            WATCH, params={"startRevision": "5"}, headers={"Last-Event-ID": value}
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        assert start_revision(backend) == 5


@pytest.mark.parametrize(
    "value", ["abc", "-1", "+1", "1.5", "1e3", "0x10", "1 2", "٣", "9223372036854775807", "3, 4"]
)
async def test_a_last_event_id_that_is_no_revision_is_a_bad_request(
    client: httpx.AsyncClient, backend: Backend, value: str
) -> None:
    headers = {b"accept": b"text/event-stream", b"last-event-id": value.encode()}
    response = await client.get(WATCH, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    info, bad = body["details"]
    assert info["reason"] == "INVALID_LAST_EVENT_ID"
    assert bad["fieldViolations"][0]["field"] == "Last-Event-ID"
    assert not [call for call in backend.recorder.calls if call.rpc == "WatchUsers"]


async def test_the_largest_last_event_id_still_fits_start_revision(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    await client.get(WATCH, headers={**SSE, "Last-Event-ID": str(2**63 - 2)})
    assert start_revision(backend) == 2**63 - 1


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "application/x-ndjson"),
        ("*/*", "application/x-ndjson"),
        ("application/json", "application/x-ndjson"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("text/event-stream", "text/event-stream"),
        ("text/event-stream;q=0.4, application/json;q=0.8", "application/x-ndjson"),
        ("application/json;q=0.5, text/event-stream", "text/event-stream"),
    ],
)
async def test_the_format_is_chosen_by_accept(
    client: httpx.AsyncClient, accept: str | None, content_type: str
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    response = await client.get(WATCH, params={"startRevision": "1"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "accept"


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml, text/plain", "text/event-stream;q=0, */*;q=0"]
)
async def test_an_accept_that_allows_no_stream_format_is_406(
    client: httpx.AsyncClient, backend: Backend, accept: str
) -> None:
    response = await client.get(WATCH, params={"startRevision": "1"}, headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    assert body["details"][0]["reason"] == "NOT_ACCEPTABLE"
    assert body["details"][0]["metadata"]["supported"] == "application/x-ndjson, text/event-stream"
    assert not [call for call in backend.recorder.calls if call.rpc == "WatchUsers"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, NDJSON_FORMAT),
        ("", NDJSON_FORMAT),
        ("*/*", NDJSON_FORMAT),
        ("application/*", NDJSON_FORMAT),
        ("application/json", NDJSON_FORMAT),
        ("application/x-ndjson; charset=utf-8", NDJSON_FORMAT),
        ("text/event-stream", SSE_FORMAT),
        ("Text/Event-Stream", SSE_FORMAT),
        ("text/*", SSE_FORMAT),
        ("text/event-stream, */*", SSE_FORMAT),  # named beats wildcard at equal quality
        ("application/json, text/event-stream", NDJSON_FORMAT),  # a tie: the default
        ("text/event-stream;q=0.2, */*;q=0.5", NDJSON_FORMAT),
        ("text/event-stream;q=1.0, application/x-ndjson;q=0.999", SSE_FORMAT),
        ("*/*;q=0.1, application/x-ndjson;q=0", SSE_FORMAT),
        ("application/*;q=0, application/json", NDJSON_FORMAT),
        ("*/*, text/event-stream;q=0", NDJSON_FORMAT),
        ("text/html, application/xhtml+xml, */*;q=0.8", NDJSON_FORMAT),  # a browser's
        ("nonsense", NDJSON_FORMAT),  # nothing that parses: as if absent
        ("text/event-stream;q=2", NDJSON_FORMAT),
        ("text/html", None),
        ("application/*;q=0, text/event-stream;q=0", None),
        ("*/*;q=0", None),
        ("text/event-stream;q=0.000", None),
    ],
)
def test_negotiate(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


def test_revisions_are_found_in_the_feeds_by_their_shape() -> None:
    for service, method in (
        (user_pb2.DESCRIPTOR.services_by_name["UserService"], "WatchUsers"),
        (order_pb2.DESCRIPTOR.services_by_name["OrderService"], "WatchOrders"),
    ):
        assert revisions_of(service.methods_by_name[method]) == Revisions(
            start="start_revision",
            header="header_revision",
            events="events",
            revision="revision",
            progress="progress_notify",
            fragment="fragment",
            compact="compact_revision",
        )
    users = user_pb2.DESCRIPTOR.services_by_name["UserService"]
    assert revisions_of(users.methods_by_name["ListUsers"]) is None
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert revisions_of(health.methods_by_name["Watch"]) is None


def test_a_stream_that_is_not_resumable_sends_no_ids_and_ignores_last_event_id() -> None:
    watch = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Watch"]
    route = route_for(watch, http_pb2.HttpRule(get="/v1/health:watch"))
    request = health_pb2.HealthCheckRequest(service="s")
    headers = RequestHeaders(
        [(b"accept", SSE_FORMAT.encode()), (b"last-event-id", b"not-a-revision")]
    )
    writer = writer_for(route, headers, request, settings_for("127.0.0.1:1"))
    assert request == health_pb2.HealthCheckRequest(service="s")
    response = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    assert writer.encoder is not None
    framed = writer.framing.message(response, writer.encoder.to_dict(response))
    assert framed == b'data: {"status":"SERVING"}\n\n'


async def test_a_client_leaving_an_sse_stream_cancels_the_backend_stream(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    params = {"startRevision": "1", "progressNotify": "true"}
    async with client.stream("GET", WATCH, params=params, headers=SSE) as response:
        found = await read_blocks(response, 2)
        assert found[1]["id"] == "0"  # a progress notification: its header revision
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)


async def test_stopping_the_gateway_ends_sse_streams_with_an_unavailable_event(
    backend: Backend,
) -> None:
    running = await start(settings_for(backend.address, sse_heartbeat_seconds=0.05))
    params = {"startRevision": "1", "progressNotify": "1"}
    try:
        async with (
            httpx.AsyncClient(base_url=running.url, timeout=10) as http,
            http.stream("GET", WATCH, params=params, headers=SSE) as response,
        ):
            chunks = response.aiter_text()
            text = await anext(chunks)
            stopping = asyncio.create_task(running.stop())
            text += "".join([chunk async for chunk in chunks])
            await stopping
    finally:
        await running.stop()
    found = blocks(text)
    assert found[-1]["event"] == "error"
    error = orjson.loads(found[-1]["data"])
    assert error["code"] == 14  # UNAVAILABLE
    assert error["details"][0]["reason"] == "GATEWAY_STOPPING"
    assert all("event" not in block for block in found[:-1])
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)
