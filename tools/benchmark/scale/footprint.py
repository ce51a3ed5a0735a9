"""Where a load's bytes are: each table and each index of both databases, as the database
counts them (PostgreSQL: `pg_relation_size` of each table, its TOAST and each index; SQLite:
the pages of each b-tree, from the `dbstat` table), and per user and per order."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from benchmark.scale.loader import Loaded

_POSTGRES = b"""
SELECT c.relname, c.relkind = 'i',
       pg_relation_size(c.oid) + COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i')
"""
_SQLITE_INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index'"
_SQLITE_SIZES = "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"


def relations(url: str) -> dict[str, tuple[bool, int]]:
    """Each table's and index's bytes (and whether it is an index)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            indexes = {row[0] for row in conn.execute(_SQLITE_INDEXES)}
            return {
                name: (name in indexes or name.startswith("sqlite_autoindex"), int(size))
                for name, size in conn.execute(_SQLITE_SIZES)
            }
    with psycopg.connect(url) as conn:
        return {name: (bool(index), int(size)) for name, index, size in conn.execute(_POSTGRES)}


def footprint(loaded: Loaded) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for database, url, count in (
        ("user_db", loaded.user_url, loaded.size.users),
        ("order_db", loaded.order_url, loaded.size.orders),
    ):
        sizes = relations(url)
        tables = sum(size for index, size in sizes.values() if not index)
        indexes = sum(size for index, size in sizes.values() if index)
        found[database] = {
            "tables_bytes": tables,
            "indexes_bytes": indexes,
            "per_resource_tables": round(tables / count),
            "per_resource_indexes": round(indexes / count),
            "relations": {name: size for name, (_, size) in sorted(sizes.items())},
        }
    return found
