"""The gRPC adapter of the user service: messages in, the policy's admission, a use case,
messages out."""

from __future__ import annotations

from typing import Any

import grpc

from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import Feed, ResourceEvents, serve
from user_svc.convert import USER_EVENTS, user_message
from user_svc.policy import POLICY
from user_svc.service import UserUseCases

Context = grpc.aio.ServicerContext[Any, Any]


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, users: UserUseCases, feed: Feed) -> None:
        self._users = users
        self._feed = feed

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        user = await self._users.create(
            request.user.email,
            request.user.display_name,
            request.subject,
            request.request_id,
            POLICY.admit("CreateUser"),
        )
        return user_pb2.CreateUserResponse(user=user_message(user))

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        user = await self._users.get(request.id, POLICY.admit("GetUser"))
        return user_pb2.GetUserResponse(user=user_message(user))

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        POLICY.admit("ListUsers")
        page = await self._users.list(request.page_size, request.page_token)
        return user_pb2.ListUsersResponse(
            users=[user_message(u) for u in page.items],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        access = POLICY.admit("UpdateUser")
        mask = list(request.update_mask.paths) if request.HasField("update_mask") else None
        values = {"email": request.user.email, "display_name": request.user.display_name}
        user = await self._users.update(request.user.id, values, mask, request.user.etag, access)
        return user_pb2.UpdateUserResponse(user=user_message(user))

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        await self._users.delete(request.id, request.etag, POLICY.admit("DeleteUser"))
        return user_pb2.DeleteUserResponse()

    async def WatchUsers(  # type: ignore[override]
        self, request: user_pb2.WatchUsersRequest, context: Context
    ) -> None:
        # A coroutine writing through context.write, so that a watch can be cut off while a
        # write waits; grpc.aio serves it, the generated stub declares only iterators.
        POLICY.admit("WatchUsers")
        await serve(
            self._feed,
            context,
            ResourceEvents(USER_EVENTS, with_prev=request.prev_user),
            start_revision=request.start_revision,
            progress_notify=request.progress_notify,
        )
