"""The data sizes the scale benchmark loads (`--scale 10k,100k,1m`), and a tiny one for tests."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    users: int
    orders: int
    heavy_users: int = 2
    heavy_orders: int = 10_000
    """Orders of each heavy user: the same at every size, so that a page deep into a heavy
    user's orders is comparable across sizes."""

    @property
    def spread_orders(self) -> int:
        """The orders the other users share (most few, some many)."""
        return self.orders - self.heavy_users * self.heavy_orders


SIZES = {
    size.name: size
    for size in (
        Size("10k", 10_000, 50_000),
        Size("100k", 100_000, 500_000),
        Size("1m", 1_000_000, 5_000_000),
    )
}
TINY = Size("tiny", 200, 1_000, heavy_orders=300)
"""Only for tests: every part of a load, in well under a second."""
BASELINE = "10k"
"""The size every row's p99 is compared with (the target: at most 1.5 times it)."""


def parse_sizes(text: str) -> list[Size]:
    """`--scale`: comma-separated names of SIZES, smallest first whatever the order given."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SIZES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown) or text!r}: give sizes among {', '.join(SIZES)}, e.g. 10k,100k"
        )
    return sorted({SIZES[n] for n in names}, key=lambda s: s.users)
