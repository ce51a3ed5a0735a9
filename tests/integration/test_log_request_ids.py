"""The request id on the lines a call logs, and across the hop from order_svc to user_svc:
the services' boundary takes the call's `x-request-id` (a usable one only), and the order
service sends the one it serves with its GetUser call."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from order_svc.user_client import GrpcUserDirectory
from shop.user.v1 import user_pb2
from shop_common.process import reset_request_id, set_request_id
from shop_common.process.logs import JsonFormatter
from shop_common.serving import Deadline
from tests.support import Services

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    """What the process has logged so far, as the JSON format writes it (formatted where it
    is logged, within the call, as a process's handler does)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


async def denied_list(services: Services, request_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await services.users.ListUsers(
            user_pb2.ListUsersRequest(),
            metadata=[("authorization", "Bearer alice"), ("x-request-id", request_id)],
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("req-1", "req-1"),
        ("has a space", None),
        ("x" * 129, None),
    ],
    # (gRPC itself sends no control character and nothing but ASCII in a metadata value.)
    ids=["usable", "space", "too-long"],
)
async def test_a_call_s_lines_carry_its_usable_request_id(
    services: Services, json_lines: Lines, sent: str, logged: str | None
) -> None:
    await denied_list(services, sent)
    written = json_lines()
    denials = [line for line in written if line["message"].startswith("denied ")]
    assert len(denials) == 1, written
    assert denials[0].get("request_id") == logged


async def test_a_line_logged_outside_any_call_has_no_request_id(
    services: Services, json_lines: Lines
) -> None:
    await denied_list(services, "req-2")
    logging.getLogger("test").warning("between calls")
    written = json_lines()
    assert [
        line.get("request_id") for line in written if line["message"].startswith("denied ")
    ] == ["req-2"]
    assert [line.get("request_id") for line in written if line["logger"] == "test"] == [None]


class RecordingUsers:
    """A user service with GetUser only, remembering the metadata of each call."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str | bytes]] = []

    async def get_user(
        self, request: user_pb2.GetUserRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> user_pb2.GetUserResponse:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        return user_pb2.GetUserResponse(user=user_pb2.User(id=request.id, etag="7"))

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        get_user = grpc.unary_unary_rpc_method_handler(
            self.get_user,
            request_deserializer=user_pb2.GetUserRequest.FromString,
            response_serializer=user_pb2.GetUserResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(
            user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name, {"GetUser": get_user}
        )


async def test_order_svc_sends_the_request_id_it_serves_to_user_svc() -> None:
    users = RecordingUsers()
    server = grpc.aio.server(handlers=[users.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            directory = GrpcUserDirectory(channel, 2.0, lambda: [("authorization", "Bearer s")])
            token = set_request_id([("x-request-id", "hop-1")])  # as the boundary sets it
            try:
                found = await directory.find("u-1", Deadline(None))
            finally:
                reset_request_id(token)
            await directory.find("u-2", Deadline(None))  # serving no request: none sent
    finally:
        await server.stop(None)
    assert found is not None
    assert found.revision == 7
    assert users.metadata[0]["x-request-id"] == "hop-1"
    assert users.metadata[0]["authorization"] == "Bearer s"
    assert "x-request-id" not in users.metadata[1]
