"""The rows a load writes, built as the services write them: each resource by its service's
own row codec (`user_svc.store.UserRows`, `order_svc.store.OrderRows`), its change as
`ResourceTable.insert` records a create (the row as JSON, no previous row, seq 0, under the
resource's own revision), and order_svc's view of each user as `UserView` holds it after
following the user feed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from benchmark.scale.plan import EPOCH_MS, SEED, Plan, uuid7
from order_svc import schema as order_schema
from order_svc.domain import LineItem, Money, Order, State
from order_svc.store import OrderRows
from shop_common.storage import ChangeType, from_us
from user_svc import schema as user_schema
from user_svc.domain import User
from user_svc.store import UserRows

Record = tuple[Any, ...]
"""A row as a tuple in its table's column order."""
CHUNK = 20_000
"""Resources per batch written: large transactions, bounded memory."""

_NANOS = 1_000_000_000
_CURRENCIES = ("EUR", "USD", "GBP")


@dataclass(frozen=True, slots=True)
class Batch:
    """A chunk of resources: their table's rows and the changes that created them."""

    rows: list[Record]
    changes: list[Record]
    last_revision: int


def columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.c]


def subject_of(index: int) -> str:
    """The token subject that owns user `index` (each user created by its own subject)."""
    return f"scale-user-{index}"


_CHANGE_COLUMNS = columns(user_schema.changelog.changes)


def _change(revision: int, resource_id: str, row: dict[str, Any], at_us: int) -> Record:
    """A create as `ResourceTable.insert` records it (`Changelog.append`'s values): the row
    as JSON, no previous row, the first (and only) change of its revision."""
    values = {
        "revision": revision,
        "seq": 0,
        "resource_id": resource_id,
        "type": int(ChangeType.PUT),
        "data": orjson.dumps(row).decode(),
        "prev": None,
        "commit_time_us": at_us,
    }
    return tuple(values[name] for name in _CHANGE_COLUMNS)


def user_batches(plan: Plan, chunk: int = CHUNK) -> Iterator[Batch]:
    codec, names = UserRows(), columns(user_schema.users)
    for start in range(0, plan.size.users, chunk):
        rows, changes = [], []
        for i in range(start, min(start + chunk, plan.size.users)):
            at = from_us((EPOCH_MS + i) * 1000)
            user = User(
                id=plan.user_ids[i],
                email=f"Scale.User{i}@example.com",
                display_name=f"Scale User {i}",
                create_time=at,
                update_time=at,
                revision=i + 1,
                subject=subject_of(i),
            )
            row = codec.to_row(user)
            rows.append(tuple(row[n] for n in names))
            changes.append(_change(i + 1, user.id, row, row["update_time_us"]))
        yield Batch(rows, changes, rows[-1][names.index("revision")])


def known_users(plan: Plan, batch: Batch) -> list[Record]:
    """order_svc's view of the batch's users: live, at their revision, with their subject,
    as the view holds them after following the feed from the start (no listing saw them)."""
    names = columns(user_schema.users)
    ids, revisions, subjects = (names.index(n) for n in ("id", "revision", "subject"))
    values = [
        {
            "id": r[ids],
            "revision": r[revisions],
            "deleted": False,
            "subject": r[subjects],
            "listed": None,
        }
        for r in batch.rows
    ]
    return [tuple(v[n] for n in columns(order_schema.known_users)) for v in values]


def order_batches(plan: Plan, owners: Sequence[int], chunk: int = CHUNK) -> Iterator[Batch]:
    codec, names = OrderRows(), columns(order_schema.orders)
    rng = random.Random(SEED + 2)  # the orders' ids, apart from the users'
    for start in range(0, len(owners), chunk):
        rows, changes = [], []
        for n in range(start, min(start + chunk, len(owners))):
            at = from_us(plan.order_ms(n) * 1000)
            currency = _CURRENCIES[n % len(_CURRENCIES)]
            price = 2 * _NANOS + n % 100 * 10_000_000
            items = tuple(
                LineItem(f"SKU-{(n * 7 + k) % 5000}", 1 + (n + k) % 3, Money(currency, price))
                for k in range(1 + n % 3)
            )
            order = Order(
                id=uuid7(plan.order_ms(n), rng),
                user_id=plan.user_ids[owners[n]],
                items=items,
                state=State.PENDING,
                create_time=at,
                update_time=at,
                revision=n + 1,
            )
            row = codec.to_row(order)
            rows.append(tuple(row[c] for c in names))
            changes.append(_change(n + 1, order.id, row, row["update_time_us"]))
        yield Batch(rows, changes, start + len(rows))
