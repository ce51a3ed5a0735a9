"""The system started on a load: `tools/run.py` (or the two services alone with
--no-gateway) on the loaded databases, as the normal benchmark starts it, seeding nothing.

By its timestamps the loaded history is older than the default retention (a day): the
services are told to keep ten years of it, so that they do not compact it while they are
measured (compaction is a part of its own, driven on purpose).
"""

from __future__ import annotations

from pathlib import Path

from benchmark import postgres
from benchmark.pg_system import SUFFIX
from benchmark.scale.loader import Loaded
from benchmark.session import Session
from benchmark.system import Storage, System, start_system, view_revision

RETENTION_SECONDS = 10 * 365 * 86_400


def storage_of(loaded: Loaded) -> Storage:
    """How the services reach the loaded databases, and how the view's revision is read."""
    env = {
        "USER_SVC_DATABASE_URL": loaded.user_url,
        "ORDER_SVC_DATABASE_URL": loaded.order_url,
        "SHOP_FEED_RETENTION_SECONDS": str(RETENTION_SECONDS),
    }
    if loaded.target == "postgresql":
        order_url = loaded.order_url
        return Storage("PostgreSQL", SUFFIX, env, lambda _data: postgres.view_revision(order_url))
    order_file = Path(loaded.order_url.removeprefix("sqlite:///"))
    return Storage("SQLite", "", env, lambda _data: view_revision(order_file))


def start_on(session: Session, loaded: Loaded, no_gateway: bool) -> System:
    """The system on the load, driven on its sample users (`Plan.sample`)."""
    plan = loaded.plan
    ids = [plan.user_ids[i] for i in plan.sample]
    print(f"starting the system on the {loaded.size.name} load ({loaded.target})", flush=True)
    return start_system(session, no_gateway, storage_of(loaded), ids)
