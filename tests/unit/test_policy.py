"""The policy tables as pure functions: every RPC's admission for every kind of caller, the
anonymous column included, against the shared table (`tests/policy_table.py`). Over real
servers: `tests/integration/test_policy.py` (development identity, which never makes an
anonymous caller) and `tests/security/test_policy_*.py` (jwt mode, every column)."""

from __future__ import annotations

import logging

import pytest

from order_svc.policy import POLICY as ORDER_POLICY
from shop.order.v1 import order_pb2
from shop.user.v1 import user_pb2
from shop_common.domain import PermissionDenied, Unauthenticated
from shop_common.serving import Caller, Policy, Rule
from shop_common.serving.identity import ANONYMOUS, DEVELOPMENT_ADMIN
from tests import policy_table
from tests.policy_table import CREDENTIALS_REQUIRED, NOT_ALLOWED, TABLE, Outcome
from user_svc.policy import POLICY as USER_POLICY

USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"]
ORDER_SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
EVERY_RPC = [(USER_POLICY, m.name) for m in USER_SERVICE.methods] + [
    (ORDER_POLICY, m.name) for m in ORDER_SERVICE.methods
]
IDS = [f"{p.service.rsplit('.', 1)[1]}.{rpc}" for p, rpc in EVERY_RPC]
ALICE = Caller(subject="alice")
ORDER_SVC = Caller(subject=None, service="order_svc")
JWT_ADMIN = Caller(subject="root", admin=True)

# Who may call each RPC at all (whether the resource is theirs is the use case's check), as
# the shared table (tests/policy_table.py, the README's) says.
USERS_MAY = {rpc for rpc, row in TABLE.items() if row[policy_table.OWNER] != NOT_ALLOWED}
ORDER_SERVICE_MAY = {rpc for rpc, row in TABLE.items() if row[policy_table.ORDER_SERVICE].ok}
AS_POLICY_SEES = {
    policy_table.ANONYMOUS: ANONYMOUS,
    policy_table.OWNER: ALICE,
    policy_table.ANOTHER_USER: Caller(subject="bob"),
    policy_table.ADMIN: JWT_ADMIN,
    policy_table.ORDER_SERVICE: ORDER_SVC,
    # The gateway's certificate names no caller (shop_common/serving/authentication.py).
    policy_table.GATEWAY: ANONYMOUS,
}
ADMISSION_REASONS = {CREDENTIALS_REQUIRED.reason, NOT_ALLOWED.reason}


@pytest.mark.parametrize(("rpc", "caller", "outcome"), policy_table.cells())
def test_admission_is_what_the_table_says(rpc: str, caller: str, outcome: Outcome) -> None:
    """Each cell the policy decides by itself (CREDENTIALS_REQUIRED, NOT_ALLOWED) is its
    refusal; every other cell is admitted (NOT_YOUR_*: the use case decides, on the
    resource)."""
    policy = USER_POLICY if rpc in USER_POLICY.rules else ORDER_POLICY
    who = AS_POLICY_SEES[caller]
    if outcome.reason in ADMISSION_REASONS:
        with pytest.raises((Unauthenticated, PermissionDenied)) as caught:
            policy.admit(rpc, who)
        assert caught.value.reason == outcome.reason
    else:
        policy.admit(rpc, who)


def test_the_tables_name_every_rpc_of_their_service() -> None:
    assert set(USER_POLICY.rules) == {m.name for m in USER_SERVICE.methods}
    assert set(ORDER_POLICY.rules) == {m.name for m in ORDER_SERVICE.methods}


def test_a_table_missing_an_rpc_is_refused() -> None:
    with pytest.raises(ValueError, match="missing \\['WatchUsers'\\]"):
        Policy(USER_SERVICE, {n: Rule() for n in USER_POLICY.rules if n != "WatchUsers"})


@pytest.mark.parametrize(("policy", "rpc"), EVERY_RPC, ids=IDS)
def test_an_anonymous_caller_is_unauthenticated_everywhere(policy: Policy, rpc: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        policy.admit(rpc, ANONYMOUS)
    assert caught.value.reason == "CREDENTIALS_REQUIRED"


@pytest.mark.parametrize(("policy", "rpc"), EVERY_RPC, ids=IDS)
def test_an_admin_may_call_everything_on_every_resource(policy: Policy, rpc: str) -> None:
    for admin in (DEVELOPMENT_ADMIN, JWT_ADMIN):
        access = policy.admit(rpc, admin)
        assert access.everything
        assert access.owns(None)
        assert access.owns("someone")


@pytest.mark.parametrize(("policy", "rpc"), EVERY_RPC, ids=IDS)
def test_a_user_may_call_what_the_table_says_on_their_own_only(policy: Policy, rpc: str) -> None:
    if rpc not in USERS_MAY:
        with pytest.raises(PermissionDenied) as caught:
            policy.admit(rpc, ALICE)
        assert caught.value.reason == "NOT_ALLOWED"
        return
    access = policy.admit(rpc, ALICE)
    assert not access.everything
    assert access.owns("alice")
    assert not access.owns("bob")
    assert not access.owns(None)  # nobody's, or no such resource


@pytest.mark.parametrize(("policy", "rpc"), EVERY_RPC, ids=IDS)
def test_the_order_service_reads_users_and_nothing_else(policy: Policy, rpc: str) -> None:
    if policy is USER_POLICY and rpc in ORDER_SERVICE_MAY:
        assert policy.admit(rpc, ORDER_SVC).everything
        return
    with pytest.raises(PermissionDenied) as caught:
        policy.admit(rpc, ORDER_SVC)
    assert caught.value.reason == "NOT_ALLOWED"


def test_another_service_may_call_nothing() -> None:
    with pytest.raises(PermissionDenied):
        USER_POLICY.admit("GetUser", Caller(subject=None, service="gateway"))


def test_each_denial_is_logged_once_with_caller_rpc_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shop_common.serving.policy")
    with pytest.raises(PermissionDenied):
        USER_POLICY.admit("ListUsers", ALICE)
    with pytest.raises(Unauthenticated):
        ORDER_POLICY.admit("GetOrder", ANONYMOUS)
    access = ORDER_POLICY.admit("CancelOrder", Caller(subject="bob\nforged line"))
    error = access.deny("NOT_YOUR_ORDER", "permission denied on order x")
    assert (error.reason, error.message) == ("NOT_YOUR_ORDER", "permission denied on order x")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "denied shop.user.v1.UserService/ListUsers to subject 'alice': NOT_ALLOWED "
            "(ListUsers is for admins and order_svc only)",
        ),
        (
            logging.WARNING,
            "denied shop.order.v1.OrderService/GetOrder to anonymous: CREDENTIALS_REQUIRED "
            "(GetOrder needs credentials: send 'authorization: Bearer <token>')",
        ),
        (
            logging.WARNING,
            "denied shop.order.v1.OrderService/CancelOrder to subject 'bob\\nforged line': "
            "NOT_YOUR_ORDER (permission denied on order x)",
        ),
    ]


def test_admission_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="shop_common.serving.policy")
    USER_POLICY.admit("GetUser", ALICE)
    USER_POLICY.admit("WatchUsers", ORDER_SVC)
    assert caplog.records == []
