"""What every server offers beside its service: health, reflection, a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pathlib
import warnings

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import user_svc.app
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.serving import ServiceSettings
from tests.integration.helpers import create_user, fails
from tests.support import Services, channel_to, common_settings

Code = grpc.StatusCode
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


async def health_of(channel: grpc.aio.Channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    status: int = response.status
    return status


async def test_health_is_serving_overall_and_per_service(services: Services) -> None:
    for channel, name in (
        (services.user_channel, "shop.user.v1.UserService"),
        (services.order_channel, "shop.order.v1.OrderService"),
    ):
        assert await health_of(channel, "") == SERVING
        assert await health_of(channel, name) == SERVING


async def test_health_of_an_unknown_service_is_not_found(services: Services) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health_of(services.user_channel, "shop.order.v1.OrderService")
    assert caught.value.code() == Code.NOT_FOUND


async def test_health_turns_not_serving_as_soon_as_stop_begins(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    settings = ServiceSettings(
        listen="127.0.0.1:0",
        database_url=database_url,
        common=common_settings(tmp_path, drain_seconds=60),
    )
    running = await user_svc.app.start(settings)
    try:
        async with channel_to(running.port) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watches = [
                health.Watch(health_pb2.HealthCheckRequest(service=name))
                for name in ("", "shop.user.v1.UserService")
            ]
            for watch in watches:
                assert (await watch.read()).status == SERVING
            stopping = asyncio.create_task(
                running.stop(grace=0, drain=settings.common.drain_seconds)
            )
            try:
                for watch in watches:
                    assert (await watch.read()).status == NOT_SERVING
                # Still answering while it drains, but no longer SERVING.
                assert await health_of(channel, "") == NOT_SERVING
                assert await health_of(channel, "shop.user.v1.UserService") == NOT_SERVING
                users = user_pb2_grpc.UserServiceStub(channel)
                await create_user(users)
                assert not stopping.done()
            finally:
                stopping.cancel()  # cut the drain short
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping
                for watch in watches:
                    watch.cancel()
    finally:
        await running.stop(grace=0)


async def test_stopped_server_refuses_calls(database_url: str, tmp_path: pathlib.Path) -> None:
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    running = await user_svc.app.start(settings)
    async with channel_to(running.port) as channel:
        users = user_pb2_grpc.UserServiceStub(channel)
        await create_user(users)
        await running.stop(grace=0)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await users.ListUsers(user_pb2.ListUsersRequest(), timeout=5)
        assert caught.value.code() == Code.UNAVAILABLE


async def test_a_stopping_server_refuses_new_calls_as_unavailable_before_it_stops(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    """grpc cancels (CANCELLED, which clients do not retry) the calls it has received but
    not handed on when a server stops; refusing new calls for a moment first hands them on
    to be refused as UNAVAILABLE, which clients retry."""
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    running = await user_svc.app.start(settings)
    try:
        async with channel_to(running.port) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            created = await create_user(users)
            stopping = asyncio.create_task(running.stop(grace=0, refuse=2))
            while not running.boundary.refusing:  # noqa: ASYNC110  # a flag, not an event
                await asyncio.sleep(0.001)
            await fails(
                users.GetUser(user_pb2.GetUserRequest(id=created.id), timeout=5),
                Code.UNAVAILABLE,
                "SHUTTING_DOWN",
            )
            watch = users.WatchUsers(user_pb2.WatchUsersRequest(), timeout=5)
            await fails(watch.read(), Code.UNAVAILABLE, "SHUTTING_DOWN")
            assert await health_of(channel, "") == NOT_SERVING  # health still answers
            await stopping
    finally:
        await running.stop(grace=0)


async def test_restarted_service_keeps_its_data_and_page_tokens(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    running = await user_svc.app.start(settings)
    try:
        async with channel_to(running.port) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            created = [await create_user(users) for _ in range(3)]
            first = await users.ListUsers(user_pb2.ListUsersRequest(page_size=2))
    finally:
        await running.stop(grace=0)
    running = await user_svc.app.start(settings)
    try:
        async with channel_to(running.port) as channel:
            users = user_pb2_grpc.UserServiceStub(channel)
            rest = await users.ListUsers(
                user_pb2.ListUsersRequest(page_size=2, page_token=first.next_page_token)
            )
            assert [*first.users, *rest.users] == created
    finally:
        await running.stop(grace=0)


async def test_stopping_right_after_start_leaves_no_connection_open(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    # Database.close() must not dispose the engine under a unit of work still running in
    # another database thread (the key janitor starts one at every start).
    settings = ServiceSettings(
        listen="127.0.0.1:0", database_url=database_url, common=common_settings(tmp_path)
    )
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(10):
            running = await user_svc.app.start(settings)
            await running.stop(grace=0)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


# --- reflection ----------------------------------------------------------------------------------


async def reflect(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter(requests))
    return [response async for response in call]


async def test_reflection_lists_the_services(services: Services) -> None:
    for channel, name in (
        (services.user_channel, "shop.user.v1.UserService"),
        (services.order_channel, "shop.order.v1.OrderService"),
    ):
        [response] = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(list_services="")
        )
        listed = {s.name for s in response.list_services_response.service}
        assert listed == {name, HEALTH, REFLECTION, REFLECTION_V1}


async def reflect_v1(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    # A raw call to the v1 method, as current tools make it: v1's messages are v1alpha's
    # under another package name, so the same bytes on the wire.
    call = channel.stream_stream(
        f"/{REFLECTION_V1}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter(requests))
    return [response async for response in call]


async def test_reflection_v1_answers_like_v1alpha(services: Services) -> None:
    listed, described, itself = await reflect_v1(
        services.user_channel,
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="shop.user.v1.User"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=REFLECTION_V1),
    )
    assert {s.name for s in listed.list_services_response.service} == {
        "shop.user.v1.UserService",
        HEALTH,
        REFLECTION,
        REFLECTION_V1,
    }
    [alpha] = await reflect(
        services.user_channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="shop.user.v1.User"),
    )
    assert described.file_descriptor_response == alpha.file_descriptor_response
    [v1_file] = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in itself.file_descriptor_response.file_descriptor_proto
    ]
    assert v1_file.package == "grpc.reflection.v1"
    assert [s.name for s in v1_file.service] == ["ServerReflection"]
    method = v1_file.service[0].method[0]
    assert method.input_type == ".grpc.reflection.v1.ServerReflectionRequest"


async def test_reflection_describes_the_service_methods(services: Services) -> None:
    [response] = await reflect(
        services.order_channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="shop.order.v1.OrderService"),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    services_found = {
        f"{f.package}.{s.name}": [m.name for m in s.method] for f in files for s in f.service
    }
    assert services_found["shop.order.v1.OrderService"] == [
        "CreateOrder",
        "GetOrder",
        "ListOrders",
        "CancelOrder",
        "WatchOrders",
    ]


async def test_reflection_of_an_unknown_symbol_is_an_error_response(services: Services) -> None:
    [response] = await reflect(
        services.user_channel,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="shop.nope.v1.Nope"),
    )
    assert response.error_response.error_code == Code.NOT_FOUND.value[0]
