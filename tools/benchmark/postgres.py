"""The PostgreSQL server a run measures the system on (`--database`): the option, the two
throwaway databases, the settings in force, and the CPU time its server processes spend.

Only its settings make figures on PostgreSQL comparable (synchronous_commit alone changes a
commit's cost several times), so they are printed with them. Its processes are not the
benchmark's children: their CPU time is read from /proc, which only a local server allows.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from benchmark.procfs import CLK_TCK, stat_fields

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""`--database postgresql`: the server on this machine, as the tests use it."""
SETTINGS = (
    "synchronous_commit", "fsync", "full_page_writes", "wal_level", "shared_buffers",
    "wal_buffers", "commit_delay", "commit_siblings", "max_wal_size", "checkpoint_timeout",
    "wal_compression", "effective_io_concurrency", "max_connections",
)  # fmt: skip
"""What a commit's cost depends on, shown with the figures (server_version first)."""
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
_CLIENT_BACKEND = re.compile(r"\(\d+\)|\[local\]")
"""A client backend's title names its peer: `host(port)`, or `[local]` for a socket."""


def parse_database(text: str) -> str:
    """`--database`: `postgresql` (the local server) or a `postgresql://` URL."""
    if text == "postgresql":
        return LOCAL_URL
    try:
        url = make_url(text)
    except Exception:  # SQLAlchemy raises several kinds for text that is no URL
        url = None
    if url is None or url.get_backend_name() not in ("postgresql", "postgres") or not url.database:
        raise argparse.ArgumentTypeError(
            f"{shown(text)!r}: give `postgresql` or a URL postgresql://user@host:port/db"
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def shown(url: str) -> str:
    """`url` as printed: never its password."""
    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return "<not a URL>"


def is_local(url: str) -> bool:
    """Whether the server runs on this machine (its processes readable in /proc)."""
    return (make_url(url).host or "") in LOCAL_HOSTS


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def create_databases(stack: contextlib.ExitStack, url: str, names: list[str]) -> list[str]:
    """Creates `names` on the server of `url`, dropped when `stack` closes (even after a
    failure or Ctrl-C); their URLs."""
    for name in names:
        stack.callback(drop_database, url, name)  # before creating: a half-done run drops too
        with psycopg.connect(url, autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+) copies the tiny template far faster than WAL_LOG.
            fast = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{fast}'.encode())
    return [with_database(url, name) for name in names]


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def server_settings(url: str) -> dict[str, str]:
    """server_version and each of SETTINGS as `SHOW` gives it."""
    with psycopg.connect(url) as conn:
        return {
            name: str(row[0])
            for name in ("server_version", *SETTINGS)
            if (row := conn.execute(f"SHOW {name}".encode()).fetchone())
        }


def settings_lines(url: str, settings: dict[str, str], local: bool) -> list[str]:
    """The Markdown lines that state where the PostgreSQL rows ran and with what settings."""
    where = make_url(url)
    head = (
        f"- PostgreSQL {settings.get('server_version', '?')} at {where.host or 'socket'}:"
        f"{where.port or 5432} (databases created on {shown(url)}, dropped at the end)"
    )
    shown_settings = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "server_version")
    cpu = (
        "the server's processes' CPU time (background ones, and the backends of the run's "
        "databases) is charged to the PostgreSQL rows as `postgres`"
        if local
        else "the server is not on this machine: its backends' CPU time is not measured"
    )
    return [head, f"- PostgreSQL settings: {shown_settings}", f"- PostgreSQL CPU: {cpu}"]


def view_revision(url: str) -> int | None:
    """The user revision order_svc's view is current to, read from its PostgreSQL database
    (None before its tables exist); 0 before its first listing."""
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(b"SELECT revision FROM user_view_state WHERE id = 1").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(row[0] or 0) if row else 0


def charged(title: str, databases: tuple[str, ...]) -> bool:
    """Whether a server process (by its title) works for this run: a backend of one of its
    `databases`, or a background process (WAL writer, checkpointer ...) every commit feeds;
    not a client backend of another database (the server may be shared)."""
    if any(name in title.split() for name in databases):
        return True
    return not _CLIENT_BACKEND.search(title)


def backends_cpu(databases: tuple[str, ...]) -> float:
    """CPU seconds the local server's processes charged to this run have spent: the
    postmaster's children (found in /proc), as `charged` picks them."""
    titles = {pid: title for pid in _pids() if (title := _title(pid)) is not None}
    masters = {pid for pid, t in titles.items() if not t.startswith("postgres:")}
    total = 0
    for pid, title in titles.items():
        stat = stat_fields(pid)
        if stat and int(stat[1]) in masters and charged(title, databases):
            total += int(stat[11]) + int(stat[12])
    return total / CLK_TCK


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _title(pid: int) -> str | None:
    """The command line of a PostgreSQL server process (`postgres: …` for its children);
    None for any other process."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return b" ".join(a for a in argv if a).decode(errors="replace")


def database_names(pid: int, *uses: str) -> list[str]:
    """Databases of one run, one per use: unique to the process (and so to the run)."""
    return [f"shop_bench_{pid}_{use}" for use in uses]
