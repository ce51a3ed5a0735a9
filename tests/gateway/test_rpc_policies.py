"""The RPC protocols (Connect, gRPC-Web) under the REST routes' policies: the per-caller rate
limit and stream cap (one count per caller, whichever way it calls), the connection cap,
identity in jwt mode and CORS, each answered in the protocol's own form. One table over the
protocols (`rpc_wire`), on a real gateway over the fake backends (the limits, CORS) or over
a user service that verifies tokens itself (identity).

The REST side of each policy is tested in `test_caller_limits`, `test_connection_limits`,
`tests/security` and `tests/e2e/test_gateway_http`; these are their counterparts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import pathlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import httpx
import pytest

from gateway import RunningGateway, Settings, start
from gateway.config import services_of
from shop.user.v1 import user_pb2
from shop_common.serving import Caller
from tests import tokens
from tests.gateway import rpc_wire as wire
from tests.gateway.conftest import MAX_BODY_BYTES, Backend, settings_for
from tests.gateway.rawhttp import connection, exchange
from tests.gateway.test_connection_limits import open_connections
from tests.gateway.test_refusals import assert_status_body
from tests.security.system import Issuer, RecordingUsers, recording_user_svc
from tests.support import eventually

GET_USER = "/shop.user.v1.UserService/GetUser"
CREATE_USER = "/shop.user.v1.UserService/CreateUser"
WATCH_USERS = "/shop.user.v1.UserService/WatchUsers"
USER = "/v1/users/u1"
WATCH = "/v1/users:watch"
FOREVER = user_pb2.WatchUsersRequest(start_revision=1, progress_notify=True)
"""The fake backend's watch that sends a bookmark every 10 ms until cancelled."""
RESOURCE_EXHAUSTED, UNAUTHENTICATED = 8, 16
ORIGIN = "https://app.example"


def as_(subject: str) -> dict[str, str]:
    return {"authorization": f"Bearer {subject}"}


@contextlib.asynccontextmanager
async def gateway_with(backend: Backend, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    running: RunningGateway = await start(settings_for(backend.address, **overrides))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            yield http
    finally:
        await running.stop()


async def get_user(
    http: httpx.AsyncClient, protocol: str, headers: dict[str, str], user: str = "u1"
) -> wire.Outcome:
    request = user_pb2.GetUserRequest(id=user)
    return await wire.call(http, protocol, GET_USER, request, user_pb2.GetUserResponse, headers)


def assert_refused(outcome: wire.Outcome, protocol: str, http_status: int) -> None:
    """An error in the protocol's form: Connect unary's HTTP status is the code's; a Connect
    stream and gRPC-Web answer 200, gRPC-Web's code in the headers too (trailers-only)."""
    if wire.is_grpc_web(protocol):
        assert outcome.http_status == 200
        assert outcome.headers["grpc-status"] == str(outcome.code)
        assert outcome.messages == []
    elif protocol == wire.CONNECT_STREAM:
        assert outcome.http_status == 200
    else:
        assert outcome.http_status == http_status


# -- the per-caller rate limit ----------------------------------------------------------------


async def test_a_caller_over_its_rate_is_refused_resource_exhausted_and_rest_shares_its_bucket(
    backend: Backend,
) -> None:
    async with gateway_with(backend, rate_limit_per_second=1, rate_limit_burst=3) as http:
        for protocol in wire.UNARY:  # a caller of its own each: a full bucket
            alice, bob = as_(f"alice-{protocol}"), as_(f"bob-{protocol}")
            rest = await http.get(USER, headers=alice)
            assert rest.headers["ratelimit"].startswith('"default";r=2;')
            for left in (1, 0):
                served = await get_user(http, protocol, alice)
                assert served.code == 0, (protocol, served)
                assert served.headers["ratelimit-policy"] == '"default";q=3;w=3'
                assert served.headers["ratelimit"].startswith(f'"default";r={left};t=')
            refused = await get_user(http, protocol, alice)
            assert (refused.code, refused.reason) == (RESOURCE_EXHAUSTED, "RATE_LIMITED"), (
                protocol,
                refused,
            )
            assert_refused(refused, protocol, 429)
            assert refused.error_info.metadata == {
                "limit_per_second": "1",
                "burst": "3",
                "retry_after_seconds": "1",
            }
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["ratelimit"].startswith('"default";r=0;t=')
            assert refused.headers["ratelimit-policy"] == '"default";q=3;w=3'
            # The same bucket for REST; another caller has its own.
            assert (await http.get(USER, headers=alice)).status_code == 429
            assert (await get_user(http, protocol, bob)).code == 0
    reached = [call for call in backend.recorder.calls if call.rpc == "GetUser"]
    # Per protocol, alice's 3 and bob's 1: the refused never reached the backend.
    assert len(reached) == 4 * len(wire.UNARY)


@pytest.mark.parametrize("protocol", [wire.CONNECT_JSON, wire.GRPC_WEB])
async def test_refused_requests_to_a_procedure_are_counted_too(
    backend: Backend, protocol: str
) -> None:
    """As a REST route's 400, 405 and 415 are: probing is requests."""
    async with gateway_with(backend, rate_limit_per_second=1, rate_limit_burst=3) as http:
        asked = wire.request(protocol, GET_USER, user_pb2.GetUserRequest(id="u1"))
        malformed = await http.post(
            GET_USER, headers={**asked.headers, **as_("carol")}, content=b"\x00\x00"
        )
        assert malformed.headers["ratelimit"].startswith('"default";r=2;')
        wrong_type = await http.post(
            CREATE_USER, headers={"content-type": "text/plain", **as_("carol")}, content=b"{}"
        )
        assert wrong_type.status_code == 415
        assert wrong_type.headers["ratelimit"].startswith('"default";r=1;')
        wrong_method = await http.put(GET_USER, headers=as_("carol"), content=b"{}")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["ratelimit"].startswith('"default";r=0;')
        assert (await get_user(http, protocol, as_("carol"))).code == RESOURCE_EXHAUSTED
    assert not backend.recorder.calls


# -- the per-caller stream cap ----------------------------------------------------------------


async def open_stream(
    http: httpx.AsyncClient, protocol: str, subject: str, held: contextlib.AsyncExitStack
) -> httpx.Response:
    """A watch that goes on (its first message read), closed when `held` closes."""
    asked = wire.request(protocol, WATCH_USERS, FOREVER, streaming=True).send(http, as_(subject))
    response = await http.send(asked, stream=True)
    held.push_async_callback(response.aclose)
    assert response.status_code == 200
    chunks = cast(AsyncGenerator[bytes], response.aiter_raw())
    # Held too: a reader dropped and collected would close the connection, ending the stream.
    held.push_async_callback(chunks.aclose)
    chunk = await anext(chunks)
    if protocol == wire.GRPC_WEB_TEXT:
        chunk = base64.b64decode(chunk[:8])
    assert chunk[0] == 0, f"not a message: {chunk!r}"  # a message's flags, not an error's
    return response


async def refused_stream(http: httpx.AsyncClient, protocol: str, subject: str) -> wire.Outcome:
    asked = wire.request(protocol, WATCH_USERS, FOREVER, streaming=True).send(http, as_(subject))
    response = await http.send(asked)
    return wire.read(protocol, user_pb2.WatchUsersResponse, response, response.content)


async def open_rest_watch(
    http: httpx.AsyncClient, subject: str, held: contextlib.AsyncExitStack
) -> None:
    params = {"startRevision": "1", "progressNotify": "true"}
    response = await held.enter_async_context(
        http.stream("GET", WATCH, params=params, headers=as_(subject))
    )
    assert response.status_code == 200


@pytest.mark.parametrize("protocol", wire.STREAMING)
async def test_a_caller_holds_only_so_many_streams_rest_watches_and_rpc_streams_together(
    backend: Backend, protocol: str
) -> None:
    async with (
        gateway_with(backend, max_streams_per_caller=2) as http,
        contextlib.AsyncExitStack() as held,
    ):
        await open_rest_watch(http, "alice", held)
        rpc_stream = await open_stream(http, protocol, "alice", held)
        refused = await refused_stream(http, protocol, "alice")
        assert (refused.code, refused.reason) == (RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
        assert_refused(refused, protocol, 429)
        assert refused.error_info.metadata == {"max_streams_per_caller": "2"}
        capped = await http.get(
            WATCH,
            params={"startRevision": "1", "progressNotify": "true"},
            headers=as_("alice"),
        )
        assert capped.status_code == 429
        # Another caller streams; the capped one's unary calls go on.
        async with contextlib.AsyncExitStack() as other:
            await open_stream(http, protocol, "bob", other)
        assert (await get_user(http, wire.CONNECT_JSON, as_("alice"))).code == 0
        # The RPC stream leaves: its slot comes back as the gateway sees it.
        await rpc_stream.aclose()

        async def streams_again() -> bool:
            async with contextlib.AsyncExitStack() as again:
                await open_stream(http, protocol, "alice", again)
            return True

        await eventually(streams_again, 5, "an RPC stream admitted again")


async def test_an_rpc_stream_that_ends_by_itself_gives_its_slot_back(backend: Backend) -> None:
    ends = user_pb2.WatchUsersRequest(start_revision=5)  # three events, then ABORTED
    async with gateway_with(backend, max_streams_per_caller=1) as http:
        for protocol in (*wire.STREAMING, *wire.STREAMING):
            asked = wire.request(protocol, WATCH_USERS, ends, streaming=True).send(
                http, as_("alice")
            )
            response = await http.send(asked)
            ended = wire.read(protocol, user_pb2.WatchUsersResponse, response, response.content)
            assert (ended.code, ended.reason, len(ended.messages)) == (10, "COMPACTED", 3)


async def test_a_body_over_the_limit_is_refused_before_any_call(backend: Backend) -> None:
    huge = user_pb2.GetUserRequest(id="x" * (MAX_BODY_BYTES + 1))
    async with gateway_with(backend) as http:
        for protocol in wire.POSTED_UNARY:
            refused = await wire.call(http, protocol, GET_USER, huge, user_pb2.GetUserResponse)
            assert (refused.code, refused.reason) == (RESOURCE_EXHAUSTED, "BODY_TOO_LARGE"), (
                protocol,
                refused,
            )
            assert_refused(refused, protocol, 413)  # REST's, and Connect's own refusal status
            assert refused.error_info.metadata == {"limit": str(MAX_BODY_BYTES)}
    assert not backend.recorder.calls


@pytest.mark.parametrize("protocol", wire.STREAMING)
async def test_stopping_the_gateway_ends_open_rpc_streams_with_unavailable(
    backend: Backend, protocol: str
) -> None:
    running = await start(settings_for(backend.address))
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            asked = wire.request(protocol, WATCH_USERS, FOREVER, streaming=True).send(http)
            async with contextlib.AsyncExitStack() as held:
                response = await http.send(asked, stream=True)
                held.push_async_callback(response.aclose)
                chunks = cast(AsyncGenerator[bytes], response.aiter_raw())
                held.push_async_callback(chunks.aclose)
                body = [await anext(chunks)]
                stopping = asyncio.create_task(running.stop())
                body += [chunk async for chunk in chunks]
                await stopping
    finally:
        await running.stop()
    ended = wire.read(protocol, user_pb2.WatchUsersResponse, response, b"".join(body))
    assert (ended.code, ended.reason) == (14, "GATEWAY_STOPPING")  # UNAVAILABLE: retry
    assert ended.messages  # the bookmarks before it
    await asyncio.wait_for(backend.recorder.cancelled.wait(), timeout=10)


# -- the connection cap -----------------------------------------------------------------------


async def test_at_the_connection_cap_an_rpc_call_gets_503_and_is_served_once_one_leaves(
    backend: Backend,
) -> None:
    # The cap is below HTTP: the refusal is the HTTP server's 503 (a Connect or gRPC-Web
    # client reads UNAVAILABLE from the status), before any protocol is known.
    running = await start(settings_for(backend.address, max_connections=1))
    try:
        body = b'{"id": "u1"}'
        call = (
            b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (GET_USER.encode(), len(body), body)
        )
        async with connection(running) as (_, writer):
            assert await open_connections(running, 1) == 1
            refused = await exchange(running, call)
            assert_status_body(refused, 503, 14, "TOO_MANY_CONNECTIONS")
            assert refused.headers["retry-after"] == "1"
            writer.close()
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            for _ in range(50):  # the gateway sees the close a moment later
                served = await http.post(
                    GET_USER,
                    content=body,
                    headers=wire.request(
                        wire.CONNECT_JSON, GET_USER, user_pb2.GetUserRequest()
                    ).headers,
                )
                if served.status_code != 503:
                    break
                await asyncio.sleep(0.05)
        assert served.status_code == 200, served.text
    finally:
        await running.stop()
    assert [call.rpc for call in backend.recorder.calls] == ["GetUser"]


# -- identity in jwt mode ---------------------------------------------------------------------


@pytest.fixture
async def verified(
    tmp_path: pathlib.Path,
) -> AsyncIterator[tuple[httpx.AsyncClient, Issuer, RecordingUsers]]:
    """A gateway in jwt mode before a user service that verifies tokens itself and notes
    who called."""
    issuer = Issuer(tmp_path / "jwks.json")
    security = issuer.security()
    async with recording_user_svc(security) as (users, recorder):
        address = f"127.0.0.1:{users.port}"
        settings = Settings(
            backends=services_of(user_pb2.DESCRIPTOR, address),
            listen="127.0.0.1:0",
            grace_seconds=1,
            security=security,
            sse_heartbeat_seconds=0.05,  # a silent watch starts at once
        )
        running = await start(settings)
        try:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                yield http, issuer, recorder
        finally:
            await running.stop()


async def test_a_verified_token_reaches_the_service_as_its_subject(
    verified: tuple[httpx.AsyncClient, Issuer, RecordingUsers],
) -> None:
    http, issuer, recorder = verified
    for protocol in wire.UNARY:
        served = await get_user(http, protocol, as_(issuer.token("alice")))
        assert served.code == 0, (protocol, served)
        assert recorder.callers[-1] == ("GetUser", Caller(subject="alice")), protocol
        # Without a token the call goes on, anonymous: the service decides (as for REST).
        assert (await get_user(http, protocol, {})).code == 0
        assert recorder.callers[-1] == ("GetUser", Caller(subject=None)), protocol


async def test_a_stream_is_opened_as_the_tokens_subject(
    verified: tuple[httpx.AsyncClient, Issuer, RecordingUsers],
) -> None:
    http, issuer, recorder = verified
    request = user_pb2.WatchUsersRequest(start_revision=1)
    for protocol in wire.STREAMING:
        recorder.callers.clear()
        recorder.called.clear()
        asked = wire.request(protocol, WATCH_USERS, request, streaming=True).send(
            http, as_(issuer.admin("root"))
        )
        async with contextlib.AsyncExitStack() as held:
            response = await http.send(asked, stream=True)
            held.push_async_callback(response.aclose)
            assert response.status_code == 200
            await asyncio.wait_for(recorder.called.wait(), 5)
        assert recorder.callers == [("WatchUsers", Caller(subject="root", admin=True))], protocol


def _bad_tokens(issuer: Issuer) -> dict[str, tuple[str, str, str]]:
    """Authorization values the gateway refuses: (value, reason, challenge's start)."""
    invalid = 'Bearer error="invalid_token"'
    return {
        "not a jwt": ("Bearer not-a-jwt", "TOKEN_INVALID", invalid),
        "another key": (
            f"Bearer {tokens.new_signing_key().sign(tokens.claims('bob'))}",
            "TOKEN_KEY_UNKNOWN",
            invalid,
        ),
        "expired": (
            f"Bearer {issuer.token('bob', exp=1, iat=0)}",
            "TOKEN_EXPIRED",
            invalid,
        ),
        "not a bearer": ("Basic YTpi", "MALFORMED_AUTHORIZATION", 'Bearer error="invalid_request"'),
    }


async def test_a_bad_token_is_unauthenticated_with_www_authenticate_before_any_call(
    verified: tuple[httpx.AsyncClient, Issuer, RecordingUsers],
) -> None:
    http, issuer, recorder = verified
    bad = _bad_tokens(issuer).values()
    for protocol, streaming in [(p, False) for p in wire.UNARY] + [
        (p, True) for p in wire.STREAMING
    ]:
        for value, reason, challenge in bad:
            headers = {"authorization": value}
            if streaming:
                refused = await refused_stream_with(http, protocol, headers)
            else:
                refused = await get_user(http, protocol, headers)
            assert (refused.code, refused.reason) == (UNAUTHENTICATED, reason), (protocol, refused)
            assert_refused(refused, protocol, 401)
            assert refused.headers["www-authenticate"].startswith(challenge)
            assert "ratelimit" not in refused.headers  # nobody's bucket: not a caller yet
    assert recorder.callers == []


async def refused_stream_with(
    http: httpx.AsyncClient, protocol: str, headers: dict[str, str]
) -> wire.Outcome:
    request = user_pb2.WatchUsersRequest(start_revision=1)
    asked = wire.request(protocol, WATCH_USERS, request, streaming=True).send(http, headers)
    response = await http.send(asked)
    return wire.read(protocol, user_pb2.WatchUsersResponse, response, response.content)


# -- CORS -------------------------------------------------------------------------------------

RPC_HEADERS = (
    "connect-protocol-version, connect-timeout-ms, x-grpc-web, x-user-agent, grpc-timeout, "
    "content-type"
)
"""What @connectrpc's Connect and gRPC-Web transports send, as a preflight names them."""


@pytest.fixture
async def cors(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_with(backend, cors_origins=(ORIGIN,)) as http:
        yield http


@pytest.mark.parametrize(
    ("procedure", "methods"),
    [
        (GET_USER, "GET, OPTIONS, POST"),  # NO_SIDE_EFFECTS: Connect's GET too
        (CREATE_USER, "OPTIONS, POST"),
        (WATCH_USERS, "OPTIONS, POST"),
    ],
)
async def test_a_preflight_for_a_procedure_grants_the_protocols_headers(
    cors: httpx.AsyncClient, procedure: str, methods: str
) -> None:
    granted = await cors.options(
        procedure,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": RPC_HEADERS,
        },
    )
    assert granted.status_code == 204, granted.text
    assert granted.headers["access-control-allow-origin"] == ORIGIN
    assert granted.headers["access-control-allow-methods"] == methods
    assert granted.headers["access-control-allow-headers"] == RPC_HEADERS
    assert int(granted.headers["access-control-max-age"]) > 0
    assert "ratelimit" not in granted.headers  # preflights are not counted


async def test_a_preflight_for_get_on_a_method_with_side_effects_is_refused(
    cors: httpx.AsyncClient,
) -> None:
    refused = await cors.options(
        CREATE_USER, headers={"origin": ORIGIN, "access-control-request-method": "GET"}
    )
    assert refused.status_code == 405
    assert refused.headers["allow"] == "OPTIONS, POST"
    other = await cors.options(
        GET_USER,
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("protocol", wire.UNARY)
async def test_responses_and_errors_expose_the_grpc_status_headers_to_the_page(
    cors: httpx.AsyncClient, protocol: str
) -> None:
    for user, code in (("u1", 0), ("code-5", 5)):
        outcome = await get_user(cors, protocol, {"origin": ORIGIN}, user)
        assert outcome.code == code
        assert outcome.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip() for h in outcome.headers["access-control-expose-headers"].split(",")}
        assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
        assert {"x-request-id", "ratelimit", "www-authenticate", "retry-after"} <= exposed
        varies = {v.strip() for v in outcome.headers["vary"].split(",")}
        assert "Origin" in varies  # a shared cache keeps one origin's answer from another
    elsewhere = await get_user(cors, protocol, {"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_a_post_a_page_could_send_without_a_preflight_is_refused(
    cors: httpx.AsyncClient, backend: Backend
) -> None:
    # text/plain and forms need no preflight: a procedure takes neither.
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        refused = await cors.post(
            CREATE_USER,
            content=b'{"user": {"email": "csrf@example.com"}}',
            headers={"content-type": content_type, "origin": "https://evil.example"},
        )
        assert refused.status_code == 415
    assert not backend.recorder.calls
