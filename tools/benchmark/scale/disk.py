"""Free disk, checked before a load: what a size needs, estimated from what the 100k load
took (per user and per order, both databases, with its indexes), and a refusal that says so."""

from __future__ import annotations

from benchmark.errors import BenchError
from benchmark.scale.sizes import Size
from benchmark.scale.store import Target

BYTES_PER_USER = {"sqlite": 700, "postgresql": 800}
BYTES_PER_ORDER = {"sqlite": 650, "postgresql": 750}
"""Measured at 100k (389 MB on SQLite, 452 MB on PostgreSQL: the rows, their changes, the
view of users and the indexes of both databases), rounded up."""
MARGIN = 1.5
"""For the load's temporary space (index builds, WAL) and the orders the rows add."""


def needed_bytes(size: Size, kind: str) -> int:
    exact = size.users * BYTES_PER_USER[kind] + size.orders * BYTES_PER_ORDER[kind]
    return int(exact * MARGIN)


def check_free(target: Target, size: Size) -> str:
    """Refuses a load the disk cannot hold; a line for the log either way."""
    need = needed_bytes(size, target.name)
    free = target.free_bytes()
    if free is None:
        return f"{size.name} on {target.name}: needs ~{_gb(need)}; free disk not readable here"
    if free < need:
        raise BenchError(
            f"{size.name} on {target.name} needs about {_gb(need)} of disk, "
            f"only {_gb(free)} is free: free some, or choose smaller sizes"
        )
    return f"{size.name} on {target.name}: needs ~{_gb(need)}, {_gb(free)} free"


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"
