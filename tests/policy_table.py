"""The README's policy table ("Who may call what") as data: for every RPC, what each caller
gets. One table, read by every suite that checks it over real servers (development identity
in `tests/integration/test_policy.py`, jwt mode with and without mutual TLS in
`tests/security/test_policy_*.py`, the gateway in `tests/e2e/test_gateway_policy.py`), by
the pure policy's tests, and compared with the README itself (`tests/unit/test_policy_table.py`),
so that none of them can drift from the others.

A cell is `OK` (the call runs) or the refusal: a gRPC status code and the ErrorInfo reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
import pytest

Code = grpc.StatusCode

# The callers, the README's columns in its order.
ANONYMOUS = "anonymous"
OWNER = "owner"
ANOTHER_USER = "another user"
ADMIN = "admin"
ORDER_SERVICE = "order service"
GATEWAY = "gateway"
"""The gateway's own identity, without a token."""
CALLERS = (ANONYMOUS, OWNER, ANOTHER_USER, ADMIN, ORDER_SERVICE, GATEWAY)


@dataclass(frozen=True)
class Outcome:
    """What a caller gets: `code` OK, or the refusal's code and ErrorInfo reason."""

    code: Code
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is Code.OK

    @property
    def http_status(self) -> int:
        """The refusal's HTTP status through the gateway (a success's is the RPC's:
        `HTTP_OK`)."""
        return {Code.UNAUTHENTICATED: 401, Code.PERMISSION_DENIED: 403}[self.code]

    def __str__(self) -> str:
        return "OK" if self.ok else f"{self.code.name} {self.reason}"


OK = Outcome(Code.OK)
CREDENTIALS_REQUIRED = Outcome(Code.UNAUTHENTICATED, "CREDENTIALS_REQUIRED")
NOT_ALLOWED = Outcome(Code.PERMISSION_DENIED, "NOT_ALLOWED")
NOT_YOUR_USER = Outcome(Code.PERMISSION_DENIED, "NOT_YOUR_USER")
NOT_YOUR_ORDER = Outcome(Code.PERMISSION_DENIED, "NOT_YOUR_ORDER")
NOT_YOUR_SUBJECT = Outcome(Code.PERMISSION_DENIED, "NOT_YOUR_SUBJECT")

_A = CREDENTIALS_REQUIRED
# rpc: (anonymous, the owner, another user, an admin, the order service, the gateway)
_ROWS: dict[str, tuple[Outcome, ...]] = {
    "CreateUser": (_A, OK, NOT_YOUR_SUBJECT, OK, NOT_ALLOWED, _A),
    "GetUser": (_A, OK, NOT_YOUR_USER, OK, OK, _A),
    "ListUsers": (_A, NOT_ALLOWED, NOT_ALLOWED, OK, OK, _A),
    "UpdateUser": (_A, OK, NOT_YOUR_USER, OK, NOT_ALLOWED, _A),
    "DeleteUser": (_A, OK, NOT_YOUR_USER, OK, NOT_ALLOWED, _A),
    "WatchUsers": (_A, NOT_ALLOWED, NOT_ALLOWED, OK, OK, _A),
    "CreateOrder": (_A, OK, NOT_YOUR_USER, OK, NOT_ALLOWED, _A),
    "GetOrder": (_A, OK, NOT_YOUR_ORDER, OK, NOT_ALLOWED, _A),
    "ListOrders": (_A, OK, NOT_YOUR_USER, OK, NOT_ALLOWED, _A),
    "CancelOrder": (_A, OK, NOT_YOUR_ORDER, OK, NOT_ALLOWED, _A),
    "WatchOrders": (_A, OK, NOT_YOUR_USER, OK, NOT_ALLOWED, _A),
}
TABLE: Mapping[str, Mapping[str, Outcome]] = {
    rpc: dict(zip(CALLERS, row, strict=True)) for rpc, row in _ROWS.items()
}
"""rpc → caller → outcome, as the README says. What each cell's call is, in every suite:
the RPC on the owner's resources (CreateUser: a user for the owner's subject, which owns
none yet; CreateOrder, ListOrders, WatchOrders: with the owner's user's `user_id`)."""

HTTP_OK = {
    "CreateUser": 201,
    "GetUser": 200,
    "ListUsers": 200,
    "UpdateUser": 200,
    "DeleteUser": 204,
    "WatchUsers": 200,
    "CreateOrder": 201,
    "GetOrder": 200,
    "ListOrders": 200,
    "CancelOrder": 200,
    "WatchOrders": 200,
}
"""A call's HTTP status through the gateway when it runs."""


def cell_id(rpc: str, caller: str) -> str:
    return f"{rpc}-{caller.replace(' ', '_')}"


def cells(unreachable: Mapping[str, str] | None = None) -> list[object]:
    """Every cell as `pytest.param(rpc, caller, outcome)`; the callers a suite cannot make
    (caller → why) are skipped with that reason, not left out."""
    skipped = unreachable or {}
    return [
        pytest.param(
            rpc,
            caller,
            outcome,
            id=cell_id(rpc, caller),
            marks=[pytest.mark.skip(reason=skipped[caller])] if caller in skipped else [],
        )
        for rpc, row in TABLE.items()
        for caller, outcome in row.items()
    ]
