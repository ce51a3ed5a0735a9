"""`make bench --database`: the option, how the server is printed (never a password), which
server processes a run is charged for, the PostgreSQL targets, and the feed rows' database."""

from __future__ import annotations

import argparse

import pytest
from benchmark.feed.results import Live, Replay, markdown
from benchmark.load import Run
from benchmark.postgres import LOCAL_URL, charged, is_local, parse_database, settings_lines, shown
from benchmark.targets import postgres_targets

RUN_DATABASES = ("shop_bench_7_user", "shop_bench_7_order")


def test_postgresql_alone_is_the_local_server() -> None:
    assert parse_database("postgresql") == LOCAL_URL
    assert is_local(LOCAL_URL)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("postgresql://bench@db.internal:5433/shop", "postgresql://bench@db.internal:5433/shop"),
        ("postgresql+psycopg://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_a_url_is_taken_as_libpq_takes_it(text: str, url: str) -> None:
    assert parse_database(text) == url


@pytest.mark.parametrize(
    "text", ["sqlite", "sqlite:///x.db", "mysql://u@h/db", "postgresql://u@h", "not a url"]
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_database(text)


def test_a_refusal_does_not_repeat_the_password() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse_database("mysql://u:secret@h/db")
    assert "secret" not in str(refused.value)


def test_only_a_server_on_this_machine_is_local() -> None:
    assert is_local("postgresql://u@localhost/db")
    assert is_local("postgresql://u@[::1]:5432/db")
    assert is_local("postgresql:///db")  # a Unix socket
    assert not is_local("postgresql://u@10.0.0.5/db")


@pytest.mark.parametrize(
    ("title", "counted"),
    [
        ("postgres: 15/main: postgres shop_bench_7_user 127.0.0.1(40112) idle", True),
        ("postgres: 15/main: postgres shop_bench_7_order [local] COMMIT", True),
        ("postgres: 15/main: checkpointer ", True),
        ("postgres: 15/main: walwriter ", True),
        ("postgres: 15/main: autovacuum worker shop_bench_7_order", True),
        ("postgres: 15/main: postgres test 127.0.0.1(40200) idle", False),
        ("postgres: 15/main: postgres shop_bench_70_user 127.0.0.1(40201) idle", False),
        ("postgres: postgres other [local] idle", False),
    ],
)
def test_a_run_is_charged_for_its_backends_and_the_background_processes(
    title: str, counted: bool
) -> None:
    assert charged(title, RUN_DATABASES) is counted


def test_the_settings_are_printed_without_the_password() -> None:
    settings = {"server_version": "15.8", "synchronous_commit": "on", "fsync": "on"}
    lines = settings_lines("postgresql://bench:hunter2@db.internal:5433/test", settings, False)
    text = "\n".join(lines)
    assert "hunter2" not in text
    assert "PostgreSQL 15.8 at db.internal:5433" in lines[0]
    assert lines[1] == "- PostgreSQL settings: synchronous_commit on, fsync on"
    assert "not measured" in lines[2]
    assert shown("postgresql://bench:hunter2@h/db") == "postgresql://bench:***@h/db"


def test_the_postgresql_targets() -> None:
    medians = {"create_order_rest_pg": Run(2000.0, 1.0, 2.0, 100, 0)}
    lines, figures = postgres_targets(
        medians, {"create_order_rest_pg": 4.0, "get_user_grpc_pg": 0.65}
    )
    assert figures["create_order_rest_vs_seed"]["met"] is True
    assert figures["get_user_grpc_vs_sqlite"]["met"] is False
    assert "4.00x" in lines[0]
    assert lines[0].endswith(": met")
    assert "65%" in lines[1]
    assert lines[1].endswith("**not met**")


def test_no_postgresql_targets_without_the_rows() -> None:
    lines, figures = postgres_targets({}, {})
    assert figures == {}
    assert "not measured" in lines[0]


def _live(rate: float) -> Live:
    return Live(
        rate_asked=rate, seconds=2, watchers=1, writers=1, writes_ok=10, write_errors=0,
        late_sends=0, writes_per_s=rate, write_p50_ms=1.0, write_p99_ms=2.0, revisions=10,
        received=[10], gaps=0, errors=[], lag_p50_ms=1.0, lag_p99_ms=2.0, lag_max_ms=3.0,
        after_reply_p50_ms=0.1, after_reply_p99_ms=0.2, events_per_response=1.0,
        cpu_us_per_write=500.0, client_cpus=0.1,
    )  # fmt: skip


def test_the_feed_rows_say_which_database_they_ran_on() -> None:
    replay = Replay(100, 0.01, 10_000.0, 10, 0, 50.0, 0.01)
    on_sqlite = "\n".join(markdown([replay], [[_live(300.0)]], 100))
    on_postgres = "\n".join(markdown([replay], [[_live(300.0)]], 100, "PostgreSQL"))
    assert "(SQLite, 100 changes" in on_sqlite
    assert "one SQLite writer thread" in on_sqlite
    assert "(PostgreSQL, 100 changes" in on_postgres
    assert "SQLite" not in on_postgres
