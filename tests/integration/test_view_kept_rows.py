"""CreateOrder's units read the view of users once per write transaction: the first `find`
reads the rows of every user whose order is on its way to the writer, in one statement, and
the transaction keeps them for the others' finds, until a write of the view drops them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from order_svc import schema
from order_svc.domain import LineItem, Money, Order, State, new_order
from order_svc.user_view import KnownUser, UserChange
from shop_common.domain import new_id, utc_now
from shop_common.storage import Transaction, migrate
from tests.integration.helpers import one_turn
from tests.integration.test_user_view import ViewParts, listed, opened, view_parts


def counting_reads(parts: ViewParts) -> list[list[str]]:
    """The ids each read of the view's rows asked for, in order."""
    asked: list[list[str]] = []
    rows = parts.view._rows  # observing the statements the view sends
    read = rows.execute

    def counted(conn: Any, keys: list[str]) -> Any:
        asked.append(list(keys))
        return read(conn, keys)

    rows.execute = counted  # type: ignore[method-assign,assignment]
    return asked


def placing(parts: ViewParts, user_id: str) -> Callable[[], Any]:
    def unit(tx: Transaction) -> tuple[KnownUser | None, Order | None]:
        known = parts.view.find(tx, user_id)
        if known is None or known.deleted:
            return known, None
        items = [LineItem("SKU-1", 1, Money("EUR", 1))]
        return known, parts.orders.insert(tx, new_order(new_id(), user_id, items, utc_now()))

    async def place() -> tuple[KnownUser | None, Order | None]:
        with parts.view.wanted(user_id):
            return await parts.uow.write(unit)

    return place


async def known_users(parts: ViewParts, count: int) -> list[str]:
    await listed(parts.view, [], 1)
    users = [new_id() for _ in range(count)]
    await parts.view.apply([UserChange(u, 2 + n, deleted=False) for n, u in enumerate(users)], 9)
    return users


async def test_a_commit_group_of_orders_reads_the_view_once(database_url: str) -> None:
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        users = await known_users(parts, 5)
        asked = counting_reads(parts)
        stranger = new_id()
        results = await one_turn(parts.uow, *(placing(parts, u) for u in [*users, stranger]))
        assert [known for known, _order in results] == [
            *(KnownUser(deleted=False, subject=None) for _ in users),
            None,  # not in the view: the caller asks the user service
        ]
        assert all(order is not None for _known, order in results[:5])
        assert len(asked) == 1
        assert set(asked[0]) == {*users, stranger}


async def test_a_write_of_the_view_in_the_transaction_drops_the_rows_kept(
    database_url: str,
) -> None:
    """An order, the deletion of another user whose row the first read kept, then an order
    for that user, in one transaction: the second order sees the deletion."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        first, second = await known_users(parts, 2)
        asked = counting_reads(parts)

        async def delete_second() -> list[Order]:
            return await parts.view.apply([UserChange(second, 20, deleted=True)], 20)

        with parts.view.wanted(second):  # its order is on its way, so the first read has it
            before, deletion, after = await one_turn(
                parts.uow, placing(parts, first), delete_second, placing(parts, second)
            )
        assert before[0] == KnownUser(deleted=False, subject=None)
        assert deletion == []
        assert after == (KnownUser(deleted=True, subject=None), None)
        assert len(asked) == 2
        assert second in asked[0]


async def test_learning_a_user_in_the_transaction_drops_the_rows_kept(database_url: str) -> None:
    """A user the view had not seen, learned by one order's unit, is found by the next."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        (known,) = await known_users(parts, 1)
        newcomer = new_id()

        def learning(tx: Transaction) -> KnownUser | None:
            parts.view.learn(tx, newcomer, 50, "alice")
            return parts.view.find(tx, newcomer)

        async def learn() -> KnownUser | None:
            return await parts.uow.write(learning)

        with parts.view.wanted(newcomer):
            before, learned, after = await one_turn(
                parts.uow, placing(parts, known), learn, placing(parts, newcomer)
            )
        assert before[0] == KnownUser(deleted=False, subject=None)
        assert learned == KnownUser(deleted=False, subject="alice")
        assert after[0] == KnownUser(deleted=False, subject="alice")
        assert after[1] is not None


async def test_a_view_write_rolled_back_to_its_savepoint_puts_back_the_rows_kept(
    database_url: str,
) -> None:
    """A unit deletes a user in the view, finds it deleted, then fails: the turn runs again
    with a savepoint each, and the next unit finds the user as the database has it."""
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        first, second = await known_users(parts, 2)

        def delete_then_fail(tx: Transaction) -> None:
            parts.view._put(tx.conn, UserChange(second, 30, deleted=True))
            assert parts.view.find(tx, second) == KnownUser(deleted=True, subject=None)
            raise RuntimeError("refused after writing the view")

        async def failing() -> None:
            await parts.uow.write(delete_then_fail)

        with parts.view.wanted(second):
            _before, failed, after = await one_turn(
                parts.uow, placing(parts, first), failing, placing(parts, second)
            )
        assert isinstance(failed, RuntimeError)
        assert after[0] == KnownUser(deleted=False, subject=None)
        assert after[1] is not None


async def test_a_deletion_in_the_same_group_cancels_an_order_not_yet_sent(
    database_url: str,
) -> None:
    async with opened(database_url) as db:
        await migrate(db, schema.MIGRATIONS)
        parts = view_parts(db)
        (user,) = await known_users(parts, 1)

        async def delete() -> list[Order]:
            return await parts.view.apply([UserChange(user, 40, deleted=True)], 40)

        placed, cancelled = await one_turn(parts.uow, placing(parts, user), delete)
        assert placed[1] is not None
        assert [o.id for o in cancelled] == [placed[1].id]
        assert cancelled[0].state == State.CANCELLED
