"""Free disk, checked before a load: what a size needs, estimated from what the 10k load
took (per user and per order, both databases, with its indexes), and a refusal that says so."""

from __future__ import annotations

from benchmark.errors import BenchError
from benchmark.scale.sizes import Size
from benchmark.scale.store import Target

BYTES_PER_USER = {"sqlite": 1_500, "postgresql": 2_000}
BYTES_PER_ORDER = {"sqlite": 1_200, "postgresql": 1_600}
"""Measured at 10k (both databases: the rows, their changes and indexes), rounded up."""
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
