"""Who may call what on the order service (the README's policy table says the same).

Users act on their own orders only: those of the users their subject owns. No service of
the system calls the order service. Admins may do everything; anonymous callers nothing.
"""

from __future__ import annotations

from shop.order.v1 import order_pb2
from shop_common.domain import FailedPrecondition, PermissionDenied
from shop_common.serving import Access, Policy, Rule

POLICY = Policy(
    order_pb2.DESCRIPTOR.services_by_name["OrderService"],
    {
        "CreateOrder": Rule(users=True),  # for their own user only
        "GetOrder": Rule(users=True),
        "ListOrders": Rule(users=True),  # without user_id: their own
        "CancelOrder": Rule(users=True),
        "WatchOrders": Rule(users=True),  # their own orders' events only
    },
)

NOT_YOUR_USER = "NOT_YOUR_USER"
NOT_YOUR_ORDER = "NOT_YOUR_ORDER"
CALLER_HAS_NO_USER = "CALLER_HAS_NO_USER"


def not_your_user(access: Access, user_id: str) -> PermissionDenied:
    """Another's user, or none at all: the same answer, so that ids cannot be probed."""
    return access.deny(NOT_YOUR_USER, f"permission denied on user {user_id}", {"id": user_id})


def not_your_order(access: Access, order_id: str) -> PermissionDenied:
    """Another's order, or none at all: the same answer, so that ids cannot be probed."""
    return access.deny(NOT_YOUR_ORDER, f"permission denied on order {order_id}", {"id": order_id})


def caller_has_no_user() -> FailedPrecondition:
    """A user whose subject owns no user (that the view of users knows of) has no orders to
    default to or to watch."""
    return FailedPrecondition(
        "your subject owns no user yet: create it first (CreateUser)",
        reason=CALLER_HAS_NO_USER,
    )
