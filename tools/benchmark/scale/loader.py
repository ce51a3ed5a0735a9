"""One size loaded into one kind of database: both services' databases, through the real
schema (each service's own migrations), then bulk rows, then indexes and statistics; or,
when a kept load of the same size, schema and generator is there, that load reused.

What the services would hold had they written it themselves: revisions dense from 1 in each
database, one change per created resource under its revision, the revision counter at the
last one (so that a watch from revision 0 replays the whole history), and order_svc's view of
users current to the user database's last revision (so that order_svc serves at once,
without listing the users). How long each part took is kept with the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable, DropIndex

from benchmark.scale import records
from benchmark.scale.completion import is_complete, mark_of, marks, schema_versions
from benchmark.scale.disk import check_free
from benchmark.scale.plan import Plan, plan
from benchmark.scale.sizes import Size
from benchmark.scale.store import Store, Target, secondary_indexes
from order_svc import schema as order_schema
from shop_common.storage import Database, Migration, migrate
from user_svc import schema as user_schema

PARTS = ("schema", "users", "view", "orders", "changelog", "indexes", "analyze")
"""The parts of a load, timed apart (`view`: order_svc's view of the users)."""
_USER_TABLES = (user_schema.users,)
_ORDER_TABLES = (order_schema.orders, order_schema.known_users)


@dataclass
class Loaded:
    """A size's databases on one kind of database, ready for the services."""

    size: Size
    target: str
    user_url: str
    order_url: str
    plan: Plan
    reused: bool
    seconds: dict[str, float] = field(default_factory=dict)
    """Of each part of PARTS, and `total`; empty when the load was reused."""
    bytes: tuple[int, int] = (0, 0)
    """The user and the order databases on disk (when prepared: after the load)."""

    def summary(self) -> dict[str, object]:
        """For the results (JSON): how the data came to be, and its size."""
        return {
            "users": self.size.users,
            "orders": self.size.orders,
            "reused": self.reused,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "bytes": sum(self.bytes),
            "user_db_bytes_per_user": round(self.bytes[0] / self.size.users),
            "order_db_bytes_per_order": round(self.bytes[1] / self.size.orders),
        }


class _Timer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def timed(self, name: str, items: Iterator[records.Batch]) -> Iterator[records.Batch]:
        """`items`, the time spent making each charged to `name`."""
        while True:
            with self.part(name):
                item = next(items, None)
            if item is None:
                return
            yield item


def prepare(target: Target, size: Size, stack: contextlib.ExitStack, *, keep: bool) -> Loaded:
    """The size loaded on `target` (or a kept complete load reused). When `stack` closes the
    databases are dropped, unless `keep` and the load is complete: a failed or interrupted
    load is never kept."""
    user_url, order_url = target.urls(size)

    def complete() -> bool:
        return target.exists(size) and is_complete(size, user_url, order_url)

    def drop_unless_kept() -> None:
        if not (keep and complete()):
            print(f"dropping the {size.name} databases on {target.name}", flush=True)
            target.drop(size)

    stack.callback(drop_unless_kept)
    the_plan = plan(size)
    if complete():
        print(f"reusing the kept {size.name} load on {target.name}", flush=True)
        return Loaded(size, target.name, user_url, order_url, the_plan, reused=True,
                      bytes=target.used_bytes(size))  # fmt: skip
    if target.exists(size):
        target.drop(size)  # an unfinished or outdated load
    print(check_free(target, size), flush=True)
    target.create(size)
    print(f"loading {size.name} on {target.name}", flush=True)
    seconds = load(target, the_plan, user_url, order_url)
    loaded = Loaded(size, target.name, user_url, order_url, the_plan, reused=False,
                    seconds=seconds, bytes=target.used_bytes(size))  # fmt: skip
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    on_disk = sum(loaded.bytes) / 1e6
    print(f"loaded {size.name} on {target.name}: {parts}; {on_disk:,.0f} MB", flush=True)
    return loaded


def load(target: Target, the_plan: Plan, user_url: str, order_url: str) -> dict[str, float]:
    """Loads the plan into the two (empty) databases; the seconds of each part."""
    timer, started = _Timer(), time.perf_counter()
    with timer.part("schema"):
        asyncio.run(_migrate(user_url, user_schema.MIGRATIONS))
        asyncio.run(_migrate(order_url, order_schema.MIGRATIONS))
    users, orders = target.open(user_url), target.open(order_url)
    try:
        with timer.part("indexes"):
            _drop_indexes(users, _USER_TABLES)
            _drop_indexes(orders, _ORDER_TABLES)
        _load_users(timer, the_plan, users, orders)
        _load_orders(timer, the_plan, orders)
        with timer.part("indexes"):
            _create_indexes(users, _USER_TABLES)
            _create_indexes(orders, _ORDER_TABLES)
        with timer.part("analyze"):
            users.analyze()
            orders.analyze()
        for store, version in zip((users, orders), schema_versions(), strict=True):
            store.execute(CreateTable(marks))
            store.execute(marks.insert().values(mark_of(the_plan.size, version)))
            store.commit()
    finally:
        users.close()
        orders.close()
    timer.seconds["total"] = time.perf_counter() - started
    return timer.seconds


async def _migrate(url: str, migrations: Sequence[Migration]) -> None:
    db = Database(url)
    try:
        await migrate(db, migrations)
    finally:
        await db.close()


def _load_users(timer: _Timer, the_plan: Plan, users: Store, orders: Store) -> None:
    changelog = user_schema.changelog
    last = 0
    for batch in timer.timed("users", records.user_batches(the_plan)):
        with timer.part("users"):
            users.write(user_schema.users, batch.rows)
        with timer.part("changelog"):
            users.write(changelog.changes, batch.changes)
        with timer.part("view"):
            orders.write(order_schema.known_users, records.known_users(the_plan, batch))
        last = batch.last_revision
    with timer.part("changelog"):
        users.execute(_set_revision(changelog.counter, last))
        users.commit()
    with timer.part("view"):
        # As if the view had followed the user feed to the user database's last revision.
        orders.execute(_set_revision(order_schema.user_view_state, last))
        orders.commit()


def _load_orders(timer: _Timer, the_plan: Plan, orders: Store) -> None:
    changelog = order_schema.changelog
    with timer.part("orders"):
        owners = the_plan.order_owners()
    last = 0
    for batch in timer.timed("orders", records.order_batches(the_plan, owners)):
        with timer.part("orders"):
            orders.write(order_schema.orders, batch.rows)
        with timer.part("changelog"):
            orders.write(changelog.changes, batch.changes)
        last = batch.last_revision
    with timer.part("changelog"):
        orders.execute(_set_revision(changelog.counter, last))
        orders.commit()


def _set_revision(table: sa.Table, revision: int) -> sa.Update:
    return table.update().where(table.c.id == 1).values(revision=revision)


def _drop_indexes(store: Store, tables: Sequence[sa.Table]) -> None:
    for table in tables:
        for index in secondary_indexes(table):
            store.execute(DropIndex(index))
    store.commit()


def _create_indexes(store: Store, tables: Sequence[sa.Table]) -> None:
    """The indexes the migrations made, built again from the schema's own definitions."""
    for table in tables:
        for index in secondary_indexes(table):
            store.execute(CreateIndex(index))
    store.commit()
