"""The scale benchmark (`tools/benchmark/scale`), on the tiny size and both databases: the
load is what the services would have written themselves, and they serve it as their own
(the feed replays it, order_svc's view is current without listing, the heavy user pages, a
loaded user orders); a kept load is reused, an unfinished one loaded again; the feed, cold
start and compaction sections measure it."""

from __future__ import annotations

import contextlib
import logging
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import grpc
import orjson
import pytest
import sqlalchemy as sa
from benchmark.scale import cache, compaction
from benchmark.scale.completion import marks
from benchmark.scale.loader import Loaded, prepare
from benchmark.scale.postgres_store import PostgresTarget
from benchmark.scale.records import subject_of
from benchmark.scale.runner import (
    Options,
    measure_cache,
    measure_cold_start,
    measure_compaction,
    measure_feed,
    measure_footprint,
)
from benchmark.scale.serving import RETENTION_SECONDS
from benchmark.scale.sizes import TINY
from benchmark.scale.sqlite_store import SqliteTarget
from benchmark.scale.store import Target
from google.type import money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from order_svc import schema as order_schema
from order_svc.user_feed import HEALTH_NAME
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.user.v1 import user_pb2, user_pb2_grpc
from shop_common.feed import FeedSettings
from shop_common.storage import driver_url
from tests.integration.helpers import bearer
from tests.support import (
    POSTGRES_SKIP_REASON,
    channel_to,
    eventually,
    postgres_admin_url,
    running_order_svc,
    running_user_svc,
)
from user_svc import schema as user_schema
from user_svc.store import UserRows

FEED = FeedSettings(retention_seconds=RETENTION_SECONDS)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Target]:
    found: Target
    if request.param == "sqlite":
        found = SqliteTarget(tmp_path / "scale-data")
    else:
        admin_url = postgres_admin_url()
        if admin_url is None:
            pytest.skip(POSTGRES_SKIP_REASON)
        found = PostgresTarget(admin_url, prefix=f"t_scale_{secrets.token_hex(4)}")
    try:
        yield found
    finally:
        found.drop(TINY)


@pytest.fixture
def loaded(target: Target) -> Iterator[Loaded]:
    with contextlib.ExitStack() as stack:
        yield prepare(target, TINY, stack, keep=False)


def _read(url: str, query: sa.Select[Any]) -> list[Any]:
    engine = sa.create_engine(driver_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(query))
    finally:
        engine.dispose()


def test_the_load_is_what_the_services_would_have_written(loaded: Loaded) -> None:
    plan, codec = loaded.plan, UserRows()
    users = _read(loaded.user_url, sa.select(user_schema.users).order_by(user_schema.users.c.id))
    changes = user_schema.changelog.changes
    user_changes = _read(loaded.user_url, sa.select(changes).order_by(changes.c.revision))
    assert [u.id for u in users] == plan.user_ids  # id order is creation order
    assert [u.revision for u in users] == list(range(1, TINY.users + 1))
    assert [(c.revision, c.seq, c.resource_id, c.prev) for c in user_changes] == [
        (u.revision, 0, u.id, None) for u in users
    ]
    assert all(
        codec.from_row(orjson.loads(c.data)) == codec.from_row(u._mapping)
        for c, u in zip(user_changes, users, strict=True)
    )
    assert [u.subject for u in users] == [subject_of(i) for i in range(TINY.users)]
    counter = user_schema.changelog.counter
    assert _read(loaded.user_url, sa.select(counter.c.revision)) == [(TINY.users,)]

    orders, order_changes = order_schema.orders, order_schema.changelog.changes
    revisions = _read(loaded.order_url, sa.select(orders.c.revision).order_by(orders.c.id))
    assert [r[0] for r in revisions] == list(range(1, TINY.orders + 1))
    logged = _read(loaded.order_url, sa.select(order_changes.c.revision))
    assert sorted(r[0] for r in logged) == list(range(1, TINY.orders + 1))
    per_user: dict[str, int] = dict(
        _read(
            loaded.order_url,
            sa.select(orders.c.user_id, sa.func.count()).group_by(orders.c.user_id),
        )
    )
    assert [per_user[plan.user_ids[i]] for i in plan.heavy] == [TINY.heavy_orders] * 2
    assert set(per_user) <= set(plan.user_ids)
    order_counter = order_schema.changelog.counter
    assert _read(loaded.order_url, sa.select(order_counter.c.revision)) == [(TINY.orders,)]

    view = _read(loaded.order_url, sa.select(order_schema.known_users))
    assert sorted((v.id, v.revision, v.deleted, v.subject) for v in view) == sorted(
        (u.id, u.revision, False, u.subject) for u in users
    )
    state = order_schema.user_view_state
    assert _read(loaded.order_url, sa.select(state.c.revision)) == [(TINY.users,)]


def test_the_schema_is_the_services_own_indexes_included(loaded: Loaded) -> None:
    for url, metadata in ((loaded.user_url, user_schema.metadata),
                          (loaded.order_url, order_schema.metadata)):  # fmt: skip
        engine = sa.create_engine(driver_url(url))
        try:
            inspector = sa.inspect(engine)
            for table in metadata.sorted_tables:
                found = {i["name"] for i in inspector.get_indexes(table.name)}
                assert {i.name for i in table.indexes} <= found, table.name
            if loaded.target == "sqlite":
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            engine.dispose()


async def test_the_services_serve_the_load_as_their_own(
    loaded: Loaded, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="order_svc.user_feed")
    plan = loaded.plan
    heavy, typical = plan.user_ids[plan.heavy[0]], plan.user_ids[plan.typical]
    async with running_user_svc(loaded.user_url, tmp_path / "u", feed=FEED) as user_server:
        address = f"127.0.0.1:{user_server.port}"
        async with (
            running_order_svc(loaded.order_url, tmp_path / "o", address, feed=FEED) as order,
            channel_to(user_server.port) as user_channel,
            channel_to(order.port) as order_channel,
        ):
            users = user_pb2_grpc.UserServiceStub(user_channel)
            orders = order_pb2_grpc.OrderServiceStub(order_channel)
            health = health_pb2_grpc.HealthStub(order_channel)

            async def serving() -> bool:
                request = health_pb2.HealthCheckRequest(service=HEALTH_NAME)
                reply = await health.Check(request)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            await eventually(serving, 10, "order_svc's view of users SERVING")
            assert not [r for r in caplog.records if "listed" in r.getMessage()]

            replayed: list[str] = []
            watch = users.WatchUsers(user_pb2.WatchUsersRequest(start_revision=1))
            async for response in watch:
                replayed += [e.user.id for e in response.events]
                if len(replayed) >= TINY.users:
                    break
            watch.cancel()
            assert replayed == plan.user_ids

            got = await users.GetUser(user_pb2.GetUserRequest(id=heavy))
            assert (got.user.subject, got.user.etag) == (
                subject_of(plan.heavy[0]),
                str(plan.heavy[0] + 1),
            )
            listed, token = [], ""
            while True:
                request = order_pb2.ListOrdersRequest(
                    user_id=heavy, page_size=100, page_token=token
                )
                page = await orders.ListOrders(request)
                listed += [o.id for o in page.orders if o.user_id == heavy]
                token = page.next_page_token
                if not token:
                    break
            assert len(listed) == TINY.heavy_orders
            assert listed == sorted(listed)

            price = money_pb2.Money(currency_code="EUR", units=3)
            item = order_pb2.LineItem(sku="A-1", quantity=1, unit_price=price)
            placed = await orders.CreateOrder(
                order_pb2.CreateOrderRequest(order=order_pb2.Order(user_id=typical, items=[item])),
                metadata=bearer(subject_of(plan.typical)),
            )
            assert placed.order.etag == str(TINY.orders + 1)
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # another subject's user
                await orders.CreateOrder(
                    order_pb2.CreateOrderRequest(
                        order=order_pb2.Order(user_id=heavy, items=[item])
                    ),
                    metadata=bearer(subject_of(plan.typical)),
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_kept_load_is_reused_and_dropped_once_not_kept(target: Target) -> None:
    with contextlib.ExitStack() as stack:
        first = prepare(target, TINY, stack, keep=True)
    assert not first.reused
    assert first.seconds["total"] > 0
    assert target.exists(TINY)
    with contextlib.ExitStack() as stack:
        again = prepare(target, TINY, stack, keep=False)
    assert again.reused
    assert again.seconds == {}
    assert not target.exists(TINY)


def test_an_unfinished_load_is_loaded_again(target: Target) -> None:
    with contextlib.ExitStack() as stack:
        first = prepare(target, TINY, stack, keep=True)
    engine = sa.create_engine(driver_url(first.order_url))
    try:
        with engine.begin() as conn:
            conn.execute(marks.delete())  # as if the load had stopped before its end
    finally:
        engine.dispose()
    with contextlib.ExitStack() as stack:
        again = prepare(target, TINY, stack, keep=False)
    assert not again.reused


def test_the_feed_cold_start_and_compaction_sections_measure_the_load(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sections beyond the request rows, run on the tiny load as `make bench --scale`
    runs them on the big ones: every loaded order replayed without a gap, the view listed
    from empty with every user, the loaded user history compacted under a writer."""
    monkeypatch.setattr(compaction, "AFTER_SECONDS", 0.5)
    admin_url = postgres_admin_url() if loaded.target == "postgresql" else None
    options = Options(sizes=[TINY], seconds=1, database=admin_url, keep=False, no_gateway=True)

    feed = measure_feed(loaded, options)["feed"]
    for part in ("replay", "catch_up"):
        assert feed[part]["events"] == TINY.orders, part
        assert feed[part]["gaps"] == 0, part

    cold = measure_cold_start(loaded, options)["cold_start"]
    assert cold["users_listed"] == TINY.users
    assert 0 < cold["listening_s"] <= cold["serving_s"]
    assert cold["peak_rss_mb"] >= cold["rss_mb"] > 0

    compacted = measure_compaction(loaded, options)["compaction"]
    # user_svc compacts the loaded history, older than its retention, at start; the writer's
    # revisions, newer, stay, and so does the newest of all (the last loaded one, if the
    # compaction began before the writer's first write).
    assert compacted["revisions"] == compacted["point"] in (TINY.users - 1, TINY.users)
    assert compacted["units"] >= 1
    assert compacted["writes_without"] > 0
    assert compacted["writer_errors"] == 0
    # On a copy: the load keeps its history for the other sections.
    history = _read(
        loaded.user_url, sa.select(sa.func.count()).select_from(user_schema.changelog.changes)
    )
    assert history == [(TINY.users,)]


def test_the_footprint_and_cache_sections_measure_the_load(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each table's and index's bytes, the services' own index among them; random users read
    twice (the page cache left alone here: dropping it is the whole machine's)."""
    options = Options(sizes=[TINY], seconds=1, database=None, keep=False, no_gateway=True)
    found = measure_footprint(loaded, options)["footprint"]
    assert {"users", "changes"} <= set(found["user_db"]["relations"])
    assert "ix_orders_user_id_id" in found["order_db"]["relations"]
    for database in ("user_db", "order_db"):
        assert found[database]["tables_bytes"] > 0
        assert found[database]["indexes_bytes"] > 0

    monkeypatch.setattr(cache, "USERS", 40)
    monkeypatch.setattr(cache, "drop_caches", lambda: False)
    read = measure_cache(loaded, options)["cache"]
    assert read["page_cache_dropped"] is False
    for run in ("cold", "warm"):
        for call in ("get_user", "list_orders"):
            assert read[run][call]["requests"] == 39, (run, call)
            assert read[run][call]["errors"] == 0, (run, call)
