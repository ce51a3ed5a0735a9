"""The hot queries' plans on each backend: every statement a request sends, as the code built
it, is explained against databases holding enough skewed data for the planner's choice to
mean something (a few thousand users, 200,000 orders, one user holding thousands of them,
a few users hundreds, most users a few).

What is refused, on the big tables (users, orders, known_users, changes, idempotency_keys):
a sequential scan (`Seq Scan`, SQLite's plain `SCAN`); an index walked without a condition,
unless it is a first page read in id order and stopped by its LIMIT; and a sort, unless the
case says why its input is bounded (by one subject's users, not the table). A keyset page by
user_id is read in id order from the (user_id, id) index: no sort at all, not even a top-N
one of the user's orders, whose cost would grow with the user's orders page after page.

The statements are the driver's: recorded as the real use cases run them (the driver's
cursor on PostgreSQL, SQLite's trace of the statements it ran), then explained on a
connection of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import pathlib
import random
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import order_svc.schema
import user_svc.schema
from order_svc.domain import LineItem, Money, Order, State
from order_svc.ownership import Ownership
from order_svc.service import OrderUseCases
from order_svc.store import order_table
from order_svc.user_client import FoundUser
from order_svc.user_view import UserChange, UserView
from shop_common.domain import PageTokens, new_id, utc_now
from shop_common.feed import Feed, FeedSettings
from shop_common.feed.tail import TAIL_LIMIT
from shop_common.serving import Access, Caller, Deadline
from shop_common.storage import (
    Changelog,
    Database,
    IdempotencyStore,
    Pages,
    ResourceTable,
    UnitOfWork,
    migrate,
)
from tests.support import POSTGRES_SKIP_REASON, PostgresDatabases, postgres_admin_url
from user_svc.domain import User
from user_svc.service import UserUseCases
from user_svc.store import user_table

BIG_TABLES = frozenset({"users", "orders", "known_users", "changes", "idempotency_keys"})

USERS = 3_000
ORDERS = 200_000
HEAVY_ORDERS = 2_000
"""The orders of the one heavy user, spread through the id order among everyone's: 1% of
them, as 10k orders of 5M are 0.2% (where the user's orders are denser, PostgreSQL rightly
prefers walking the primary key in id order: see `LIGHT` and the README)."""
LIGHT_ORDERS = 20
"""The orders of a light user."""
DOOMED_ORDERS = 100
"""The open orders of the user whose deletion the cancellation case applies."""
CHANGES = 30_000
KEYS = 5_000
PAGE = 50
BASE = datetime(2026, 1, 1, tzinfo=UTC)
"""When the loaded history starts: change n was committed n seconds later."""

ADMIN = Caller(subject=None, admin=True)


# -- the loaded databases, once per backend ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Loaded:
    backend: str
    user_url: str
    order_url: str
    heavy: str
    """The user with HEAVY_ORDERS orders."""
    doomed: str
    """The user deleted by the cancellation case."""
    light: str
    """A user with LIGHT_ORDERS orders, whose subject owned another user (deleted)."""
    order_id: str
    """One of the heavy user's orders."""

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"


def subject_of(user_id: str) -> str:
    return f"sub-{user_id}"


Rows = dict[str, list[dict[str, Any]]]


def _loaded_rows() -> tuple[Rows, Rows, tuple[str, str, str]]:
    """The rows of each database (user_svc's, order_svc's) by table, and the heavy, the
    doomed and the light user."""
    rng = random.Random(18)
    now_us = int(BASE.timestamp() * 1e6)
    user_ids = [new_id() for _ in range(USERS)]
    users = [
        {
            "id": u,
            "email": f"u{n}@example.com",
            "email_key": f"u{n}@example.com",
            "display_name": f"User {n}",
            "create_time_us": now_us,
            "update_time_us": now_us,
            "revision": n + 1,
            "subject": subject_of(u),
        }
        for n, u in enumerate(user_ids)
    ]
    heavy, doomed, light = user_ids[USERS // 2], user_ids[USERS // 3], user_ids[USERS // 4]
    owners = [heavy] * HEAVY_ORDERS + [doomed] * DOOMED_ORDERS + [light] * LIGHT_ORDERS
    # Everyone else: most users a few orders, a few users a few hundred.
    others = [u for u in user_ids if u not in (heavy, doomed, light)]
    weights = [1 + 40 * (n % 97 == 0) for n in range(len(others))]
    owners += rng.choices(others, weights, k=ORDERS - len(owners))
    rng.shuffle(owners)
    orders = []
    changes = []
    for n, owner in enumerate(owners):
        order_id = new_id()
        orders.append(
            {
                "id": order_id,
                "user_id": owner,
                "state": int(State.PENDING if owner == doomed or n % 3 else State.CANCELLED),
                "currency": "EUR",
                "items": '[["TEA-1", 1, 3000000000]]',
                "create_time_us": now_us,
                "update_time_us": now_us,
                "revision": n + 1,
            }
        )
        if n < CHANGES:
            changes.append(
                {
                    "revision": n + 1,
                    "seq": 0,
                    "resource_id": order_id,
                    "type": 1,
                    "data": "{}",
                    "prev": None,
                    "commit_time_us": now_us + n * 1_000_000,
                }
            )
    known = [
        {"id": u, "revision": n + 1, "deleted": False, "subject": subject_of(u)}
        for n, u in enumerate(user_ids)
    ]
    # The light user's subject owned another user before, deleted since: two users' orders.
    former = known[USERS // 5]
    former.update(deleted=True, subject=subject_of(light))
    keys = [
        {
            "scope": f"CreateOrder:{n % 500:048x}",
            "request_id": f"r-{n}",
            "fingerprint": "0" * 64,
            "response": "{}",
            "create_time_us": now_us + n * 1_000_000,
        }
        for n in range(KEYS)
    ]
    return (
        {"users": users, "idempotency_keys": keys},
        {
            "known_users": known,
            "orders": orders,
            "changes": changes,
            "idempotency_keys": keys,
        },
        (heavy, doomed, light),
    )


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Bulk: COPY on PostgreSQL (a second for 200k orders), executemany on SQLite."""
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[n] for n in names])


async def _load(url: str, schema: Any, rows: Rows) -> None:
    db = Database(url)
    try:
        await migrate(db, schema.MIGRATIONS)

        def insert(conn: sa.Connection) -> None:
            for name, table_rows in rows.items():
                _insert(conn, schema.metadata.tables[name], table_rows)
            if "changes" in rows:
                counter = schema.changelog.counter
                conn.execute(counter.update().values(revision=CHANGES))
                state = schema.user_view_state
                conn.execute(state.update().values(revision=len(rows["known_users"])))

        await db.write(insert)
        # Statistics, as a database in service has them (autovacuum, `ANALYZE`).
        await db.write(lambda conn: conn.exec_driver_sql("ANALYZE"))
    finally:
        await db.close()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """Both services' databases, migrated and loaded once per backend for every case (the
    `databases` fixture's, but for the module: loading them per case would cost a minute)."""
    backend: str = request.param
    postgres: PostgresDatabases | None = None
    if backend == "postgres":
        admin_url = postgres_admin_url()
        if admin_url is None:
            pytest.skip(POSTGRES_SKIP_REASON)
        postgres = PostgresDatabases(admin_url)
    try:

        async def prepare() -> Loaded:
            if postgres is not None:
                user_url, order_url = await postgres.create(), await postgres.create()
            else:
                where = tmp_path_factory.mktemp("plans")
                user_url, order_url = f"sqlite:///{where}/users.db", f"sqlite:///{where}/orders.db"
            user_rows, order_rows, (heavy, doomed, light) = _loaded_rows()
            await _load(user_url, user_svc.schema, user_rows)
            await _load(order_url, order_svc.schema, order_rows)
            some = next(o["id"] for o in order_rows["orders"] if o["user_id"] == heavy)
            return Loaded(backend, user_url, order_url, heavy, doomed, light, some)

        yield asyncio.run(prepare())
    finally:
        if postgres is not None:
            asyncio.run(postgres.drop_all())


# -- recording what the driver is sent ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Statement:
    database: str
    """The database it ran on: SQLite's file, PostgreSQL's database name."""
    sql: str
    params: Any
    """None on SQLite, whose trace has the values in the text."""


class Recorder:
    """The statements the driver ran while `capture` was open, with their parameters."""

    def __init__(self) -> None:
        self.active = False
        self.statements: list[Statement] = []

    def record(self, database: str, sql: Any, params: Any = None) -> None:
        if self.active:
            self.statements.append(Statement(database, str(sql), params))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Statement]]:
        self.statements = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def _recording_cursor(recorder: Recorder) -> type[psycopg.Cursor[Any]]:
    class RecordingCursor(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            recorder.record(self.connection.info.dbname, query, params)
            return super().execute(query, params, **kwargs)

    return RecordingCursor


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Records what every connection opened meanwhile runs (the services' own `Database`s
    open theirs in the test)."""
    found = Recorder()
    cursor = _recording_cursor(found)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            path = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
            dbapi_connection.set_trace_callback(functools.partial(found.record, path))
        else:
            dbapi_connection.cursor_factory = cursor

    sa.event.listen(sa.pool.Pool, "connect", on_connect)
    try:
        yield found
    finally:
        sa.event.remove(sa.pool.Pool, "connect", on_connect)


# -- the plans ---------------------------------------------------------------------------------

_EXPLAINED = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Rules:
    by: tuple[str, str] | None = None
    """(table, column): the table must be reached by an index condition on the column."""
    walk: bool = False
    """A first page without a filter: the table's id index read in order, stopped by the
    LIMIT (SQLite's plan does not show the LIMIT, so the case says so)."""
    bounded_sort: str = ""
    """Why a sort is accepted here: its input is bounded by an index condition."""


def _pg_plan(url: str, sql: str, params: Any) -> dict[str, Any]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
        conn.rollback()
    assert row is not None
    plan = row[0]
    found: dict[str, Any] = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return found


def _pg_nodes(node: dict[str, Any], parent: dict[str, Any] | None = None) -> Iterator[Any]:
    yield node, parent
    for child in node.get("Plans", []):
        yield from _pg_nodes(child, node)


def _pg_text(node: dict[str, Any], depth: int = 0) -> str:
    keys = ("Relation Name", "Index Name", "Index Cond", "Recheck Cond", "Filter", "Sort Key")
    shown = ", ".join(f"{k}: {node[k]}" for k in keys if k in node)
    lines = [f"{'  ' * depth}{node['Node Type']} ({shown})"]
    lines += [_pg_text(child, depth + 1) for child in node.get("Plans", [])]
    return "\n".join(lines)


def pg_problems(plan: dict[str, Any], rules: Rules) -> list[str]:
    problems = []
    for node, parent in _pg_nodes(plan):
        kind, table = node["Node Type"], node.get("Relation Name")
        if kind in ("Sort", "Incremental Sort") and not rules.bounded_sort:
            problems.append(f"{kind} on {node.get('Sort Key')}")
        if table not in BIG_TABLES:
            continue
        if kind == "Seq Scan":
            problems.append(f"Seq Scan on {table}")
        elif kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node:
            stopped = parent is not None and parent["Node Type"] == "Limit"
            if not (rules.walk and stopped and "Filter" not in node):
                problems.append(f"{kind} of all of {table} ({node.get('Filter', 'no filter')})")
    return problems


def pg_conditions(plan: dict[str, Any]) -> list[str]:
    """Each scan's table and index condition, as `table: condition`."""
    found = []
    for node, parent in _pg_nodes(plan):
        condition = node.get("Index Cond") or node.get("Recheck Cond")
        table = node.get("Relation Name") or (parent or {}).get("Relation Name")
        if condition is not None:
            found.append(f"{table}: {condition}")
    return found


def _sqlite_plan(url: str, sql: str) -> list[str]:
    path = make_url(url).database
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]


def sqlite_problems(plan: list[str], rules: Rules) -> list[str]:
    problems = []
    for line in plan:
        if line.startswith("USE TEMP B-TREE") and not rules.bounded_sort:
            problems.append(line)
        scan = re.match(r"SCAN (\w+)", line)
        if scan and scan[1] in BIG_TABLES and not (rules.walk and "USING" in line):
            problems.append(line)
    return problems


# -- the cases -------------------------------------------------------------------------------


@dataclasses.dataclass
class Parts:
    """Both services' use cases (and the order service's feed) over the loaded databases."""

    loaded: Loaded
    users: UserUseCases
    orders: OrderUseCases
    view: UserView
    changelog: Changelog
    feed: Feed
    order_uow: UnitOfWork
    order_db: Database
    user_uow: UnitOfWork
    user_rows: ResourceTable[User]
    order_rows: ResourceTable[Order]

    def owner(self, user_id: str) -> Access:
        return Access("test", Caller(subject=subject_of(user_id)), everything=False)

    @property
    def admin(self) -> Access:
        return Access("test", ADMIN, everything=True)


class NoDirectory:
    """Every user these cases order for is in the view: the user service is never asked."""

    async def find(self, user_id: str, deadline: Deadline) -> FoundUser | None:
        raise AssertionError(f"asked the user service for {user_id}")


@contextlib.asynccontextmanager
async def opened(loaded: Loaded) -> AsyncIterator[Parts]:
    user_db, order_db = Database(loaded.user_url), Database(loaded.order_url)
    try:
        tokens = PageTokens(b"k" * 32)
        user_log = Changelog(user_svc.schema.changelog)
        user_uow = UnitOfWork(user_db, user_log, IdempotencyStore(user_svc.schema.idempotency_keys))
        users = user_table(user_log)
        changelog = Changelog(order_svc.schema.changelog)
        order_uow = UnitOfWork(
            order_db, changelog, IdempotencyStore(order_svc.schema.idempotency_keys)
        )
        orders = order_table(changelog)
        view = UserView(order_uow, orders, utc_now)
        yield Parts(
            loaded,
            UserUseCases(user_uow, users, Pages(user_uow, users, tokens)),
            OrderUseCases(
                order_uow,
                orders,
                view,
                Ownership(),
                NoDirectory(),
                Pages(order_uow, orders, tokens),
            ),
            view,
            changelog,
            Feed(order_db, changelog, FeedSettings()),
            order_uow,
            order_db,
            user_uow,
            users,
            orders,
        )
    finally:
        await user_db.close()
        await order_db.close()


Run = Callable[[Parts, Recorder], Awaitable[Any]]


async def deep_token(page: Callable[[str], Awaitable[Any]], pages: int = 3) -> str:
    """The token of a page deep into a listing (after `pages` pages)."""
    token = ""
    for _ in range(pages):
        token = (await page(token)).next_page_token
        assert token
    return token


async def get_user(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.users.get(s.loaded.heavy, s.admin)


async def list_users_first(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.users.list(PAGE, "")


async def list_users_after(s: Parts, r: Recorder) -> Any:
    token = await deep_token(lambda t: s.users.list(1_000, t), pages=2)
    with r.capture():
        return await s.users.list(PAGE, token)


async def create_user(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.users.create(
            f"new-{new_id()}@example.com", "New", f"sub-new-{new_id()}", "req-1", s.admin
        )


async def get_order(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.get(s.loaded.order_id, s.admin)


async def get_order_with_owner(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.get(s.loaded.order_id, s.owner(s.loaded.heavy))


# GetUsers and GetOrders arriving together: one statement for all of their ids (the cases
# above send one, which is read by the primary-key statement).


async def get_users_batched(s: Parts, r: Recorder) -> Any:
    wanted = [s.loaded.heavy, s.loaded.light, s.loaded.doomed, new_id()]
    with r.capture():
        return await s.user_uow.read(lambda conn: s.user_rows.get_many(conn, wanted))


async def get_orders_batched(s: Parts, r: Recorder) -> Any:
    wanted = [s.loaded.order_id, new_id(), new_id()]
    with r.capture():
        return await s.order_uow.read(lambda conn: s.order_rows.get_many(conn, wanted))


async def get_orders_with_owners_batched(s: Parts, r: Recorder) -> Any:
    wanted = [s.loaded.order_id, new_id(), new_id()]
    with r.capture():
        return await s.order_uow.read(lambda conn: Ownership().orders(conn, wanted))


def listing(
    s: Parts, user_id: str, access: Access, size: int = 1_000
) -> Callable[[str], Awaitable[Any]]:
    return lambda token: s.orders.list(size, token, user_id, access)


async def list_orders_of_user_first(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.list(PAGE, "", s.loaded.heavy, s.admin)


async def list_orders_of_user_after(s: Parts, r: Recorder) -> Any:
    token = await deep_token(listing(s, s.loaded.heavy, s.admin, 500))
    with r.capture():
        return await s.orders.list(PAGE, token, s.loaded.heavy, s.admin)


async def list_orders_of_light_user(s: Parts, r: Recorder) -> Any:
    first = await s.orders.list(LIGHT_ORDERS // 2, "", s.loaded.light, s.admin)
    with r.capture():
        return await s.orders.list(PAGE, first.next_page_token, s.loaded.light, s.admin)


async def list_orders_of_user_by_owner(s: Parts, r: Recorder) -> Any:
    owner = s.owner(s.loaded.heavy)
    token = await deep_token(listing(s, s.loaded.heavy, owner, 500))
    with r.capture():
        return await s.orders.list(PAGE, token, s.loaded.heavy, owner)


async def list_all_orders_first(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.list(PAGE, "", "", s.admin)


async def list_all_orders_after(s: Parts, r: Recorder) -> Any:
    token = await deep_token(listing(s, "", s.admin), pages=10)
    with r.capture():
        return await s.orders.list(PAGE, token, "", s.admin)


async def list_own_orders_first(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.list(PAGE, "", "", s.owner(s.loaded.heavy))


async def list_own_orders_after(s: Parts, r: Recorder) -> Any:
    owner = s.owner(s.loaded.heavy)
    token = await deep_token(listing(s, "", owner, 500))
    with r.capture():
        return await s.orders.list(PAGE, token, "", owner)


async def list_own_orders_of_two_users(s: Parts, r: Recorder) -> Any:
    owner = s.owner(s.loaded.light)
    first = await s.orders.list(LIGHT_ORDERS // 2, "", "", owner)
    with r.capture():
        return await s.orders.list(PAGE, first.next_page_token, "", owner)


def _items() -> list[LineItem]:
    return [LineItem("TEA-1", 1, Money("EUR", 3_000_000_000))]


async def create_own_order(s: Parts, r: Recorder) -> Any:
    with r.capture():
        deadline = Deadline(None)
        return await s.orders.create("", _items(), "req-1", s.owner(s.loaded.heavy), deadline)


async def create_order_for_user(s: Parts, r: Recorder) -> Any:
    with r.capture():
        deadline = Deadline(None)
        return await s.orders.create(s.loaded.heavy, _items(), "req-2", s.admin, deadline)


async def watched_users(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.orders.watched_users("", s.owner(s.loaded.heavy))


async def cancel_orders_of_deleted_user(s: Parts, r: Recorder) -> Any:
    revision = USERS + 1_000
    gone = UserChange(s.loaded.doomed, revision, deleted=True, subject=subject_of(s.loaded.doomed))
    with r.capture():
        cancelled = await s.view.apply([gone], revision)
    assert len(cancelled) == DOOMED_ORDERS
    return cancelled


async def replay_from_revision(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.feed.history(CHANGES - 3 * TAIL_LIMIT, CHANGES - TAIL_LIMIT)


async def tail_from_revision(s: Parts, r: Recorder) -> Any:
    def tail(conn: sa.Connection) -> Any:
        return s.changelog.read(conn, CHANGES - 2 * TAIL_LIMIT, None, TAIL_LIMIT)

    with r.capture():
        return await s.order_db.read(tail)


async def current_revision(s: Parts, r: Recorder) -> Any:
    with r.capture():
        return await s.order_db.read(s.changelog.current_revision)


async def compaction(s: Parts, r: Recorder) -> Any:
    # History older than the retention: the first few thousand revisions.
    now = BASE + timedelta(seconds=FeedSettings().retention_seconds + 3_000)
    with r.capture():
        point = await s.feed.compact(now)
    assert 0 < point < CHANGES - 3 * TAIL_LIMIT  # the replay cases still find their history
    return point


async def key_expiry(s: Parts, r: Recorder) -> Any:
    # Keys older than the retention: the first thousand.
    now = BASE + timedelta(hours=48, seconds=1_000)
    with r.capture():
        return await s.order_uow.expire_keys(now)


ORDERS_BY_USER = Rules(by=("orders", "user_id"))
TWO_USERS = Rules(
    by=("orders", "user_id"),
    bounded_sort=(
        "a subject that owned two users: each user's orders after the cursor from the "
        "(user_id, id) index, sorted together: the subject's orders, not the table's"
    ),
)
LIVE_USER = Rules(
    by=("known_users", "subject"),
    bounded_sort="the subject's users, newest first: one, a few once deleted and created again",
)
LIGHT = Rules(
    by=("orders", "user_id"),
    bounded_sort=(
        "a user with a few orders: PostgreSQL may fetch them by user_id and sort the few "
        "(cheaper than walking the index for so few); a user with thousands is not sorted"
    ),
)
CANCEL = Rules(
    by=("orders", "user_id"),
    bounded_sort="the deleted users' open orders, all of which it cancels (no page to stop)",
)
CASES: list[tuple[str, Run, Rules]] = [
    ("GetUser", get_user, Rules(by=("users", "id"))),
    ("ListUsers first page", list_users_first, Rules(walk=True)),
    ("ListUsers after a cursor", list_users_after, Rules(by=("users", "id"))),
    ("CreateUser key recall and insert", create_user, Rules()),
    ("GetOrder", get_order, Rules(by=("orders", "id"))),
    ("GetOrder with its owner", get_order_with_owner, Rules(by=("known_users", "id"))),
    ("GetUser, a batch", get_users_batched, Rules(by=("users", "id"))),
    ("GetOrder, a batch", get_orders_batched, Rules(by=("orders", "id"))),
    ("GetOrder with owners, a batch", get_orders_with_owners_batched, Rules(by=("orders", "id"))),
    ("ListOrders by user_id first page", list_orders_of_user_first, ORDERS_BY_USER),
    ("ListOrders by user_id after a cursor", list_orders_of_user_after, ORDERS_BY_USER),
    ("ListOrders by user_id of a light user", list_orders_of_light_user, LIGHT),
    ("ListOrders by user_id for its owner", list_orders_of_user_by_owner, ORDERS_BY_USER),
    ("ListOrders all first page", list_all_orders_first, Rules(walk=True)),
    ("ListOrders all after a cursor", list_all_orders_after, Rules(by=("orders", "id"))),
    ("ListOrders by owner first page", list_own_orders_first, ORDERS_BY_USER),
    ("ListOrders by owner after a cursor", list_own_orders_after, ORDERS_BY_USER),
    ("ListOrders by owner of two users", list_own_orders_of_two_users, TWO_USERS),
    ("CreateOrder for the caller's user", create_own_order, LIVE_USER),
    ("CreateOrder for a user_id", create_order_for_user, Rules(by=("known_users", "id"))),
    ("WatchOrders users of a subject", watched_users, Rules(by=("known_users", "subject"))),
    ("cancel a deleted user's open orders", cancel_orders_of_deleted_user, CANCEL),
    ("changelog replay between revisions", replay_from_revision, Rules(by=("changes", "revision"))),
    ("changelog tail after a revision", tail_from_revision, Rules(by=("changes", "revision"))),
    ("changelog current revision", current_revision, Rules()),
    # Its target (the newest revision older than the retention) is found walking back from
    # the newest revision: through every change kept within the retention, not the table.
    ("changelog compaction", compaction, Rules(by=("changes", "revision"))),
    ("idempotency key expiry", key_expiry, Rules(by=("idempotency_keys", "create_time_us"))),
]


@pytest.mark.parametrize(("run", "rules"), [pytest.param(r, k, id=n) for n, r, k in CASES])
async def test_hot_query_plan(loaded: Loaded, recorder: Recorder, run: Run, rules: Rules) -> None:
    async with opened(loaded) as services:
        await run(services, recorder)
    # One of each statement: the cancellation's updates differ only in their values.
    distinct = {(s.database, s.sql): s for s in reversed(recorder.statements)}
    statements = [s for s in reversed(distinct.values()) if _EXPLAINED.match(s.sql)]
    assert statements, "the case ran no statement"
    urls = {database_of(url): url for url in (loaded.user_url, loaded.order_url)}
    report = []
    problems = []
    searches = []  # how each table is reached: `table: condition`, or SQLite's SEARCH lines
    for statement in statements:
        url = urls[statement.database]
        if loaded.is_postgres:
            plan = _pg_plan(url, statement.sql, statement.params)
            found = pg_problems(plan, rules)
            shown = _pg_text(plan)
            searches += pg_conditions(plan)
        else:
            lines = _sqlite_plan(url, statement.sql)
            found = sqlite_problems(lines, rules)
            shown = "\n".join(lines)
            searches += [line for line in lines if line.startswith("SEARCH ")]
        problems += found
        report.append(f"{statement.sql}\n{shown}\n-> {found or 'ok'}")
    if rules.by is not None:
        table, column = rules.by
        # `orders: ((user_id)::text = ...)`, or SQLite's `SEARCH orders USING ... (user_id=?`
        reached = re.compile(rf"^(SEARCH )?{table}\b.*\(+{column}\b")
        if not any(reached.match(line) for line in searches):
            problems.append(f"{table} is not reached by an index condition on {column}")
    assert not problems, "\n\n".join(report)


def database_of(url: str) -> str:
    """How a recorded statement names the database of `url`."""
    name = make_url(url).database
    assert name is not None
    return str(pathlib.Path(name).resolve()) if url.startswith("sqlite") else name
