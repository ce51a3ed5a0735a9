"""The system again on PostgreSQL (`--database`): a second `tools/run.py` on two throwaway
databases of the given server, measured beside the one on SQLite in the same run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

from benchmark import postgres
from benchmark.feed.runner import FeedBench, start_feed
from benchmark.session import Session
from benchmark.system import Storage, System, start_system

SUFFIX = "_pg"
"""Of the PostgreSQL system's process names and of its rows' keys."""


@dataclass(frozen=True)
class PostgresSystem:
    system: System
    url: str
    """The server's URL the databases were created with (may hold a password: print `shown`)."""
    settings: dict[str, str]
    local: bool
    """Whether its processes' CPU time is measured (a server on this machine)."""


def start_postgres_system(session: Session, url: str, no_gateway: bool) -> PostgresSystem:
    """Creates the databases (dropped when the session ends), starts and seeds the system on
    them, and charges the server's processes to its rows as `postgres` when they are local."""
    names = postgres.database_names(os.getpid(), "user", "order")
    print(f"creating {', '.join(names)} on {postgres.shown(url)}", flush=True)
    user_url, order_url = postgres.create_databases(session.stack, url, names)
    env = {"USER_SVC_DATABASE_URL": user_url, "ORDER_SVC_DATABASE_URL": order_url}
    storage = Storage("PostgreSQL", SUFFIX, env, lambda _data: postgres.view_revision(order_url))
    print("starting the system on PostgreSQL (a second tools/run.py)", flush=True)
    system = start_system(session, no_gateway, storage)
    local = postgres.is_local(url)
    if local:
        session.meters["postgres"] = partial(postgres.backends_cpu, tuple(names))
    else:
        session.notes.append("PostgreSQL is not on this machine: its backends' CPU is not measured")
    return PostgresSystem(system, url, postgres.server_settings(url), local)


def start_postgres_feed(
    session: Session, on_pg: PostgresSystem, changes: int, watchers: int, writers: int
) -> FeedBench:
    """The feed rows' user_svc on an empty database of its own on the same server (dropped
    when the session ends); the server's processes for it are not counted as other load."""
    names = postgres.database_names(os.getpid(), "feed")
    print(f"creating {names[0]} on {postgres.shown(on_pg.url)}", flush=True)
    (url,) = postgres.create_databases(session.stack, on_pg.url, names)
    feed = start_feed(session, changes, watchers, writers, url, SUFFIX)
    if on_pg.local:
        feed.server_cpu = partial(postgres.backends_cpu, tuple(names))
    return feed
