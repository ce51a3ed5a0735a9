"""Who may call what on the user service (the README's policy table says the same).

Users act on their own user only: the one whose `subject` is theirs. The order service
reads users (it keeps its view of them, and checks a user it has not seen yet) and does
nothing else here. Admins may do everything; anonymous callers nothing.
"""

from __future__ import annotations

from shop.user.v1 import user_pb2
from shop_common.domain import PermissionDenied
from shop_common.serving import Access, Policy, Rule

ORDER_SERVICE = "order_svc"
"""The order service's identity (its certificate's, or `Bearer service:order_svc`)."""
_READERS = frozenset({ORDER_SERVICE})

POLICY = Policy(
    user_pb2.DESCRIPTOR.services_by_name["UserService"],
    {
        "CreateUser": Rule(users=True),  # for their own subject only (NOT_YOUR_SUBJECT)
        "GetUser": Rule(users=True, services=_READERS),
        "ListUsers": Rule(services=_READERS),
        "UpdateUser": Rule(users=True),
        "DeleteUser": Rule(users=True),
        "WatchUsers": Rule(services=_READERS),
    },
)

NOT_YOUR_USER = "NOT_YOUR_USER"
NOT_YOUR_SUBJECT = "NOT_YOUR_SUBJECT"


def not_your_user(access: Access, user_id: str) -> PermissionDenied:
    """Another's user, or none at all: the same answer, so that ids cannot be probed."""
    return access.deny(NOT_YOUR_USER, f"permission denied on user {user_id}", {"id": user_id})


def not_your_subject(access: Access) -> PermissionDenied:
    return access.deny(NOT_YOUR_SUBJECT, "only an admin may create a user for another subject")
