"""Development identity: who a call's metadata says is calling."""

from __future__ import annotations

import pytest

from shop_common.domain import Unauthenticated
from shop_common.serving.identity import (
    ANONYMOUS,
    ANONYMOUS_KEY,
    DEVELOPMENT_ADMIN,
    Caller,
    authenticate,
    limit_key,
)


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


@pytest.mark.parametrize(
    ("caller", "key"),
    [
        (Caller(subject="alice"), "subject:alice"),
        (Caller(subject="root", admin=True), "subject:root"),  # an admin is counted too
        (ANONYMOUS, ANONYMOUS_KEY),  # every anonymous caller together
        (Caller(subject=None, service="order_svc"), None),  # the system's own
        (DEVELOPMENT_ADMIN, None),  # every credential-less call in dev mode
    ],
)
def test_who_is_counted_under_which_key(caller: Caller, key: str | None) -> None:
    assert limit_key(caller) == key


def test_a_subject_cannot_pass_for_the_anonymous_key() -> None:
    assert limit_key(Caller(subject=ANONYMOUS_KEY)) != ANONYMOUS_KEY
