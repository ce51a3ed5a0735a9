"""Between the domain's `User` and the contract's messages."""

from __future__ import annotations

from shop.user.v1 import user_pb2
from shop_common.timestamps import set_timestamp
from user_svc.domain import User


def user_message(user: User) -> user_pb2.User:
    message = user_pb2.User(
        id=user.id, email=user.email, display_name=user.display_name, etag=user.etag
    )
    set_timestamp(message.create_time, user.create_time)
    set_timestamp(message.update_time, user.update_time)
    return message
