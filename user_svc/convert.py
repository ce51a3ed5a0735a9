"""Between the domain's `User` and the contract's messages, the feed's events included."""

from __future__ import annotations

from shop.user.v1 import user_pb2
from shop_common.feed import EventKind
from shop_common.serving import set_timestamp
from user_svc.domain import User
from user_svc.store import UserRows


def user_message(user: User) -> user_pb2.User:
    message = user_pb2.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        etag=user.etag,
        subject=user.subject or "",
    )
    set_timestamp(message.create_time, user.create_time)
    set_timestamp(message.update_time, user.update_time)
    return message


USER_EVENTS = EventKind(
    user_pb2.UserEvent, user_pb2.WatchUsersResponse, "user", UserRows(), user_message
)
