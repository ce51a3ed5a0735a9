"""Who the loaded data holds, decided once per size and the same on every run (seeded): the
users' ids, how many orders each has (a skew: most users a few, two "heavy" users 10,000
each), and the users the rows ask for.

Ids are UUIDv7 as the services issue them (`shop_common.domain.new_id`), one millisecond
apart in creation order, users first and then orders: id order is creation order, as it is
for data the services wrote themselves.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmark.scale.sizes import Size

EPOCH_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
"""When the first loaded user was created; each later user and order one ms after the last."""
SEED = 18
PARETO_ALPHA = 1.16
"""The 80/20 rule's shape: most users hold few orders, a few hold many."""
MOST_SPREAD = 1_000
"""No user but the heavy ones holds more orders than this."""
TYPICAL_ORDERS = 3
"""Orders of the "one user" of ListOrders: the same at every size (about the median)."""
SAMPLE = 1_000
"""Users cycled over by the write rows (ordinary users, neither heavy nor the typical one)."""


def uuid7(ms: int, rng: random.Random) -> str:
    """A UUIDv7 of that millisecond with random bits from `rng` (version 7, RFC variant)."""
    value = ms << 80 | 0x7 << 76 | rng.getrandbits(12) << 64 | 0x2 << 62 | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


@dataclass(frozen=True)
class Plan:
    size: Size
    user_ids: list[str]
    """In creation (and id) order: user i has revision i + 1 in the user database."""
    counts: list[int]
    """Orders of each user, by user index."""
    heavy: list[int]
    """Indexes of the heavy users."""
    typical: int
    """Index of a user with TYPICAL_ORDERS orders (else the median number)."""
    sample: list[int]
    """Indexes of the users the write rows cycle over (their orders grow on each run)."""

    def order_owners(self) -> list[int]:
        """The user index of each order, in creation order: the users' orders interleaved."""
        owners = [i for i, count in enumerate(self.counts) for _ in range(count)]
        random.Random(SEED + 1).shuffle(owners)
        return owners

    def order_ms(self, n: int) -> int:
        return EPOCH_MS + self.size.users + n


def plan(size: Size) -> Plan:
    rng = random.Random(SEED)
    user_ids = [uuid7(EPOCH_MS + i, rng) for i in range(size.users)]
    heavy = [size.users * (k + 1) // (size.heavy_users + 1) for k in range(size.heavy_users)]
    counts = _spread(size, heavy, rng)
    for i in heavy:
        counts[i] = size.heavy_orders
    others = [i for i in range(size.users) if i not in set(heavy)]
    median = sorted(counts[i] for i in others)[len(others) // 2]
    typical = next(
        (i for i in others if counts[i] == TYPICAL_ORDERS),
        next(i for i in others if counts[i] == max(1, median)),
    )
    pool = [i for i in others if i != typical]
    step = max(1, len(pool) // SAMPLE)
    return Plan(size, user_ids, counts, heavy, typical, pool[::step][:SAMPLE])


def _spread(size: Size, heavy: list[int], rng: random.Random) -> list[int]:
    """The orders of every user but the heavy ones: Pareto weights, capped, scaled to the
    total exactly (what rounding leaves goes one each to the first users)."""
    skip = set(heavy)
    weights = [
        0.0 if i in skip else min(rng.paretovariate(PARETO_ALPHA), MOST_SPREAD)
        for i in range(size.users)
    ]
    scale = size.spread_orders / sum(weights)
    counts = [min(MOST_SPREAD, int(w * scale)) for w in weights]
    short = size.spread_orders - sum(counts)
    for i in range(size.users):
        if short <= 0:
            break
        if i not in skip and counts[i] < MOST_SPREAD:
            counts[i] += 1
            short -= 1
    return counts
