"""Development identity: who a call's metadata says is calling."""

from __future__ import annotations

import pytest

from shop_common.domain import Unauthenticated
from shop_common.serving.identity import DEVELOPMENT_ADMIN, Caller, authenticate


def test_a_call_without_credentials_is_the_development_admin() -> None:
    caller = authenticate([("x-request-id", "r")])
    assert caller == DEVELOPMENT_ADMIN
    assert caller.admin
    assert not caller.is_anonymous


def test_a_bearer_is_a_user_taken_at_its_word_and_no_admin() -> None:
    assert authenticate([("authorization", "Bearer alice")]) == Caller(subject="alice")
    assert authenticate([("authorization", b"bearer  bob ")]) == Caller(subject="bob")


def test_a_service_bearer_names_the_calling_service() -> None:
    caller = authenticate([("authorization", "Bearer service:order_svc")])
    assert caller == Caller(subject=None, service="order_svc")
    assert not caller.admin


@pytest.mark.parametrize("value", ["Basic eHl6", "Bearer", "Bearer   ", "alice"])
def test_authorization_that_is_not_a_bearer_is_refused(value: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        authenticate([("authorization", value)])
    assert caught.value.reason == "MALFORMED_AUTHORIZATION"


def test_two_authorizations_are_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        authenticate([("authorization", "Bearer alice"), ("authorization", "Bearer bob")])
    assert caught.value.reason == "MALFORMED_AUTHORIZATION"
