"""The user feed's messages: changelog rows → `WatchUsersResponse`s (see `shop_common.watch`).

Each change is turned into its `UserEvent` once and shared by every watcher that wants it.
"""

from __future__ import annotations

from shop.user.v1 import user_pb2
from shop_common import watch
from shop_common.changelog import Change, ChangeType
from user_svc.convert import user_message
from user_svc.store import UserRows

watch.check_layout(user_pb2.WatchUsersResponse.DESCRIPTOR)
_ROWS = UserRows()
_TYPE = {
    ChangeType.PUT: user_pb2.UserEvent.TYPE_PUT,
    ChangeType.DELETE: user_pb2.UserEvent.TYPE_DELETE,
}


def _event(change: Change, with_prev: bool) -> user_pb2.UserEvent:
    event = user_pb2.UserEvent(
        type=_TYPE[change.type],
        user=user_message(_ROWS.from_row(change.row())),
        revision=change.revision,
    )
    if with_prev and (prev := change.prev_row()) is not None:
        event.prev_user.CopyFrom(user_message(_ROWS.from_row(prev)))
    return event


class UserEvents:
    def __init__(self, prev_user: bool) -> None:
        self._prev = prev_user

    def wants(self, change: Change) -> bool:
        return True

    def event(self, change: Change) -> bytes:
        return watch.serialized(change, self._prev, lambda: _event(change, self._prev))

    def compacted(self, compact_revision: int, header_revision: int) -> user_pb2.WatchUsersResponse:
        return user_pb2.WatchUsersResponse(
            compact_revision=compact_revision, header_revision=header_revision
        )

    def progress(self, header_revision: int) -> user_pb2.WatchUsersResponse:
        return user_pb2.WatchUsersResponse(progress_notify=True, header_revision=header_revision)
