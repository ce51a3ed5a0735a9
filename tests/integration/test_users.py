"""UserService end to end: real server, real stubs, on each database backend."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from google.protobuf import field_mask_pb2

from shop.user.v1 import user_pb2
from shop_common.domain import is_valid_id
from tests.integration.helpers import (
    UNKNOWN_ID,
    all_users,
    create_user,
    fails,
    fields_of,
    new_email,
)
from tests.support import Services

Code = grpc.StatusCode


async def test_create_user_returns_the_stored_user(services: Services) -> None:
    email = new_email()
    response = await services.users.CreateUser(
        user_pb2.CreateUserRequest(user=user_pb2.User(email=email, display_name="Ada"))
    )
    user = response.user
    assert is_valid_id(user.id)
    assert (user.email, user.display_name) == (email, "Ada")
    assert user.etag
    assert user.HasField("create_time")
    assert user.create_time.seconds > 0
    assert user.update_time == user.create_time
    fetched = await services.users.GetUser(user_pb2.GetUserRequest(id=user.id))
    assert fetched.user == user


async def test_create_user_ignores_client_chosen_output_fields(services: Services) -> None:
    sent = user_pb2.User(id=UNKNOWN_ID, email=new_email(), etag="999")
    sent.create_time.FromSeconds(1)
    user = (await services.users.CreateUser(user_pb2.CreateUserRequest(user=sent))).user
    assert user.id != UNKNOWN_ID
    assert user.etag != "999"
    assert user.create_time.seconds > 1


async def test_update_user_with_mask_changes_only_the_named_fields(services: Services) -> None:
    created = await create_user(services.users, display_name="Ada")
    response = await services.users.UpdateUser(
        user_pb2.UpdateUserRequest(
            user=user_pb2.User(id=created.id, email=new_email(), display_name="Ada L."),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    updated = response.user
    assert (updated.id, updated.email, updated.display_name) == (
        created.id,
        created.email,
        "Ada L.",
    )
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() > created.update_time.ToDatetime()
    assert updated.etag != created.etag
    assert (await services.users.GetUser(user_pb2.GetUserRequest(id=created.id))).user == updated


async def test_update_user_without_mask_changes_the_non_empty_fields(services: Services) -> None:
    created = await create_user(services.users, display_name="Ada")
    email = new_email()
    updated = (
        await services.users.UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=created.id, email=email))
        )
    ).user
    assert (updated.email, updated.display_name) == (email, "Ada")


async def test_update_user_with_star_mask_replaces_every_field(services: Services) -> None:
    created = await create_user(services.users, display_name="Ada")
    email = new_email()
    updated = (
        await services.users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=created.id, email=email),
                update_mask=field_mask_pb2.FieldMask(paths=["*"]),
            )
        )
    ).user
    assert (updated.email, updated.display_name) == (email, "")


async def test_update_user_to_another_case_of_its_own_email(services: Services) -> None:
    created = await create_user(services.users, email="Case@Example.com")
    updated = (
        await services.users.UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=created.id, email="case@example.COM"))
        )
    ).user
    assert updated.email == "case@example.COM"


async def test_etag_changes_on_every_write(services: Services) -> None:
    user = await create_user(services.users)
    etags = [user.etag]
    for name in ("one", "two", "three"):
        user = (
            await services.users.UpdateUser(
                user_pb2.UpdateUserRequest(
                    user=user_pb2.User(id=user.id, display_name=name, etag=user.etag)
                )
            )
        ).user
        etags.append(user.etag)
    assert len(set(etags)) == len(etags)


async def test_delete_user_removes_it(services: Services) -> None:
    kept = await create_user(services.users)
    gone = await create_user(services.users)
    await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=gone.id, etag=gone.etag))
    await fails(
        services.users.GetUser(user_pb2.GetUserRequest(id=gone.id)),
        Code.NOT_FOUND,
        "USER_NOT_FOUND",
    )
    assert [u.id for u in await all_users(services.users)] == [kept.id]
    await fails(
        services.users.DeleteUser(user_pb2.DeleteUserRequest(id=gone.id)),
        Code.NOT_FOUND,
        "USER_NOT_FOUND",
    )


async def test_email_of_a_deleted_user_can_be_used_again(services: Services) -> None:
    gone = await create_user(services.users, email="again@example.com")
    await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=gone.id))
    again = await create_user(services.users, email="Again@example.com")
    assert again.id != gone.id


async def test_list_users_returns_them_in_creation_order(services: Services) -> None:
    created = [await create_user(services.users) for _ in range(3)]
    listed = await services.users.ListUsers(user_pb2.ListUsersRequest())
    assert list(listed.users) == created
    assert listed.next_page_token == ""


# --- errors, each with its details, and nothing changed afterwards ---------------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-an-id",
        "01A21966-E263-7607-918A-D4D32F874249",
        "' OR '1'='1",
        UNKNOWN_ID + "\n",
        UNKNOWN_ID + " ",
    ],
)
async def test_malformed_id_is_invalid_argument(services: Services, bad_id: str) -> None:
    user = await create_user(services.users)
    for call, field in (
        (services.users.GetUser(user_pb2.GetUserRequest(id=bad_id)), "id"),
        (services.users.DeleteUser(user_pb2.DeleteUserRequest(id=bad_id)), "id"),
        (
            services.users.UpdateUser(
                user_pb2.UpdateUserRequest(user=user_pb2.User(id=bad_id, display_name="x"))
            ),
            "user.id",
        ),
    ):
        found = await fails(call, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        assert found.violations == [(field, "INVALID_ID")]
    assert await all_users(services.users) == [user]


async def test_missing_id_is_required(services: Services) -> None:
    found = await fails(
        services.users.GetUser(user_pb2.GetUserRequest()), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert found.violations == [("id", "REQUIRED")]


async def test_unknown_id_is_not_found(services: Services) -> None:
    user = await create_user(services.users)
    for call in (
        services.users.GetUser(user_pb2.GetUserRequest(id=UNKNOWN_ID)),
        services.users.DeleteUser(user_pb2.DeleteUserRequest(id=UNKNOWN_ID)),
        services.users.UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=UNKNOWN_ID, display_name="x"))
        ),
    ):
        found = await fails(call, Code.NOT_FOUND, "USER_NOT_FOUND")
        assert found.metadata == {"id": UNKNOWN_ID}
    assert await all_users(services.users) == [user]


@pytest.mark.parametrize("second", ["dup@example.com", "DUP@example.com", "Dup@Example.COM"])
async def test_duplicate_email_is_already_exists(services: Services, second: str) -> None:
    first = await create_user(services.users, email="dup@example.com")
    found = await fails(
        services.users.CreateUser(user_pb2.CreateUserRequest(user=user_pb2.User(email=second))),
        Code.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )
    assert found.violations == [("user.email", "EMAIL_TAKEN")]
    assert await all_users(services.users) == [first]


async def test_update_to_a_taken_email_is_already_exists(services: Services) -> None:
    taken = await create_user(services.users, email="taken@example.com")
    other = await create_user(services.users)
    await fails(
        services.users.UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=other.id, email="TAKEN@example.com"))
        ),
        Code.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )
    assert await all_users(services.users) == [taken, other]


@pytest.mark.parametrize(
    ("user", "violations"),
    [
        (user_pb2.User(), [("user.email", "REQUIRED")]),
        (user_pb2.User(email="nope"), [("user.email", "INVALID_EMAIL")]),
        (user_pb2.User(email="a b@example.com"), [("user.email", "INVALID_EMAIL")]),
        (user_pb2.User(email="ada\u200b@example.com"), [("user.email", "INVALID_EMAIL")]),
        (
            user_pb2.User(email="ok@example.com", display_name="Ada\u202eecalevoL"),
            [("user.display_name", "INVALID_FIELD")],
        ),
        (
            user_pb2.User(email="ok@example.com", display_name="x" * 201),
            [("user.display_name", "INVALID_FIELD")],
        ),
        (
            user_pb2.User(email="bad", display_name="bell\x07"),
            [("user.email", "INVALID_EMAIL"), ("user.display_name", "INVALID_FIELD")],
        ),
    ],
)
async def test_invalid_user_is_refused_with_field_violations(
    services: Services, user: user_pb2.User, violations: list[tuple[str, str]]
) -> None:
    found = await fails(
        services.users.CreateUser(user_pb2.CreateUserRequest(user=user)),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert found.violations == violations
    assert await all_users(services.users) == []


async def test_stale_etag_on_update_and_delete_is_aborted(services: Services) -> None:
    user = await create_user(services.users, display_name="Ada")
    stale = user.etag
    user = (
        await services.users.UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id=user.id, display_name="Bo"))
        )
    ).user
    found = await fails(
        services.users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, display_name="Cy", etag=stale)
            )
        ),
        Code.ABORTED,
        "ETAG_MISMATCH",
    )
    assert found.metadata == {"current_etag": user.etag}
    await fails(
        services.users.DeleteUser(user_pb2.DeleteUserRequest(id=user.id, etag=stale)),
        Code.ABORTED,
        "ETAG_MISMATCH",
    )
    assert await all_users(services.users) == [user]


async def test_unknown_update_mask_path_is_invalid_argument(services: Services) -> None:
    user = await create_user(services.users)
    found = await fails(
        services.users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, email=new_email(), display_name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["email", "id"]),
            )
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields_of(found) == {"update_mask"}
    assert await all_users(services.users) == [user]


async def test_negative_page_size_is_invalid_argument(services: Services) -> None:
    found = await fails(
        services.users.ListUsers(user_pb2.ListUsersRequest(page_size=-1)),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields_of(found) == {"page_size"}


async def test_forged_or_tampered_page_token_is_invalid_argument(services: Services) -> None:
    for _ in range(3):
        await create_user(services.users)
    first = await services.users.ListUsers(user_pb2.ListUsersRequest(page_size=1))
    token = first.next_page_token
    assert token
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for forged in (flipped, token[:-3], "garbage", token + token, "eyJrIjoiIiwicSI6InVzZXJzIn0"):
        found = await fails(
            services.users.ListUsers(user_pb2.ListUsersRequest(page_size=1, page_token=forged)),
            Code.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        )
        assert fields_of(found) == {"page_token"}


async def test_request_id_reused_with_another_request_is_invalid_argument(
    services: Services,
) -> None:
    first = await create_user(services.users, request_id="req-1")
    found = await fails(
        services.users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), request_id="req-1")
        ),
        Code.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
    )
    assert found.violations == [("request_id", "REQUEST_ID_REUSED")]
    assert await all_users(services.users) == [first]


@pytest.mark.parametrize("request_id", ["r" * 129, "tab\there", "nl\n"])
async def test_unusable_request_id_is_invalid_argument(services: Services, request_id: str) -> None:
    found = await fails(
        services.users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), request_id=request_id)
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields_of(found) == {"request_id"}
    assert await all_users(services.users) == []


@pytest.mark.parametrize(
    ("email", "display_name"),
    [
        ("o'brien+x@example.com", "Robert'); DROP TABLE users;--"),
        ('"%_\\;*@example.com', '100% _under_ \\back\\ "quoted" `tick` $1 ?'),
        # Arabic, then Persian with a zero width non-joiner (kept: names need it).
        ("zoë@example.com", "Zoë 🙂 — 名前 مرحبا \u0645\u06cc\u200c\u062e\u0648\u0627\u0645"),
        ("名前@example.jp", "x" * 200),
        ("ünï@example.com", "é" * 200),
    ],
)
async def test_sql_metacharacters_and_unicode_are_stored_verbatim(
    services: Services, email: str, display_name: str
) -> None:
    created = await create_user(services.users, email=email, display_name=display_name)
    assert (created.email, created.display_name) == (email, display_name)
    fetched = (await services.users.GetUser(user_pb2.GetUserRequest(id=created.id))).user
    assert (fetched.email, fetched.display_name) == (email, display_name)
    assert await all_users(services.users) == [created]
    await fails(
        services.users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=email.upper()))
        ),
        Code.ALREADY_EXISTS,
        "EMAIL_TAKEN",
    )


async def test_longest_email_whose_lower_case_is_longer_is_not_an_internal_error(
    services: Services,
) -> None:
    # "İ".lower() is two characters: the lower-cased uniqueness key outgrows the e-mail.
    email = "İ" + "l" * 63 + "@" + ".".join(["a" * 63, "b" * 63, "c" * 57, "com"])
    assert len(email) == 254
    call = services.users.CreateUser(user_pb2.CreateUserRequest(user=user_pb2.User(email=email)))
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call
    code = await call.code()
    assert code in (Code.OK, Code.INVALID_ARGUMENT), await call.details()
    assert len(await all_users(services.users)) == (1 if code == Code.OK else 0)


async def test_request_over_4_mib_is_refused_cleanly(services: Services) -> None:
    huge = user_pb2.CreateUserRequest(
        user=user_pb2.User(email=new_email(), display_name="x" * (4 * 1024 * 1024 + 1))
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await services.users.CreateUser(huge)
    assert caught.value.code() == Code.RESOURCE_EXHAUSTED
    assert await all_users(services.users) == []
    await create_user(services.users)  # the server still serves


# --- idempotency -------------------------------------------------------------------------------


async def test_same_request_id_twice_creates_once(services: Services) -> None:
    email = new_email()
    first = await create_user(services.users, email=email, request_id="once")
    again = await create_user(services.users, email=email, request_id="once")
    assert again == first
    assert await all_users(services.users) == [first]
    listed = await services.users.ListUsers(user_pb2.ListUsersRequest())
    assert listed.revision == 1


async def test_same_request_id_concurrently_creates_once(services: Services) -> None:
    request = user_pb2.CreateUserRequest(
        user=user_pb2.User(email=new_email(), display_name="Racer"), request_id="race"
    )
    responses = await asyncio.gather(*(services.users.CreateUser(request) for _ in range(8)))
    assert len({r.user.id for r in responses}) == 1
    assert await all_users(services.users) == [responses[0].user]


async def test_request_ids_belong_to_their_caller(services: Services) -> None:
    """Bob sending Alice's key creates his own user (no REQUEST_ID_REUSED telling him she
    used it); with her very request he is not handed her user (the email is taken)."""
    alice, bob = (("authorization", "Bearer alice"),), (("authorization", "Bearer bob"),)
    request = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), request_id="k")
    hers = (await services.users.CreateUser(request, metadata=alice)).user
    await fails(
        services.users.CreateUser(request, metadata=bob), Code.ALREADY_EXISTS, "EMAIL_TAKEN"
    )
    other = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), request_id="k")
    his = (await services.users.CreateUser(other, metadata=bob)).user
    assert his.id != hers.id
    assert (await services.users.CreateUser(request, metadata=alice)).user == hers
    assert (await services.users.CreateUser(other, metadata=bob)).user == his


async def test_replay_returns_the_first_result_after_later_changes(services: Services) -> None:
    email = new_email()
    first = await create_user(services.users, email=email, display_name="A", request_id="r")
    await services.users.UpdateUser(
        user_pb2.UpdateUserRequest(user=user_pb2.User(id=first.id, display_name="B"))
    )
    again = await create_user(services.users, email=email, display_name="A", request_id="r")
    assert again.id == first.id
    assert len(await all_users(services.users)) == 1


# --- pagination and the revision ---------------------------------------------------------------


async def test_pages_through_120_users_in_pages_of_50(services: Services) -> None:
    created = await asyncio.gather(*(create_user(services.users) for _ in range(120)))
    seen: list[str] = []
    sizes: list[int] = []
    token = ""
    while True:
        page = await services.users.ListUsers(
            user_pb2.ListUsersRequest(page_size=50, page_token=token)
        )
        sizes.append(len(page.users))
        seen.extend(u.id for u in page.users)
        assert page.revision == 120
        token = page.next_page_token
        if not token:
            break
        assert len(sizes) < 4, "the last page must have an empty next_page_token"
    assert sizes == [50, 50, 20]
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    assert set(seen) == {u.id for u in created}


async def test_page_size_zero_means_50(services: Services) -> None:
    await asyncio.gather(*(create_user(services.users) for _ in range(51)))
    page = await services.users.ListUsers(user_pb2.ListUsersRequest(page_size=0))
    assert len(page.users) == 50
    assert page.next_page_token


async def test_exactly_full_last_page_has_no_token(services: Services) -> None:
    await asyncio.gather(*(create_user(services.users) for _ in range(4)))
    first = await services.users.ListUsers(user_pb2.ListUsersRequest(page_size=2))
    second = await services.users.ListUsers(
        user_pb2.ListUsersRequest(page_size=2, page_token=first.next_page_token)
    )
    assert (len(first.users), len(second.users), second.next_page_token) == (2, 2, "")


async def test_revision_counts_the_writes_so_far(services: Services) -> None:
    async def revision() -> int:
        return (await services.users.ListUsers(user_pb2.ListUsersRequest())).revision

    assert await revision() == 0
    a = await create_user(services.users, email="a@example.com")
    b = await create_user(services.users)
    assert await revision() == 2
    await services.users.UpdateUser(
        user_pb2.UpdateUserRequest(user=user_pb2.User(id=a.id, display_name="x"))
    )
    await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=b.id))
    assert await revision() == 4
    # Refused writes and reads are not writes.
    with pytest.raises(grpc.aio.AioRpcError):
        await create_user(services.users, email="A@example.com")
    with pytest.raises(grpc.aio.AioRpcError):
        await services.users.DeleteUser(user_pb2.DeleteUserRequest(id=a.id, etag="1"))
    await services.users.GetUser(user_pb2.GetUserRequest(id=a.id))
    assert await revision() == 4


# --- concurrent writers ------------------------------------------------------------------------


async def test_concurrent_updates_with_the_same_etag_let_exactly_one_win(
    services: Services,
) -> None:
    user = await create_user(services.users)
    calls = [
        services.users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=user.id, display_name=f"writer {n}", etag=user.etag)
            )
        )
        for n in range(6)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r.user for r in results if isinstance(r, user_pb2.UpdateUserResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [e.code() for e in lost] == [Code.ABORTED] * 5
    assert await all_users(services.users) == won


async def test_concurrent_creates_with_one_email_let_exactly_one_win(services: Services) -> None:
    calls = [
        services.users.CreateUser(
            user_pb2.CreateUserRequest(user=user_pb2.User(email=f"{case}@example.com"))
        )
        for case in ("race", "RACE", "Race", "rAce", "raCe", "racE")
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r.user for r in results if isinstance(r, user_pb2.CreateUserResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [e.code() for e in lost] == [Code.ALREADY_EXISTS] * 5
    assert await all_users(services.users) == won


# --- owners --------------------------------------------------------------------------------------


def bearer(subject: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {subject}"),)


async def test_a_user_is_owned_by_the_subject_that_created_it(services: Services) -> None:
    request = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()))
    created = (await services.users.CreateUser(request, metadata=bearer("alice"))).user
    assert created.subject == "alice"
    fetched = await services.users.GetUser(user_pb2.GetUserRequest(id=created.id))
    assert fetched.user.subject == "alice"
    watch = services.users.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1), timeout=5)
    response = await watch.read()
    watch.cancel()
    assert isinstance(response, user_pb2.WatchUsersResponse)
    event = response.events[0]
    assert event.user.subject == "alice"


async def test_a_subject_owns_one_user(services: Services) -> None:
    first = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()))
    await services.users.CreateUser(first, metadata=bearer("alice"))
    second = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()))
    found = await fails(
        services.users.CreateUser(second, metadata=bearer("alice")),
        Code.ALREADY_EXISTS,
        "SUBJECT_TAKEN",
    )
    assert found.violations == [("subject", "SUBJECT_TAKEN")]
    assert len(await all_users(services.users)) == 1


async def test_only_an_admin_creates_a_user_for_another_subject(services: Services) -> None:
    for_bob = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject="bob")
    await fails(
        services.users.CreateUser(for_bob, metadata=bearer("alice")),
        Code.PERMISSION_DENIED,
        "NOT_YOUR_SUBJECT",
    )
    assert await all_users(services.users) == []
    # Development identity: a call without credentials is an admin.
    assert (await services.users.CreateUser(for_bob)).user.subject == "bob"
    own = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject="carol")
    assert (await services.users.CreateUser(own, metadata=bearer("carol"))).user.subject == "carol"


async def test_a_user_an_admin_creates_without_a_subject_has_no_owner(
    services: Services,
) -> None:
    assert (await create_user(services.users)).subject == ""
    assert (await create_user(services.users)).subject == ""  # any number of them


@pytest.mark.parametrize("subject", ["s" * 256, "ali\u200bce"])
async def test_an_unusable_subject_is_invalid_argument(services: Services, subject: str) -> None:
    request = user_pb2.CreateUserRequest(user=user_pb2.User(email=new_email()), subject=subject)
    found = await fails(
        services.users.CreateUser(request), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert fields_of(found) == {"subject"}
