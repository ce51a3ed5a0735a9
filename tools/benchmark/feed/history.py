"""The feed's user_svc database (SQLite or PostgreSQL), with a history of changes written
straight into its tables."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from benchmark.errors import FeedError
from benchmark.settings import REPO

CHANGES_PER_USER = 5
"""The seeded history: N/5 users created, then updated in turn up to N changes."""


def seed_history(url: str, changes: int, env: dict[str, str]) -> list[str]:
    """The user_svc database at `url` (SQLite or PostgreSQL, empty) with revisions
    1..`changes`; returns the user ids.

    Migrates with `python -m user_svc migrate`, then bulk-inserts in one transaction:
    users created at revisions 1..U (U = changes / 5), then updated in turn (display name)
    up to `changes`; the users table holds each user's last row, the counter `changes`.
    """
    migrate = [sys.executable, "-m", "user_svc", "migrate"]
    done = subprocess.run(
        migrate, cwd=REPO, env={**env, "USER_SVC_DATABASE_URL": url},
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise FeedError(f"{' '.join(migrate)} failed:\n{done.stdout}{done.stderr}")
    user_ids, user_rows, change_rows = _history(changes)
    _insert(url, user_rows, change_rows, changes)
    return user_ids


Rows = list[dict[str, Any]]


def _history(changes: int) -> tuple[list[str], Rows, Rows]:
    """The user ids, each user's last row, and the change rows of revisions 1..`changes`."""
    # Imported here, not at the top: only the seeding needs the service's own code.
    import orjson

    from shop_common.domain import new_id
    from shop_common.storage import ChangeType, to_us
    from user_svc.domain import User
    from user_svc.store import UserRows

    codec, token = UserRows(), os.urandom(3).hex()
    user_count = max(1, changes // CHANGES_PER_USER)
    # One change per millisecond, ending now: well inside the feed's retention.
    start_us = to_us(datetime.now(UTC)) - changes * 1000
    users: list[User] = []
    change_rows: list[dict[str, Any]] = []
    for revision in range(1, changes + 1):
        moment = datetime.fromtimestamp((start_us + revision * 1000) / 1e6, UTC)
        prev: str | None = None
        if revision <= user_count:
            user = User(
                id=new_id(), email=f"feed-{token}-{revision}@example.com",
                display_name=f"Feed {revision}", create_time=moment, update_time=moment,
                revision=revision,
            )  # fmt: skip
            users.append(user)
        else:
            slot = (revision - user_count - 1) % user_count
            prev = orjson.dumps(codec.to_row(users[slot])).decode()
            user = dataclasses.replace(
                users[slot], display_name=f"Feed {slot + 1} r{revision}", update_time=moment,
                revision=revision,
            )  # fmt: skip
            users[slot] = user
        row = codec.to_row(user)
        change_rows.append(
            {
                "revision": revision, "seq": 0, "resource_id": user.id,
                "type": int(ChangeType.PUT), "data": orjson.dumps(row).decode(), "prev": prev,
                "commit_time_us": to_us(user.update_time),
            }
        )  # fmt: skip
    return [u.id for u in users], [codec.to_row(u) for u in users], change_rows


def _insert(url: str, user_rows: Rows, change_rows: Rows, changes: int) -> None:
    """The users' rows, the change rows and the counter, in one transaction."""
    import sqlalchemy as sa

    from shop_common.storage import driver_url
    from user_svc import schema

    engine = sa.create_engine(driver_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(schema.users.insert(), user_rows)
            conn.execute(schema.changelog.changes.insert(), change_rows)
            counter = schema.changelog.counter
            conn.execute(counter.update().where(counter.c.id == 1).values(revision=changes))
    finally:
        engine.dispose()
